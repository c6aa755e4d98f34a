"""Oblivious permutation, selection and group sums of additive shares (dealer correlations).

The shares are uint64 arrays with rows on axis 0. A *holder* is a member that knows a
private row order (its sort order, a join's matching); these protocols move the rows
into that order without anyone else learning it and without the holder learning any
value. They need a dealer (correlated randomness), like Beaver triples; the dealer
learns the random permutation it draws but no data, and must not collude with a
member (the usual dealer assumption).

`permute(ctx, x, holder)` — rows in a random order that only the holder knows:
1. the dealer draws a permutation pi (from a seed) and, for every other member q,
   masks a_q, b_q (from a seed per member), and computes D_q = a_q[pi] - b_q;
2. the dealer sends pi's seed and every D_q to the holder, and q's seed to q;
3. every other member q sends z_q = x_q + a_q to the holder (one round);
4. the holder's new share is x_h[pi] + sum_q (z_q[pi] - D_q); q's new share is -b_q.
The output is x[pi]: sum of shares = x_h[pi] + sum_q x_q[pi] + a_q[pi] - a_q[pi] + b_q - b_q.

`select(ctx, x, holder, src, m, pad)` — rows x[src[0]], ..., x[src[m-1]] (src private at
the holder; -1 selects a zero row; the other entries distinct):
1. every member appends `m` zero rows when `pad` (room for the -1 entries);
2. `permute` with the holder (pi known to the holder only);
3. the holder computes the positions pos[i] = pi^-1[src[i]] (a -1 takes the dummy row
   L + i), m distinct positions of a permutation no other member knows;
4. the holder sends pos to the other members (uniformly random given m: it discloses
   nothing about src);
5. every member takes the rows pos of its share.

`group_sum(ctx, x, holder, codes, groups)` — per-group sums of x over the holder's
private group codes (0..groups-1; -1 drops a row), as shares of a (groups, ...) array:
1. every member appends `groups` zero rows (one per group, so no group is empty);
2. the holder's stable order by code (dropped rows last) is applied with `select`
   (no padding: it is a permutation);
3. every member computes the inclusive prefix sums of its share along the rows;
4. the holder's group ends e_0 < e_1 < ... (strictly increasing: no group is empty)
   are selected with `select`;
5. group g's sum is P[e_g] - P[e_(g-1)] (local).
Nobody learns the group sizes; the holder learns nothing about the values.

Communication (n members, |x| elements): `permute` sends (n - 1)|x| ring elements to the
holder in one round, plus the dealer's D_q ((n - 1)|x|) and 32-byte seeds; `select`
adds one message of m positions per other member; `group_sum` is two selects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.protocols import prg
from cipherray.protocols.mpc import common
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import DEALER, PerParty


def random_permutation(seed: bytes, n: int) -> np.ndarray:
    """A permutation of n from the PRG under `seed`: the order of n random 64-bit keys
    (ties have probability < n^2 / 2^64; they are broken by index)."""
    keys = prg.random_ring(seed, (n,), stream=1)
    return np.argsort(keys, kind="stable")


def _mask_streams(seed: bytes, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    return prg.random_ring(seed, shape, stream=2), prg.random_ring(seed, shape, stream=3)


# ------------------------------------------------------------ steps


def _dealer_draw(n_others: int, shape: tuple, pi_seed: bytes | None = None) -> tuple:
    """Step 1 at the dealer: (pi's seed and the D_q for the holder, pi's seed to keep,
    q's seeds...). A given `pi_seed` reuses an earlier permutation with fresh masks."""
    pi_seed = prg.new_seed() if pi_seed is None else pi_seed
    pi = random_permutation(pi_seed, shape[0])
    seeds = [prg.new_seed() for _ in range(n_others)]
    deltas = []
    with np.errstate(over="ignore"):
        for s in seeds:
            a, b = _mask_streams(s, shape)
            deltas.append(np.subtract(a[pi], b, dtype=np.uint64))
    return ((pi_seed, tuple(deltas)), pi_seed, *seeds)


@common.member_step
def _pad(i: int, x: np.ndarray, m: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.uint64)
    if m == 0:
        return x
    return np.concatenate([x, np.zeros((m, *x.shape[1:]), dtype=np.uint64)])


@common.member_step
def _masked(x: np.ndarray, seed: bytes) -> np.ndarray:
    """Step 3 at member q: z_q = x_q + a_q."""
    a, _ = _mask_streams(seed, x.shape)
    a += x
    return a


@common.member_step
def _minus_b(x: np.ndarray, seed: bytes) -> np.ndarray:
    """Step 4 at member q: the new share -b_q."""
    _, b = _mask_streams(seed, np.shape(x))
    return np.negative(b)


def _holder_apply(x: np.ndarray, dealt: tuple, *masked: np.ndarray) -> tuple:
    """Step 4 at the holder: (new share, pi)."""
    pi_seed, deltas = dealt
    pi = random_permutation(pi_seed, x.shape[0])
    with np.errstate(over="ignore"):
        out = np.asarray(x, dtype=np.uint64)[pi]
        for z, d in zip(masked, deltas):
            out += z[pi]
            out -= d
    return out, pi


@common.member_step
def _take(i: int, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return np.asarray(x)[pos]


def _positions(pi: np.ndarray, src: np.ndarray, length: int, pad: bool) -> np.ndarray:
    """Step 3 of `select` at the holder."""
    src = np.asarray(src, dtype=np.int64).ravel()
    inv = np.empty_like(pi)
    inv[pi] = np.arange(pi.size)
    if np.any(src < 0) and not pad:
        raise ValueError("select: -1 (a zero row) needs pad=True")
    chosen = src[src >= 0]
    if chosen.size and (chosen.max() >= length or np.unique(chosen).size != chosen.size):
        raise ValueError("select: source rows must be distinct and inside the table")
    dummy = length + np.arange(src.size)
    return inv[np.where(src >= 0, src, dummy)]


def _sort_order(codes: np.ndarray, groups: int, length: int) -> np.ndarray:
    """Step 2 of `group_sum` at the holder: rows sorted by code (dummy row `length + g`
    of group g among them), dropped rows last."""
    codes = np.asarray(codes, dtype=np.int64).ravel()
    if codes.size != length:
        raise ValueError(f"group codes have {codes.size} rows, the values {length}")
    if codes.size and (codes.max() >= groups or codes.min() < -1):
        raise ValueError(f"group codes must be in -1..{groups - 1}")
    key = np.concatenate([np.where(codes < 0, groups, codes), np.arange(groups)])
    return np.argsort(key, kind="stable")


def _group_ends(codes: np.ndarray, groups: int) -> np.ndarray:
    """Step 4 of `group_sum` at the holder: the last sorted row of every group."""
    codes = np.asarray(codes, dtype=np.int64).ravel()
    counts = np.bincount(codes[codes >= 0], minlength=groups) + 1  # + the dummy row
    return np.cumsum(counts) - 1


@common.member_step
def _prefix(i: int, x: np.ndarray) -> np.ndarray:
    return np.cumsum(np.asarray(x, dtype=np.uint64), axis=0, dtype=np.uint64)


@common.member_step
def _differences(i: int, p: np.ndarray) -> np.ndarray:
    out = np.array(p, dtype=np.uint64, copy=True)
    out[1:] -= p[:-1]
    return out


# ------------------------------------------------------------ protocols


def permute(
    ctx: MPCContext, x: PerParty, holder: int, shape: tuple, reuse: Any = None
) -> tuple[PerParty, Any, Any]:
    """Shares of x[pi] for a random pi known to `holder` only; returns (shares, pi at the
    holder, pi's seed at the dealer). `reuse` (a seed handle at the dealer from an
    earlier call) applies that call's permutation again, with fresh masks. `shape` is
    x's public shape."""
    ctx = ctx.with_default_tag("permute")
    eng = ctx.engine
    if not eng.has_dealer:
        raise ValueError("an oblivious permutation needs a dealer: rt.mpc(..., dealer=...)")
    others = [q for q in range(ctx.n) if q != holder]
    shape = tuple(int(s) for s in shape)
    drawn = eng.run_at(
        DEALER, _dealer_draw, len(others), shape, reuse, num_returns=2 + len(others),
        step=ctx.step("deal"),
    )  # fmt: skip
    dealt = eng.send(drawn[0], DEALER, holder, step=ctx.step("deal"))
    out: list[Any] = [None] * ctx.n
    masked = []
    for q, seed_h in zip(others, drawn[2:]):
        seed = eng.send(seed_h, DEALER, q, step=ctx.step("deal"))
        z = eng.run_at(q, _masked, x[q], seed, step=ctx.step("mask"))
        masked.append(eng.send(z, q, holder, step=ctx.step("masked")))
        out[q] = eng.run_at(q, _minus_b, x[q], seed, step=ctx.step("mask"))
    out[holder], pi = eng.run_at(
        holder, _holder_apply, x[holder], dealt, *masked, num_returns=2, step=ctx.step("apply")
    )
    return PerParty(out), pi, drawn[1]


def select(
    ctx: MPCContext, x: PerParty, holder: int, src: Any, m: int, shape: tuple, pad: bool = True
) -> PerParty:
    """Shares of the rows x[src] (src: a handle at `holder`, m entries, -1 for a zero row
    when `pad`); see the module's steps."""
    ctx = ctx.with_default_tag("select")
    eng = ctx.engine
    shape = tuple(int(s) for s in shape)
    length = shape[0]
    extra = int(m) if pad else 0
    padded = eng.local(_pad, x, extra, step=ctx.step("pad")) if extra else x
    perm, pi, _ = permute(ctx.scoped("permute"), padded, holder, (length + extra, *shape[1:]))
    pos = eng.run_at(holder, _positions, pi, src, length, pad, step=ctx.step("positions"))
    pos_at = [
        pos if i == holder else eng.send(pos, holder, i, step=ctx.step("positions"))
        for i in range(ctx.n)
    ]
    return eng.local(_take, perm, PerParty(pos_at), step=ctx.step("take"))


def group_sum(
    ctx: MPCContext, x: PerParty, holder: int, codes: Any, groups: int, shape: tuple
) -> PerParty:
    """Shares of the per-group sums (groups, *shape[1:]) of x over the holder's private
    codes (a handle at `holder`; -1 drops a row); see the module's steps."""
    ctx = ctx.with_default_tag("group_sum")
    eng = ctx.engine
    shape = tuple(int(s) for s in shape)
    length, groups = shape[0], int(groups)
    if groups < 1:
        raise ValueError("group_sum needs at least one group")
    padded = eng.local(_pad, x, groups, step=ctx.step("pad"))
    full = (length + groups, *shape[1:])
    order = eng.run_at(holder, _sort_order, codes, groups, length, step=ctx.step("order"))
    ordered = select(ctx.scoped("sort"), padded, holder, order, full[0], full, pad=False)
    prefix = eng.local(_prefix, ordered, step=ctx.step("prefix"))
    ends = eng.run_at(holder, _group_ends, codes, groups, step=ctx.step("ends"))
    at_ends = select(ctx.scoped("ends"), prefix, holder, ends, groups, full, pad=False)
    return eng.local(_differences, at_ends, step=ctx.step("sums"))
