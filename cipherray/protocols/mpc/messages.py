"""What a receiving member expects of a provider's message, as a check it runs on the value.

A protocol knows from its own public parameters (the shapes it requested, the ring, the
number of OTs, the key size) what each message it receives must be. It hands the engine
a check with the message (`Engine.send(..., expect=check)`): a picklable callable that
returns None for a value of the right form and raises ValueError (OTError is one) naming
what is wrong otherwise. The engine runs it at the receiver before any step uses the
value (the runtime turns the error into `WireError` naming the sender and the tag). The
checks are made from the receiver's own parameters, never from the message.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

Check = Callable[[Any], None]

__all__ = ["Check", "array", "nbytes", "tuple_of", "ring"]


def _array(value: Any, dtype: str, shape: tuple, what: str) -> None:
    if not isinstance(value, np.ndarray | np.generic):  # (a 0-d result may be a scalar)
        raise ValueError(f"{what}: expected a {dtype} array, not {type(value).__name__}")
    if value.dtype != np.dtype(dtype) or tuple(value.shape) != shape:
        raise ValueError(
            f"{what}: expected a {dtype} array of shape {shape}, not {value.dtype} of shape "
            f"{tuple(value.shape)}"
        )


def array(dtype: Any, shape: tuple, what: str) -> Check:
    """An array of exactly `dtype` and `shape`."""
    return partial(_array, dtype=np.dtype(dtype).name, shape=tuple(int(d) for d in shape),
                   what=what)  # fmt: skip


def ring(shape: tuple, what: str) -> Check:
    """Shares over Z_2^64 of `shape` (uint64)."""
    return array(np.uint64, shape, what)


def _nbytes(value: Any, length: int | None, most: int | None, what: str) -> None:
    if not isinstance(value, bytes):
        raise ValueError(f"{what}: expected bytes, not {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"{what}: expected {length} bytes, not {len(value)}")
    if most is not None and len(value) > most:
        raise ValueError(f"{what}: expected at most {most} bytes, not {len(value)}")


def nbytes(length: int | None = None, what: str = "message", most: int | None = None) -> Check:
    """Bytes of exactly `length` (or at most `most`)."""
    return partial(_nbytes, length=length, most=most, what=what)


def _tuple_of(value: Any, checks: tuple, what: str) -> None:
    if type(value) not in (tuple, list) or len(value) != len(checks):
        n = len(value) if type(value) in (tuple, list) else type(value).__name__
        raise ValueError(f"{what}: expected a tuple of {len(checks)} values, not {n}")
    for v, check in zip(value, checks):
        if check is not None:
            check(v)


def tuple_of(*checks: Check | None, what: str = "message") -> Check:
    """A tuple of values, each passing its check (None: not checked)."""
    return partial(_tuple_of, checks=checks, what=what)
