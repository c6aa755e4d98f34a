"""Identifier preparation: DataFrame key column(s) -> one canonical byte string per row.

Rules (both parties must prepare with the same ``keys`` layout and options):

* **Canonical form per column type** (``key_type``): strings as they are; integers in
  decimal (an integer-valued float column, as pandas makes of integers with missing
  values, counts as integer: ``12.0`` -> ``"12"``); booleans ``"true"``/``"false"``;
  datetimes ISO-8601; non-integral floats by ``repr``; bytes as they are (never
  normalised). A column mixing types (e.g. ``"a"`` and ``1``) is refused.
* **Normalisation** (per key or for all keys), applied in this order, on the canonical
  string: ``"nfkc"`` (Unicode NFKC), ``"strip"`` (leading/trailing whitespace),
  ``"collapse_space"`` (runs of whitespace -> one space), ``"casefold"``, ``"digits"``
  (keep only 0-9, e.g. phone numbers ``"+1 (555) 010-2030"`` -> ``"15550102030"``).
* **Composite keys**: each component is written as a netstring ``<len>:<value>`` (length
  in characters of the canonical string; bytes columns are mapped 1:1 via latin-1) and the
  components are concatenated, so no separator inside a value can create ambiguity
  (``("a:b", "c")`` and ``("a", "b:c")`` differ). A single key is its UTF-8 bytes.
* **Missing values**: a row whose key (any component, for composite keys) is missing
  (None/NaN/NaT/pd.NA, or empty after normalisation) is dropped and counted in
  ``n_missing``; with ``strict=True`` it raises ``ValueError`` naming the column.
* **Duplicates within a party**: deduplicated, keeping the first row that carries the
  identifier; ``rows`` points at that row and ``n_duplicates`` counts the rows dropped.
  (The identifier enters the protocol once: sending it twice would reveal its
  multiplicity to the peer.) ``duplicate_rows`` maps the dropped rows back if a workload
  wants all rows of a matched identifier.
* **Type mismatch across parties**: ``describe_key_types`` gives each key column's type
  (a small dict the runtime may exchange) and ``check_key_types`` compares two such
  descriptions, raising ``KeyTypeMismatchError`` naming the columns.

Output: ``PreparedIds`` with ``ids`` (object ndarray of ``bytes``; the hash loop needs a
``bytes`` per row anyway) and ``rows`` (int64 positions in the input, plus
``row_offset`` for streamed chunks).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

NORMALIZE_OPS = ("nfkc", "strip", "collapse_space", "casefold", "digits")
KEY_TYPES = ("string", "integer", "float", "boolean", "datetime", "bytes", "empty")

NormalizeSpec = str | Sequence[str] | Mapping[str, str | Sequence[str]] | None


class KeyTypeMismatchError(ValueError):
    """Two parties' key columns have different types (e.g. string vs integer)."""


@dataclass
class PreparedIds:
    """Canonical identifiers of one party (deduplicated, missing rows removed)."""

    ids: np.ndarray  # object array of bytes, one per kept row
    rows: np.ndarray  # int64 positions of those rows in the input (+ row_offset)
    keys: tuple[str, ...]
    key_types: dict[str, str]
    n_input: int
    n_missing: int = 0
    n_duplicates: int = 0
    duplicate_rows: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.int64))
    """(dropped_row, kept_row) pairs for rows removed as duplicates."""

    def __len__(self) -> int:
        return len(self.ids)


def _as_keys(keys: str | Sequence[str]) -> tuple[str, ...]:
    ks = (keys,) if isinstance(keys, str) else tuple(keys)
    if not ks:
        raise ValueError("at least one key column is required")
    if len(set(ks)) != len(ks):
        raise ValueError(f"duplicate key columns in {ks}")
    return ks


def key_type(col: pd.Series) -> str:
    """The key type of a column: one of ``KEY_TYPES``; raises ``TypeError`` for a column
    that mixes types."""
    dt = col.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return key_type(col.astype(dt.categories.dtype))
    if pd.api.types.is_bool_dtype(dt):
        return "boolean"
    if pd.api.types.is_integer_dtype(dt):
        return "integer"
    if pd.api.types.is_datetime64_any_dtype(dt):
        return "datetime"
    if pd.api.types.is_float_dtype(dt):
        vals = col.dropna().to_numpy(dtype=np.float64)
        if len(vals) == 0:
            return "empty"
        if (
            np.all(np.isfinite(vals))
            and np.all(vals == np.floor(vals))
            and np.all(np.abs(vals) < 2**53)
        ):
            return "integer"
        return "float"
    inferred = pd.api.types.infer_dtype(col, skipna=True)
    mapping = {
        "string": "string",
        "bytes": "bytes",
        "integer": "integer",
        "boolean": "boolean",
        "floating": "float",
        "datetime": "datetime",
        "datetime64": "datetime",
        "empty": "empty",
    }
    if inferred in mapping:
        if inferred == "floating":
            return key_type(pd.Series(col.to_numpy(dtype=np.float64)))
        return mapping[inferred]
    raise TypeError(f"key column {col.name!r} mixes types ({inferred}); clean it first")


