"""Step functions used by bench/runtime.py, importable by the party workers (a script's
__main__ functions would be shipped by value with every call, as Ray does)."""

from __future__ import annotations

import numpy as np

from cipherray.protocols import prg


def work(x):
    return float(np.sum(x))


class BareActor:
    def run(self, x):
        return work(x)

    def emit(self, x):
        return x

    def consume(self, x):
        return int(x.nbytes)


def emit(x):
    return x


def consume(x):
    return int(x.nbytes)


def make_share(nbytes: int) -> np.ndarray:
    return prg.fresh_ring(nbytes // 8)


def local_data(i: int, n: int) -> np.ndarray:
    return np.random.default_rng(i).normal(100.0, 25.0, n)  # synthetic data, not secrets


def size(v) -> int:
    return int(v.size)


def deliver(rt, sends: list, tag: str) -> list[int]:
    """Send each (PartyRef, destination Party) through the runtime's channel in one
    round; each destination reads its message. Returns the bytes each one received."""
    msgs = rt._channel_round(tag, [(ref._obj, dst.name) for ref, dst in sends])
    return rt.get(
        [rt._run_at(dst, consume, (m,), {}, step="receive") for m, (_, dst) in zip(msgs, sends)]
    )
