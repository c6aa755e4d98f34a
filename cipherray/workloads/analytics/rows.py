"""Steps that run at one party on its own table: schema, key checks, shuffling, blinding,
predicates, group codes and the per-row integers that the joint sums add up.

Every function here runs inside a party's worker on that party's DataFrame; nothing in
this module talks to the runtime.

Per-row integers: a value x is summed as X = round(x * 2^16) split into two 32-bit limbs
(X = hi * 2^32 + lo, lo in [0, 2^32)), so that the sums over up to 2^31 rows are exact
in Z_2^64 whatever the values' magnitude (|x| < 2^46; |x|^2 < 2^46 for squares).
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
from typing import Any

import numpy as np
import pandas as pd

from cipherray.protocols.psi.curve import BlindingKey, blind, hash_and_blind
from cipherray.protocols.psi.matching import match_points

FRAC_BITS = 16
LIMB = 1 << 32
_MAX_X = float(1 << 46)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TableInputError(ValueError):
    """Bad input at a party: a missing column, non-numeric values, duplicate keys."""


def _where(party: str, source: str | None) -> str:
    return f"{party} ({source})" if source else party


def missing_column(name: str, party: str, source: str | None, known: list[str]) -> str:
    """The message for a column missing at `party`, with a close match among that
    party's own columns only."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"column {name!r} not found at {_where(party, source)}{hint}"


# ------------------------------------------------------------ schema and key


def schema(df: pd.DataFrame) -> dict:
    """What the party publishes: column names, whether each is numeric, the row count."""
    if not isinstance(df, pd.DataFrame):
        raise TableInputError(f"a table must be a pandas DataFrame, got {type(df).__name__}")
    return {
        "columns": {str(c): bool(pd.api.types.is_numeric_dtype(df[c])) for c in df.columns},
        "rows": len(df),
    }


def prepare(df: pd.DataFrame, key: str | None, party: str, source: str | None) -> pd.DataFrame:
    """The party's table in a fresh random row order (CSPRNG), checked: the key column is
    present and unique, the table is not empty."""
    if len(df) == 0:
        raise TableInputError(f"the table at {_where(party, source)} is empty")
    if key is not None:
        if key not in df.columns:
            raise TableInputError(missing_column(key, party, source, [str(c) for c in df.columns]))
        k = df[key]
        if k.isna().any():
            raise TableInputError(
                f"key column {key!r} at {_where(party, source)} has missing values"
            )
        if k.duplicated().any():
            raise TableInputError(
                f"key column {key!r} at {_where(party, source)} has duplicate values: a "
                "joint table has one row per key at each party (aggregate first, or keep "
                "at most one row per entity)"
            )
    order = np.argsort(
        np.frombuffer(secrets.token_bytes(8 * len(df)), dtype=np.uint64), kind="stable"
    )
    return df.iloc[order].reset_index(drop=True)


def new_salt() -> bytes:
    """A per-join salt (random; public to the two parties)."""
    return os.urandom(32)


def new_key() -> BlindingKey:
    return BlindingKey.generate()


def _id_bytes(col: pd.Series) -> np.ndarray:
    return np.array([str(v).encode() for v in col.tolist()], dtype=object)


def blind_own(df: pd.DataFrame, key: str, salt: bytes, k: BlindingKey) -> np.ndarray:
    """k * H(id) for the party's ids, in its (shuffled) row order."""
    return hash_and_blind(_id_bytes(df[key]), salt, k)


def double_blind_permuted(peer: np.ndarray, k: BlindingKey, perm: np.ndarray) -> np.ndarray:
    """The peer's blinded ids blinded again, in the order of the dealer's permutation
    that only this party knows: out[t] = k * peer[perm[t]]."""
    return blind(np.asarray(peer)[perm], k)


def match_sources(peer_own: np.ndarray, k: BlindingKey, permuted_double: np.ndarray) -> np.ndarray:
    """For every row of the peer (the anchor), the position in `permuted_double` of the
    same id, or -1: the selection the anchor's view needs."""
    mine = blind(np.asarray(peer_own), k)
    left, right = match_points(mine, permuted_double)
    src = np.full(len(mine), -1, dtype=np.int64)
    src[left] = right
    return src


# ------------------------------------------------------------ predicates, codes, values


def columns_in(expr: str, known: set[str]) -> set[str]:
    """Column names an expression mentions (identifiers that name a column)."""
    return {t for t in _IDENT.findall(expr) if t in known}


def mask(df: pd.DataFrame, exprs: list[str], party: str, source: str | None) -> np.ndarray:
    """1.0 where every predicate holds (pandas `eval` syntax: "age >= 18 and region == 'N'")."""
    out = np.ones(len(df), dtype=bool)
    for e in exprs:
        try:
            m = df.eval(e)
        except Exception as err:
            raise TableInputError(
                f"predicate {e!r} failed at {_where(party, source)}: {type(err).__name__}"
            ) from None
        m = np.asarray(m)
        if m.dtype != bool or m.shape != (len(df),):
            raise TableInputError(f"predicate {e!r} at {_where(party, source)} is not a row test")
        out &= m
    return out.astype(np.float64)


def numeric(df: pd.DataFrame, col: str, party: str, source: str | None) -> np.ndarray:
    if col not in df.columns:
        raise TableInputError(missing_column(col, party, source, [str(c) for c in df.columns]))
    s = df[col]
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        try:
            s = pd.to_numeric(s, errors="raise")
        except (ValueError, TypeError):
            raise TableInputError(
                f"column {col!r} at {_where(party, source)} is not numeric: it cannot be "
                "summed, averaged or compared"
            ) from None
    x = s.to_numpy(dtype=np.float64)
    if np.isnan(x).any():
        raise TableInputError(
            f"column {col!r} at {_where(party, source)} has missing values: drop or fill "
            "them first (or filter the rows out)"
        )
    return x


def clamp(x: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    return x if bounds is None else np.clip(x, bounds[0], bounds[1])


def limbs(x: np.ndarray, what: str) -> np.ndarray:
    """(n, 2) float64 limbs (hi, lo) of X = round(x * 2^16); exact integers."""
    if x.size and float(np.max(np.abs(x))) >= _MAX_X:
        raise TableInputError(f"{what} exceeds the range of joint sums (|x| < 2^46)")
    big = np.rint(x * (1 << FRAC_BITS)).astype(np.int64)
    hi = big >> 32
    lo = big & (LIMB - 1)
    return np.stack([hi.astype(np.float64), lo.astype(np.float64)], axis=1)


def codes(df: pd.DataFrame, col: str, labels: list, party: str, source: str | None) -> np.ndarray:
    """Row -> index of its label in `labels` (-1 for a label outside them)."""
    if col not in df.columns:
        raise TableInputError(missing_column(col, party, source, [str(c) for c in df.columns]))
    index = {v: i for i, v in enumerate(labels)}
    return np.array([index.get(_label(v), -1) for v in df[col].tolist()], dtype=np.int64)


def _label(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def labels(df: pd.DataFrame, col: str, party: str, source: str | None) -> list:
    """The sorted distinct labels of a key column (what a key holder publishes for a
    group-by: the groups' names)."""
    if col not in df.columns:
        raise TableInputError(missing_column(col, party, source, [str(c) for c in df.columns]))
    vals = {_label(v) for v in df[col].dropna().tolist()}
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def bin_codes(x: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Bin index of each value in [lo, hi] with `bins` equal bins (values are clamped)."""
    width = (hi - lo) / bins
    return np.clip(np.floor((np.clip(x, lo, hi) - lo) / width), 0, bins - 1).astype(np.int64)
