"""The body of a party actor: runs one step at a time and keeps step statistics.

A `PartyWorker` never imports Ray; the Ray backend wraps it in `ray.remote`, the
inline backend calls it directly. Cross-party messages arrive as resolved
arguments; the worker measures their size and, under a network model, sleeps for
the simulated transfer time before the step runs.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from cipherray.runtime.call import Call, unpack
from cipherray.runtime.config import NetworkModel
from cipherray.runtime.errors import CipherrayError, InputError, RangeError, StepError
from cipherray.runtime.payload import payload_nbytes

MAX_RECORDS = 200_000


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
        self._records: list[tuple] = []
        self._dropped = 0

    def run(self, call: Call, *values: Any) -> Any:
        start = time.time()
        net_s = 0.0
        msgs: list[tuple] = []
        if call.inbound:
            per_sender: dict[str, int] = {}
            for ib in call.inbound:
                nb = payload_nbytes(values[ib.slot])
                msgs.append((ib.msg_id, ib.src, nb, ib.tag))
                per_sender[ib.src] = per_sender.get(ib.src, 0) + nb
            if self.network is not None:
                # messages from different senders travel in parallel
                net_s = max(self.network.delay_s(nb) for nb in per_sender.values())
                time.sleep(net_s)
        t0 = time.perf_counter()
        if call.packed:
            args, kwargs = unpack(call.args, call.kwargs, values)
        else:
            args, kwargs = values, call.kwargs
        try:
            result = call.fn(*args, **kwargs)
        except CipherrayError:
            raise
        except Exception as e:
            raise _wrap(e, self.party, call.step) from e
        compute_s = time.perf_counter() - t0
        if len(self._records) < MAX_RECORDS:
            self._records.append((call.step_id, start, compute_s, net_s, tuple(msgs)))
        else:
            self._dropped += 1
        if call.num_returns > 1:
            result = tuple(result)
            if len(result) != call.num_returns:
                raise StepError(
                    self.party,
                    call.step,
                    f"step returned {len(result)} values, expected {call.num_returns}",
                )
        return result

    def drain_stats(self) -> tuple[list[tuple], int]:
        records, self._records = self._records, []
        dropped, self._dropped = self._dropped, 0
        return records, dropped

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


def _wrap(e: Exception, party: str, step: str) -> StepError:
    """Name the party and step; bad data (ValueError/TypeError) becomes InputError and
    values beyond the fixed-point range become RangeError."""
    msg = f"{type(e).__name__}: {e}"
    if isinstance(e, OverflowError):
        return RangeError(party, step, msg, e)
    if isinstance(e, ValueError | TypeError):
        return InputError(party, step, msg, e)
    return StepError(party, step, msg, e)
