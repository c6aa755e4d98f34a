"""`RuntimeEngine`: the protocols' `Engine` contract on the runtime.

Each `local` step is one step per member in that party's worker; each message goes
from the sending worker to the receiving worker through the runtime's channel
(counted in the ledger under the current tag). Handles are the runtime's value
handles, so the driver never sees a value.

An open's messages are checked at each receiver against its own value
(`silo.expect.Like`: the same kind, dtype and shape), so a member that sends something
else is named (`WireError`) before any step uses it; `send` (a provider's correlated
randomness, an OT message) is checked at the receiver by the protocol's own check
(`expect=`, `protocols.mpc.messages`, made from the receiver's parameters), the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cipherray.protocols.mpc.engine import DEALER, PerParty, combine
from cipherray.runtime.call import identity
from cipherray.runtime.errors import ConfigError
from cipherray.runtime.silo.expect import Check, Like
from cipherray.runtime.values import Handle

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime.party import Party
    from cipherray.runtime.shared import MPC


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

    def _party(self, who: Any) -> Party:
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

    def _at(self, p: Party, fn: Callable, args: tuple, num_returns: int, step: str):
        hs = self.rt._step(p, fn, args, step=step, num_returns=num_returns, location=self.mpc.name)
        return hs[0] if num_returns == 1 else tuple(hs)

    def local(self, fn: Callable, *args: Any, num_returns: int = 1, step: str = "local"):
        outs = []
        for i, p in enumerate(self.parties):
            vals = tuple(self._arg(a, i) for a in args)
            outs.append(self._at(p, _local_step, (fn, i, *vals), num_returns, step))
        if num_returns == 1:
            return PerParty(outs)
        return tuple(PerParty(o[k] for o in outs) for k in range(num_returns))

    def open(self, values: PerParty, step: str = "open", op: str = "add") -> PerParty:
        names = [p.name for p in self.parties]
        pairs = [(i, j) for i in range(self.n) for j in range(self.n) if i != j]
        sends = [(values[i], names[j]) for i, j in pairs]
        # each member expects the others' values in the form of its own (dtype, shape)
        msgs = self.rt._messages(step, sends, [Like(values[j]) for _, j in pairs])
        inbox: dict[str, list] = {nm: [] for nm in names}
        for m in msgs:
            inbox[m.dst].append(m)
        return PerParty(
            self._at(p, _combine_step, (op, values[j], *inbox[p.name]), 1, step)
            for j, p in enumerate(self.parties)
        )

    def open_to(self, values: PerParty, dst: int, step: str = "open", op: str = "add") -> Handle:
        target = self.parties[dst]
        sends = [(values[i], target.name) for i in range(self.n) if i != dst]
        msgs = self.rt._messages(step, sends, Like(values[dst]))
        return self._at(target, _combine_step, (op, values[dst], *msgs), 1, step)

    def send(
        self, value: Handle, src: Any, dst: Any, step: str = "send", expect: Any = None
    ) -> Handle:
        s, d = self._party(src), self._party(dst)
        if value.party != s.name:
            raise ValueError(f"handle lives at '{value.party}', not '{s.name}'")
        want = None if expect is None else Check(expect)
        (msg,) = self.rt._messages(step, [(value, d.name)], want)
        return self._at(d, identity, (msg,), 1, step)

    def run_at(self, who: Any, fn: Callable, *args: Any, num_returns: int = 1, step: str = "run"):
        return self._at(self._party(who), fn, args, num_returns, step)
