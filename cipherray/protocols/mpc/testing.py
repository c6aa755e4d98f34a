"""Test helpers for the MPC protocols: an opaque, pickling engine, contexts and sharing
shortcuts.

`OpaqueEngine` exposes only the `Engine` API (it is not a `LocalEngine`, so a protocol
cannot fall back to reading a shape from a handle) and round-trips every step
function and public argument through pickle, as the runtime's Ray actors do.
`local_context(n)` is an `MPCContext` on a fresh in-process engine with a dealer.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from cipherray.protocols import fixedpoint as fp
from cipherray.protocols.mpc.common import encode_public
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import LocalEngine, PerParty
from cipherray.protocols.mpc.providers import DealerProvider, Provider

ULP = 2.0**-16


class OpaqueEngine:
    """The Engine API only (not a LocalEngine, so protocols cannot peek at shapes), and
    every step function and public argument goes through pickle, as in Ray actors."""

    def __init__(self, n: int, has_dealer: bool = True):
        self.inner = LocalEngine(n, has_dealer)
        self.n = n
        self.has_dealer = has_dealer

    @staticmethod
    def _p(fn: Any) -> Any:
        return pickle.loads(pickle.dumps(fn))

    def _args(self, args: tuple) -> tuple:
        # handles stay as they are; public arguments must pickle
        return tuple(a if isinstance(a, PerParty) or _is_handle(a) else self._p(a) for a in args)

    def local(self, fn, *args, num_returns=1, step="local"):
        return self.inner.local(self._p(fn), *self._args(args), num_returns=num_returns, step=step)

    def open(self, values, step="open", op="add"):
        return self.inner.open(values, step=step, op=op)

    def open_to(self, values, dst, step="open", op="add"):
        return self.inner.open_to(values, dst, step=step, op=op)

    def send(self, value, src, dst, step="send", expect=None):
        return self.inner.send(value, src, dst, step=step, expect=expect)

    def run_at(self, who, fn, *args, num_returns=1, step="run"):
        return self.inner.run_at(
            who, self._p(fn), *self._args(args), num_returns=num_returns, step=step
        )


def _is_handle(a: Any) -> bool:
    return type(a).__name__ == "_H"


def local_context(
    n: int,
    *,
    opaque: bool = False,
    provider: Provider | None = None,
    has_dealer: bool = True,
    frac_bits: int = 16,
) -> MPCContext:
    """A context on a fresh `LocalEngine` (or `OpaqueEngine`) of n members with a fresh
    `DealerProvider` unless `provider` is given."""
    engine = OpaqueEngine(n, has_dealer) if opaque else LocalEngine(n, has_dealer)
    return MPCContext(engine, DealerProvider() if provider is None else provider, frac_bits)


def _local(engine: Any) -> LocalEngine:
    """The in-process engine behind an engine or a context (tests only)."""
    engine = engine.engine if isinstance(engine, MPCContext) else engine
    return engine.inner if isinstance(engine, OpaqueEngine) else engine


def share(engine: Any, values: Any, frac_bits: int = 16) -> PerParty:
    """Shares of the fixed-point encoding of `values` (engine or context)."""
    return _local(engine).share(encode_public(np.asarray(values, dtype=np.float64), frac_bits))


def reveal(engine: Any, x: PerParty, frac_bits: int = 16) -> np.ndarray:
    """The decoded value of shared x (engine or context)."""
    return fp.decode(_local(engine).reconstruct(x), 2**frac_bits)


def encoded(values: Any, frac_bits: int = 16) -> np.ndarray:
    """The value the protocol actually sees (after fixed-point rounding)."""
    return fp.decode(encode_public(np.asarray(values, dtype=np.float64), frac_bits), 2**frac_bits)
