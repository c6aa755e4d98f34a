"""`RuntimeEngine`: the protocols' `Engine` contract on the runtime.

Each `local` step is one task per member in that party's actor group; each message
goes through the runtime's channel (counted in the ledger under the current tag);
handles are the runtime's internal `Obj` refs, so the driver never sees a value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cipherray.protocols.mpc.engine import DEALER, PerParty, combine
from cipherray.runtime.call import receive
from cipherray.runtime.errors import ConfigError
from cipherray.runtime.refs import Obj

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime.mpc import MPC


def _local_step(fn: Callable, i: int, *args: Any, **kwargs: Any) -> Any:
    return fn(i, *args, **kwargs)


def _combine_step(op: str, *values: Any) -> Any:
    return combine(list(values), op)


class RuntimeEngine:
    def __init__(self, mpc: MPC):
        self.mpc = mpc
        self.rt = mpc._rt
        self.parties = mpc.parties
        self.n = len(mpc.parties)
        self.dealer = mpc.dealer
        self.has_dealer = mpc.dealer is not None

    def _party(self, who: Any):
        if who == DEALER:
            if self.dealer is None:
                raise ConfigError(
                    f"{self.mpc.name} has no dealer: create it with "
                    "rt.mpc(..., dealer='<party>') to use dealer-provided randomness"
                )
            return self.dealer
        return self.parties[who]

    @staticmethod
    def _arg(a: Any, i: int) -> Any:
        return a[i] if isinstance(a, PerParty) else a

    def local(self, fn: Callable, *args: Any, num_returns: int = 1, step: str = "local"):
        rt = self.rt
        outs = []
        for i, p in enumerate(self.parties):
            vals = tuple(self._arg(a, i) for a in args)
            r = rt._run_at(
                p,
                _local_step,
                (fn, i, *vals),
                {},
                step=step,
                num_returns=num_returns,
                location=self.mpc.name,
            )
            outs.append(r._obj if num_returns == 1 else tuple(x._obj for x in r))
        if num_returns == 1:
            return PerParty(outs)
        return tuple(PerParty(o[k] for o in outs) for k in range(num_returns))

    def open(self, values: PerParty, step: str = "open", op: str = "add") -> PerParty:
        rt = self.rt
        names = [p.name for p in self.parties]
        sends = [(values[i], names[j]) for i in range(self.n) for j in range(self.n) if i != j]
        msgs = rt._channel_round(step, sends)
        inbox: dict[str, list] = {nm: [] for nm in names}
        for m in msgs:
            inbox[m.dst].append(m)
        out = []
        for j, p in enumerate(self.parties):
            r = rt._run_at(
                p,
                _combine_step,
                (op, values[j], *inbox[p.name]),
                {},
                step=step,
                location=self.mpc.name,
            )
            out.append(r._obj)
        return PerParty(out)

    def open_to(self, values: PerParty, dst: int, step: str = "open", op: str = "add") -> Obj:
        rt = self.rt
        target = self.parties[dst]
        sends = [(values[i], target.name) for i in range(self.n) if i != dst]
        msgs = rt._channel_round(step, sends)
        r = rt._run_at(
            target, _combine_step, (op, values[dst], *msgs), {}, step=step, location=self.mpc.name
        )
        return r._obj

    def send(self, value: Obj, src: Any, dst: Any, step: str = "send") -> Obj:
        rt = self.rt
        s, d = self._party(src), self._party(dst)
        if value.party != s.name:
            raise ValueError(f"handle lives at '{value.party}', not '{s.name}'")
        (msg,) = rt._channel_round(step, [(value, d.name)])
        return rt._run_at(d, receive, (msg,), {}, step=step, location=self.mpc.name)._obj

    def run_at(self, who: Any, fn: Callable, *args: Any, num_returns: int = 1, step: str = "run"):
        p = self._party(who)
        r = self.rt._run_at(
            p, fn, args, {}, step=step, num_returns=num_returns, location=self.mpc.name
        )
        return r._obj if num_returns == 1 else tuple(x._obj for x in r)
