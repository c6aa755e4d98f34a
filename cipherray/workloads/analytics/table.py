"""Joint tables: parties' tables joined on a key (vertically) or stacked (horizontally),
queried on shares, released through gates (`result.py`).

`rt.table({bank: bank_df, insurer: insurer_df}, on="id", dealer="dealer")` — a *joined*
table of two parties. Its rows are the anchor's rows (the first party's, in a random
order only it knows); the other party's columns reach them as shares through a private
join (`JoinedTable`'s steps), which reveals the intersection to nobody: the only thing
either party learns is the intersection's size. Queries choose a *view*: the rows of
the party that holds the group key (or the anchor), so that party can sort its own rows
by key (`protocols/mpc/permute.group_sum`: two oblivious permutations, no HE, no
per-row comparisons).

Private join, steps (A the anchor, B the other party, D the dealer; k_A, k_B X25519
scalars that never leave A, B):
1. A and B each check their key column (present, unique, no missing values) and put
   their rows in a fresh random order (CSPRNG);
2. A draws the per-join salt and sends it to B; A sends M_A = k_A * H(id) of its rows
   to B; B sends M_B = k_B * H(id) to A;
3. D draws a permutation sigma of B's rows that only A learns, and B's column of ones
   is shared and permuted by sigma obliviously (`permute`);
4. A sends (k_A * M_B)[sigma] to B: B's ids doubly blinded, in an order B does not know;
5. B blinds M_A again and matches: for each of A's rows, the position in A's message of
   the same id, or -1 (B learns which of A's randomly ordered rows match, not who they
   are, and not which of its own rows they match);
6. the ones are selected into A's rows by B's matches (`select`): the shared
   `matched` column (1 for rows in the intersection, 0 elsewhere), known to nobody.
A column of B (or any per-row value B computes, e.g. x * [predicate]) reaches A's rows
the same way (steps 3 and 6, sigma reused with fresh masks): zeros on unmatched rows.
The reverse view (B's rows) is built the same way with the roles swapped, on demand.

`rt.table.union(h1_df, h2_df, h3_df)` — a *stacked* table: every party holds whole
rows, so every aggregate is computed at each party on its own rows and only the
per-group sums are shared and added (no per-row protocol at all); the key's labels are
published by each party (the groups' names).

Statistics: count, sum, mean, var, std (exact integer sums of 2^16-scaled values in two
32-bit limbs: `rows.limbs`), min / max (exact for stacked tables; from a histogram for
joined tables, error stated), histogram, quantiles (from a histogram, error = bin
width), crosstab, covariance / correlation and OLS (from the released sufficient
statistics: count, sums and the Gram matrix).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cipherray.protocols.mpc import permute as perm_protocol
from cipherray.runtime.errors import ConfigError
from cipherray.runtime.values import AGGREGATE, Meta
from cipherray.workloads.analytics import rows
from cipherray.workloads.analytics.result import DP, Layout, Result, new_budget

AGGS = ("count", "sum", "mean", "var", "std", "min", "max")
TABLE_MESSAGES = {
    "salt": "the per-join salt for hashing ids to points (random, public to both parties)",
    "blinded": "each party's ids blinded with its own X25519 scalar, in its random row order",
    "double_blinded": "the peer's blinded ids blinded again, in a dealer-drawn order "
    "the receiver does not know",
}
MAX_ONE_HOT = 64


class TableError(ConfigError):
    """A query the table cannot answer (unknown column, unsupported combination)."""


@dataclass
class _Side:
    party: Any
    df: Any  # PartyRef of the prepared (shuffled) DataFrame
    schema: dict
    source: str | None
    n: int


@dataclass
class _View:
    """The rows of `anchor`: the other party's per-row values reach them via `sigma`
    (a dealer seed, holder anchor) and `src` (matches, held by the other party)."""

    anchor: _Side
    other: _Side
    sigma: Any
    src: Any
    matched: Any  # SharedRef (n_anchor, 1)


def _ones(df: pd.DataFrame) -> np.ndarray:
    return np.ones((len(df), 1))


def _terms(
    df: pd.DataFrame,
    terms: list[tuple],
    preds: list[str],
    bounds: dict,
    party: str,
    source: str | None,
    with_mask: bool,
) -> np.ndarray:
    """Per-row integer terms at their owner: (mask,) + limbs of x, x^2, x*y, one-hots;
    multiplied by the owner's predicate mask when `with_mask`."""
    m = rows.mask(df, preds, party, source) if with_mask else np.ones(len(df))
    out = [m[:, None]] if with_mask else []
    for t in terms:
        kind = t[0]
        if kind == "x":
            x = rows.clamp(rows.numeric(df, t[1], party, source), bounds.get(t[1]))
            out.append(rows.limbs(x, f"column {t[1]!r} at {party}"))
        elif kind == "x2":
            x = rows.clamp(rows.numeric(df, t[1], party, source), bounds.get(t[1]))
            out.append(rows.limbs(x * x, f"the square of column {t[1]!r} at {party}"))
        elif kind == "xy":
            x = rows.clamp(rows.numeric(df, t[1], party, source), bounds.get(t[1]))
            y = rows.clamp(rows.numeric(df, t[2], party, source), bounds.get(t[2]))
            out.append(rows.limbs(x * y, f"products of {t[1]!r} and {t[2]!r} at {party}"))
        elif kind == "onehot":
            c = t[1]
            if t[2] == "labels":
                codes = rows.codes(df, c, t[3], party, source)
                k = len(t[3])
            else:
                lo, hi, bins = t[3]
                codes = rows.bin_codes(rows.numeric(df, c, party, source), lo, hi, bins)
                k = bins
            oh = np.zeros((len(df), k))
            ok = codes >= 0
            oh[np.nonzero(ok)[0], codes[ok]] = 1.0
            out.append(oh)
        elif kind == "scaled":  # x / bound in 2^bits fixed point, for products across parties
            x = rows.clamp(rows.numeric(df, t[1], party, source), bounds.get(t[1]))
            out.append(np.rint(x / t[2] * float(1 << t[3]))[:, None])
    arr = np.concatenate(out, axis=1) if out else np.zeros((len(df), 0))
    if with_mask:
        arr[:, 1:] *= m[:, None]
    return arr


