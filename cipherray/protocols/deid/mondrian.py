"""Mondrian k-anonymity (LeFevre, DeWitt & Ramakrishnan, ICDE 2006), strict multidimensional.

Each quasi-identifier (QI) becomes one float row of a d x n array: numbers as they are,
dates as int64 nanoseconds, categories as ordered codes (sorted values, the Categorical's
order, or a hierarchy's leaf order). A partition is a contiguous slice of that array.
Starting from the whole table, a partition is cut at the median of its widest QI (width
normalised by the QI's range over the table): left `<= median`, right `> median` (or
`< median` / `>= median` when ties make the first cut too lopsided). A cut is allowed when
both halves keep >= k rows and, when asked, >= ℓ distinct sensitive values and an EMD to
the table's sensitive distribution <= t; otherwise the next widest QI is tried, and a
partition with no allowed cut becomes an equivalence class. An explicit stack holds the
partitions still to cut; all work on a partition is array operations on its slice.

Rows with a missing QI value are suppressed (QIs shown as "*", class id -1), and so is
the whole table when it has fewer than k rows; more than `suppression_limit` of the rows
suppressed raises `SuppressionLimitError`.

Partitions that end up with the same labels (a hierarchy can give two partitions one
label) are merged: class ids are the released table's equivalence classes.

Output labels per class: numbers "lo-hi" (or the single value), dates "lo/hi" (ISO 8601
interval), categories "{a,b,c}" (the values present) — or, where a hierarchy is given for
the QI, the lowest hierarchy label covering the class's smallest and largest value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cipherray.protocols.deid.errors import ConstraintError, DeidError, SuppressionLimitError
from cipherray.protocols.deid.hierarchy import Hierarchy, common_generalisation, make_hierarchy
from cipherray.protocols.deid.risk import emd_to, range_penalty

SUPPRESSED = "*"


@dataclass
class MondrianResult:
    """The generalised table and what produced it."""

    table: pd.DataFrame
    class_id: np.ndarray  # int64 per row, -1 = suppressed
    class_sizes: np.ndarray  # rows per class id
    quasi_identifiers: list[str]
    penalty: np.ndarray  # (classes, QIs) normalised certainty penalty per class and QI
    n_suppressed: int
    k: int
    l: int | None = None  # noqa: E741
    t: float | None = None
    sensitive: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Qi:
    name: str
    kind: str  # "numeric" | "date" | "categorical"
    values: np.ndarray  # float64 per row (codes for categorical)
    missing: np.ndarray
    categories: np.ndarray | None = None
    dtype: Any = None
    hierarchy: Hierarchy | None = None


def _encode_qi(col: pd.Series, hierarchy: Hierarchy | None) -> _Qi:
    """One QI column as float64 values plus what is needed to label it back."""
    missing = col.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(col):
        ns = col.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        return _Qi(col.name, "date", ns, missing, dtype=col.dtype, hierarchy=hierarchy)
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        vals = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return _Qi(col.name, "numeric", vals, missing, dtype=col.dtype, hierarchy=hierarchy)
    if isinstance(col.dtype, pd.CategoricalDtype) and col.cat.ordered and hierarchy is None:
        categories = np.asarray(col.cat.categories, dtype=object)
        codes = col.cat.codes.to_numpy().astype(np.float64)
    else:
        codes_i, categories = pd.factorize(col, sort=True)
        categories = np.asarray(categories, dtype=object)
        if hierarchy is not None:  # codes in the hierarchy's leaf order
            order = hierarchy.leaf_order(categories)
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            categories = categories[order]
            codes_i = np.where(codes_i >= 0, rank[np.maximum(codes_i, 0)], -1)
        codes = codes_i.astype(np.float64)
    codes[missing] = np.nan
    return _Qi(col.name, "categorical", codes, missing, categories, col.dtype, hierarchy)


class _SplitRule:
    """Whether a cut is allowed: k rows, ℓ distinct and EMD <= t in both halves."""

    def __init__(
        self,
        k: int,
        l_min: int | None,
        t: float | None,
        s: np.ndarray | None,
        m: int,
        ordered: bool,
    ):
        self.k, self.l, self.t, self.m, self.ordered = k, l_min, t, m, ordered
        self.p = np.bincount(s, minlength=m) / len(s) if s is not None else None

    def half_ok(self, s_half: np.ndarray) -> bool:
        if self.l is None and self.t is None:
            return True
        counts = np.bincount(s_half, minlength=self.m)
        if self.l is not None and np.count_nonzero(counts) < self.l:
            return False
        if self.t is not None:
            q = counts[None, :] / len(s_half)
            if emd_to(q, self.p, self.ordered)[0] > self.t:
                return False
        return True


def _partition(
    X: np.ndarray, S: np.ndarray | None, perm: np.ndarray, rule: _SplitRule
) -> np.ndarray:
    """Cut X (d x n, reordered in place with S and perm) into classes; their start offsets.

    1. Pop a slice; under 2k rows it is a class.
    2. Rank QIs by normalised width; for each, cut at the median (ties: the other side).
    3. The first allowed cut reorders the slice (left rows first) and pushes both halves.
    4. A slice with no allowed cut is a class.
    """
    k, n = rule.k, X.shape[1]
    span = X.max(axis=1) - X.min(axis=1)
    inv_scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0)
    starts: list[int] = []
    stack = [(0, n)]
    check_s = S is not None and (rule.l is not None or rule.t is not None)
    while stack:
        lo, hi = stack.pop()
        size = hi - lo
        if size < 2 * k:
            starts.append(lo)
            continue
        block = X[:, lo:hi]
        widths = (block.max(axis=1) - block.min(axis=1)) * inv_scale
        cut = None
        for j in np.argsort(-widths, kind="stable"):
            if widths[j] <= 0:
                break
            col = block[j]
            mid = (size - 1) // 2
            med = np.partition(col, mid)[mid]
            left = col <= med
            nl = int(np.count_nonzero(left))
            if nl < k or size - nl < k:
                left = col < med
                nl = int(np.count_nonzero(left))
                if nl < k or size - nl < k:
                    continue
            if check_s:
                s = S[lo:hi]
                if not (rule.half_ok(s[left]) and rule.half_ok(s[~left])):
                    continue
            cut = (left, nl)
            break
        if cut is None:
            starts.append(lo)
            continue
        left, nl = cut
        order = np.concatenate((np.flatnonzero(left), np.flatnonzero(~left)))
        X[:, lo:hi] = block[:, order]
        perm[lo:hi] = perm[lo:hi][order]
        if S is not None:
            S[lo:hi] = S[lo:hi][order]
        stack.append((lo + nl, hi))
        stack.append((lo, lo + nl))
    return np.sort(np.asarray(starts, dtype=np.int64))


def _format_numbers(v: np.ndarray, qi: _Qi) -> np.ndarray:
    if qi.kind == "date":
        d = v.astype(np.int64).astype("datetime64[ns]")
        unit = "D" if np.all(v.astype(np.int64) % 86_400_000_000_000 == 0) else "s"
        return np.datetime_as_string(d, unit=unit).astype(object)
    if pd.api.types.is_integer_dtype(qi.dtype):
        return pd.Series(v.astype(np.int64)).astype(str).to_numpy(dtype=object)
    return pd.Series(v).astype(str).to_numpy(dtype=object)


def _domain_values(v: np.ndarray, qi: _Qi) -> np.ndarray:
    """Float row values back in the QI's own type, for a hierarchy."""
    if qi.kind == "categorical":
        return qi.categories[v.astype(np.int64)]
    if qi.kind == "date":
        return v.astype(np.int64).astype("datetime64[ns]")
    if pd.api.types.is_integer_dtype(qi.dtype):
        return v.astype(np.int64)
    return v