def describe_key_types(df: pd.DataFrame, keys: str | Sequence[str]) -> dict[str, str]:
    """``{column: key_type}`` for the key columns (missing column -> ``KeyError``)."""
    ks = _as_keys(keys)
    _check_columns(df, ks)
    return {k: key_type(df[k]) for k in ks}


def check_key_types(
    types_a: Mapping[str, str],
    types_b: Mapping[str, str],
    parties: tuple[str, str] = ("A", "B"),
) -> None:
    """Raise ``KeyTypeMismatchError`` unless both parties' key layouts agree
    (same number of key columns, and pairwise the same types; an all-missing
    ``"empty"`` column matches anything)."""
    a, b = list(types_a.items()), list(types_b.items())
    if len(a) != len(b):
        raise KeyTypeMismatchError(
            f"{parties[0]} has {len(a)} key column(s) {[k for k, _ in a]}, "
            f"{parties[1]} has {len(b)} {[k for k, _ in b]}"
        )
    bad = [
        f"{parties[0]}.{ka} is {ta} but {parties[1]}.{kb} is {tb}"
        for (ka, ta), (kb, tb) in zip(a, b)
        if ta != tb and "empty" not in (ta, tb)
    ]
    if bad:
        raise KeyTypeMismatchError("key type mismatch: " + "; ".join(bad))


