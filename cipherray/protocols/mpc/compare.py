"""Comparisons on shared fixed-point values, ReLU, select, max/min.

Every comparison reduces to the sign of a shared difference (`binary.ltz_bit`:
A2B of the sign bit by a Kogge-Stone adder on XOR shares, then B2A). Results are
shared 0/1 values in fixed point (1 -> 2^f), exact. Valid while the difference stays
inside the signed ring: |x - y| < 2^(63 - f) (always true for encoded inputs).

Rounds (R = binary.ltz_rounds(n): 8 for 2 members, 9 for 3, 10 for 4):

=====================  ===================================================
ltz, lt, gt, le, ge    R
eq                     R (both differences compared in one batched circuit)
relu, maximum, minimum R + 1 (one Beaver product with the integer bit, no truncation)
where(cond, x, y)      1 + truncation rounds (0 for 2 members, 1 for 3+)
=====================  ===================================================

`y` may be a shared `PerParty` or a public numeric value (encoded with f bits,
broadcast). Shapes are public: pass them (LocalEngine may omit them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.protocols.fixedpoint import DEFAULT_FRAC_BITS
from cipherray.protocols.mpc import arithmetic, binary, common
from cipherray.protocols.mpc.engine import Engine, PerParty
from cipherray.protocols.mpc.providers import Provider
from cipherray.protocols.mpc.ring import broadcast_shape


def _diff(
    engine: Engine, x: PerParty, y: Any, sx: tuple, y_shape: Any, frac_bits: int
) -> tuple[PerParty, tuple]:
    """x - y for shared or public y, and its shape."""
    if isinstance(y, PerParty):
        sy = common.shape_of(engine, y, y_shape, "y")
        out = broadcast_shape(sx, sy)
        return engine.local(common.sub, x, y, step="local"), out
    enc = common.encode_public(y, frac_bits, "public comparand")
    out = broadcast_shape(sx, enc.shape)
    neg = np.negative(enc.view(np.int64)).view(np.uint64)
    return common.lin_add_public(engine, x, neg), out


def _bit_to_fixed(engine: Engine, bit: PerParty, frac_bits: int) -> PerParty:
    return common.lin_mul_int(engine, bit, np.int64(1) << np.int64(frac_bits))


def _one_minus_bit(engine: Engine, bit: PerParty) -> PerParty:
    return common.lin_public_minus(engine, np.uint64(1), bit)


def ltz_bits(
    engine: Engine, x: PerParty, provider: Provider, *, shape: Any = None, tag: str = "ltz"
) -> PerParty:
    """Integer (scale 1) shares of [x < 0]: R rounds."""
    return binary.ltz_bit(engine, x, provider, shape=shape, tag=tag)


def ltz(
    engine: Engine,
    x: PerParty,
    provider: Provider,
    *,
    shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    tag: str = "ltz",
) -> PerParty:
    """[x < 0] as fixed point 0/1: R rounds."""
    bit = binary.ltz_bit(engine, x, provider, shape=shape, tag=tag)
    return _bit_to_fixed(engine, bit, frac_bits)


def _sign_test(
    engine: Engine,
    x: PerParty,
    y: Any,
    provider: Provider,
    x_shape: Any,
    y_shape: Any,
    frac_bits: int,
    tag: str,
    *,
    swap: bool,
    negate: bool,
) -> PerParty:
    """[d < 0] (or 1 - [d < 0] when `negate`) for d = x - y, or y - x when `swap`."""
    sx = common.shape_of(engine, x, x_shape, "x")
    d, s = _diff(engine, x, y, sx, y_shape, frac_bits)
    if swap:
        d = engine.local(common.neg, d, step="local")
    bit = binary.ltz_bit(engine, d, provider, shape=s, tag=tag)
    return _bit_to_fixed(engine, _one_minus_bit(engine, bit) if negate else bit, frac_bits)


def lt(
    engine: Engine,
    x: PerParty,
    y: Any,
    provider: Provider,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    tag: str = "lt",
) -> PerParty:
    """[x < y] (fixed point 0/1), y shared or public: R rounds."""
    return _sign_test(
        engine, x, y, provider, x_shape, y_shape, frac_bits, tag, swap=False, negate=False
    )


def ge(
    engine: Engine,
    x: PerParty,
    y: Any,
    provider: Provider,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    tag: str = "ge",
) -> PerParty:
    """[x >= y] = 1 - [x < y]: R rounds."""
    return _sign_test(
        engine, x, y, provider, x_shape, y_shape, frac_bits, tag, swap=False, negate=True
    )


def gt(
    engine: Engine,
    x: PerParty,
    y: Any,
    provider: Provider,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    tag: str = "gt",
) -> PerParty:
    """[x > y] = [y - x < 0]: R rounds."""
    return _sign_test(
        engine, x, y, provider, x_shape, y_shape, frac_bits, tag, swap=True, negate=False
    )


def le(
    engine: Engine,
    x: PerParty,
    y: Any,
    provider: Provider,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    tag: str = "le",
) -> PerParty:
    """[x <= y] = 1 - [y - x < 0]: R rounds."""
    return _sign_test(
        engine, x, y, provider, x_shape, y_shape, frac_bits, tag, swap=True, negate=True
    )


def eq(
    engine: Engine,
    x: PerParty,
    y: Any,
    provider: Provider,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    tag: str = "eq",
) -> PerParty:
    """[x == y] = 1 - [x - y < 0] - [y - x < 0], both signs in ONE batched circuit: R rounds."""
    sx = common.shape_of(engine, x, x_shape, "x")
    d, s = _diff(engine, x, y, sx, y_shape, frac_bits)
    nd = engine.local(common.neg, d, step="local")
    both = common.lin_stack(engine, [d, nd])
    bits = binary.ltz_bit(engine, both, provider, shape=(2,) + s, tag=tag)
    b1, b2 = common.lin_unstack(engine, bits, 2)
    ne = common.lin_add(engine, b1, b2)
    return _bit_to_fixed(engine, _one_minus_bit(engine, ne), frac_bits)


def relu(
    engine: Engine,
    x: PerParty,
    provider: Provider,
    *,
    shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    tag: str = "relu",
) -> PerParty:
    """max(x, 0) = x * [x >= 0], exact: R + 1 rounds (the product with the integer bit
    needs no truncation)."""
    s = common.shape_of(engine, x, shape, "x")
    pos = _one_minus_bit(engine, binary.ltz_bit(engine, x, provider, shape=s, tag=tag))
    return arithmetic.mul(
        engine, x, pos, provider, x_shape=s, y_shape=s, truncate=False, tag=f"{tag}/mul"
    )


def maximum(
    engine: Engine,
    x: PerParty,
    y: PerParty,
    provider: Provider,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    tag: str = "max",
) -> PerParty:
    """max(x, y) = y + relu(x - y), exact: R + 1 rounds."""
    sx = common.shape_of(engine, x, x_shape, "x")
    d, s = _diff(engine, x, y, sx, y_shape, frac_bits)
    r = relu(engine, d, provider, shape=s, frac_bits=frac_bits, tag=tag)
    if isinstance(y, PerParty):
        return engine.local(common.add, r, y, step="local")
    return common.lin_add_public(engine, r, common.encode_public(y, frac_bits))


def minimum(
    engine: Engine,
    x: PerParty,
    y: PerParty,
    provider: Provider,
    *,
    x_shape: Any = None,
    y_shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    tag: str = "min",
) -> PerParty:
    """min(x, y) = x - relu(x - y), exact: R + 1 rounds."""
    sx = common.shape_of(engine, x, x_shape, "x")
    d, s = _diff(engine, x, y, sx, y_shape, frac_bits)
    r = relu(engine, d, provider, shape=s, frac_bits=frac_bits, tag=tag)
    return engine.local(common.sub, x, r, step="local")


def where(
    engine: Engine,
    cond: PerParty,
    x: PerParty,
    y: PerParty,
    provider: Provider,
    *,
    shape: Any = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    tag: str = "where",
) -> PerParty:
    """cond ? x : y for a shared fixed-point 0/1 `cond` (as the comparisons return) and
    shared x, y of the same public `shape`: y + cond * (x - y).

    Rounds: 1 + truncation (0 for 2 members, 1 for 3+). The product is an exact
    multiple of 2^f, so the 2-member local truncation is exact (barring its failure
    probability); the wrap truncation is within n ulp."""
    s = common.shape_of(engine, x, shape, "x")
    d = engine.local(common.sub, x, y, step="local")
    prod = arithmetic.mul(
        engine, cond, d, provider, x_shape=s, y_shape=s, frac_bits=frac_bits, tag=f"{tag}/mul"
    )
    return engine.local(common.add, prod, y, step="local")


__all__ = [
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "ltz",
    "ltz_bits",
    "maximum",
    "minimum",
    "relu",
    "where",
]
