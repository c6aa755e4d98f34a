"""What a receiving step expects of a protocol message, checked when the message arrives.

The wire format (`wire`) checks that a message is well formed; this module checks that a
well-formed value is the one the protocol step needs: an array of the step's dtype and
shape, bytes of the step's length, a tuple of those, at most so many bytes. The
expectation is made by the receiver's own copy of the script (every party runs the same
script, so the receiver knows from its own view of the protocol what a peer must send):
nothing in the peer's message says what it should be. A value that is not what the step
expects raises `WireError` naming the sending party and the message's tag before any step
uses it; the receiver's stored values are untouched.

An expectation is a `wire.Expect`, or `Like(...)`: "the same kind, dtype and shape as the
receiving step's own value" (an MPC open: every member's share has the shape and dtype of
the receiver's own share). The runtime carries it with the message (`Inbox.expect`) and
the receiving worker checks the value with `check_value` (see `PartyWorker._run`).

Kinds of runtime values (`Expect.kind`): ``array`` (a NumPy array), ``scalar`` (a NumPy
scalar or 0-d array), ``bytes``, ``cipher`` (`CipherBytes`), ``meta`` (plain data: None,
bool, int, float, str, lists and dicts of those), ``tuple`` (a tuple or list of values,
each with its own expectation in `parts`), ``shape`` (a public shape: a tuple of at most
32 non-negative ints; `max_bytes` then bounds the uint64 array of that shape, so a peer
cannot make the receiver allocate more than the step allows).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from cipherray.runtime.errors import WireError
from cipherray.runtime.payload import payload_nbytes
from cipherray.runtime.silo.wire import (
    ARRAY,
    BYTES,
    CIPHER,
    MAX_NDIM,
    META,
    TUPLE,
    CipherBytes,
    Expect,
    shape_ok,
)

SCALAR, SHAPE = "scalar", "shape"
RING = np.dtype(np.uint64)  # the dtype of additive shares over Z_2^64

__all__ = ["Check", "Expect", "Like", "check_value", "expect_of", "ring_shares", "shape_of", "seed"]


@dataclass(frozen=True)
class Check:
    """A protocol's own check of a message (`protocols.mpc.messages`): `fn(value)` returns
    None for a value of the right form and raises ValueError (e.g. `OTError`) naming what
    is wrong; made by the receiver's script from its own parameters (the shapes it
    requested, the number of OTs, the key size), so the protocol's checks are the ones
    used, not a copy of them. With `of` (a handle among the receiving step's inputs,
    as for `Like`) the check is `fn(value, own=<the receiver's own value there>)`: a
    ciphertext must be under the key the receiver holds, of the shape of its mask."""

    fn: Any
    of: Any = None


@dataclass(frozen=True)
class Like:
    """Expect what the receiving step's own value `of` is (kind, dtype, shape). In the
    driver `of` is a handle among the receiving step's inputs; the runtime replaces it by
    that input's position in the step, and the receiving worker makes the expectation
    from its own value there (`expect_of`)."""

    of: Any


def ring_shares(shape: tuple | None = None, max_bytes: int | None = None) -> Expect:
    """Shares over Z_2^64: a uint64 array (of `shape`, where the receiver knows it)."""
    return Expect.array(RING, shape, max_bytes)


def shape_of(max_bytes: int | None = None, ndim: int | None = None) -> Expect:
    """A public shape (`ndim` dimensions if given) whose uint64 array fits `max_bytes`."""
    return Expect(SHAPE, None, None if ndim is None else (None,) * ndim, max_bytes)


def seed(nbytes: int, max_share_bytes: int | None = None) -> Expect:
    """A share seed with its public shape: (bytes of `nbytes`, shape)."""
    return Expect.tuple(Expect.bytes(nbytes), shape_of(max_share_bytes))


def expect_of(value: Any) -> Expect | None:
    """The expectation a value of the receiver's own describes: its kind, dtype and
    shape (recursively for tuples and lists); None for anything else (not checked)."""
    if isinstance(value, np.ndarray):
        return Expect(ARRAY, value.dtype.str, tuple(value.shape))
    if isinstance(value, np.generic):
        return Expect(SCALAR, value.dtype.str)
    if type(value) is CipherBytes:
        return Expect(CIPHER, length=len(value))
    if type(value) is bytes:
        return Expect.bytes(len(value))
    if type(value) in (tuple, list) and value:
        return Expect.tuple(*(expect_of(v) for v in value))
    return None


def resolve(expect: Any, values: list) -> Expect | None:
    """An Inbox's expectation at the receiving worker: `Like(i)` becomes the expectation
    of the step's own value i, `Check(fn, of=i)` a check of it; an `Expect` stays."""
    if type(expect) is Like:
        return expect_of(values[expect.of])
    if type(expect) is Check and expect.of is not None:
        return Check(partial(expect.fn, own=values[expect.of]))
    return expect


