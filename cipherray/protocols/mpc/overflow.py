"""The optional domain check of secure products (`check_overflow=True`).

A product of two shared values with f fractional bits is formed at scale 2^(2f):
x * y * 2^(2f) must lie in the signed ring, |x * y| < 2^(63 - 2f), or it wraps
silently modulo 2^(64 - 2f) (2^20 * 2^20 comes out as 0 for f = 16). The domain the
check enforces is |x * y| < B = 2^(62 - 2f) (2^30 for f = 16): half of that range,
so that the check's own rounding (below) cannot let a wrapped product through. For
`arithmetic.mul`, `square` and `matmul` (every entry of x @ y):

1. Coarse operands x0, y0: the shares of x and y truncated by f bits (`truncation`,
   0 rounds for 2 members, 1 for 3+), i.e. x and y as integers (scale 2^0), each
   within e = ceil(n/2) of x, y (e = 1 for 2 members).
2. Coarse product P = x0 * y0 (x0 @ y0, x0^2) by a Beaver product without
   truncation: 1 round (for 2 members concurrent with the product's own opening).
   P is exact while it does not wrap: |x0| |y0| < 2^63 (sum_k |x0_ik| |y0_kj| < 2^63
   for matmul).
3. Both bounds in ONE batched sign circuit (`binary.ltz_bit`, R rounds):
   [P >= B] = [B - 1 - P < 0] and [P <= -B] = [P + B - 1 < 0], exclusive.
4. count = the sum of those bits over all elements (local), opened to every member
   (1 round, n(n-1) messages of 8 bytes): the number of out-of-domain elements.
5. Every member passes the product's shares through a last local step that raises
   `OverflowError` naming the operation's tag when count > 0, so the result (and
   everything computed from it) exists only if the check passed.

Reveals: the count, to every member; 0 in a correct run.

Accuracy: |P - x * y| <= e (|x| + |y|) + e^2, so an element within that margin of B
may be counted or not; every element that wraps (|x * y| >= 2B) is counted while
e (|x| + |y|) + e^2 < B (f = 16, 2 members: |x| + |y| < 2^30 - 1) and P does not wrap
(step 2; e.g. |x|, |y| < 2^31), barring a failure of step 1's truncations
(probability |x| * 2^(f - 64) per operand element). It does not detect truncation
failures of the product inside the domain: those happen with probability
|x * y| * 2^(2f - 64) per element (`truncation`).

Cost on top of the product, for a product of m elements (n members, R =
`binary.ltz_rounds(n)`): `rounds(n)` = truncation rounds + 1 + R + 1 before the
result is released (10 for 2 members, 12 for 3, against 1 and 2 unchecked); bytes:
the coarse product's opening (as much as the product's own), the sign circuit on 2m
elements (n(n-1) * 2m * `binary.ltz_bytes(n)` bytes, 800m for 2 members), n(n-1) * 8
for the count and, for 3+ members, the coarse truncations ((n-1) * 8 bytes per
operand element); offline: one more triple (square pair) of the product's kind, AND
triples and random bits for 2m elements, and (3+ members) a wrap pair per operand.
Steps are tagged "<tag>/overflow/...".
"""

from __future__ import annotations

import numpy as np

from cipherray.protocols.mpc import binary, common, truncation
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import PerParty

RING_BITS = 64


def domain_bound(frac_bits: int) -> int:
    """B = 2^(62 - 2f): products with |x * y| >= B are out of the checked domain."""
    return 1 << (RING_BITS - 2 - 2 * frac_bits)


def rounds(n: int) -> int:
    """Online rounds of a checked `mul`/`square`/`matmul` (randomness preprocessed)."""
    return truncation.rounds(n) + 1 + binary.ltz_rounds(n) + 1


def require_check(ctx: MPCContext, truncate: bool) -> None:
    """ValueError unless the check applies: a fixed-point product (truncated) and a
    provider that makes comparison randomness."""
    if not truncate:
        raise ValueError("check_overflow applies to fixed-point products (truncate=True)")
    prov = ctx.provider
    if prov is None or not (prov.supports("and") and prov.supports("bit")):
        name = type(prov).__name__
        raise ValueError(
            f"check_overflow compares shared values: it needs AND triples and random bits "
            f"(a DealerProvider or an OTProvider), which {name} does not make"
        )


# ------------------------------------------------------------ member-local steps


@common.member_step
def _bound_differences(i: int, p: np.ndarray, bound: int) -> np.ndarray:
    """Step 3: rows (B - 1 - P, P + B - 1); member 0 adds the public B - 1."""
    rows = np.stack([np.negative(p.view(np.int64)).view(np.uint64), p])
    if i == 0:
        rows += np.uint64(bound - 1)
    return rows


@common.member_step
def _total(i: int, bits: np.ndarray) -> np.ndarray:
    """Step 4: the member's share of the number of set bits."""
    return np.sum(bits, dtype=np.uint64)


@common.member_step
def _release(i: int, z: np.ndarray, count: np.ndarray, tag: str, bound_bits: int) -> np.ndarray:
    """Step 5: z unchanged if no element is out of the domain."""
    if int(count) != 0:
        raise OverflowError(
            f"{int(count)} element(s) of {tag!r} beyond the product domain "
            f"|x * y| < 2^{bound_bits} (check_overflow)"
        )
    return z


# ------------------------------------------------------------------ protocol


def scope(ctx: MPCContext) -> MPCContext:
    """The check's context inside the product's: steps tagged "<tag>/overflow/..."."""
    return ctx.scoped("overflow")


def release_if_in_domain(
    ctx: MPCContext, coarse: PerParty, z: PerParty, *, shape: tuple
) -> PerParty:
    """Steps 3-5 for the product `z` (context `ctx`) and its coarse product `coarse`
    (step 2), both of public `shape`: z, released only if no element is out of the
    domain."""
    engine, check = ctx.engine, scope(ctx)
    bound = domain_bound(ctx.frac_bits)
    # 3
    rows = engine.local(_bound_differences, coarse, bound, step=check.step("bounds"))
    bits = binary.ltz_bit(check.scoped("cmp"), rows, shape=(2,) + tuple(shape))
    # 4
    shares = engine.local(_total, bits, step=check.step("count"))
    count = engine.open(shares, step=check.step("count"))
    # 5
    bound_bits = bound.bit_length() - 1
    return engine.local(_release, z, count, ctx.tag, bound_bits, step=check.step("release"))
