"""Joint results and their release gates.

A `Result` holds per-group sums as shares (a (groups, columns) SharedRef of exact integer
sums, see `rows.limbs`) and how to turn them into statistics. Nothing is revealed until
`release(to=party, min_group=k, dp=DP(...))`:

1. the groups' true counts are compared with k on shares; the outcome (kept or
   suppressed, per group) is revealed to the receiver only — suppression is decided on
   the exact counts inside the computation, never on a noised count;
2. every sum of a suppressed group is multiplied by 0 on shares;
3. with `dp`, every member adds its own noise to its share of every released sum
   (exact discrete Laplace or discrete Gaussian from AES-CTR, `protocols/dp`), each
   calibrated to the full ε, so the release stays ε-DP even if all other members
   collude; the stated noise scale is that of the sum of the members' noises; the
   budget of the table is charged first (dp-accounting) and a release that would
   exceed it raises `PrivacyBudgetExceeded` naming the table, before anything leaves;
4. the gated (noised) sums are revealed to the receiver under the disclosure policy
   (owners' grants, or the default rule for members), which computes the statistics.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dp_accounting
import numpy as np
import pandas as pd

from cipherray.protocols.dp import PrivacyAccountant
from cipherray.protocols.mpc import arithmetic
from cipherray.workloads.analytics.rows import FRAC_BITS, LIMB

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime import MPC, SharedRef

MECHANISMS = ("gaussian", "laplace")


@dataclass(frozen=True)
class DP:
    """A differentially private release: total ε (and δ for the Gaussian mechanism) of
    this release over all its statistics. `max_rows_per_entity` *declares* how many rows
    one person has at most, for a stacked table that did not enforce it with
    `table.bound_rows(...)` (a joined table has one row per key)."""

    epsilon: float
    delta: float = 1e-6
    mechanism: str = "gaussian"
    max_rows_per_entity: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, int | float) and self.epsilon > 0):
            raise ValueError(f"epsilon must be positive, got {self.epsilon!r}")
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"mechanism must be one of {MECHANISMS}, got {self.mechanism!r}")
        if self.mechanism == "gaussian" and not 0 < self.delta < 1:
            raise ValueError(f"delta must lie in (0, 1), got {self.delta!r}")
        if self.max_rows_per_entity is not None and self.max_rows_per_entity < 1:
            raise ValueError("max_rows_per_entity must be at least 1")


@dataclass
class Column:
    """One released statistic's inputs: which sum columns, and its sensitivity per row
    (in units of the sum: 1 for a count, bound * 2^16 for a value sum)."""

    name: str  # "income_sum", "id_count", "age_sq"
    index: tuple[int, ...]  # (count,) or (hi, lo) columns of the sums
    sensitivity: float | None  # None: unbounded (no DP release possible)


@dataclass
class Layout:
    columns: list[Column] = field(default_factory=list)
    width: int = 0

    def add(self, name: str, limbs: bool, sensitivity: float | None) -> Column:
        idx = (self.width, self.width + 1) if limbs else (self.width,)
        self.width += len(idx)
        col = Column(name, idx, sensitivity)
        self.columns.append(col)
        return col

    def get(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


# ------------------------------------------------------------ steps at parties


def noise_for(shape: tuple, plan: list[tuple[int, str, float]], rows: int) -> np.ndarray:
    """One member's noise (an aggregate-shaped array): column j gets discrete Laplace
    (scale) or discrete Gaussian (sigma^2) samples; the others zeros."""
    from cipherray.protocols.dp import discrete_gaussian, discrete_laplace

    out = np.zeros(shape, dtype=np.float64)
    for j, mech, param in plan:
        if mech == "laplace":
            out[:, j] = discrete_laplace(param, (rows,))
        else:
            out[:, j] = discrete_gaussian(param, (rows,))
    return out


def finish(
    sums: np.ndarray,
    flags: np.ndarray | None,
    labels: list,
    key: str | None,
    outputs: list[tuple[str, str, tuple]],
    layout_cols: list[tuple[str, tuple[int, ...]]],
    extra: np.ndarray | None = None,
    extra_names: tuple[str, ...] = (),
) -> pd.DataFrame:
    """At the receiver: the statistics of the kept groups from the revealed sums."""
    sums = np.asarray(sums, dtype=np.float64)
    cols = dict(layout_cols)

    def total(name: str) -> np.ndarray:
        idx = cols[name]
        if len(idx) == 1:
            return sums[:, idx[0]]
        return (sums[:, idx[0]] * float(LIMB) + sums[:, idx[1]]) / float(1 << FRAC_BITS)

    out: dict[str, Any] = {}
    if key is not None:
        out[key] = labels
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, fn, args in outputs:
            if fn == "count":
                out[name] = np.rint(total(args[0])).astype(np.int64)
            elif fn == "sum":
                out[name] = total(args[0])
            elif fn == "mean":
                out[name] = total(args[0]) / total(args[1])
            elif fn in ("var", "std"):
                s, s2, n = total(args[0]), total(args[1]), total(args[2])
                var = (s2 - s * s / n) / (n - 1)
                var = np.maximum(var, 0.0)
                out[name] = np.sqrt(var) if fn == "std" else var
            elif fn == "bins":
                lo, hi, nb = args
                width = (hi - lo) / nb
                j = np.arange(len(labels)) % nb
                out["bin_lo"] = lo + j * width
                out["bin_hi"] = lo + (j + 1) * width
                if key == "group" and len(labels) == nb:
                    out.pop("group", None)
            elif fn == "quantiles":
                return _quantiles(total("__count"), flags, name, *args)
            elif fn == "gram":
                return _gram_frame(total, *args)
    if extra is not None:
        for j, nm in enumerate(extra_names):
            out[nm] = np.asarray(extra)[:, j]
    frame = pd.DataFrame(out)
    if flags is not None:
        frame = frame[np.asarray(flags).ravel() > 0.5].reset_index(drop=True)
    return frame


def _quantiles(
    counts: np.ndarray, flags: Any, col: str, qs: list, lo: float, hi: float, bins: int
) -> pd.DataFrame:
    """Quantiles from a released histogram: the upper edge of the first bin whose
    cumulative count reaches q * n (error at most one bin width)."""
    c = np.maximum(np.asarray(counts, dtype=np.float64), 0)
    if flags is not None:
        c = c * (np.asarray(flags).ravel() > 0.5)
    cum = np.cumsum(c)
    n = cum[-1] if cum.size else 0.0
    width = (hi - lo) / bins
    vals = []
    for q in qs:
        j = int(np.searchsorted(cum, q * n, side="left")) if n > 0 else 0
        vals.append(lo + min(j + 1, bins) * width if q > 0 else lo + j * width)
    return pd.DataFrame({"column": col, "q": qs, "value": vals, "error": width})


def _gram_frame(
    total: Any, cols: tuple, mode: str, intercept: bool, cross: tuple, scales: tuple = (),
    bits: int = FRAC_BITS,
) -> pd.DataFrame:  # fmt: skip
    """Covariance, correlation or OLS coefficients from count, sums and Gram matrix."""
    sc = dict(scales)
    n = float(total("__count")[0])
    k = len(cols)
    s = np.array([total(f"__x_{c}")[0] for c in cols])
    m = np.zeros((k, k))
    for i, a in enumerate(cols):
        for j in range(i, k):
            b = cols[j]
            if (a, b) in cross:
                v = total(f"__sxy_{a}_{b}")[0] * sc[a] * sc[b] / float(1 << (2 * bits))
            else:
                v = total(f"__xy_{a}_{b}")[0]
            m[i, j] = m[j, i] = v
    if mode in ("cov", "corr"):
        cov = (m - np.outer(s, s) / n) / (n - 1)
        if mode == "corr":
            d = np.sqrt(np.maximum(np.diag(cov), 1e-300))
            cov = cov / np.outer(d, d)
        return pd.DataFrame(cov, index=list(cols), columns=list(cols))
    xs = list(cols[:-1])
    p = len(xs)
    if intercept:
        a_mat = np.zeros((p + 1, p + 1))
        a_mat[0, 0] = n
        a_mat[0, 1:] = a_mat[1:, 0] = s[:p]
        a_mat[1:, 1:] = m[:p, :p]
        rhs = np.concatenate([[s[p]], m[:p, p]])
        names = ["intercept", *xs]
    else:
        a_mat, rhs, names = m[:p, :p], m[:p, p], xs
    beta = np.linalg.solve(a_mat, rhs)
    return pd.DataFrame({"term": names, "coef": beta, "n": n})


# ------------------------------------------------------------ protocols run on shares


def gate_flags(ctx: Any, counts: Any, k: int, shape: tuple) -> Any:
    """Shares of [count >= k] per group (exact counts, on shares): what the gate reveals
    to the receiver, an aggregate of at least k rows per kept group."""
    from cipherray.protocols.mpc import compare

    return compare.relation(ctx, "ge", counts, np.full(shape, k, dtype=np.float64),
                            x_shape=shape, y_shape=shape)  # fmt: skip


def mask_rows(ctx: Any, x: Any, flags: Any, x_shape: tuple, f_shape: tuple) -> Any:
    """Shares of x * flags (flags 0/1 per group, integers: no truncation)."""
    return arithmetic.mul(ctx, x, flags, x_shape=x_shape, y_shape=f_shape, truncate=False)


# ------------------------------------------------------------ the result


@dataclass
class Outcome:
    """What a release did (also the `report.json` of `cipherray run stats`)."""

    groups: int
    released: int
    suppressed: int
    min_group: int
    epsilon: float | None = None
    delta: float | None = None
    mechanism: str | None = None
    noise_std: dict[str, float] = field(default_factory=dict)
    budget_spent: float | None = None
    budget: float | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Result:
    """Per-group joint statistics, shared until released."""

    def __init__(
        self,
        table: Any,
        sums: SharedRef,
        layout: Layout,
        outputs: list[tuple[str, str, tuple]],
        labels: list,
        key: str | None,
        count_column: str,
        extra: SharedRef | None = None,
        extra_names: tuple[str, ...] = (),
        extra_counts: SharedRef | None = None,
    ):
        self.table = table
        self.sums = sums
        self.layout = layout
        self.outputs = outputs
        self.labels = labels
        self.key = key
        self.count_column = count_column
        self.extra = extra
        self.extra_names = extra_names
        self.extra_counts = extra_counts
        self.outcome: Outcome | None = None

    @property
    def groups(self) -> int:
        return len(self.labels)

    def release(self, to: Any, min_group: int = 1, dp: DP | None = None) -> Any:
        """The kept groups' statistics as a DataFrame at `to` (a PartyRef; the driver
        reads it with `rt.get` once revealed). See the module's steps."""
        rt = self.table.rt
        to = rt.party(to)
        if not isinstance(min_group, int) or min_group < 1:
            raise ValueError(f"min_group must be a positive integer, got {min_group!r}")
        mpc: MPC = self.sums.location
        G, width = self.groups, self.layout.width
        count = self.layout.get(self.count_column)
        counts = self.sums[:, count.index[0] : count.index[0] + 1]
        sums = self.sums
        flags_ref = None
        # 1.-2. the gate on the exact counts, on shares
        if min_group > 1:
            flags = mpc.apply(
                gate_flags, counts, min_group, (G, 1), shape=(G, 1),
                meta=counts.meta.with_(rows=min_group), tag="release/gate",
            )  # fmt: skip
            flags_ref = flags.reveal_to(to)
            meta = sums.meta.with_(rows=min_group)
            sums = mpc.apply(
                mask_rows, sums, flags, (G, width), (G, 1), shape=(G, width), meta=meta,
                tag="release/gate",
            )  # fmt: skip
        outcome = Outcome(groups=G, released=G, suppressed=0, min_group=min_group)
        # 3. noise from every member, after charging the budget
        if dp is not None:
            plan, event, stds = self._noise_plan(dp, len(mpc.parties))
            outcome.epsilon = self.table.charge(event, dp)
            outcome.delta = dp.delta if dp.mechanism == "gaussian" else 0.0
            outcome.mechanism = dp.mechanism
            outcome.noise_std = stds
            outcome.budget_spent = self.table.budget_spent()
            outcome.budget = self.table.budget_epsilon
            for p in mpc.parties:
                noise = p(noise_for, declare="aggregate")((G, width), plan, G)
                sums = sums + noise.to(mpc)
        # 4. reveal and compute the statistics at the receiver
        revealed = sums.reveal_to(to)
        extra_ref = None
        if self.extra is not None:
            extra = self.extra
            if min_group > 1:
                fl = self.extra_counts >= min_group
                extra = extra * fl
            extra_ref = extra.reveal_to(to)
        layout_cols = [(c.name, c.index) for c in self.layout.columns]
        frame = to(finish)(
            revealed, flags_ref, self.labels, self.key, self.outputs, layout_cols,
            extra_ref, self.extra_names,
        )  # fmt: skip
        self.outcome = outcome
        self._frame = frame
        return frame

    def summarise(self) -> Outcome:
        """The outcome of the last release, with the suppressed count filled in (reads
        the released frame, which the driver may read once revealed)."""
        if self.outcome is None:
            raise RuntimeError("nothing released yet")
        rt = self.table.rt
        if not rt.is_local(self._frame.party):  # cross-silo: only the receiver knows
            self.outcome.released = self.outcome.suppressed = None
            return self.outcome
        frame = rt.get(self._frame)
        self.outcome.released = len(frame)
        self.outcome.suppressed = self.outcome.groups - len(frame)
        return self.outcome

    def _noise_plan(self, dp: DP, members: int) -> tuple[list, Any, dict[str, float]]:
        """Noise per released statistic (each member adds one sample of it) and the
        dp-accounting event of the whole release (groups are disjoint: parallel
        composition; the statistics compose)."""
        cols = [c for c in self.layout.columns]
        for c in cols:
            if c.sensitivity is None:
                raise ValueError(
                    f"a DP release of {c.name!r} needs clamping bounds: "
                    "table.clamp(column=(lo, hi)) before aggregating"
                )
        m = self.table.rows_per_entity or dp.max_rows_per_entity
        if m is None:
            raise ValueError(
                f"a DP release of table {self.table.name!r} needs bounded contributions: "
                "table.bound_rows(entity='<id column>', m=...) keeps at most m rows per "
                "person at each party (or declare DP(max_rows_per_entity=m))"
            )
        m *= self.table.entity_factor
        s = len(cols)
        plan, stds = [], {}
        if dp.mechanism == "laplace":
            event = dp_accounting.SelfComposedDpEvent(
                dp_accounting.LaplaceDpEvent(s / dp.epsilon), s
            )
            for c in cols:
                scale = c.sensitivity * m * s / dp.epsilon
                plan.append((c.index[-1], "laplace", scale))
                unit = 1.0 if len(c.index) == 1 else float(1 << FRAC_BITS)
                stds[_pretty(c.name)] = math.sqrt(members * 2 * scale * scale) / unit
        else:
            z = gaussian_multiplier(dp.epsilon, dp.delta, s)
            event = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z), s)
            for c in cols:
                sigma = z * c.sensitivity * m
                plan.append((c.index[-1], "gaussian", sigma * sigma))
                unit = 1.0 if len(c.index) == 1 else float(1 << FRAC_BITS)
                stds[_pretty(c.name)] = math.sqrt(members) * sigma / unit
        return plan, event, stds