def check_value(value: Any, expect: Expect | Check | None, peer: str, tag: str) -> Any:
    """`value` (a message from `peer` under `tag`) if it is what `expect` says (or `Check`
    accepts); else WireError naming `peer` and `tag`. `expect` None: anything."""
    if type(expect) is Check:
        try:
            expect.fn(value)
        except (ValueError, TypeError) as e:
            raise WireError(peer, tag, str(e)) from None
    elif expect is not None:
        _check(value, expect, peer, tag, {})
    return value


def _check(value: Any, e: Expect, peer: str, tag: str, names: dict) -> None:
    got = _kind(value)
    if e.kind is not None and got != e.kind:
        if not (e.kind == SHAPE and got == TUPLE or e.kind == SCALAR and _is_0d(value)):
            raise WireError(peer, tag, f"expected a value of kind {e.kind}, got {_describe(value)}")
    if e.kind == SHAPE:
        _check_shape(value, e, peer, tag, names)
        return
    if e.max_bytes is not None:
        n = payload_nbytes(value)
        if n > e.max_bytes:
            raise WireError(peer, tag, f"{n} bytes exceed the step's limit of {e.max_bytes}")
    if e.dtype is not None:
        dt = getattr(value, "dtype", None)
        if dt is None or dt != np.dtype(e.dtype):
            want = np.dtype(e.dtype).name
            raise WireError(peer, tag, f"expected dtype {want}, got {_describe(value)}")
    if e.shape is not None:
        shape = tuple(getattr(value, "shape", ()))
        if not isinstance(value, np.ndarray | np.generic) or not shape_ok(shape, e.shape, names):
            raise WireError(peer, tag, f"expected shape {tuple(e.shape)}, got {_describe(value)}")
    if e.length is not None:
        n = len(value) if isinstance(value, bytes) else -1
        if n != e.length:
            raise WireError(peer, tag, f"expected {e.length} bytes, got {_describe(value)}")
    if e.parts is not None:
        if type(value) not in (tuple, list):
            raise WireError(peer, tag, f"expected a tuple, got {_describe(value)}")
        if len(value) != len(e.parts):
            raise WireError(
                peer, tag, f"expected a tuple of {len(e.parts)} values, got {len(value)}"
            )
        for v, part in zip(value, e.parts):
            if part is not None:
                _check(v, part, peer, tag, names)


def _check_shape(value: Any, e: Expect, peer: str, tag: str, names: dict) -> None:
    if not (
        type(value) in (tuple, list)
        and len(value) <= MAX_NDIM
        and all(type(s) is int and 0 <= s < 1 << 48 for s in value)
    ):
        raise WireError(peer, tag, f"expected a shape, got {_describe(value)}")
    if e.shape is not None and not shape_ok(tuple(value), e.shape, names):
        raise WireError(peer, tag, f"expected a shape of {len(e.shape)} dimensions, got {value}")
    if e.max_bytes is not None:
        n = RING.itemsize * int(np.prod(value, dtype=object)) if value else RING.itemsize
        if n > e.max_bytes:
            raise WireError(
                peer, tag, f"shape {tuple(value)} means {n} bytes, beyond the step's limit "
                f"of {e.max_bytes}",
            )  # fmt: skip


def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return ARRAY
    if isinstance(value, np.generic):
        return SCALAR
    if type(value) is CipherBytes:
        return CIPHER
    if type(value) is bytes:
        return BYTES
    if type(value) in (tuple, list):
        return TUPLE
    return META


def _is_0d(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 0


def _describe(value: Any) -> str:
    """A short description of a received value (its kind and form, not its contents)."""
    if isinstance(value, np.ndarray | np.generic):
        kind = "array" if isinstance(value, np.ndarray) else "scalar"
        return f"a {value.dtype.name} {kind} of shape {tuple(value.shape)}"
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    if type(value) in (tuple, list):
        return f"a {type(value).__name__} of {len(value)} values"
    return f"a {type(value).__name__}"
