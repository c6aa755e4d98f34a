"""Beaver multiplication and matrix product on additive shares of fixed-point values.

Inputs are `PerParty` shares over Z_2^64 of values with f fractional bits (scale
2^f). A product has scale 2^(2f) and is truncated back to 2^f (`truncation`), unless
`truncate=False` (e.g. when one factor is a 0/1 integer bit, scale 1).

Range and failures: the product before truncation, x * y * 2^(2f), must stay inside
the signed ring, |x * y| < 2^(63 - 2f) elementwise and for every entry of x @ y
(summed over the inner dimension); beyond, it wraps silently modulo 2^(64 - 2f).
Inside, the truncation fails with probability |x * y| * 2^(2f - 64) per element
(f = 16: 2^-32 * |x * y|), and a failed element is off by 2^(64 - 2f) (`truncation`);
the same holds for public real operands (`mul_public`, `matmul_public`) with the
encoded public value in place of y. `check_overflow=True` (`mul`, `square`, `matmul`)
detects the elements with |x * y| >= 2^(62 - 2f) and reveals only their count
(`overflow`); public operands are range-checked when encoded.

Communication (n members, |x| elements of x): `mul` opens (x - a, y - b) together,
one message per ordered pair: n(n-1) messages of 8(|x| + |y|) bytes, 1 round; plus
the truncation: 0 rounds for 2 members, 1 round ((n-1) messages of 8|z| bytes to
member 0) for 3+ members. The same holds for `matmul` with the matrix shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.protocols.mpc import common, overflow, truncation
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import PerParty
from cipherray.protocols.mpc.ring import broadcast_shape, matmul_shape, matmul_u64


def rounds(n: int, truncate: bool = True) -> int:
    """Online rounds of one `mul`/`matmul`/`square` (triples preprocessed)."""
    return 1 + (truncation.rounds(n) if truncate else 0)


# ------------------------------------------------------------ member-local steps


@common.member_step
def _mask2(i: int, x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple:
    """Step 2: (eps_i, delta_i) = (x_i - a_i, y_i - b_i), opened together."""
    return (np.subtract(x, a, dtype=np.uint64), np.subtract(y, b, dtype=np.uint64))


@common.member_step
def _mask1(i: int, x: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.subtract(x, a, dtype=np.uint64)


@common.member_step
def _beaver_mul(i: int, opened: tuple, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Step 4: z_i = c_i + eps * b_i + delta * a_i (+ eps * delta at member 0)."""
    eps, delta = opened
    z = np.asarray(np.multiply(eps, b))  # in place below: large arrays are memory-bound
    z += c
    t = np.asarray(np.multiply(delta, a))
    z += t
    if i == 0:
        np.multiply(eps, delta, out=t)
        z += t
    return z