def _group_codes(
    df: pd.DataFrame,
    key: str | None,
    labels: list,
    preds: list[str],
    bins: tuple | None,
    bin_col: str | None,
    party: str,
    source: str | None,
) -> np.ndarray:
    """Group code per row at the key holder: its label's index (x bins + the bin of
    `bin_col` when given), -1 where one of its predicates fails."""
    m = rows.mask(df, preds, party, source)
    codes = rows.codes(df, key, labels, party, source) if key else np.zeros(len(df), np.int64)
    if bin_col is not None:
        lo, hi, nb = bins
        b = rows.bin_codes(rows.numeric(df, bin_col, party, source), lo, hi, nb)
        codes = np.where(codes >= 0, codes * nb + b, -1)
    return np.where(m > 0, codes, -1)


def _local_sums(
    df: pd.DataFrame,
    key: str | None,
    labels: list,
    terms: list[tuple],
    preds: list[str],
    bounds: dict,
    party: str,
    source: str | None,
    bins: tuple | None = None,
    bin_col: str | None = None,
) -> np.ndarray:
    """A stacked table's member: per-group sums of its own rows (count first)."""
    codes = _group_codes(df, key, labels, preds, bins, bin_col, party, source)
    vals = _terms(df, terms, [], bounds, party, source, with_mask=False)
    vals = np.concatenate([np.ones((len(df), 1)), vals], axis=1)
    G = max(len(labels), 1) * (bins[2] if bin_col is not None else 1)
    out = np.zeros((G, vals.shape[1]))
    ok = codes >= 0
    np.add.at(out, codes[ok], vals[ok])
    return out


def _local_extremes(
    df: pd.DataFrame,
    key: str | None,
    labels: list,
    cols: list[tuple[str, str]],
    preds: list[str],
    party: str,
    source: str | None,
) -> np.ndarray:
    """A stacked table's member: per-group min / max of its rows (empty group: a
    sentinel beyond the range, 2^40 for min, -2^40 for max)."""
    codes = _group_codes(df, key, labels, preds, None, None, party, source)
    G = max(len(labels), 1)
    out = np.zeros((G, len(cols)))
    for j, (c, fn) in enumerate(cols):
        x = rows.numeric(df, c, party, source)
        big = float(1 << 40)
        vals = np.full(G, big if fn == "min" else -big)
        ok = codes >= 0
        if fn == "min":
            np.minimum.at(vals, codes[ok], x[ok])
        else:
            np.maximum.at(vals, codes[ok], x[ok])
        out[:, j] = vals
    return out


def _keep_rows_per_entity(df: pd.DataFrame, entity: str, m: int, party: str) -> pd.DataFrame:
    """At a party: at most m rows per entity, chosen at random (CSPRNG order)."""
    shuffled = rows.prepare(df, None, party, None)
    return shuffled.groupby(entity, sort=False).head(m).reset_index(drop=True)


def _publish_labels(df: pd.DataFrame, col: str, party: str, source: str | None) -> list:
    return rows.labels(df, col, party, source)


def _parse_aggs(aggs: Any, kwargs: dict) -> list[tuple[str, str]]:
    """[(column, fn)] from "col:fn" strings, (col, fn) pairs, a dict or keywords."""
    out: list[tuple[str, str]] = []
    items: list = []
    if isinstance(aggs, dict):
        items = list(aggs.items())
    elif isinstance(aggs, str):
        items = [aggs]
    elif aggs is not None:
        items = list(aggs)
    items += list(kwargs.items())
    for it in items:
        if isinstance(it, str):
            if ":" not in it:
                raise TableError(f"aggregate {it!r} must read 'column:function'")
            col, fn = it.rsplit(":", 1)
        else:
            col, fn = it
        fns = [fn] if isinstance(fn, str) else list(fn)
        for f in fns:
            if f not in AGGS:
                raise TableError(f"unknown aggregate {f!r} (one of {', '.join(AGGS)})")
            out.append((col, f))
    if not out:
        raise TableError("no aggregates asked for")
    return out


