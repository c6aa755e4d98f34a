"""Generalisation hierarchies: numeric intervals, dates, string prefixes, categorical trees.

A hierarchy maps a value to a label at each level: level 0 is the value itself (as a
string), level `levels` is the root "*". Every hierarchy orders its leaves so that a
contiguous run of leaves has the lowest common ancestor of its two ends; Mondrian relies
on that to label a class from its smallest and largest value (`common_generalisation`).

- `IntervalHierarchy(widths, origin)`: numbers into nested intervals "lo-hi" (half-open).
- `DateHierarchy()`: day -> month -> year -> "*".
- `PrefixHierarchy(length)`: ZIP / postcode; level i masks the last i characters.
- `TreeHierarchy.from_csv(path)`: rows `value, level1, level2, ..., *`.
- `make_hierarchy(spec)`: one of the above from a small spec; anything else: HierarchyError.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cipherray.protocols.deid.errors import HierarchyError

TOP = "*"


class Hierarchy:
    """Base: `levels` levels above the values, `generalize(values, level)` -> labels."""

    levels: int = 1

    def generalize(self, values: np.ndarray, level: int) -> np.ndarray:
        """Labels (object array of str) of `values` at `level` (0 = the values, levels = '*')."""
        values = np.asarray(values)
        if level >= self.levels:
            return np.full(len(values), TOP, dtype=object)
        if level == 0:
            return self._leaf_labels(values)
        return self._labels(values, level)

    def _leaf_labels(self, values: np.ndarray) -> np.ndarray:
        return pd.Series(values).astype(str).to_numpy(dtype=object)

    def _labels(self, values: np.ndarray, level: int) -> np.ndarray:
        raise NotImplementedError

    def leaf_order(self, categories: np.ndarray) -> np.ndarray:
        """Permutation of `categories` into leaf (depth-first) order: root label first."""
        keys = [
            self.generalize(categories, lv).astype(str) for lv in range(self.levels - 1, -1, -1)
        ]
        return np.lexsort(keys[::-1])


class IntervalHierarchy(Hierarchy):
    """Numbers into nested half-open intervals [origin + j*w, origin + (j+1)*w) per level."""

    def __init__(self, widths: list[float], origin: float = 0) -> None:
        widths = list(widths)
        if not widths or any(w <= 0 for w in widths):
            raise HierarchyError(f"interval widths must be positive, got {widths}")
        for a, b in zip(widths, widths[1:]):
            if b % a != 0:
                raise HierarchyError(
                    f"interval widths must nest (each a multiple of the last): {widths}"
                )
        self.widths, self.origin = widths, origin
        self.levels = len(widths) + 1

    def _labels(self, values: np.ndarray, level: int) -> np.ndarray:
        w = self.widths[level - 1]
        v = np.asarray(values, dtype=np.float64)
        lo = self.origin + np.floor((v - self.origin) / w) * w
        integral = float(w).is_integer() and float(self.origin).is_integer()
        lo_s = pd.Series(lo.astype(np.int64) if integral else lo).astype(str)
        hi_s = pd.Series((lo + w).astype(np.int64) if integral else lo + w).astype(str)
        return (lo_s + "-" + hi_s).to_numpy(dtype=object)


class DateHierarchy(Hierarchy):
    """Dates: day (YYYY-MM-DD) -> month (YYYY-MM) -> year (YYYY) -> '*'."""

    levels = 3
    _UNITS = ("D", "M", "Y")

    def _leaf_labels(self, values: np.ndarray) -> np.ndarray:
        return self._labels(values, 0)

    def _labels(self, values: np.ndarray, level: int) -> np.ndarray:
        try:
            days = np.asarray(values).astype("datetime64[D]")
        except (TypeError, ValueError) as e:
            raise HierarchyError(f"date hierarchy needs dates: {e}") from None
        unit = self._UNITS[level]
        return np.datetime_as_string(days.astype(f"datetime64[{unit}]"), unit=unit).astype(object)


class PrefixHierarchy(Hierarchy):
    """ZIP / postcode strings: level i replaces the last i characters with '*'."""

    def __init__(self, length: int = 5) -> None:
        if length < 1:
            raise HierarchyError(f"prefix hierarchy length must be >= 1, got {length}")
        self.levels = length

    def _labels(self, values: np.ndarray, level: int) -> np.ndarray:
        s = pd.Series(values).astype(str)
        keep = s.str.len() - level
        out = np.empty(len(s), dtype=object)
        for n_keep in np.unique(keep):  # one vectorised slice per distinct length
            sel = (keep == n_keep).to_numpy()
            out[sel] = (s[sel].str.slice(0, max(int(n_keep), 0)) + "*" * level).to_numpy()
        out[(keep <= 0).to_numpy()] = TOP
        return out


class TreeHierarchy(Hierarchy):
    """A categorical tree from rows `value, level1, ..., *` (one row per leaf)."""

    def __init__(self, rows: list[list[str]], source: str = "<rows>") -> None:
        if not rows:
            raise HierarchyError(f"hierarchy {source} has no rows")
        width = len(rows[0])
        for i, r in enumerate(rows):
            if len(r) != width or len(r) < 2:
                raise HierarchyError(f"hierarchy {source} row {i + 1}: expected {width} columns")
            if r[-1] != TOP:
                raise HierarchyError(f"hierarchy {source} row {i + 1}: last column must be '*'")
        table = pd.DataFrame(rows).astype(str)
        if table[0].duplicated().any():
            raise HierarchyError(f"hierarchy {source}: duplicate leaf values")
        self.source = source
        self.levels = width - 1
        self._table = table.set_index(0, drop=False)

    @classmethod
    def from_csv(cls, path: str | Path) -> TreeHierarchy:
        """Read a tree from a CSV file (no header; blank lines skipped)."""
        with open(path, newline="") as f:
            rows = [[c.strip() for c in r] for r in csv.reader(f) if r]
        return cls(rows, source=str(path))

    def _labels(self, values: np.ndarray, level: int) -> np.ndarray:
        keys = pd.Series(values).astype(str)
        mapped = keys.map(self._table[level])
        unknown = mapped.isna().to_numpy()
        if unknown.any():
            bad = sorted(set(keys[unknown]))[:5]
            raise HierarchyError(f"hierarchy {self.source} does not cover values {bad}")
        return mapped.to_numpy(dtype=object)

    def _leaf_labels(self, values: np.ndarray) -> np.ndarray:
        return self._labels(values, 0)


def make_hierarchy(spec: Any) -> Hierarchy:
    """A hierarchy from a spec: a Hierarchy, "date", "zip"/"prefix", a .csv path, or a dict.

    Dict specs: {"type": "interval", "widths": [...], "origin": 0}, {"type": "date"},
    {"type": "prefix", "length": 5}, {"type": "tree", "csv": path}.
    """
    if isinstance(spec, Hierarchy):
        return spec
    if isinstance(spec, str | Path):
        name = str(spec)
        if name == "date":
            return DateHierarchy()
        if name in ("zip", "prefix", "postcode"):
            return PrefixHierarchy()
        if name.endswith(".csv"):
            return TreeHierarchy.from_csv(name)
    if isinstance(spec, dict):
        kind = spec.get("type")
        args = {k: v for k, v in spec.items() if k != "type"}
        try:
            if kind == "interval":
                return IntervalHierarchy(**args)
            if kind == "date":
                return DateHierarchy()
            if kind in ("prefix", "zip", "postcode"):
                return PrefixHierarchy(**args)
            if kind == "tree":
                return TreeHierarchy.from_csv(args["csv"])
        except (TypeError, KeyError) as e:
            raise HierarchyError(f"bad arguments for hierarchy {spec!r}: {e}") from None
    raise HierarchyError(f"unknown hierarchy spec {spec!r}")


def common_generalisation(
    h: Hierarchy, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair (lo[i], hi[i]): the lowest level where both share a label, and that label.

    1. Walk levels 0..levels; at each, label the still-open pairs' ends.
    2. A pair whose two labels agree is closed at that level with that label.
    """
    n = len(lo)
    level = np.full(n, h.levels, dtype=np.int64)
    label = np.full(n, TOP, dtype=object)
    open_ = np.arange(n)
    for lv in range(h.levels):
        if len(open_) == 0:
            break
        a, b = h.generalize(lo[open_], lv), h.generalize(hi[open_], lv)
        same = a == b
        level[open_[same]], label[open_[same]] = lv, a[same]
        open_ = open_[~same]
    return level, label
