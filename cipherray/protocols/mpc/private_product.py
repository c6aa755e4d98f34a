"""Products with one operand private to one member: two members, OT, no dealer.

`x` is known to member p (the owner): its sharing is the trivial one, x_p = x and
x_q = 0 for the other member q (what `MPC.share` makes for a member's input when the
location has two members and the OT provider; q's share is 0 and reveals nothing). `y`
is shared, y = y_p + y_q. Then

    x (*) y = x (*) y_p  +  x (*) y_q          ((*) = @ or elementwise *)

and p computes the first term alone; the second is ONE Gilboa cross term over
correlated OT with q's share y_q as the chosen choice bits, instead of a Beaver
triple's two cross terms plus the openings of x - a and y - b.

1. Extension (offline, tagged "offline/private_<kind>"): instance q of the provider's
   OT extension (q the receiver, random choice bits c), 64 OTs per element of y_q,
   each OT carrying the L values of x that element multiplies (L = m for a (m, k) @
   (k,) or (m, k) @ (k, n) product, L = 1 for an elementwise product without
   broadcasting), `ot_provider._plan` with the bits taken from y.
2. Choose (q -> p, "<tag>/choose"): q sends e = b ^ c, 1 bit per OT, b the bits of y_q.
3. COT (p -> q, "<tag>/cot"): p derandomises (m'_0, m'_1) = (m_e, m_(1-e)) and sends
   d = m'_0 + x_col * 2^j - m'_1 (8 L bytes per OT); p keeps -sum m'_0.
4. q gets m'_b + b d per OT and keeps the sums: with p's, an additive sharing of
   x (*) y_q. p adds x (*) y_p.
5. Truncation by 2^f (local for two members), unless truncate=False.

What a member learns: q sees d, uniformly masked by the pads of the OTs it did not
choose; p sees e, the bits of y_q one-time padded by q's random choices, which p does
not know. Each learns only its own share of the product. Cost: 64 |y| OTs (4 bytes
each with SoftSpoken k = 4, step 1) + 1 bit + 8 L bytes per OT, 2 rounds online.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.protocols import ot
from cipherray.protocols.mpc import common, messages
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import PerParty
from cipherray.protocols.mpc.ring import matmul_u64

KINDS = ("mul", "matmul")


def rounds() -> int:
    """Online rounds of one private product (two members: the truncation is local)."""
    return 2


def supported(ctx: MPCContext) -> bool:
    """Whether this location can run the private product: two members, OT provider."""
    from cipherray.protocols.mpc.ot_provider import OTProvider

    return ctx.engine.n == 2 and isinstance(ctx.provider, OTProvider)


# ------------------------------------------------------------ member-side steps


def _bits(grid: np.ndarray, g0: int, g1: int) -> np.ndarray:
    """Bits of y_q's groups g0..g1 in OT order (group, element, bit j = 0..63)."""
    words = np.ascontiguousarray(grid[g0:g1], dtype="<u8")
    return np.unpackbits(words.view(np.uint8), bitorder="little")


@common.member_step
def _choose(rb: Any, lo: int, p: dict, y: np.ndarray, g0: int, g1: int) -> np.ndarray:
    """Step 2 at q: the correction bits e = b ^ c, packed."""
    from cipherray.protocols.mpc.ot_provider import _bits_grid, _check_slice

    b = _bits(_bits_grid(p, y), g0, g1)
    batch = _check_slice(rb, lo, lo + b.size, "OT receiver")
    return np.packbits(b ^ np.asarray(batch.choices, dtype=np.uint8), bitorder="little")


@common.member_step
def _send(sb: Any, lo: int, p: dict, x: np.ndarray, e: np.ndarray, g0: int, g1: int) -> tuple:
    """Step 3 at p: (d, p's share -sum m'_0 of groups g0..g1)."""
    from cipherray.protocols.mpc.ot_provider import _SHIFTS, _check_slice, _corr_vectors

    gb, per, L = g1 - g0, p["R"] * 64, p["L"]
    count = gb * per
    batch = _check_slice(sb, lo, lo + count, "OT sender")
    flip = np.unpackbits(np.asarray(e, dtype=np.uint8), bitorder="little")[:count]
    if flip.size != count:
        raise ot.OTError(f"OT sender: {flip.size} correction bits for {count} OTs")
    m0, m1 = ot.rot_sender(batch, 8 * L)
    sel = flip.astype(bool)[:, None]
    a0 = np.where(sel, m1, m0).view(np.uint64)  # m'_0
    a1 = np.where(sel, m0, m1).view(np.uint64)  # m'_1
    vv = _corr_vectors(p, x, g0, g1)  # (gb, R, L)
    corr = (vv[:, :, None, :] << _SHIFTS[None, None, :, None]).reshape(count, L)
    d = a0 + corr
    d -= a1
    share = np.negative(a0.reshape(gb, per, L).sum(axis=1, dtype=np.uint64))
    return d, share