class JointTable:
    """What joined and stacked tables share: columns, filters, bounds, the budget."""

    kind = "joint"

    def __init__(self, rt: Any, sides: list[_Side], mpc: Any, budget: tuple | None, name: str):
        self.rt = rt
        self.sides = sides
        self.mpc = mpc
        self.name = name
        self.preds: dict[str, list[str]] = {s.party.name: [] for s in sides}
        self.bounds: dict[str, tuple[float, float]] = {}
        self.entity_factor = 1  # parties at which one person may have rows
        self.rows_per_entity: int | None = 1  # enforced rows per person at a party
        self._budget = None
        self.budget_epsilon = None
        if budget is not None:
            self.set_budget(*budget)

    # -- the privacy budget
    def set_budget(self, epsilon: float, delta: float = 1e-6) -> None:
        """A privacy budget for this table: every DP release charges it."""
        self._budget = new_budget(epsilon, delta, f"table {self.name}")
        self.budget_epsilon = float(epsilon)

    def charge(self, event: Any, dp: DP) -> float:
        """Charge `event` to the budget (PrivacyBudgetExceeded if it would exceed it);
        returns the ε of this release alone, as dp-accounting computes it."""
        acct = self._budget or new_budget(1e9, dp.delta, f"table {self.name}")
        if self._budget is not None:
            acct.spend(event)
        return (
            acct.epsilon_of(event)
            if dp.mechanism == "gaussian"
            else acct.epsilon_of(event, delta=1e-12)
        )

    def budget_spent(self) -> float | None:
        return None if self._budget is None else self._budget.epsilon()

    # -- schema
    @property
    def columns(self) -> dict[str, str]:
        """Column name -> the party that holds it (published schemas)."""
        out: dict[str, str] = {}
        for s in self.sides:
            for c in s.schema["columns"]:
                out.setdefault(c, s.party.name)
        return out

    def owner(self, col: str) -> _Side:
        for s in self.sides:
            if col in s.schema["columns"]:
                return s
        parts = ", ".join(rows._where(s.party.name, s.source) for s in self.sides)
        close = [
            rows.missing_column(col, s.party.name, s.source, list(s.schema["columns"]))
            for s in self.sides
        ]
        hint = next((c.split("; ", 1)[1] for c in close if "; did you mean" in c), None)
        raise TableError(
            f"column {col!r} is not in any party's table ({parts})" + (f"; {hint}" if hint else "")
        )

    def _numeric(self, col: str) -> _Side:
        side = self.owner(col)
        if not side.schema["columns"][col]:
            raise TableError(
                f"column {col!r} at {rows._where(side.party.name, side.source)} is not "
                "numeric: it cannot be summed, averaged or compared"
            )
        return side

    # -- filters and bounds (return self: chainable)
    def filter(self, *predicates: str) -> JointTable:
        """Keep the rows where every predicate holds; each predicate (pandas `eval`
        syntax) may use the columns of one party, which evaluates it on its own rows."""
        known = set(self.columns)
        for p in predicates:
            cols = rows.columns_in(p, known)
            if not cols:
                words = [w for w in rows._IDENT.findall(p) if w not in ("and", "or", "not")]
                raise TableError(
                    f"predicate {p!r} names no column of the table"
                    + (f" ({words[0]!r} is unknown)" if words else "")
                )
            owners = {self.owner(c).party.name for c in cols}
            if len(owners) > 1:
                raise TableError(
                    f"predicate {p!r} mixes columns of {sorted(owners)}: split it into one "
                    "predicate per party (they are combined with 'and')"
                )
            self.preds[owners.pop()].append(p)
        return self

    where = filter

    def clamp(self, **bounds: tuple[float, float]) -> JointTable:
        """Contribution bounding: clamp each column to [lo, hi] at its owner before it is
        summed (needed for DP releases)."""
        for col, (lo, hi) in bounds.items():
            self._numeric(col)
            if not lo < hi:
                raise TableError(f"bounds of {col!r} must satisfy lo < hi, got ({lo}, {hi})")
            self.bounds[col] = (float(lo), float(hi))
        return self

    # -- queries
    def groupby(self, key: str | None) -> GroupBy:
        if key is not None:
            self.owner(key)
        return GroupBy(self, key)

    def agg(self, aggs: Any = None, **kwargs: Any) -> Result:
        return GroupBy(self, None).agg(aggs, **kwargs)

    def count(self) -> Result:
        return self.agg([(self._any_column(), "count")])

    def _any_column(self) -> str:
        return next(iter(self.sides[0].schema["columns"]))

    def _labels(self, key: str) -> list:
        side = self.owner(key)
        ref = side.party(_publish_labels, declare="public")(
            side.df, key, side.party.name, side.source
        )
        return list(self.rt.get(ref))

    def _layout(self, aggs: list[tuple[str, str]]) -> tuple[Layout, list, list[tuple], str]:
        """The sums a set of aggregates needs and how each output is computed."""
        lay = Layout()
        lay.add("__count", False, 1.0)
        terms: list[tuple] = []
        outputs: list[tuple[str, str, tuple]] = []

        def sens(col: str, sq: bool) -> float | None:
            b = self.bounds.get(col)
            if b is None:
                return None
            m = max(abs(b[0]), abs(b[1]))
            return (m * m if sq else m) * (1 << rows.FRAC_BITS)

        def need(kind: str, col: str) -> str:
            name = f"__{kind}_{col}"
            if all(c.name != name for c in lay.columns):
                lay.add(name, True, sens(col, kind == "x2"))
                terms.append((kind, col))
            return name

        for col, fn in aggs:
            out = f"{col}_{fn}"
            if fn == "count":
                self.owner(col)
                outputs.append((out, "count", ("__count",)))
                continue
            self._numeric(col)
            if fn == "sum":
                outputs.append((out, "sum", (need("x", col),)))
            elif fn == "mean":
                outputs.append((out, "mean", (need("x", col), "__count")))
            elif fn in ("var", "std"):
                outputs.append((out, fn, (need("x", col), need("x2", col), "__count")))
        return lay, terms, outputs, "__count"

    # -- histograms, quantiles, crosstabs
    def histogram(
        self, col: str, bins: int = 10, range: tuple[float, float] | None = None,
        by: str | None = None,
    ) -> Result:  # fmt: skip
        """Counts of `col` in `bins` equal bins over `range` (values outside are clamped
        into the end bins), per group of `by` if given; one row per (group, bin)."""
        self._numeric(col)
        lo, hi = range if range is not None else self.bounds.get(col, (None, None))
        if lo is None or not lo < hi:
            raise TableError(f"a histogram of {col!r} needs range=(lo, hi) with lo < hi")
        if not 1 <= int(bins) <= 4096:
            raise TableError("bins must be in 1..4096")
        return self._histogram(col, (float(lo), float(hi), int(bins)), by)

    def quantile(
        self, col: str, q: Any, range: tuple[float, float] | None = None, bins: int = 1024
    ) -> Result:
        """Approximate quantiles of `col` from a `bins`-bin histogram over `range`: the
        released value is the upper edge of the bin where the cumulative count reaches
        q * n, so the error is at most one bin width (hi - lo) / bins (stated in the
        released frame as `error`)."""
        res = self.histogram(col, bins=bins, range=range)
        qs = [float(x) for x in np.atleast_1d(q)]
        if any(not 0 <= x <= 1 for x in qs):
            raise TableError("quantiles must lie in [0, 1]")
        lo, hi = range if range is not None else self.bounds[col]
        res.outputs.append((col, "quantiles", (qs, float(lo), float(hi), int(bins))))
        return res

    def crosstab(self, row: str, col: str) -> Result:
        """Counts per (row label, col label): a contingency table of two categorical
        columns (each at its owner; across parties, `col` may have at most 64 labels)."""
        return self._crosstab(row, col)

    # -- covariance, correlation, OLS from the sufficient statistics
    def cov(self, cols: list[str]) -> Result:
        """The covariance matrix of `cols` (count, sums and the Gram matrix are summed on
        shares; the receiver computes the matrix from them)."""
        return self._gram(list(cols), "cov")

    def corr(self, cols: list[str]) -> Result:
        return self._gram(list(cols), "corr")

    def ols(self, y: str, x: list[str], intercept: bool = True) -> Result:
        """OLS coefficients of `y` on `x` from the secure Gram matrix of [x, y]."""
        return self._gram([*x, y], "ols", intercept=intercept)

    def _gram_layout(self, cols: list[str], mode: str, intercept: bool) -> tuple:
        for c in cols:
            self._numeric(c)
        if len(set(cols)) != len(cols):
            raise TableError("columns must be distinct")
        lay = Layout()
        lay.add("__count", False, 1.0)
        terms: list[tuple] = []
        for c in cols:
            lay.add(f"__x_{c}", True, None)
            terms.append(("x", c))
        cross: list[tuple[str, str]] = []
        for i, a in enumerate(cols):
            for b in cols[i:]:
                if self._same_owner(a, b):
                    lay.add(f"__xy_{a}_{b}", True, None)
                    terms.append(("xy", a, b))
                else:
                    cross.append((a, b))
        outputs = [("gram", "gram", (tuple(cols), mode, intercept, tuple(cross)))]
        return lay, terms, outputs, cross

    def _same_owner(self, a: str, b: str) -> bool:
        return self.owner(a).party.name == self.owner(b).party.name


