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


BENCH_PROTOCOL = "bench"
BENCH_MESSAGES = {
    "transfer": "a random ring array made for the benchmark (no party's data)",
    "move": "a random ring array made for the benchmark (no party's data)",
}


def declare_bench_protocol(rt) -> None:
    """Register the benchmarks' protocol, so that `rt.send(..., tag="bench/transfer")`
    passes the policy: the arrays sent are random bytes made for the benchmark."""
    rt.protocol(BENCH_PROTOCOL, BENCH_MESSAGES)


def deliver(rt, sends: list, tag: str) -> list[int]:
    """Send each (PartyRef, destination Party) through the runtime's channel as a
    protocol message (`rt.send`, counted under `tag`, e.g. "bench/transfer"), all
    submitted before any is read; each destination then reads its message. Returns the
    bytes each one received (the driver reads them: it must run as the destinations,
    `init(..., driver_as=...)`)."""
    received = [(rt.send(ref, to=dst, tag=tag), dst) for ref, dst in sends]
    return rt.get([dst(consume)(msg) for msg, dst in received])


# -- the floor of the secure sum: the AES-CTR expansion of its masks (bench/runtime.py)
def mask_buffer(n: int) -> np.ndarray:
    """A party's array of n ring elements that the mask expansion adds into (touched
    once here, so that the timed expansion measures AES-CTR, not page faults)."""
    return np.zeros(n, dtype=np.uint64)


def expand_masks(buf: np.ndarray, count: int) -> int:
    """Expand `count` fresh seeds into keystreams of len(buf) ring elements, added into
    `buf` as they are made: the fastest path there is (the AES-NI kernel's masked sum,
    else `cryptography`)."""
    seeds = [prg.new_seed() for _ in range(count)]
    prg.add_ring(buf, seeds, [1] * count)
    return count
