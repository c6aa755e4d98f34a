"""The body of a party actor: a store of the party's values, and the steps run on it.

A `PartyWorker` never imports Ray; the Ray backend wraps it in an actor and adds
how messages leave and arrive (`emit`, `open_message`), the inline backend calls it
directly. Every step's results stay in `store` under ids the driver chose; the
driver gets a receipt (shapes and dtypes only, or the values themselves where the
driver may read them and they are small). Messages from other parties are measured
on arrival and, under a network model, delayed by the simulated transfer time.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import numpy as np

from cipherray.runtime.call import Call, Inbox, Key, unpack
from cipherray.runtime.config import NetworkModel
from cipherray.runtime.errors import CipherrayError, InputError, RangeError, StepError
from cipherray.runtime.payload import payload_nbytes

MAX_RECORDS = 200_000
EAGER_LIMIT = 100_000  # bytes: results the driver may read are returned up to this size


KEEP_FREED_BYTES = 1 << 30  # blocks up to this size are reused, not unmapped and faulted again


def keep_freed_memory(limit: int = KEEP_FREED_BYTES) -> bool:
    """Have glibc's malloc keep freed blocks of up to `limit` bytes for reuse in this
    process (a party actor's), instead of returning each large array to the kernel
    with munmap and taking page faults on every page of the next one: the arrays of
    consecutive steps (shares, sums) then reuse the same memory. Free memory above
    `limit` at the top of the heap is still given back. Off with
    CIPHERRAY_KEEP_FREED=0; a no-op where the C library is not glibc. Returns whether
    it applied."""
    if os.environ.get("CIPHERRAY_KEEP_FREED", "1") == "0":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, int(limit)) and mallopt(m_trim_threshold, int(limit)))


class Failed:
    """Stored in place of a step's results when the step failed: using it re-raises."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class Receipt:
    """What a step returns to the driver: each result's (shape, dtype), and the
    results themselves when the driver may read them and they are small."""

    __slots__ = ("metas", "values")

    def __init__(self, metas: tuple, values: tuple | None = None):
        self.metas = metas
        self.values = values

    def __reduce__(self):
        return (Receipt, (self.metas, self.values))


def describe(v: Any) -> tuple | None:
    """(shape, dtype) of an array-like value, else None."""
    shape = getattr(v, "shape", None)
    if isinstance(shape, tuple):
        dtype = getattr(v, "dtype", None)
        return (shape, str(dtype) if dtype is not None else type(v).__name__)
    if isinstance(v, int | float | np.generic):
        return ((), type(v).__name__)
    return None


class PartyWorker:
    def __init__(
        self,
        party: str,
        index: int,
        network: NetworkModel | None = None,
        hide_gpus: bool = False,
    ):
        if hide_gpus:
            # a worker without a GPU share must not use a GPU that happens to be on its
            # node (Ray leaves CUDA_VISIBLE_DEVICES alone for zero-GPU actors); this runs
            # in the actor's own process before anything imports CuPy
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        self.party = party
        self.index = index
        self.network = network
        self.store: dict[int, Any] = {}
        self._records: list[tuple] = []
        self._dropped = 0

    # -- how messages travel (the Ray backend overrides these)
    def emit(self, key: int, *guards: Any, step: str = "send") -> Any:
        """The message form of a stored value (inline: the value; Ray: an object ref);
        `step` names the message's tag in errors."""
        return self._load(key, step)

    def open_message(self, msg: Any, inbox: Inbox, call: Call) -> Any:
        return msg

    def resolve(self, call: Call, deps: tuple) -> tuple:
        """The values of the call's dependencies (the Ray backend waits for them here,
        with the call's timeout, naming the party whose message is late or lost)."""
        return deps

    # -- steps
    def _load(self, key: int, step: str) -> Any:
        try:
            v = self.store[key]
        except KeyError:
            raise StepError(self.party, step, f"value {key} is not held here") from None
        if type(v) is Failed:
            raise v.error
        return v

    def run(self, call: Call, *deps: Any) -> Receipt:
        for k in call.free:
            self.store.pop(k, None)
        try:
            return self._run(call, self.resolve(call, deps))
        except BaseException as e:
            failed = Failed(e)
            for k in call.outputs:
                self.store[k] = failed
            raise

    def _run(self, call: Call, deps: tuple) -> Receipt:
        start = time.time()
        values: list[Any] = []
        msgs: list[tuple] = []
        per_sender: dict[str, int] = {}
        for src in call.sources:
            if type(src) is Key:
                values.append(self._load(src.id, call.step))
                continue
            v = self.open_message(deps[src.dep], src, call)
            values.append(v)
            if src.counted:
                nb = payload_nbytes(v)
                msgs.append((src.msg_id, src.src, nb, src.tag))
                per_sender[src.src] = per_sender.get(src.src, 0) + nb
        _check_messages(call, values)
        net_s = 0.0
        if per_sender and self.network is not None:
            # messages from different senders travel in parallel
            net_s = max(self.network.delay_s(nb) for nb in per_sender.values())
            time.sleep(net_s)
        args, kwargs = unpack(call.args, call.kwargs, values)
        t0 = time.perf_counter()
        try:
            result = call.fn(*args, **kwargs)
        except CipherrayError:
            raise
        except Exception as e:
            raise _wrap(e, self.party, call.step) from e
        compute_s = time.perf_counter() - t0
        n = len(call.outputs)
        results = (result,) if n == 1 else tuple(result)
        if len(results) != n:
            raise StepError(
                self.party, call.step, f"step returned {len(results)} values, expected {n}"
            )
        for k, v in zip(call.outputs, results):
            self.store[k] = v
        if len(self._records) < MAX_RECORDS:
            self._records.append((call.step_id, start, compute_s, net_s, tuple(msgs)))
        else:
            self._dropped += 1
        metas = tuple(describe(v) for v in results)
        eager = None
        if call.eager and sum(payload_nbytes(v) for v in results) <= EAGER_LIMIT:
            eager = results
        return Receipt(metas, eager)

    def fetch(self, key: int) -> Any:
        """A stored value, for the driver (the runtime checks that it may read it)."""
        return self._load(key, "get")

    def drain_stats(self) -> tuple[list[tuple], int]:
        records, self._records = self._records, []
        dropped, self._dropped = self._dropped, 0
        return records, dropped

    def held(self) -> int:
        """How many values this worker holds (tests check that freed values go)."""
        return len(self.store)

    def where(self) -> dict:
        info = {"party": self.party, "index": self.index, "pid": os.getpid()}
        info["host"] = socket.gethostname()
        try:
            import ray

            if ray.is_initialized():
                info["node_id"] = ray.get_runtime_context().get_node_id()
        except Exception:  # pragma: no cover - inline backend without Ray
            pass
        return info

    def ping(self) -> str:
        return self.party


def _check_messages(call: Call, values: list) -> None:
    """Every message the step receives is what the step expects (`Inbox.expect`, made by
    this party's own script): WireError naming the sender and the message's tag before
    the step runs, so nothing of this party's state changes."""
    for src, v in zip(call.sources, values):
        if type(src) is Inbox and src.expect is not None:
            from cipherray.runtime.silo.expect import check_value, resolve

            check_value(v, resolve(src.expect, values), src.src, src.wire_tag)


def _wrap(e: Exception, party: str, step: str) -> StepError:
    """Name the party and step; bad data (ValueError/TypeError) becomes InputError and
    values beyond the fixed-point range become RangeError. The message keeps only the
    exception's type and text, which the step's code wrote (see README: error messages)."""
    msg = f"{type(e).__name__}: {e}"
    if isinstance(e, OverflowError):
        return RangeError(party, step, msg, e)
    if isinstance(e, ValueError | TypeError):
        return InputError(party, step, msg, e)
    return StepError(party, step, msg, e)