class GroupBy:
    def __init__(self, table: JointTable, key: str | None):
        self.table = table
        self.key = key

    def agg(self, aggs: Any = None, **kwargs: Any) -> Result:
        """count / sum / mean / var / std / min / max per group: `agg(["income:mean",
        "id:count"])`, `agg({"income": ["mean", "std"]})` or `agg(income="mean")`."""
        return self.table._aggregate(self.key, _parse_aggs(aggs, kwargs))


# ============================================================ stacked tables


class UnionTable(JointTable):
    """Parties' tables with the same columns, stacked (horizontal partitioning)."""

    kind = "union"

    def __init__(self, rt: Any, refs: list, dealer: Any, budget: tuple | None, name: str):
        sides = []
        for ref in refs:
            p = ref.party
            sch = rt.get(p(rows.schema, declare="public")(ref))
            sides.append(_Side(p, ref, sch, None, sch["rows"]))
        cols = [set(s.schema["columns"]) for s in sides]
        if any(c != cols[0] for c in cols[1:]):
            raise TableError(
                "stacked tables need the same columns at every party; they differ in "
                + ", ".join(sorted(set.union(*cols) - set.intersection(*cols)))
            )
        if len(sides) < 2:
            raise TableError("a stacked table needs at least two parties")
        parties = [s.party for s in sides]
        mpc = rt.mpc(*parties, dealer=dealer, frac_bits=0)
        super().__init__(rt, sides, mpc, budget, name)
        self.fx = rt.mpc(*parties, dealer=dealer)
        self.entity_factor = len(sides)  # one person may have rows at every party
        self.rows_per_entity = None  # until bound_rows enforces it

    def bound_rows(self, entity: str, m: int = 1) -> UnionTable:
        """Contribution bounding: every party keeps at most `m` rows per value of its
        `entity` column (a random m of them, CSPRNG); DP releases then use m."""
        if not isinstance(m, int) or m < 1:
            raise TableError(f"m must be a positive integer, got {m!r}")
        self.owner(entity)
        for s in self.sides:
            s.df = s.party(_keep_rows_per_entity)(s.df, entity, m, s.party.name)
        self.rows_per_entity = m
        return self

    def owner(self, col: str) -> _Side:
        return super().owner(col)

    def filter(self, *predicates: str) -> JointTable:
        known = set(self.columns)
        for p in predicates:
            if not rows.columns_in(p, known):
                raise TableError(f"predicate {p!r} names no column of the table")
            for s in self.sides:
                self.preds[s.party.name].append(p)
        return self

    where = filter

    def _aggregate(self, key: str | None, aggs: list[tuple[str, str]]) -> Result:
        labels = self._union_labels(key) if key else ["all"]
        lay, terms, outputs, count = self._layout([a for a in aggs if a[1] not in ("min", "max")])
        sums = None
        for s in self.sides:
            local = s.party(_local_sums, declare="aggregate")(
                s.df, key, labels, terms, self.preds[s.party.name], self.bounds,
                s.party.name, None,
            )  # fmt: skip
            sh = local.to(self.mpc)
            sums = sh if sums is None else sums + sh
        extremes = [(c, f) for c, f in aggs if f in ("min", "max")]
        extra = extra_counts = None
        names: tuple[str, ...] = ()
        if extremes:
            for c, _ in extremes:
                self._numeric(c)
            extra, extra_counts = self._extremes(key, labels, extremes)
            names = tuple(f"{c}_{f}" for c, f in extremes)
        return Result(self, sums, lay, outputs, labels, key, count, extra, names, extra_counts)

    def _local(self, key, labels, terms, bins=None, bin_col=None, preds=True) -> Any:
        sums = None
        for s in self.sides:
            local = s.party(_local_sums, declare="aggregate")(
                s.df, key, labels, terms, self.preds[s.party.name] if preds else [],
                self.bounds, s.party.name, None, bins, bin_col,
            )  # fmt: skip
            sh = local.to(self.mpc)
            sums = sh if sums is None else sums + sh
        return sums

    def _histogram(self, col: str, bins: tuple, by: str | None) -> Result:
        labels = self._union_labels(by) if by else ["all"]
        lay = Layout()
        lay.add("__count", False, 1.0)
        sums = self._local(by, labels, [], bins, col)
        out_labels = [f"{lab}|{j}" for lab in labels for j in range(bins[2])]
        outputs = [("count", "count", ("__count",)), ("bin", "bins", bins)]
        return Result(self, sums, lay, outputs, out_labels, by or "group", "__count")

    def _crosstab(self, row: str, col: str) -> Result:
        rl, cl = self._union_labels(row), self._union_labels(col)
        lay = Layout()
        lay.add("__count", False, 1.0)
        outputs = []
        for lab in cl:
            lay.add(f"{col}={lab}", False, 1.0)
            outputs.append((f"{col}={lab}", "count", (f"{col}={lab}",)))
        sums = self._local(row, rl, [("onehot", col, "labels", cl)])
        return Result(self, sums, lay, outputs, rl, row, "__count")

    def _gram(self, cols: list[str], mode: str, intercept: bool = True) -> Result:
        lay, terms, outputs, _ = self._gram_layout(cols, mode, intercept)
        sums = self._local(None, ["all"], terms)
        return Result(self, sums, lay, outputs, ["all"], None, "__count")

    def _union_labels(self, key: str) -> list:
        seen: set = set()
        for s in self.sides:
            ref = s.party(_publish_labels, declare="public")(s.df, key, s.party.name, None)
            seen |= set(self.rt.get(ref))
        try:
            return sorted(seen)
        except TypeError:
            return sorted(seen, key=str)

    def _extremes(self, key: str | None, labels: list, cols: list) -> tuple:
        """Exact per-group min / max: each party's own, then pairwise on shares."""
        best = counts = None
        for s in self.sides:
            local = s.party(_local_extremes, declare="aggregate")(
                s.df, key, labels, cols, self.preds[s.party.name], s.party.name, None
            )
            cnt = s.party(_local_sums, declare="aggregate")(
                s.df, key, labels, [], self.preds[s.party.name], {}, s.party.name, None
            )
            x, c = local.to(self.fx), cnt.to(self.fx)
            if best is None:
                best, counts = x, c
                continue
            counts = counts + c
            is_min = np.array([1.0 if f == "min" else 0.0 for _, f in cols])
            lt = x < best  # 1 where the new value is smaller
            take = lt * is_min + (1 - lt) * (1 - is_min)  # min: take smaller; max: larger
            best = best + take * (x - best)
        return best, counts


