"""Beaver multiplication and matrix product on additive shares of fixed-point values.

Inputs are `PerParty` shares over Z_2^64 of values with f fractional bits (scale
2^f). A product has scale 2^(2f) and is truncated back to 2^f (`truncation`), unless
`truncate=False` (e.g. when one factor is a 0/1 integer bit, scale 1).

Range: the product before truncation must stay inside the signed ring; with
f = 16 that means |x * y| < 2^30 for elementwise products (and for every entry of
x @ y, summed over the inner dimension); keep it well below for a small truncation
failure rate (see `truncation`). Overflow of shared intermediates cannot be detected
without revealing them; public operands are range-checked when encoded.

Communication (n members, |x| elements of x): `mul` opens (x - a, y - b) together,
one message per ordered pair: n(n-1) messages of 8(|x| + |y|) bytes, 1 round; plus
the truncation: 0 rounds for 2 members, 1 round ((n-1) messages of 8|z| bytes to
member 0) for 3+ members. The same holds for `matmul` with the matrix shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.protocols.fixedpoint import DEFAULT_FRAC_BITS
from cipherray.protocols.mpc import common, truncation
from cipherray.protocols.mpc.engine import Engine, PerParty
from cipherray.protocols.mpc.providers import Provider
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


def _finish(
    engine: Engine,
    z: PerParty,
    truncate: bool,
    frac_bits: int,
    provider: Provider | None,
    shape: tuple,
    tag: str,
) -> PerParty:
    if not truncate or frac_bits == 0:
        return z
    return truncation.truncate(engine, z, frac_bits, provider, shape=shape, tag=f"{tag}/trunc")


def _beaver(
    engine: Engine,
    x: PerParty,
    y: PerParty,
    triple: tuple[PerParty, ...],
    combine: Any,
    out_shape: tuple,
    truncate: bool,
    frac_bits: int,
    provider: Provider,
    tag: str,
) -> PerParty:
    """Steps 2-5 shared by `mul` and `matmul`: mask with (a, b), open (eps, delta) in one
    round, combine locally with `combine`, truncate."""
    a, b, c = triple
    masked = engine.local(_mask2, x, y, a, b, step=f"{tag}/mask")  # 2
    opened = engine.open(masked, step=f"{tag}/open")  # 3
    z = engine.local(combine, opened, a, b, c, step=f"{tag}/combine")  # 4
    return _finish(engine, z, truncate, frac_bits, provider, out_shape, tag)  # 5


def mul(
    engine: Engine,
    x: PerParty,
    y: PerParty,
    provider: Provider,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    truncate: bool = True,
    tag: str = "mul",
) -> PerParty:
    """Elementwise x * y (NumPy broadcasting) of two shared fixed-point arrays.

    1. (a, b, c) = provider.mul_triple(x_shape, y_shape), c = a * b (offline).
    2. Member i masks: eps_i = x_i - a_i, delta_i = y_i - b_i.
    3. Open (eps, delta) in ONE round, one message per ordered pair of members
       (n(n-1) messages of 8(|x| + |y|) bytes). Step tag "<tag>/open".
    4. Member i computes z_i = c_i + eps * b_i + delta * a_i, member 0 also adds
       eps * delta; then sum z_i = (eps + a)(delta + b) = x * y.
    5. Truncate z by 2^f (0 rounds for 2 members, 1 round for 3+), unless
       `truncate=False`.

    Rounds: 1 (2 members) or 2 (3+ members); `rounds(n, truncate)`.
    Shapes are public: pass `x_shape`/`y_shape` (LocalEngine may omit them)."""
    frac_bits = common.check_frac_bits(frac_bits)
    sx = common.shape_of(engine, x, x_shape, "x")
    sy = common.shape_of(engine, y, y_shape, "y")
    out_shape = broadcast_shape(sx, sy)
    # 1
    triple = provider.mul_triple(engine, sx, sy)
    # 2-5
    return _beaver(engine, x, y, triple, _beaver_mul, out_shape, truncate, frac_bits, provider, tag)


def square(
    engine: Engine,
    x: PerParty,
    provider: Provider,
    *,
    shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    truncate: bool = True,
    tag: str = "square",
) -> PerParty:
    """Elementwise x^2 with a square pair (a, c = a^2): half the bytes of `mul`.

    1. (a, c) = provider.square_pair(shape).
    2. eps_i = x_i - a_i.  3. Open eps (1 round, n(n-1) messages of 8|x| bytes).
    4. z_i = c_i + 2 eps a_i (+ eps^2 at member 0).  5. Truncate by 2^f.

    Rounds: 1 (2 members) or 2 (3+)."""
    frac_bits = common.check_frac_bits(frac_bits)
    s = common.shape_of(engine, x, shape, "x")
    a, c = provider.square_pair(engine, s)
    masked = engine.local(_mask1, x, a, step=f"{tag}/mask")
    eps = engine.open(masked, step=f"{tag}/open")
    z = engine.local(_beaver_square, eps, a, c, step=f"{tag}/combine")
    return _finish(engine, z, truncate, frac_bits, provider, s, tag)


def matmul(
    engine: Engine,
    x: PerParty,
    y: PerParty,
    provider: Provider,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    truncate: bool = True,
    tag: str = "matmul",
) -> PerParty:
    """Matrix product x @ y of shared 1-D/2-D fixed-point arrays.

    1. (a, b, c) = provider.matmul_triple(x_shape, y_shape), c = a @ b (offline).
    2. eps_i = x_i - a_i, delta_i = y_i - b_i.
    3. Open (eps, delta) in ONE round (n(n-1) messages of 8(|x| + |y|) bytes).
    4. z_i = c_i + eps @ b_i + a_i @ delta (+ eps @ delta at member 0), with the
       exact limb-split `ring.matmul_u64`.
    5. Truncate z by 2^f (0 rounds for 2 members, 1 for 3+).

    Rounds: 1 (2 members) or 2 (3+). ValueError naming both shapes on a mismatch."""
    frac_bits = common.check_frac_bits(frac_bits)
    sx = common.shape_of(engine, x, x_shape, "x")
    sy = common.shape_of(engine, y, y_shape, "y")
    out_shape = matmul_shape(sx, sy)
    triple = provider.matmul_triple(engine, sx, sy)  # 1
    return _beaver(  # 2-5
        engine, x, y, triple, _beaver_matmul, out_shape, truncate, frac_bits, provider, tag
    )


def mul_public(
    engine: Engine,
    x: PerParty,
    c: Any,
    provider: Provider | None = None,
    *,
    x_shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    significant_bits: int | None = None,
    tag: str = "mul_public",
) -> PerParty:
    """x * c for a public c (scalar or array, broadcast).

    Integer c: shares times c, exact, 0 rounds. Real c: c is encoded with f bits
    (error <= 2^-(f+1) * |x| from rounding c), shares times enc(c), then truncated by
    2^f (0 rounds for 2 members, 1 for 3+; the provider is needed then). With
    `significant_bits=s` a scalar c is written as m / 2^e with |m| < 2^s instead
    (relative rounding error < 2^-(s-1), for small c such as a learning rate) and
    the product is truncated by 2^e; it needs |x| * 2^(f+s) well below 2^62."""
    frac_bits = common.check_frac_bits(frac_bits)
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
        return truncation.truncate(engine, z, e, provider, shape=out_shape, tag=f"{tag}/trunc")
    enc = common.encode_public(arr, frac_bits, "public multiplier")
    z = engine.local(common.mul_public_ring, x, enc, step=f"{tag}/local")
    return _finish(engine, z, True, frac_bits, provider, out_shape, tag)


def matmul_public(
    engine: Engine,
    x: PerParty,
    w: Any,
    provider: Provider | None = None,
    *,
    x_shape: Any = None,
    side: str = "right",
    frac_bits: int = DEFAULT_FRAC_BITS,
    tag: str = "matmul_public",
) -> PerParty:
    """x @ w (side="right") or w @ x (side="left") for a public real matrix w.

    Local limb-split matmul of each share with enc(w), then truncation by 2^f
    (0 rounds for 2 members, 1 for 3+). Integer w is exact and not truncated."""
    frac_bits = common.check_frac_bits(frac_bits)
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    sx = common.shape_of(engine, x, x_shape, "x")
    arr = common.fixedpoint.check_numeric(w, "public matrix")
    out_shape = matmul_shape(sx, arr.shape) if side == "right" else matmul_shape(arr.shape, sx)
    integer = np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_
    enc = (
        common.public_int(arr) if integer else common.encode_public(arr, frac_bits, "public matrix")
    )
    z = engine.local(_matmul_public, x, enc, side == "right", step=f"{tag}/local")
    return _finish(engine, z, not integer, frac_bits, provider, out_shape, tag)
