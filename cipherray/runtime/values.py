"""What the driver holds for a value: an opaque `Handle` and the value's `Meta`.

A value computed by a step lives in the store of the party worker that ran the step
(or, in transit, in the object store under that worker's ownership). The driver
only names it: a `Handle` is (id, party, worker) plus bookkeeping, never the value
and never a Ray future. When the last driver-side handle of a value is dropped, the
runtime tells the worker to free it (piggybacked on the worker's next call).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

# what a value is, for the disclosure policy (see policy.py)
ROW = "row"  # per-row values, or anything not known to be an aggregate
AGGREGATE = "aggregate"  # a reduction over `rows` rows (sum, mean, contraction)
COMPARE = "compare"  # the 0/1 outcome of a comparison of row values
PUBLISHED = "public"  # published by its owner: readable by every party and the driver


class Handle:
    """The driver's name for one value held by a worker of `party`."""

    __slots__ = ("id", "party", "worker", "step_id", "depth", "guarded", "_release")

    def __init__(
        self,
        id: int,
        party: str,
        worker: int,
        step_id: int,
        depth: int,
        release: Callable[[Handle], None] | None,
        guarded: bool = False,
    ):
        self.id = id
        self.party = party
        self.worker = worker
        self.step_id = step_id
        self.depth = depth  # communication depth: rounds this value waited for
        # its step waited for messages: if one failed, the step never ran, so steps that
        # use this value also wait for its receipt (and fail with the original error)
        self.guarded = guarded
        self._release = release

    def __del__(self) -> None:
        release = self._release
        if release is not None:
            try:
                release(self)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __reduce__(self):
        raise TypeError("a value handle cannot be pickled: pass the ref to a step instead")

    def __repr__(self) -> str:
        return f"<value {self.id} at {self.party}[{self.worker}]>"


@dataclass(frozen=True)
class Meta:
    """Provenance of a value: whose inputs it was computed from, and from which kind of
    operation (row-level, aggregate over `rows` rows, comparison outcome).

    `row_axis` says which axis indexes rows for row-level values (None: unknown), so
    that a sum over it, or a contraction over it, makes an aggregate. `revealed_to`
    is set on the output of a reveal (the driver may read those)."""

    owners: frozenset[str]
    kind: str = ROW
    rows: int | None = None
    row_axis: int | None = 0
    revealed_to: str | None = None

    @staticmethod
    def of(party: str) -> Meta:
        return Meta(frozenset([party]))

    def plus(self, party: str) -> Meta:
        """The output of a step at `party` that used this value (and may have used the
        party's own data): row-level unless declared otherwise."""
        return Meta(self.owners | {party}, ROW, None, None)

    def with_(self, **changes) -> Meta:
        return replace(self, **changes)

    def describe(self) -> str:
        who = ",".join(sorted(self.owners)) or "nobody"
        kind = f"{self.kind} of {self.rows} rows" if self.kind == AGGREGATE else self.kind
        return f"{kind} value from {who}"


PUBLIC = Meta(frozenset(), AGGREGATE, None, None)  # a public constant


def join(metas: list[Meta]) -> Meta:
    """Provenance of an elementwise combination: owners unite; the result is an
    aggregate only if every operand is one (fewest rows wins), a comparison outcome
    stays one, and any row-level operand makes it row-level."""
    metas = [m for m in metas if m is not None]
    if not metas:
        return PUBLIC
    owners = frozenset().union(*(m.owners for m in metas))
    kinds = {m.kind for m in metas if m.owners}
    if not kinds or kinds == {AGGREGATE}:
        rows = [m.rows for m in metas if m.owners and m.rows is not None]
        return Meta(owners, AGGREGATE, min(rows) if rows else None, None)
    row_axes = {m.row_axis for m in metas if m.kind != AGGREGATE and m.owners}
    axis = row_axes.pop() if len(row_axes) == 1 else None
    kind = COMPARE if kinds <= {COMPARE, AGGREGATE} else ROW
    return Meta(owners, kind, None, axis)


def reduced(meta: Meta, axes: tuple[int, ...] | None, shape: tuple | None) -> Meta:
    """Provenance after a sum or mean over `axes` (None: all) of a value of `shape`."""
    if meta.kind == AGGREGATE or not meta.owners:
        return meta
    ax = meta.row_axis
    if ax is None or shape is None:
        return meta.with_(row_axis=None)
    ndim = len(shape)
    if axes is None or ax in {a % ndim for a in axes}:
        return Meta(meta.owners, AGGREGATE, int(shape[ax]), None)
    kept = [a for a in range(ndim) if a not in {x % ndim for x in axes}]
    return meta.with_(row_axis=kept.index(ax))


def contracted(left: Meta, right: Meta, left_ndim: int, n: int) -> Meta:
    """Provenance of `left @ right` contracting `n` entries: an aggregate of `n` rows
    when the contraction runs over the right operand's rows (axis 0) and the left
    operand's rows are not kept (X.T @ y); else the row axis of the left operand
    survives (X @ w: one output per row)."""
    out = join([left, right])
    right_rows = right.owners and right.kind != AGGREGATE and right.row_axis == 0
    left_rows_contracted = (
        (not left.owners)
        or left.kind == AGGREGATE
        or (left.row_axis == left_ndim - 1 and left_ndim >= 1)
    )
    if right_rows and left_rows_contracted and left.owners:
        return Meta(out.owners, AGGREGATE, n, None)
    if out.kind == AGGREGATE:
        return out
    if left.owners and left.kind != AGGREGATE:
        axis = (
            left.row_axis if left.row_axis is not None and left.row_axis < left_ndim - 1 else None
        )
        return out.with_(row_axis=axis)
    return out.with_(row_axis=None)