@common.member_step
def _beaver_matmul(
    i: int, opened: tuple, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> np.ndarray:
    """Step 4: z_i = c_i + eps @ b_i + a_i @ delta (+ eps @ delta at member 0)."""
    eps, delta = opened
    z = c + matmul_u64(eps, b) + matmul_u64(a, delta)
    if i == 0:
        z = z + matmul_u64(eps, delta)
    return z


@common.member_step
def _beaver_square(i: int, eps: np.ndarray, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """z_i = c_i + 2 eps a_i (+ eps^2 at member 0)."""
    z = c + np.uint64(2) * eps * a
    if i == 0:
        z = z + eps * eps
    return z


@common.member_step
def _matmul_public(i: int, x: np.ndarray, w: np.ndarray, right: bool) -> np.ndarray:
    return matmul_u64(x, w) if right else matmul_u64(w, x)


# ------------------------------------------------------------------ protocols

# kind -> (step 4's local combination, the product's shape from the operands' shapes)
_BEAVER = {
    "mul": (_beaver_mul, broadcast_shape),
    "matmul": (_beaver_matmul, matmul_shape),
}


def _finish(ctx: MPCContext, z: PerParty, truncate: bool, shape: tuple) -> PerParty:
    """Step 5: truncate by 2^f (steps tagged "<tag>/trunc/...")."""
    if not truncate or ctx.frac_bits == 0:
        return z
    return truncation.truncate(ctx.scoped("trunc"), z, ctx.frac_bits, shape=shape)


def _beaver(
    ctx: MPCContext, x: PerParty, y: PerParty, triple: tuple[PerParty, ...], combine: Any
) -> PerParty:
    """Steps 2-4 shared by `mul` and `matmul`: mask with (a, b), open (eps, delta) in one
    round, combine locally with `combine`."""
    engine = ctx.engine
    a, b, c = triple
    masked = engine.local(_mask2, x, y, a, b, step=ctx.step("mask"))  # 2
    opened = engine.open(masked, step=ctx.step("open"))  # 3
    return engine.local(combine, opened, a, b, c, step=ctx.step("combine"))  # 4


def _shared_product(
    ctx: MPCContext,
    kind: str,
    x: PerParty,
    y: PerParty,
    shapes: tuple[Any, Any],
    truncate: bool,
    check_overflow: bool,
) -> PerParty:
    """`mul` or `matmul` (`kind`) of two shared values: steps 1-5, then the optional
    domain check."""
    sx = common.shape_of(ctx.engine, x, shapes[0], "x")
    sy = common.shape_of(ctx.engine, y, shapes[1], "y")
    combine, product_shape = _BEAVER[kind]
    out_shape = product_shape(sx, sy)
    if check_overflow:
        overflow.require_check(ctx, truncate)
    triple = ctx.provider.request(ctx.engine, kind, (sx, sy))  # 1
    z = _finish(ctx, _beaver(ctx, x, y, triple, combine), truncate, out_shape)  # 2-5
    if not check_overflow:
        return z
    # the domain check (`overflow`): 1. coarse operands, 2. their exact product, 3-5.
    check = overflow.scope(ctx)
    x0, y0 = _coarse(check, x, sx, "x"), _coarse(check, y, sy, "y")
    coarse = _shared_product(check, kind, x0, y0, (sx, sy), False, False)
    return overflow.release_if_in_domain(ctx, coarse, z, shape=out_shape)


def _coarse(check: MPCContext, v: PerParty, shape: tuple, name: str) -> PerParty:
    """Step 1 of the domain check: v truncated to an integer (scale 2^0)."""
    return truncation.truncate(check.scoped(name), v, check.frac_bits, shape=shape)


def mul(
    ctx: MPCContext,
    x: PerParty,
    y: PerParty,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    truncate: bool = True,
    check_overflow: bool = False,
) -> PerParty:
    """Elementwise x * y (NumPy broadcasting) of two shared fixed-point arrays.

    1. (a, b, c) = provider.mul_triple(x_shape, y_shape), c = a * b (offline).
    2. Member i masks: eps_i = x_i - a_i, delta_i = y_i - b_i.
    3. Open (eps, delta) in ONE round, one message per ordered pair of members
       (n(n-1) messages of 8(|x| + |y|) bytes). Step tag "<tag>/open" (default tag
       "mul").
    4. Member i computes z_i = c_i + eps * b_i + delta * a_i, member 0 also adds
       eps * delta; then sum z_i = (eps + a)(delta + b) = x * y.
    5. Truncate z by 2^f (0 rounds for 2 members, 1 round for 3+), unless
       `truncate=False`.

    Rounds: 1 (2 members) or 2 (3+ members); `rounds(n, truncate)`.
    `check_overflow=True` adds the domain check of `overflow` (OverflowError naming
    the tag when an element has |x * y| >= 2^(62 - 2f); reveals only that count).
    Shapes are public: pass `x_shape`/`y_shape` (LocalEngine may omit them)."""
    ctx = ctx.with_default_tag("mul")
    return _shared_product(ctx, "mul", x, y, (x_shape, y_shape), truncate, check_overflow)


def square(
    ctx: MPCContext,
    x: PerParty,
    *,
    shape: Any = None,
    truncate: bool = True,
    check_overflow: bool = False,
) -> PerParty:
    """Elementwise x^2 with a square pair (a, c = a^2): half the bytes of `mul`.

    1. (a, c) = provider.square_pair(shape).
    2. eps_i = x_i - a_i.  3. Open eps (1 round, n(n-1) messages of 8|x| bytes).
    4. z_i = c_i + 2 eps a_i (+ eps^2 at member 0).  5. Truncate by 2^f.

    Rounds: 1 (2 members) or 2 (3+). Default tag "square"; `check_overflow` as `mul`."""
    ctx = ctx.with_default_tag("square")
    engine = ctx.engine
    s = common.shape_of(engine, x, shape, "x")
    if check_overflow:
        overflow.require_check(ctx, truncate)
    a, c = ctx.provider.square_pair(engine, s)
    masked = engine.local(_mask1, x, a, step=ctx.step("mask"))
    eps = engine.open(masked, step=ctx.step("open"))
    z = engine.local(_beaver_square, eps, a, c, step=ctx.step("combine"))
    z = _finish(ctx, z, truncate, s)
    if not check_overflow:
        return z
    check = overflow.scope(ctx)  # the domain check, as in `mul`
    coarse = square(check, _coarse(check, x, s, "x"), shape=s, truncate=False)
    return overflow.release_if_in_domain(ctx, coarse, z, shape=s)


def matmul(
    ctx: MPCContext,
    x: PerParty,
    y: PerParty,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    truncate: bool = True,
    check_overflow: bool = False,
) -> PerParty:
    """Matrix product x @ y of shared 1-D/2-D fixed-point arrays.

    1. (a, b, c) = provider.matmul_triple(x_shape, y_shape), c = a @ b (offline).
    2. eps_i = x_i - a_i, delta_i = y_i - b_i.
    3. Open (eps, delta) in ONE round (n(n-1) messages of 8(|x| + |y|) bytes).
    4. z_i = c_i + eps @ b_i + a_i @ delta (+ eps @ delta at member 0), with the
       exact limb-split `ring.matmul_u64`.
    5. Truncate z by 2^f (0 rounds for 2 members, 1 for 3+).

    Rounds: 1 (2 members) or 2 (3+). ValueError naming both shapes on a mismatch.
    Default tag "matmul"; `check_overflow` as `mul`, for every entry of x @ y."""
    ctx = ctx.with_default_tag("matmul")
    return _shared_product(ctx, "matmul", x, y, (x_shape, y_shape), truncate, check_overflow)


def mul_public(
    ctx: MPCContext,
    x: PerParty,
    c: Any,
    *,
    x_shape: Any = None,
    significant_bits: int | None = None,
) -> PerParty:
    """x * c for a public c (scalar or array, broadcast).

    Integer c: shares times c, exact, 0 rounds. Real c: c is encoded with f bits
    (error <= 2^-(f+1) * |x| from rounding c), shares times enc(c), then truncated by
    2^f (0 rounds for 2 members, 1 for 3+; the provider is needed then). With
    `significant_bits=s` a scalar c is written as m / 2^e with |m| < 2^s instead
    (relative rounding error < 2^-(s-1), for small c such as a learning rate) and
    the product is truncated by 2^e; it needs |x| * 2^(f+s) well below 2^62.
    The truncation of x * M (M = enc(c) or m, the integer the shares are multiplied
    by) fails with probability |x * M| * 2^(f-64) per element. Default tag "mul_public"."""
    ctx = ctx.with_default_tag("mul_public")
    engine = ctx.engine
    sx = common.shape_of(engine, x, x_shape, "x")
    arr = common.fixedpoint.check_numeric(c, "public multiplier")
    out_shape = broadcast_shape(sx, arr.shape)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        return common.lin_mul_int(engine, x, arr)
    if significant_bits is not None and arr.ndim == 0:
        m, e = common.fixedpoint.encode_public_scalar(float(arr), int(significant_bits))
        if e <= 0:
            return common.lin_mul_int(engine, x, np.int64(m) << np.int64(-e))
        z = common.lin_mul_int(engine, x, np.int64(m))
        return truncation.truncate(ctx.scoped("trunc"), z, e, shape=out_shape)
    enc = common.encode_public(arr, ctx.frac_bits, "public multiplier")
    z = engine.local(common.mul_public_ring, x, enc, step=ctx.step("local"))
    return _finish(ctx, z, True, out_shape)


def matmul_public(
    ctx: MPCContext, x: PerParty, w: Any, *, x_shape: Any = None, side: str = "right"
) -> PerParty:
    """x @ w (side="right") or w @ x (side="left") for a public real matrix w.

    Local limb-split matmul of each share with enc(w), then truncation by 2^f
    (0 rounds for 2 members, 1 for 3+). Integer w is exact and not truncated.
    Default tag "matmul_public"."""
    ctx = ctx.with_default_tag("matmul_public")
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    sx = common.shape_of(ctx.engine, x, x_shape, "x")
    arr = common.fixedpoint.check_numeric(w, "public matrix")
    out_shape = matmul_shape(sx, arr.shape) if side == "right" else matmul_shape(arr.shape, sx)
    integer = np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_
    enc = (
        common.public_int(arr)
        if integer
        else common.encode_public(arr, ctx.frac_bits, "public matrix")
    )
    z = ctx.engine.local(_matmul_public, x, enc, side == "right", step=ctx.step("local"))
    return _finish(ctx, z, not integer, out_shape)