def _category_sets(codes: np.ndarray, cls: np.ndarray, n_classes: int, qi: _Qi):
    """Per class: '{a,b}' of the categories present, and the count of them."""
    n_cat = len(qi.categories)
    pairs = np.unique(cls * n_cat + codes.astype(np.int64))
    pc, pv = pairs // n_cat, pairs % n_cat
    counts = np.bincount(pc, minlength=n_classes)
    names = pd.Series(qi.categories).astype(str).to_numpy(dtype=object)[pv]
    labels = np.empty(n_classes, dtype=object)
    single = counts == 1
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    labels[single] = names[first[single]]
    for c in np.flatnonzero(~single):
        labels[c] = "{" + ",".join(names[first[c] : first[c] + counts[c]]) + "}"
    return labels, counts


def _label_classes(qi: _Qi, row: np.ndarray, starts: np.ndarray, cls: np.ndarray):
    """Per class: the generalised label of this QI and its certainty penalty."""
    lo, hi = np.minimum.reduceat(row, starts), np.maximum.reduceat(row, starts)
    n_classes = len(starts)
    if qi.hierarchy is not None:
        h = qi.hierarchy
        level, labels = common_generalisation(h, _domain_values(lo, qi), _domain_values(hi, qi))
        domain = np.unique(row)
        domain_vals = _domain_values(domain, qi)
        penalty = np.ones(n_classes)
        for lv in np.unique(level):
            sel = level == lv
            if lv == 0:
                penalty[sel] = 0.0
                continue
            leaves = pd.Series(h.generalize(domain_vals, int(lv))).value_counts()
            n_leaves = pd.Series(labels[sel]).map(leaves).fillna(1).to_numpy(dtype=np.float64)
            penalty[sel] = range_penalty(n_leaves - 1, len(domain) - 1)
        return labels, penalty
    if qi.kind == "categorical":
        labels, counts = _category_sets(row, cls, n_classes, qi)
        present = len(np.unique(row))
        return labels, range_penalty(counts - 1.0, present - 1.0)
    lo_s, hi_s = _format_numbers(lo, qi), _format_numbers(hi, qi)
    sep = "/" if qi.kind == "date" else "-"
    labels = np.where(lo == hi, lo_s, lo_s + sep + hi_s)
    return labels, range_penalty(hi - lo, row.max() - row.min())


