"""Party-side steps of the PSI job (run inside each party's actors; no Ray here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cipherray.protocols.psi import curve, ecdh, identifiers, matching, streaming
from cipherray.protocols.psi.curve import BlindingKey
from cipherray.workloads import files


def _fmt(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    raise ValueError(f"{path}: unknown file type {suffix!r} (use .csv or .parquet)")


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"input file {path} does not exist")


def key_types(path: str, keys: list[str]) -> dict[str, str]:
    """The key columns' types (schema metadata, compared across parties)."""
    _check_file(path)
    try:
        if _fmt(path) == "parquet":
            import pyarrow.parquet as pq

            head = next(pq.ParquetFile(path).iter_batches(batch_size=1000)).to_pandas()
        else:
            head = pd.read_csv(path, nrows=1000, dtype=str)
    except (ValueError, OSError, StopIteration) as e:
        raise ValueError(f"{path}: cannot be parsed ({type(e).__name__}: {e})") from e
    missing = [k for k in keys if k not in head.columns]
    if missing:
        # ValueError: the worker reports it as InputError naming party and step; the
        # message names the missing key only, never the party's other columns
        raise ValueError(f"{path}: key column(s) {missing} not found")
    if len(head) == 0:
        raise ValueError(f"{path}: empty input (no rows)")
    return identifiers.describe_key_types(head, keys)


def hash_ids(
    path: str, keys: list[str], normalize: Any, strict: bool, salt: bytes, chunksize: int
) -> streaming.HashedIds:
    """Stream the key columns in chunks, normalise, hash to the curve, deduplicate."""
    if _fmt(path) == "parquet":
        chunks = streaming.iter_parquet_ids(
            path, keys, batch_size=chunksize, normalize=normalize, strict=strict
        )
    else:
        chunks = streaming.iter_csv_ids(
            path, keys, chunksize=chunksize, normalize=normalize, strict=strict
        )
    try:
        return streaming.hash_stream(chunks, salt)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def counts(h: streaming.HashedIds) -> dict[str, int]:
    return {
        "rows": int(h.n_input),
        "missing": int(h.n_missing),
        "duplicates": int(h.n_duplicates),
        "identifiers": len(h.points),
    }


def new_salt() -> bytes:
    return curve.new_salt()


def new_key() -> BlindingKey:
    return BlindingKey.generate()


def shuffle_split(h: streaming.HashedIds, k: int) -> tuple:
    """Step 1 set-up: a secret permutation of the party's points, split into k chunks."""
    perm = curve.random_permutation(len(h.points))
    shuffled = h.points[perm]
    return (perm, *np.array_split(shuffled, k))


def split(points: np.ndarray, k: int) -> tuple:
    return tuple(np.array_split(points, k))


def blind_chunk(item: tuple) -> np.ndarray:
    points, key = item
    return curve.blind(points, key)


def concat(*parts: np.ndarray) -> np.ndarray:
    return curve.concat_points(parts)


def shuffle(points: np.ndarray) -> np.ndarray:
    return points[curve.random_permutation(len(points))]


def match(own_double: np.ndarray, peer_double: np.ndarray) -> tuple:
    return ecdh.step3_match(own_double, peer_double)


def count(own_double: np.ndarray, peer_double: np.ndarray) -> int:
    return int(matching.count_matches(own_double, peer_double))


def rows_of(positions: np.ndarray, perm: np.ndarray, h: streaming.HashedIds) -> np.ndarray:
    return ecdh.step_rows(positions, perm, h.rows)


def write_rows(path: str, rows: np.ndarray, out_dir: str, party: str, chunksize: int) -> str:
    """Write this party's own rows `rows` (in that order) to out_dir/<party>.<fmt>,
    reading the input again in chunks (memory bounded by the output)."""
    fmt = _fmt(path)
    out = Path(out_dir) / f"{party}.{'parquet' if fmt == 'parquet' else 'csv'}"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = np.asarray(rows, dtype=np.int64)
    wanted = np.sort(rows)
    pieces = []
    offset = 0
    if fmt == "parquet":
        import pyarrow.parquet as pq

        batches = (b.to_pandas() for b in pq.ParquetFile(path).iter_batches(batch_size=chunksize))
    else:
        batches = pd.read_csv(path, chunksize=chunksize, dtype=str, keep_default_na=False)
    for df in batches:
        lo, hi = np.searchsorted(wanted, [offset, offset + len(df)])
        if hi > lo:
            sel = df.iloc[wanted[lo:hi] - offset]
            sel.index = wanted[lo:hi]
            pieces.append(sel)
        offset += len(df)
    table = (
        pd.concat(pieces)
        if pieces
        else (pd.read_csv(path, nrows=0, dtype=str) if fmt == "csv" else pd.DataFrame())
    )
    table = table.loc[rows] if len(rows) else table
    with files.atomic_output(out) as tmp:
        if fmt == "parquet":
            table.reset_index(drop=True).to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)
    return str(out)


def ring_blind(points: np.ndarray, key: BlindingKey) -> np.ndarray:
    return curve.blind(points, key)


def intersect_sets(*full_sets: np.ndarray) -> tuple:
    from cipherray.protocols.psi import multiparty

    return tuple(multiparty.step3_intersect(list(full_sets)))


def values_of(path: str, column: str, h: streaming.HashedIds, chunksize: int) -> np.ndarray:
    """The value column at the party's kept rows (for intersection-sum)."""
    if _fmt(path) == "parquet":
        df = pd.read_parquet(path, columns=[column])
    else:
        try:
            df = pd.read_csv(path, usecols=[column])
        except ValueError as e:
            raise KeyError(f"{path}: value column {column!r} not found") from e
    if column not in df.columns:
        raise KeyError(f"{path}: value column {column!r} not found")
    vals = df[column].to_numpy()[h.rows]
    if not np.issubdtype(vals.dtype, np.number):
        raise TypeError(f"{path}: value column {column!r} is not numeric")
    if np.issubdtype(vals.dtype, np.floating) and not np.all(np.isfinite(vals)):
        raise ValueError(f"{path}: value column {column!r} has missing or infinite values")
    return vals


def points_of(h: streaming.HashedIds) -> np.ndarray:
    return h.points
