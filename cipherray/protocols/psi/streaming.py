"""Bounded-memory input: read CSV / Parquet in chunks and yield prepared identifiers.

``iter_csv_ids`` / ``iter_parquet_ids`` yield one ``PreparedIds`` per chunk (rows are
global positions in the file; dedup is within the chunk). ``hash_stream`` hashes the
chunks to points and removes duplicates across chunks (first row wins), so a party
holds 32 bytes + 8 bytes of row index per identifier, never the whole table. A
``HashedIds`` can be passed wherever the protocols take identifiers (the step-1
functions then blind the points without hashing again; use the same salt).

CSV key columns are read as strings by default (``dtype=str``) so that type inference
cannot differ from chunk to chunk or drop leading zeros (phone numbers, ZIP codes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd

from .curve import POINT_DTYPE, concat_points, hash_to_points
from .identifiers import NormalizeSpec, PreparedIds, _as_keys, prepare_ids
from .matching import _prefix64, _u8


def iter_csv_ids(
    path: str | PathLike[str],
    keys: str | Sequence[str],
    *,
    chunksize: int = 1_000_000,
    normalize: NormalizeSpec = None,
    strict: bool = False,
    keys_as_str: bool = True,
    **read_csv_kwargs: Any,
) -> Iterator[PreparedIds]:
    """``PreparedIds`` per chunk of ``chunksize`` rows of a CSV file (only the key
    columns are read)."""
    ks = _as_keys(keys)
    kw: dict[str, Any] = {"usecols": list(ks), "chunksize": int(chunksize)}
    if keys_as_str:
        kw["dtype"] = {k: str for k in ks}
    kw.update(read_csv_kwargs)
    offset = 0
    with pd.read_csv(path, **kw) as reader:
        for df in reader:
            yield prepare_ids(
                df, ks, normalize=normalize, strict=strict, row_offset=offset, allow_empty=True
            )
            offset += len(df)


def iter_parquet_ids(
    path: str | PathLike[str],
    keys: str | Sequence[str],
    *,
    batch_size: int = 1_000_000,
    normalize: NormalizeSpec = None,
    strict: bool = False,
) -> Iterator[PreparedIds]:
    """``PreparedIds`` per record batch of a Parquet file (only the key columns are
    read)."""
    import pyarrow.parquet as pq

    ks = _as_keys(keys)
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    missing = [k for k in ks if k not in names]
    if missing:
        raise KeyError(f"key column(s) {missing} not in {path}; available: {names[:20]}")
    offset = 0
    for batch in pf.iter_batches(batch_size=int(batch_size), columns=list(ks)):
        df = batch.to_pandas()
        yield prepare_ids(
            df, ks, normalize=normalize, strict=strict, row_offset=offset, allow_empty=True
        )
        offset += len(df)


@dataclass
class HashedIds:
    """A party's whole set as hashed points (``H_salt(x)``) with their input rows."""

    points: np.ndarray  # V32
    rows: np.ndarray  # int64
    n_input: int
    n_missing: int
    n_duplicates: int


def _first_unique(points: np.ndarray) -> np.ndarray:
    """Sorted indices of the first occurrence of each distinct point."""
    if len(points) == 0:
        return np.empty(0, dtype=np.int64)
    key = _prefix64(points)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    same = np.empty(len(ks), dtype=bool)
    same[0] = False
    same[1:] = ks[1:] == ks[:-1]
    if same.any():
        b = _u8(points)
        full = np.all(b[order[1:]] == b[order[:-1]], axis=1)
        if not np.array_equal(same[1:], full):  # 64-bit prefix collision: exact path
            _, idx = np.unique(points.view("S32"), return_index=True)
            return np.sort(idx).astype(np.int64)
    return np.sort(order[~same]).astype(np.int64)


def hash_stream(chunks: Iterable[PreparedIds], salt: bytes) -> HashedIds:
    """Hash each chunk as it arrives and deduplicate across chunks (first row wins)."""
    pts, rows = [], []
    n_input = n_missing = n_dup = 0
    for c in chunks:
        pts.append(hash_to_points(c.ids, salt))
        rows.append(c.rows)
        n_input += c.n_input
        n_missing += c.n_missing
        n_dup += c.n_duplicates
    points = concat_points(pts) if pts else np.empty(0, dtype=POINT_DTYPE)
    allrows = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    keep = _first_unique(points)
    n_dup += len(points) - len(keep)
    if len(keep) == 0:
        raise ValueError(f"empty input: no usable identifier ({n_missing} rows missing)")
    return HashedIds(points[keep], allrows[keep], n_input, n_missing, n_dup)