def _pretty(name: str) -> str:
    """ "__count" -> "count", "__x_income" -> "sum(income)", "__x2_income" ->
    "sum(income^2)" (the released sums that carry noise)."""
    if name == "__count":
        return "count"
    if name.startswith("__x2_"):
        return f"sum({name[5:]}^2)"
    if name.startswith("__x_"):
        return f"sum({name[4:]})"
    return name


def _gaussian_delta(epsilon: float, z: float) -> float:
    """δ(ε) of the Gaussian mechanism with noise multiplier z (Balle & Wang 2018, exact):
    Φ(1/(2z) - εz) - e^ε Φ(-1/(2z) - εz)."""

    def phi(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    return phi(0.5 / z - epsilon * z) - math.exp(epsilon) * phi(-0.5 / z - epsilon * z)


@functools.lru_cache(maxsize=256)
def gaussian_multiplier(epsilon: float, delta: float, count: int) -> float:
    """The noise multiplier z for which `count` Gaussian mechanisms (std z x L2
    sensitivity each) compose to (epsilon, delta). The composition of `count` of them is
    exactly one Gaussian mechanism with multiplier z / sqrt(count), whose δ(ε) has a
    closed form; bisection on it, then a margin of 1e-6 towards more noise (the release
    reports the ε that dp-accounting's PLD accountant gives for the composed events)."""
    lo, hi = 1e-3, 1.0
    while _gaussian_delta(epsilon, hi) > delta:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _gaussian_delta(epsilon, mid) > delta:
            lo = mid
        else:
            hi = mid
    return hi * math.sqrt(count) * (1.0 + 1e-6)


def new_budget(epsilon: float, delta: float, name: str) -> PrivacyAccountant:
    if not epsilon > 0:
        raise ValueError(f"a table's privacy budget must be positive, got ε={epsilon!r}")
    return PrivacyAccountant(delta, target_epsilon=epsilon, method="pld", name=name)