def mondrian(
    df: pd.DataFrame,
    quasi_identifiers: list[str],
    k: int,
    *,
    sensitive: str | None = None,
    l: int | None = None,  # noqa: E741
    t: float | None = None,
    hierarchies: dict[str, Any] | None = None,
    suppression_limit: float = 0.0,
) -> MondrianResult:
    """k-anonymise `df` on `quasi_identifiers` with Mondrian; optionally distinct ℓ / t-close.

    1. Encode the QIs (hierarchies from `hierarchies[qi]` specs) and the sensitive column.
    2. Suppress rows with missing QIs (or all rows if fewer than k); check the limit.
    3. Partition (`_partition`), then label every class per QI and replace the QI columns.
    """
    if k < 1:
        raise DeidError(f"k must be >= 1, got {k}")
    missing_cols = [
        c for c in [*quasi_identifiers, *([sensitive] if sensitive else [])] if c not in df
    ]
    if missing_cols:
        raise DeidError(f"columns not in the table: {missing_cols}")
    if (l is not None or t is not None) and sensitive is None:
        raise DeidError("ℓ-diversity / t-closeness need a sensitive column")
    hierarchies = {q: make_hierarchy(s) for q, s in (hierarchies or {}).items()}
    qis = [_encode_qi(df[q], hierarchies.get(q)) for q in quasi_identifiers]
    n = len(df)
    suppressed = np.zeros(n, dtype=bool)
    for qi in qis:
        suppressed |= qi.missing
    if n - suppressed.sum() < k:
        suppressed[:] = True
    n_supp = int(suppressed.sum())
    if n and n_supp / n > suppression_limit:
        raise SuppressionLimitError(
            f"k={k} needs {n_supp} of {n} rows suppressed ({n_supp / n:.2%}), "
            f"over the limit {suppression_limit:.2%}"
        )
    kept = np.flatnonzero(~suppressed)
    X = np.ascontiguousarray(np.stack([qi.values[kept] for qi in qis])) if len(kept) else None
    S, m, ordered = None, 0, False
    if sensitive is not None and len(kept):
        s_col = df[sensitive].iloc[kept]
        ordered = pd.api.types.is_numeric_dtype(s_col) and not pd.api.types.is_bool_dtype(s_col)
        codes, uniques = pd.factorize(s_col, sort=True, use_na_sentinel=False)
        S, m = codes.astype(np.int64), len(uniques)
        if l is not None and m < l:
            raise ConstraintError(
                f"{sensitive!r} has {m} distinct values among kept rows, fewer than ℓ={l}"
            )
    rule = _SplitRule(k, l, t, S, m, ordered)
    perm = np.arange(len(kept))
    starts = _partition(X, S, perm, rule) if X is not None else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.append(starts, len(kept)))
    cls_sorted = np.repeat(np.arange(len(starts)), sizes)
    penalty = np.zeros((len(starts), len(qis)))
    class_labels = []
    for j, qi in enumerate(qis):
        if len(starts):
            cls_labels, penalty[:, j] = _label_classes(qi, X[j], starts, cls_sorted)
            class_labels.append(cls_labels)
    # partitions whose labels coincide (a hierarchy can merge them) are one released class
    if len(starts):
        merged = (
            pd.DataFrame(dict(enumerate(class_labels)))
            .groupby(list(range(len(qis))), sort=False)
            .ngroup()
        )
        merged = merged.to_numpy(dtype=np.int64)
    else:
        merged = np.zeros(0, dtype=np.int64)
    first = np.unique(merged, return_index=True)[1]
    class_id = np.full(n, -1, dtype=np.int64)
    class_id[kept[perm]] = merged[cls_sorted]
    table = df.copy()
    for j, qi in enumerate(qis):
        labels = np.full(n, SUPPRESSED, dtype=object)
        if len(starts):
            labels[kept[perm]] = class_labels[j][cls_sorted]
        table[qi.name] = labels
    sizes = np.bincount(merged[cls_sorted], minlength=len(first))
    penalty = penalty[first]
    return MondrianResult(
        table=table,
        class_id=class_id,
        class_sizes=sizes,
        quasi_identifiers=list(quasi_identifiers),
        penalty=penalty,
        n_suppressed=n_supp,
        k=k,
        l=l,
        t=t,
        sensitive=sensitive,
    )
