"""Comparisons on shared fixed-point values, ReLU, select, max/min.

Every comparison reduces to the sign of a shared difference (`binary.ltz_bit`:
A2B of the sign bit by a Kogge-Stone adder on XOR shares, or for two members with the
OT provider the millionaires' comparison of `millionaire.py`, then B2A). Results are
shared 0/1 values in fixed point (1 -> 2^f), exact. Valid while the difference stays
inside the signed ring: |x - y| < 2^(63 - f) (always true for encoded inputs).

Rounds (R = binary.ltz_rounds(n, provider): 8 for 2 members, 9 for 3, 10 for 4; 7 for
2 members whose provider sets `millionaire_m`, as the OTProvider does):

=====================  ===================================================
ltz, lt, gt, le, ge    R
eq                     R (both differences compared in one batched circuit)
relu, maximum, minimum R + 1 (one Beaver product with the integer bit, no truncation)
where(cond, x, y)      1 + truncation rounds (0 for 2 members, 1 for 3+)
=====================  ===================================================

`y` may be a shared `PerParty` or a public numeric value (encoded with f bits,
broadcast). Shapes are public: pass them (LocalEngine may omit them). The five
relations are one protocol, `relation(ctx, op, x, y)`; `lt`, `le`, `gt`, `ge`, `eq`
are its named forms. Each operation's default tag is its name ("lt", "relu", "max",
"min", "where", "ltz").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cipherray.protocols.mpc import arithmetic, binary, common
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import PerParty
from cipherray.protocols.mpc.ring import broadcast_shape

# op -> (the sign test on y - x instead of x - y, the result negated); "eq" apart
_SIGN_TESTS = {"lt": (False, False), "ge": (False, True), "gt": (True, False), "le": (True, True)}
RELATIONS = (*_SIGN_TESTS, "eq")


def _diff(ctx: MPCContext, x: PerParty, y: Any, x_shape: Any, y_shape: Any) -> tuple:
    """x - y for shared or public y, and its shape."""
    engine = ctx.engine
    sx = common.shape_of(engine, x, x_shape, "x")
    if isinstance(y, PerParty):
        out = broadcast_shape(sx, common.shape_of(engine, y, y_shape, "y"))
        return engine.local(common.sub, x, y, step="local"), out
    enc = common.encode_public(y, ctx.frac_bits, "public comparand")
    out = broadcast_shape(sx, enc.shape)
    neg = np.negative(enc.view(np.int64)).view(np.uint64)
    return common.lin_add_public(engine, x, neg), out


def _bit_to_fixed(ctx: MPCContext, bit: PerParty) -> PerParty:
    return common.lin_mul_int(ctx.engine, bit, np.int64(1) << np.int64(ctx.frac_bits))


def _one_minus_bit(ctx: MPCContext, bit: PerParty) -> PerParty:
    return common.lin_public_minus(ctx.engine, np.uint64(1), bit)


def _sign_test(ctx: MPCContext, d: PerParty, s: tuple, swap: bool, negate: bool) -> PerParty:
    """Integer bit [d < 0] (d negated first when `swap`; 1 - the bit when `negate`)."""
    if swap:
        d = ctx.engine.local(common.neg, d, step="local")
    bit = binary.ltz_bit(ctx, d, shape=s)
    return _one_minus_bit(ctx, bit) if negate else bit


def _equal(ctx: MPCContext, d: PerParty, s: tuple) -> PerParty:
    """Integer bit [d == 0] = 1 - [d < 0] - [-d < 0], both signs in ONE batched circuit."""
    engine = ctx.engine
    both = common.lin_stack(engine, [d, engine.local(common.neg, d, step="local")])
    bits = binary.ltz_bit(ctx, both, shape=(2,) + s)
    below, above = common.lin_unstack(engine, bits, 2)
    return _one_minus_bit(ctx, common.lin_add(engine, below, above))


def relation(
    ctx: MPCContext, op: str, x: PerParty, y: Any, *, x_shape: Any = None, y_shape: Any = None
) -> PerParty:
    """[x op y] as fixed point 0/1 for op in RELATIONS ("lt", "le", "gt", "ge", "eq"),
    y shared or public: R rounds. Default tag: `op`.

    lt: [x - y < 0]; ge: 1 - [x - y < 0]; gt: [y - x < 0]; le: 1 - [y - x < 0];
    eq: 1 - [x - y < 0] - [y - x < 0], both signs in one batched circuit."""
    if op not in RELATIONS:
        raise ValueError(f"unknown relation {op!r}; expected one of {RELATIONS}")
    ctx = ctx.with_default_tag(op)
    d, s = _diff(ctx, x, y, x_shape, y_shape)
    bit = _equal(ctx, d, s) if op == "eq" else _sign_test(ctx, d, s, *_SIGN_TESTS[op])
    return _bit_to_fixed(ctx, bit)


def _named_relation(op: str, meaning: str) -> Callable[..., PerParty]:
    def named(
        ctx: MPCContext, x: PerParty, y: Any, *, x_shape: Any = None, y_shape: Any = None
    ) -> PerParty:
        return relation(ctx, op, x, y, x_shape=x_shape, y_shape=y_shape)

    named.__name__ = named.__qualname__ = op
    named.__doc__ = (
        f"{meaning} (fixed point 0/1), y shared or public: `relation(ctx, {op!r}, ...)`."
    )
    return named


lt = _named_relation("lt", "[x < y]")
le = _named_relation("le", "[x <= y]")
gt = _named_relation("gt", "[x > y]")
ge = _named_relation("ge", "[x >= y]")
eq = _named_relation("eq", "[x == y]")


def ltz_bits(ctx: MPCContext, x: PerParty, *, shape: Any = None) -> PerParty:
    """Integer (scale 1) shares of [x < 0]: R rounds. Default tag "ltz"."""
    return binary.ltz_bit(ctx, x, shape=shape)


def ltz(ctx: MPCContext, x: PerParty, *, shape: Any = None) -> PerParty:
    """[x < 0] as fixed point 0/1: R rounds. Default tag "ltz"."""
    return _bit_to_fixed(ctx, binary.ltz_bit(ctx, x, shape=shape))


def relu(ctx: MPCContext, x: PerParty, *, shape: Any = None) -> PerParty:
    """max(x, 0) = x * [x >= 0], exact: R + 1 rounds (the product with the integer bit
    needs no truncation). Default tag "relu"."""
    ctx = ctx.with_default_tag("relu")
    s = common.shape_of(ctx.engine, x, shape, "x")
    pos = _one_minus_bit(ctx, binary.ltz_bit(ctx, x, shape=s))
    return arithmetic.mul(ctx.scoped("mul"), x, pos, x_shape=s, y_shape=s, truncate=False)


def _relu_of_difference(
    ctx: MPCContext, x: PerParty, y: Any, x_shape: Any, y_shape: Any
) -> PerParty:
    d, s = _diff(ctx, x, y, x_shape, y_shape)
    return relu(ctx, d, shape=s)


def maximum(
    ctx: MPCContext, x: PerParty, y: Any, *, x_shape: Any = None, y_shape: Any = None
) -> PerParty:
    """max(x, y) = y + relu(x - y), exact, y shared or public: R + 1 rounds. Default
    tag "max"."""
    ctx = ctx.with_default_tag("max")
    r = _relu_of_difference(ctx, x, y, x_shape, y_shape)
    if isinstance(y, PerParty):
        return ctx.engine.local(common.add, r, y, step="local")
    return common.lin_add_public(ctx.engine, r, common.encode_public(y, ctx.frac_bits))


def minimum(
    ctx: MPCContext, x: PerParty, y: Any, *, x_shape: Any = None, y_shape: Any = None
) -> PerParty:
    """min(x, y) = x - relu(x - y), exact, y shared or public: R + 1 rounds. Default
    tag "min"."""
    ctx = ctx.with_default_tag("min")
    r = _relu_of_difference(ctx, x, y, x_shape, y_shape)
    return ctx.engine.local(common.sub, x, r, step="local")


def where(
    ctx: MPCContext, cond: PerParty, x: PerParty, y: PerParty, *, shape: Any = None
) -> PerParty:
    """cond ? x : y for a shared fixed-point 0/1 `cond` (as the comparisons return) and
    shared x, y of the same public `shape`: y + cond * (x - y). Default tag "where".

    Rounds: 1 + truncation (0 for 2 members, 1 for 3+). The product is an exact
    multiple of 2^f, so the 2-member local truncation is exact (barring its failure
    probability); the wrap truncation is within n ulp."""
    ctx = ctx.with_default_tag("where")
    s = common.shape_of(ctx.engine, x, shape, "x")
    d = ctx.engine.local(common.sub, x, y, step="local")
    prod = arithmetic.mul(ctx.scoped("mul"), cond, d, x_shape=s, y_shape=s)
    return ctx.engine.local(common.add, prod, y, step="local")


__all__ = [
    "RELATIONS",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "ltz",
    "ltz_bits",
    "maximum",
    "minimum",
    "relation",
    "relu",
    "where",
]