# ============================================================ joined tables


class JoinedTable(JointTable):
    """Two parties' tables joined on a key, privately (see the module's steps)."""

    kind = "join"

    def __init__(
        self,
        rt: Any,
        tables: dict,
        on: str,
        dealer: Any,
        budget: tuple | None,
        name: str,
        sources: dict | None = None,
    ):
        if len(tables) != 2:
            raise TableError(
                f"a joined table joins exactly two parties' tables, got {len(tables)} "
                "(stack same-schema tables with rt.table.union)"
            )
        rt.protocol("table", TABLE_MESSAGES)
        sides = []
        for party, ref in tables.items():
            p = rt.party(party)
            if ref.party.name != p.name:
                raise TableError(f"the table given for {p.name} lives at {ref.party.name}")
            src = (sources or {}).get(p.name)
            df = p(rows.prepare)(ref, on, p.name, src)
            sch = rt.get(p(rows.schema, declare="public")(df))
            sides.append(_Side(p, df, sch, src, sch["rows"]))
        self.on = on
        if dealer is None:
            raise TableError(
                "a private join needs a dealer (correlated randomness for the oblivious "
                "permutations): rt.table({...}, on=..., dealer='<third party>')"
            )
        dealer = rt.party(dealer)
        if dealer.name in {s.party.name for s in sides}:
            raise TableError("the dealer must be a third party, not one of the tables' owners")
        mpc = rt.mpc(*(s.party for s in sides), dealer=dealer, frac_bits=0)
        super().__init__(rt, sides, mpc, budget, name)
        # the per-join salt for hashing ids to points: drawn by the first party, sent to
        # the other (cross-silo, every process must hash with the same salt)
        first, second = sides
        salt = first.party(rows.new_salt)()
        salts = {
            first.party.name: salt,
            second.party.name: rt.send(salt, to=second.party, tag="table/salt"),
        }
        self.keys = {s.party.name: s.party(rows.new_key)() for s in sides}
        self.blinded = {
            s.party.name: s.party(rows.blind_own)(
                s.df, on, salts[s.party.name], self.keys[s.party.name]
            )
            for s in sides
        }
        self._views: dict[str, _View] = {}
        self._sent: dict[tuple[str, str], Any] = {}
        self.view(sides[0].party.name)

    def _index(self, party: Any) -> int:
        return [p.name for p in self.mpc.parties].index(party.name)

    def _exchange(self, src: _Side, dst: _Side) -> Any:
        """Step 2: `src`'s blinded ids at `dst` (sent once, used by both views)."""
        key = (src.party.name, dst.party.name)
        if key not in self._sent:
            self._sent[key] = self.rt.send(
                self.blinded[src.party.name], to=dst.party, tag="table/blinded"
            )
        return self._sent[key]

    def view(self, anchor: str) -> _View:
        """The table on `anchor`'s rows (built once: steps 2-6 of the private join)."""
        if anchor in self._views:
            return self._views[anchor]
        rt = self.rt
        a = next(s for s in self.sides if s.party.name == anchor)
        b = next(s for s in self.sides if s.party.name != anchor)
        m_a, m_b = self._exchange(a, b), self._exchange(b, a)
        ones = b.party(_ones)(b.df).to(self.mpc)
        meta = Meta(frozenset({b.party.name}))
        permuted, sigma_at_a, sigma_seed = self.mpc.apply(
            perm_protocol.permute, ones, self._index(a.party), (b.n, 1), None,
            shape=(b.n, 1), meta=meta, tag=f"table/join/{anchor}/permute",
        )  # fmt: skip
        dbl = a.party(rows.double_blind_permuted)(m_b, self.keys[a.party.name], sigma_at_a)
        dbl_at_b = rt.send(dbl, to=b.party, tag="table/double_blinded")
        src = b.party(rows.match_sources)(m_a, self.keys[b.party.name], dbl_at_b)
        matched = self.mpc.apply(
            perm_protocol.select, permuted, self._index(b.party), src, a.n, (b.n, 1), True,
            shape=(a.n, 1), meta=Meta(frozenset({a.party.name, b.party.name})),
            tag=f"table/join/{anchor}/select",
        )  # fmt: skip
        v = _View(a, b, sigma_seed, src, matched)
        self._views[anchor] = v
        return v

    def align(self, v: _View, values: Any, width: int) -> Any:
        """A per-row array the other party computed on its rows (n_other, width), as
        shares on the anchor's rows (zeros on unmatched rows)."""
        sh = values.to(self.mpc)
        owners = frozenset({v.anchor.party.name, v.other.party.name})
        permuted, _, _ = self.mpc.apply(
            perm_protocol.permute, sh, self._index(v.anchor.party), (v.other.n, width), v.sigma,
            shape=(v.other.n, width), meta=Meta(owners), tag="table/align/permute",
        )  # fmt: skip
        return self.mpc.apply(
            perm_protocol.select, permuted, self._index(v.other.party), v.src, v.anchor.n,
            (v.other.n, width), True, shape=(v.anchor.n, width), meta=Meta(owners),
            tag="table/align/select",
        )  # fmt: skip

    def _row_sums(self, v: _View, terms: list[tuple]) -> tuple[Any, int]:
        """Shares (n_anchor, 1 + width) of [w, terms * w] on the anchor's rows, with w the
        other party's predicates and the join's match."""
        a, b = v.anchor, v.other
        mine = [t for t in terms if self.owner(t[1]).party.name == a.party.name]
        theirs = [t for t in terms if self.owner(t[1]).party.name != a.party.name]
        b_vals = b.party(_terms)(
            b.df, theirs, self.preds[b.party.name], self.bounds, b.party.name, b.source, True
        )
        b_width = 1 + _width(theirs)
        aligned = self.align(v, b_vals, b_width)  # [w, their terms * w]
        parts = [aligned]
        if mine:
            a_vals = a.party(_terms)(a.df, mine, [], self.bounds, a.party.name, a.source, False)
            w = aligned[:, 0:1]
            parts.append(a_vals.to(self.mpc) * w)
        if len(parts) == 1:
            return aligned, b_width
        from cipherray.runtime import concatenate

        order = _reorder(terms, mine, theirs)
        stacked = concatenate(parts, axis=1)
        return stacked[:, order], 1 + _width(terms)

    def _aggregate(self, key: str | None, aggs: list[tuple[str, str]]) -> Result:
        hist_aggs = [(c, f) for c, f in aggs if f in ("min", "max")]
        if hist_aggs:
            raise TableError(
                "min / max on a joined table come from a histogram: use "
                "table.quantile(col, [0, 1], bounds=(lo, hi)) (error: one bin width)"
            )
        anchor = self.owner(key).party.name if key else self.sides[0].party.name
        v = self.view(anchor)
        labels = self._labels(key) if key else ["all"]
        lay, terms, outputs, count = self._layout(aggs)
        return self._grouped(v, key, labels, terms, lay, outputs, count)

    def _grouped(
        self, v: _View, key: str | None, labels: list, terms: list, lay: Layout, outputs: list,
        count: str, bins: tuple | None = None, bin_col: str | None = None,
    ) -> Result:  # fmt: skip
        a = v.anchor
        y, width = self._row_sums(v, terms)
        codes = a.party(_group_codes)(
            a.df, key, labels, self.preds[a.party.name], bins, bin_col, a.party.name, a.source
        )
        G = max(len(labels), 1) * (bins[2] if bin_col else 1)
        owners = frozenset(s.party.name for s in self.sides)
        sums = self.mpc.apply(
            perm_protocol.group_sum, y, self._index(a.party), codes, G, (a.n, width),
            shape=(G, width), meta=Meta(owners, AGGREGATE, None, None), tag="table/group_sum",
        )  # fmt: skip
        out_labels = labels
        if bin_col:
            out_labels = [f"{lab}|{j}" for lab in labels for j in range(bins[2])]
        return Result(self, sums, lay, outputs, out_labels, key, count)

    def _histogram(self, col: str, bins: tuple, by: str | None) -> Result:
        lay = Layout()
        lay.add("__count", False, 1.0)
        owner = self.owner(col).party.name
        if by is None or self.owner(by).party.name == owner:
            labels = self._labels(by) if by else ["all"]
            outputs = [("count", "count", ("__count",)), ("bin", "bins", bins)]
            res = self._grouped(
                self.view(owner), by, labels, [], lay, outputs, "__count", bins, col
            )
            res.key = by or "group"
            return res
        if bins[2] > MAX_ONE_HOT:
            raise TableError(
                f"a histogram of {col!r} per group of {by!r} (held by another party) takes "
                f"at most {MAX_ONE_HOT} bins"
            )
        labels = self._labels(by)
        outputs = []
        for j in range(bins[2]):
            lay.add(f"bin{j}", False, 1.0)
            outputs.append((f"bin{j}", "count", (f"bin{j}",)))
        terms = [("onehot", col, "bins", bins)]
        return self._grouped(
            self.view(self.owner(by).party.name), by, labels, terms, lay, outputs, "__count"
        )

    def _crosstab(self, row: str, col: str) -> Result:
        cl = self._labels(col)
        if len(cl) > MAX_ONE_HOT:
            raise TableError(f"crosstab: {col!r} has more than {MAX_ONE_HOT} labels")
        rl = self._labels(row)
        lay = Layout()
        lay.add("__count", False, 1.0)
        outputs = []
        for lab in cl:
            lay.add(f"{col}={lab}", False, 1.0)
            outputs.append((f"{col}={lab}", "count", (f"{col}={lab}",)))
        terms = [("onehot", col, "labels", cl)]
        v = self.view(self.owner(row).party.name)
        return self._grouped(v, row, rl, terms, lay, outputs, "__count")

    def _gram(self, cols: list[str], mode: str, intercept: bool = True) -> Result:
        lay, terms, outputs, cross = self._gram_layout(cols, mode, intercept)
        scales = {}
        for a, b in cross:
            for c in (a, b):
                if c not in self.bounds:
                    raise TableError(
                        f"products of {a!r} and {b!r} (held by different parties) need "
                        f"bounds: table.clamp({c}=(lo, hi))"
                    )
                lo, hi = self.bounds[c]
                scales[c] = max(abs(lo), abs(hi))
        v = self.view(self.sides[0].party.name)
        # |x / bound| <= 1 in 2^bits fixed point: a product is below 2^(2 bits) and the
        # sum over the anchor's rows stays below 2^62
        bits = int(min(26, (62 - int(np.ceil(np.log2(v.anchor.n + 1)))) // 2))
        scaled = [("scaled", c, scales[c], bits) for c in sorted(scales)]
        y, width = self._row_sums(v, terms + scaled)
        base = 1 + _width(terms)
        from cipherray.runtime import concatenate

        parts = [y[:, 0:base]]
        col_of = {t[1]: base + j for j, t in enumerate(scaled)}
        if cross:  # all cross-party products in one Beaver multiplication
            for a, b in cross:
                lay.add(f"__sxy_{a}_{b}", False, None)
            ia = [col_of[a] for a, _ in cross]
            ib = [col_of[b] for _, b in cross]
            parts.append(y[:, ia] * y[:, ib])
        rowsum = concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        outputs[0] = ("gram", "gram", (*outputs[0][2], tuple(scales.items()), bits))
        a = v.anchor
        codes = a.party(_group_codes)(
            a.df, None, ["all"], self.preds[a.party.name], None, None, a.party.name, a.source
        )
        owners = frozenset(s.party.name for s in self.sides)
        sums = self.mpc.apply(
            perm_protocol.group_sum, rowsum, self._index(a.party), codes, 1, (a.n, lay.width),
            shape=(1, lay.width), meta=Meta(owners, AGGREGATE, None, None), tag="table/gram",
        )  # fmt: skip
        return Result(self, sums, lay, outputs, ["all"], None, "__count")


def _width(terms: list[tuple]) -> int:
    w = 0
    for t in terms:
        if t[0] in ("x", "x2", "xy"):
            w += 2
        elif t[0] == "onehot":
            w += len(t[3]) if t[2] == "labels" else t[3][2]
        elif t[0] == "scaled":
            w += 1
    return w


def _reorder(terms: list, mine: list, theirs: list) -> list[int]:
    """Column order of [w, theirs..., mine...] -> [w, terms...]."""
    pos: dict[int, list[int]] = {}
    col = 1
    for t in theirs:
        k = _width([t])
        pos[id(t)] = list(range(col, col + k))
        col += k
    for t in mine:
        k = _width([t])
        pos[id(t)] = list(range(col, col + k))
        col += k
    return [0] + list(itertools.chain.from_iterable(pos[id(t)] for t in terms))


class TableFactory:
    """`rt.table(...)` and `rt.table.union(...)`."""

    def __init__(self, rt: Any):
        self.rt = rt
        self._count = 0

    def _name(self, name: str | None) -> str:
        self._count += 1
        return name or f"t{self._count}"

    def __call__(
        self,
        tables: dict,
        on: str,
        dealer: Any = None,
        budget: tuple | float | None = None,
        name: str | None = None,
        sources: dict | None = None,
    ) -> JoinedTable:
        """A joined table of two parties' DataFrames (PartyRefs) on key column `on`."""
        return JoinedTable(self.rt, tables, on, dealer, _budget(budget), self._name(name), sources)

    def union(
        self, *refs: Any, dealer: Any = None, budget: tuple | float | None = None,
        name: str | None = None,
    ) -> UnionTable:  # fmt: skip
        """A stacked table of parties' DataFrames with the same columns."""
        return UnionTable(self.rt, list(refs), dealer, _budget(budget), self._name(name))


def _budget(b: Any) -> tuple | None:
    if b is None:
        return None
    if isinstance(b, int | float):
        return (float(b), 1e-6)
    return tuple(b)
