"""Shared helpers for the MPC protocols: public shapes, member-local steps, checks.

Member-local step functions take the member index first (they run via
`engine.local` inside the parties' actors) and are module-level so they pickle by
reference. Shares are uint64 arrays; arithmetic wraps mod 2^64.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from cipherray.protocols import fixedpoint
from cipherray.protocols.mpc.engine import Engine, LocalEngine, PerParty

Shape = tuple[int, ...]


def _as_array(v: Any) -> Any:
    if isinstance(v, np.generic):
        return np.asarray(v)
    if isinstance(v, tuple):
        return tuple(_as_array(x) for x in v)
    return v


def member_step(fn: Callable) -> Callable:
    """Decorator for step functions that run at a party: uint64 wraparound is the ring
    (silence NumPy's overflow warnings for 0-d operands) and NumPy scalars come back as
    0-d arrays, so shape-() values behave like any other array. The wrapper keeps the
    function's name, so it still pickles by reference."""

    @functools.wraps(fn)
    def step(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(over="ignore"):
            return _as_array(fn(*args, **kwargs))

    return step


def shape_of(engine: Engine, x: PerParty, given: Any = None, what: str = "operand") -> Shape:
    """The public shape of shared `x`.

    Shapes are public; the runtime knows them and passes them in (`given`). Only the
    in-process `LocalEngine` may omit them (read from the member-0 handle's array,
    which lives in this process anyway)."""
    if not isinstance(x, PerParty):
        raise TypeError(f"{what} must be a PerParty of shares, got {type(x).__name__}")
    if len(x) != engine.n:
        raise ValueError(f"{what} has {len(x)} shares but the engine has {engine.n} members")
    if given is not None:
        if isinstance(given, int | np.integer):
            return (int(given),)
        return tuple(int(d) for d in given)
    if isinstance(engine, LocalEngine):
        return tuple(np.shape(engine.value(x[0])))
    raise ValueError(f"the public shape of {what} is required (pass its shape)")


def check_frac_bits(frac_bits: int) -> int:
    f = int(frac_bits)
    if not 0 <= f <= 30:
        raise ValueError(f"frac_bits must be in 0..30 (products need 2f bits), got {frac_bits}")
    return f


def encode_public(value: Any, frac_bits: int, what: str = "public value") -> np.ndarray:
    """Fixed-point encode a public value (TypeError/ValueError/OverflowError on bad input)."""
    arr = np.asarray(value)
    if arr.ndim == 0:  # fixedpoint.encode needs an array, not a NumPy scalar
        return fixedpoint.encode(arr.reshape(1), frac_bits, what=what).reshape(())
    return fixedpoint.encode(arr, frac_bits, what=what)


def public_int(value: Any, what: str = "public integer") -> np.ndarray:
    arr = fixedpoint.check_numeric(value, what)
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise TypeError(f"{what} must be an integer array, got dtype {arr.dtype}")
    return arr.astype(np.int64).view(np.uint64)


def only_at(engine: Engine, handle: Any, member: int = 0) -> PerParty:
    """A PerParty holding `handle` at `member` and None at the others (no messages)."""
    blanks = engine.local(_none, step="local")
    return PerParty(handle if i == member else blanks[i] for i in range(engine.n))


# ------------------------------------------------------------ member-local steps


@member_step
def _none(i: int) -> None:
    return None


@member_step
def add(i: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.add(a, b, dtype=np.uint64)


@member_step
def sub(i: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.subtract(a, b, dtype=np.uint64)


@member_step
def neg(i: int, a: np.ndarray) -> np.ndarray:
    return np.negative(a.view(np.int64)).view(np.uint64)


@member_step
def add_public(i: int, a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """x + p for a public ring array p: member 0 adds it, the others broadcast."""
    if i == 0:
        return np.add(a, p, dtype=np.uint64)
    return np.broadcast_to(a, np.broadcast_shapes(a.shape, np.shape(p))).copy()


@member_step
def public_minus(i: int, p: np.ndarray, a: np.ndarray) -> np.ndarray:
    """p - x for a public ring array p."""
    neg_a = np.negative(a.view(np.int64)).view(np.uint64)
    if i == 0:
        return np.add(neg_a, p, dtype=np.uint64)
    return np.broadcast_to(neg_a, np.broadcast_shapes(a.shape, np.shape(p))).copy()


@member_step
def mul_public_ring(i: int, a: np.ndarray, m: np.ndarray) -> np.ndarray:
    return np.multiply(a, m, dtype=np.uint64)


@member_step
def stack(i: int, *parts: np.ndarray) -> np.ndarray:
    return np.stack(parts)


@member_step
def unstack(i: int, a: np.ndarray) -> tuple:
    return tuple(a[j] for j in range(a.shape[0]))


@member_step
def getitem(i: int, a: np.ndarray, key: Any) -> np.ndarray:
    return np.ascontiguousarray(a[key])


@member_step
def transpose(i: int, a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T)


@member_step
def zeros(i: int, shape: Shape) -> np.ndarray:
    return np.zeros(shape, dtype=np.uint64)


@member_step
def as_shares(i: int, a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.uint64)


# ------------------------------------------------------------ driver-side wrappers


def lin_add(engine: Engine, x: PerParty, y: PerParty) -> PerParty:
    return engine.local(add, x, y, step="local")


def lin_sub(engine: Engine, x: PerParty, y: PerParty) -> PerParty:
    return engine.local(sub, x, y, step="local")


def lin_add_public(engine: Engine, x: PerParty, p_ring: np.ndarray) -> PerParty:
    return engine.local(add_public, x, np.asarray(p_ring, dtype=np.uint64), step="local")


def lin_public_minus(engine: Engine, p_ring: np.ndarray, x: PerParty) -> PerParty:
    return engine.local(public_minus, np.asarray(p_ring, dtype=np.uint64), x, step="local")


def lin_mul_int(engine: Engine, x: PerParty, m: Any) -> PerParty:
    """x * m for a public integer (array): exact, no truncation, no messages."""
    return engine.local(
        mul_public_ring, x, public_int(m, "public integer multiplier"), step="local"
    )


def lin_stack(engine: Engine, parts: list[PerParty]) -> PerParty:
    return engine.local(stack, *parts, step="local")


def lin_unstack(engine: Engine, x: PerParty, count: int) -> list[PerParty]:
    if count == 1:
        return [engine.local(getitem, x, 0, step="local")]
    return list(engine.local(unstack, x, num_returns=count, step="local"))


def zeros_shared(engine: Engine, shape: Any) -> PerParty:
    """A sharing of zeros (every share 0), e.g. to initialise model weights."""
    shape = (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(d) for d in shape)
    return engine.local(zeros, shape, step="local")