def _check_columns(df: pd.DataFrame, ks: tuple[str, ...]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [k for k in ks if k not in df.columns]
    if missing:
        raise KeyError(f"key column(s) {missing} not in the input")


def _ops_for(normalize: NormalizeSpec, key: str) -> tuple[str, ...]:
    if normalize is None:
        ops: Sequence[str] = ()
    elif isinstance(normalize, str):
        ops = (normalize,)
    elif isinstance(normalize, Mapping):
        v = normalize.get(key, ())
        ops = (v,) if isinstance(v, str) else tuple(v)
    else:
        ops = tuple(normalize)
    unknown = [o for o in ops if o not in NORMALIZE_OPS]
    if unknown:
        raise ValueError(f"unknown normalisation {unknown} for key {key!r}; use {NORMALIZE_OPS}")
    return tuple(o for o in NORMALIZE_OPS if o in ops)  # fixed order


def _canonical(col: pd.Series, ktype: str) -> pd.Series:
    """Canonical string form (pandas ``str`` dtype), missing stays missing."""
    if ktype in ("string", "empty"):
        return col.astype("str")
    if ktype == "integer":
        out = np.full(len(col), None, dtype=object)
        mask = col.notna().to_numpy(dtype=bool)
        vals = col.to_numpy()[mask]
        if len(vals):
            if vals.dtype.kind == "f":
                vals = vals.astype(np.int64)
            elif vals.dtype.kind not in "iu":  # object / nullable Int64 -> Python ints
                vals = np.array([int(v) for v in vals], dtype=object)
            out[mask] = vals.astype(str)
        return pd.Series(out, index=col.index, dtype="str")
    if ktype == "boolean":
        return col.map(lambda v: None if pd.isna(v) else ("true" if v else "false")).astype("str")
    if ktype == "datetime":
        return (
            pd.to_datetime(col).map(lambda v: None if pd.isna(v) else v.isoformat()).astype("str")
        )
    if ktype == "float":
        return col.map(lambda v: None if pd.isna(v) else repr(float(v))).astype("str")
    raise AssertionError(ktype)


def _normalise(s: pd.Series, ops: tuple[str, ...]) -> pd.Series:
    for op in ops:
        if op == "nfkc":
            s = s.map(lambda v: v if pd.isna(v) else unicodedata.normalize("NFKC", v)).astype("str")
        elif op == "strip":
            s = s.str.strip()
        elif op == "collapse_space":
            s = s.str.replace(r"\s+", " ", regex=True)
        elif op == "casefold":
            s = s.str.casefold()
        elif op == "digits":
            s = s.str.replace(r"[^0-9]", "", regex=True)
    return s


def prepare_ids(
    df: pd.DataFrame,
    keys: str | Sequence[str],
    *,
    normalize: NormalizeSpec = None,
    strict: bool = False,
    dedup: bool = True,
    row_offset: int = 0,
    allow_empty: bool = False,
) -> PreparedIds:
    """Canonical identifier bytes for every usable row of ``df`` (see module doc).

    ``normalize``: an op name, a list of ops for every key, or ``{column: ops}``.
    ``strict``: raise on a missing key value instead of dropping the row.
    ``dedup``: drop repeated identifiers keeping the first row (the protocol default).
    ``allow_empty``: accept an input with no usable rows (streamed chunks); otherwise
    an empty input raises ``ValueError``.
    """
    ks = _as_keys(keys)
    _check_columns(df, ks)
    if len(df) == 0 and not allow_empty:
        raise ValueError("empty input: the DataFrame has no rows")
    df = df[list(ks)].reset_index(drop=True)  # positional rows; label-free alignment
    types = {k: key_type(df[k]) for k in ks}
    missing = np.zeros(len(df), dtype=bool)
    parts: list[pd.Series] = []
    for k in ks:
        ktype = types[k]
        col = df[k]
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(col.dtype.categories.dtype)
        if ktype == "bytes":
            s = col.map(lambda v: v if isinstance(v, bytes) else None)
            miss = s.isna().to_numpy() | (s.map(len, na_action="ignore") == 0).to_numpy(
                dtype=bool, na_value=True
            )
        else:
            s = _normalise(_canonical(col, ktype), _ops_for(normalize, k))
            miss = (s.isna() | (s.str.len() == 0)).to_numpy(dtype=bool, na_value=True)
        if strict and miss.any():
            first = int(np.flatnonzero(miss)[0])
            raise ValueError(
                f"key column {k!r} has {int(miss.sum())} missing/empty value(s) "
                f"(first at row {first + row_offset}); strict=True"
            )
        missing |= miss
        parts.append(s)
    keep = ~missing
    rows = np.flatnonzero(keep).astype(np.int64)
    if len(ks) == 1:
        key_str = parts[0][keep]
        if types[ks[0]] == "bytes":
            enc_arr = pa.array(key_str.to_numpy(dtype=object), type=pa.large_binary())
        else:
            enc_arr = pa.compute.cast(pa.array(key_str, type=pa.large_string()), pa.large_binary())
    else:
        comp = None
        for k, s in zip(ks, parts):
            if types[k] == "bytes":
                s = s.map(lambda v: v.decode("latin-1"), na_action="ignore").astype("str")
            s = s[keep]
            piece = s.str.len().astype("int64").astype("str") + ":" + s
            comp = piece if comp is None else comp + piece
        enc_arr = pa.compute.cast(pa.array(comp, type=pa.large_string()), pa.large_binary())
    if isinstance(enc_arr, pa.ChunkedArray):  # large inputs come back chunked
        enc_arr = enc_arr.combine_chunks()
    n_dup = 0
    dup_pairs = np.empty((0, 2), np.int64)
    if dedup and len(enc_arr):
        # hash-based first-occurrence dedup in Arrow (C++), no per-row Python work
        codes = enc_arr.dictionary_encode().indices.to_numpy()
        first_pos = np.empty(int(codes.max()) + 1, dtype=np.int64)
        first_pos[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # smallest index wins
        is_dup = first_pos[codes] != np.arange(len(codes))
        n_dup = int(is_dup.sum())
        if n_dup:
            dup_pairs = np.stack([rows[is_dup], rows[first_pos[codes[is_dup]]]], axis=1) + np.int64(
                row_offset
            )
            enc_arr = enc_arr.filter(pa.array(~is_dup))
            rows = rows[~is_dup]
    enc = enc_arr.to_numpy(zero_copy_only=False)
    if enc.dtype != object:
        enc = enc.astype(object)
    if len(enc) == 0 and not allow_empty:
        raise ValueError(
            f"empty input: no usable identifier in {list(ks)} "
            f"({int(missing.sum())} of {len(df)} rows missing)"
        )
    return PreparedIds(
        ids=enc,
        rows=rows + np.int64(row_offset),
        keys=ks,
        key_types=types,
        n_input=len(df),
        n_missing=int(missing.sum()),
        n_duplicates=n_dup,
        duplicate_rows=dup_pairs,
    )