@common.member_step
def _recv(rb: Any, lo: int, p: dict, y: np.ndarray, d: np.ndarray, g0: int, g1: int) -> Any:
    """Step 4 at q: its share sum (m'_b + b d) of groups g0..g1."""
    from cipherray.protocols.mpc.ot_provider import _bits_grid, _check_slice

    gb, per, L = g1 - g0, p["R"] * 64, p["L"]
    b = _bits(_bits_grid(p, y), g0, g1)
    batch = _check_slice(rb, lo, lo + gb * per, "OT receiver")
    out = ot.rot_receiver(batch, 8 * L).view(np.uint64)
    out += np.asarray(d, dtype=np.uint64).reshape(gb * per, L) * b[:, None].astype(np.uint64)
    return out.reshape(gb, per, L).sum(axis=1, dtype=np.uint64)


@common.member_step
def _assemble(p: dict, kind: str, x: Any, y: np.ndarray, *parts: np.ndarray) -> np.ndarray:
    """Step 4/5: the member's cross share in the product's shape, plus x (*) y_p at p
    (x None at q)."""
    from cipherray.protocols.mpc.ot_provider import _to_out

    s = np.concatenate(parts) if parts else np.zeros((0, p["L"]), np.uint64)
    z = _to_out(p, s)
    if x is not None:
        own = matmul_u64(x, y) if kind == "matmul" else np.multiply(x, y)
        z = np.asarray(z + own, dtype=np.uint64)
    return z


# ------------------------------------------------------------------- protocol


def product(
    ctx: MPCContext,
    kind: str,
    owner: int,
    x: PerParty,
    y: PerParty,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    truncate: bool = True,
) -> PerParty:
    """`x @ y` (kind "matmul") or `x * y` ("mul", broadcasting) with x private to member
    `owner` (trivially shared: x[1 - owner] is 0 and is not read) and y shared; steps
    1-5 of the module docstring. Returns additive shares of the product (truncated by
    2^f unless truncate=False)."""
    from cipherray.protocols.mpc import arithmetic
    from cipherray.protocols.mpc.ot_provider import BLOCK_WORDS, _plan

    if kind not in KINDS:
        raise ValueError(f"unknown private product kind {kind!r}")
    if not supported(ctx):
        raise ValueError("the private product needs two members and the OT provider")
    if owner not in (0, 1):
        raise ValueError(f"owner must be member 0 or 1, got {owner!r}")
    ctx = ctx.with_default_tag(f"private_{kind}")
    engine, prov = ctx.engine, ctx.provider
    sx = common.shape_of(engine, x, x_shape, "x")
    sy = common.shape_of(engine, y, y_shape, "y")
    plan = _plan(kind, (sx, sy), "y")
    q = 1 - owner
    prov._bind(engine)
    per = 64 * plan["R"]
    most = BLOCK_WORDS // (per * max(1, plan["L"]))
    offline = f"offline/private_{kind}"
    sp, sq = [], []
    for rb, sb, lo, g0, g1 in prov._spans(engine, q, plan["G"], per, most, offline):  # 1
        e = engine.run_at(q, _choose, rb, lo, plan, y[q], g0, g1, step=ctx.step("choose"))
        count = (g1 - g0) * per  # what each side expects of the other's message
        bits = messages.array(np.uint8, ((count + 7) // 8,), "correction bits e")
        e = engine.send(e, q, owner, step=ctx.step("choose"), expect=bits)  # 2
        d, s_part = engine.run_at(
            owner, _send, sb, lo, plan, x[owner], e, g0, g1, num_returns=2,
            step=ctx.step("cot"),
        )  # fmt: skip
        cot = messages.ring((count, plan["L"]), "COT d")
        d = engine.send(d, owner, q, step=ctx.step("cot"), expect=cot)  # 3
        sq.append(engine.run_at(q, _recv, rb, lo, plan, y[q], d, g0, g1, step=ctx.step("cot")))
        sp.append(s_part)
    z = [None, None]
    z[owner] = engine.run_at(
        owner, _assemble, plan, kind, x[owner], y[owner], *sp, step=ctx.step("combine")
    )
    z[q] = engine.run_at(q, _assemble, plan, kind, None, y[q], *sq, step=ctx.step("combine"))
    return arithmetic._finish(ctx, PerParty(z), truncate, plan["out"])  # 5
