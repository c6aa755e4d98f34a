"""The Runtime: parties, locations, the channel, the ledger, the task graph, the audit.

`cipherray.init(...)` returns a Runtime. Every call returns refs; the runtime submits
one backend task per party step and records it in the task graph; every
cross-party message is routed through `_channel_round`, which counts it in the
ledger under the current protocol tag.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cipherray.runtime.audit import AuditLog, Disclosure, DisclosurePolicy
from cipherray.runtime.backends import Backend, make_backend
from cipherray.runtime.call import Call, Inbound, pack, receive
from cipherray.runtime.config import NetworkModel, parse_network, parse_parties
from cipherray.runtime.errors import (
    ConfigError,
    DisclosureError,
    LocationError,
    PartyError,
    PartyTimeoutError,
    ShutdownError,
)
from cipherray.runtime.graph import StepNode, TaskGraph, TransferEdge
from cipherray.runtime.ledger import Ledger
from cipherray.runtime.party import Party
from cipherray.runtime.refs import Obj, PartyRef, Ref, Transfer

DEFAULT_TIMEOUT_S = 300.0


class Runtime:
    """A running cipherray job: use `cipherray.init(...)` to make one."""

    def __init__(
        self,
        parties: Any,
        address: str | None = None,
        backend: str = "ray",
        network: Any = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ):
        specs = parse_parties(parties)
        if not isinstance(timeout_s, int | float) or timeout_s <= 0:
            raise ConfigError(f"timeout_s must be a positive number, got {timeout_s!r}")
        self.network: NetworkModel | None = parse_network(network)
        self.timeout_s = float(timeout_s)
        self._closed = False
        self._backend: Backend = make_backend(backend, address, self.timeout_s)
        self._backend.start(specs, self.network)
        self._parties = {s.name: Party(self, s) for s in specs}
        self.ledger = Ledger()
        self.ledger._refresh = self._pull_stats
        self.graph = TaskGraph()
        self.graph._refresh = self._pull_stats
        self.audit = AuditLog()
        self.policy = DisclosurePolicy()
        self._ids = itertools.count(1)
        self._scope: list[str] = []
        self._depth: dict[int, int] = {}  # step_id -> communication depth
        self.started = time.time()

    # ------------------------------------------------------------ public
    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def parties(self) -> list[Party]:
        return list(self._parties.values())

    def party(self, name: str | Party) -> Party:
        if isinstance(name, Party):
            name = name.name
        try:
            return self._parties[name]
        except KeyError:
            raise ConfigError(
                f"unknown party {name!r}; parties are {list(self._parties)}"
            ) from None

    def mpc(
        self,
        *parties: Party | str,
        frac_bits: int = 16,
        dealer: Party | str | None = None,
        provider: Any = None,
    ) -> Any:
        """An MPC location: additive secret sharing over Z_2^64 among `parties`.
        `dealer` names a party that plays the trusted dealer of correlated randomness
        (Beaver triples) for multiplications; `provider` may also be "dealer",
        "paillier" (two members, no dealer) or a Provider object."""
        from cipherray.runtime.mpc import MPC

        self._check_open()
        if len(parties) == 1 and isinstance(parties[0], list | tuple):
            parties = tuple(parties[0])
        members = [self.party(p) for p in parties]
        if len(members) < 2:
            raise ConfigError("an MPC location needs at least 2 parties")
        names = [p.name for p in members]
        if len(set(names)) != len(names):
            raise ConfigError(f"an MPC location lists a party twice: {names}")
        dealer_party = None if dealer is None else self.party(dealer)
        if dealer_party is not None and dealer_party.name in names:
            raise ConfigError(
                f"the dealer '{dealer_party.name}' must not be a member of the MPC location: "
                "a member that knows the triples could open everyone's masked values"
            )
        return MPC(self, members, frac_bits, dealer=dealer_party, provider=provider)

    def he(self, keyholder: Party | str, bits: int = 2048, insecure: bool = False) -> Any:
        """An HE location: Paillier under a key pair generated inside `keyholder`'s actor
        (2048-bit n by default; smaller only with insecure=True, for tests)."""
        from cipherray.runtime.he import HE

        self._check_open()
        return HE(self, self.party(keyholder), bits=bits, insecure=insecure)

    def get(self, ref: Any, timeout: float | None = None) -> Any:
        """The value of a PartyRef (or a list/tuple of them). Shared or encrypted
        values cannot be read: reveal them to a party first."""
        self._check_open()
        timeout = self.timeout_s if timeout is None else timeout
        single = not isinstance(ref, list | tuple)
        refs = [ref] if single else list(ref)
        objs = []
        for r in refs:
            if isinstance(r, PartyRef):
                objs.append(r._obj)
            elif isinstance(r, Ref):
                raise DisclosureError(
                    f"rt.get cannot read a {type(r).__name__}: its value is hidden from "
                    "everyone; reveal it with .reveal_to(party) and read that PartyRef"
                )
            else:
                raise TypeError(f"rt.get expects PartyRefs, got {type(r).__name__}")
        values = self._get_objs(objs, timeout)
        return values[0] if single else type(ref)(values) if isinstance(ref, tuple) else values

    @contextlib.contextmanager
    def scope(self, tag: str) -> Iterator[None]:
        """Tag the steps and messages inside with a protocol namespace, e.g. 'epoch3'."""
        self._scope.append(str(tag))
        try:
            yield
        finally:
            self._scope.pop()

    def kill_worker(self, party: str | Party, index: int = 0) -> None:
        """Fault injection: kill one worker of a party (tests, chaos drills)."""
        self._backend.kill(self.party(party).name, index)

    def where(self, party: str | Party) -> list[dict]:
        """Where each worker of a party runs (node id, host, pid)."""
        p = self.party(party)
        return [
            self._backend.call_worker(w, "where", self.timeout_s)
            for w in self._backend.workers(p.name)
        ]

    def shutdown(self) -> None:
        if self._closed:
            return
        try:
            self._pull_stats()
        except Exception:
            pass
        self._closed = True
        self._backend.shutdown()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.backend
        return f"<cipherray Runtime {state} parties={list(self._parties)}>"

    # ------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed:
            raise ShutdownError("this cipherray runtime was shut down; call cipherray.init again")

    def _tag(self, name: str) -> str:
        return "/".join([*self._scope, name]) if self._scope else name

    def _step_name(self, obj: Obj) -> str:
        node = self.graph.nodes.get(obj.step_id)
        return node.step if node else f"step{obj.step_id}"

    def _describe(self, objs: Sequence[Obj]) -> Callable[[Any], tuple[str, str]]:
        by_future = {o.fut: o for o in objs}  # Ray ObjectRefs and inline futures hash

        def describe(fut: Any) -> tuple[str, str]:
            o = by_future.get(fut)
            if o is None:
                return ("?", "?")
            return (o.party, self._step_name(o))

        return describe

    def _get_objs(self, objs: Sequence[Obj], timeout: float) -> list:
        futs = [o.fut for o in objs]
        return self._backend.get(futs, timeout, self._describe(objs))

    def _wait_ready(self, ref: PartyRef) -> None:
        ready, _ = self._backend.wait([ref._obj.fut], 1, self.timeout_s)
        if not ready:
            raise PartyTimeoutError(
                ref._obj.party, self._step_name(ref._obj), f"no answer within {self.timeout_s:g} s"
            )

    def _channel_round(self, tag: str, sends: Sequence[tuple[Obj, str]]) -> list[Transfer]:
        """One communication round: each (obj, dst) becomes a counted message.

        All messages of one call travel concurrently; the round's number is 1 + the
        deepest communication depth among the sending steps."""
        tag = self._tag(tag)
        rnd = 1 + max((self._depth.get(obj.step_id, 0) for obj, _ in sends), default=0)
        out, edges = [], []
        for obj, dst in sends:
            if obj.party == dst:
                raise LocationError("a channel message must go to another party")
            msg_id = next(self._ids)
            out.append(Transfer(obj, dst, tag, msg_id, rnd))
            edges.append((msg_id, obj.party, dst, rnd))
        self.ledger.add_messages(tag, edges)
        return out

    def _run_at(
        self,
        party: Party,
        fn: Callable,
        args: tuple,
        kwargs: dict,
        step: str,
        num_returns: int = 1,
        worker: int | None = None,
        location: str | None = None,
    ) -> Any:
        """Submit one step at `party`; returns a PartyRef (or a tuple of them)."""
        self._check_open()
        name = party.name
        inbound: list[Inbound] = []
        inputs: list[int] = []
        transfers: list[Transfer] = []

        def is_ref(v: Any) -> bool:
            return isinstance(v, Ref | Obj | Transfer)

        def to_object(v: Any) -> Any:
            slot = len(inputs_objs)
            if isinstance(v, PartyRef):
                if v._party.name != name:
                    raise LocationError(
                        f"step '{step}' at party '{name}' was given a value that lives at "
                        f"party '{v._party.name}'; move it with .to(...) first"
                    )
                v = v._obj
            elif isinstance(v, Ref):
                raise LocationError(
                    f"step '{step}' at party '{name}' was given a {type(v).__name__} at "
                    f"{v.location!r}; only values at '{name}' can be used here"
                )
            if isinstance(v, Transfer):
                if v.dst != name:
                    raise LocationError(f"message {v.msg_id} is addressed to '{v.dst}'")
                inbound.append(Inbound(slot, v.obj.party, v.msg_id, v.tag))
                transfers.append(v)
                inputs.append(v.obj.step_id)
                inputs_objs.append(v.obj)
                return v.obj.fut
            if v.party != name:
                raise LocationError(f"internal value of '{v.party}' used at '{name}'")
            inputs.append(v.step_id)
            inputs_objs.append(v)
            return v.fut

        inputs_objs: list[Obj] = []
        if not kwargs and all(type(a) is PartyRef for a in args):
            # fast path: positional refs of this party, resolved by the backend
            objects, p_args, p_kwargs, packed = [to_object(a) for a in args], (), {}, False
        else:
            p_args, p_kwargs, objects, packed = pack(args, kwargs, is_ref, to_object)
            if not packed:  # no refs at all: the arguments travel as they are
                objects, p_args, p_kwargs = list(args), (), kwargs
        step_id = next(self._ids)
        depth = 0
        for o in inputs_objs:
            depth = max(depth, self._depth.get(o.step_id, 0))
        for t in transfers:
            depth = max(depth, t.round)
        if depth:
            self._depth[step_id] = depth
        full_step = self._tag(step)
        call = Call(fn, full_step, step_id, p_args, p_kwargs, tuple(inbound), num_returns, packed)
        w_index = party._next_worker() if worker is None else worker
        w = self._backend.workers(name)[w_index]
        fut = self._backend.submit(w, call, objects)
        self.graph.add_step(StepNode(step_id, full_step, location or name, name, w_index, inputs))
        for t in transfers:
            self.graph.add_transfer(
                TransferEdge(t.msg_id, t.obj.step_id, step_id, t.obj.party, name, t.tag)
            )
        if num_returns == 1:
            return PartyRef(self, Obj(fut, name, step_id), party)
        return tuple(PartyRef(self, Obj(f, name, step_id), party) for f in fut)

    def _pull_stats(self) -> None:
        if self._closed:
            return
        for party in self._parties.values():
            for w in self._backend.workers(party.name):
                try:
                    records, _dropped = self._backend.call_worker(w, "drain_stats", self.timeout_s)
                except PartyError:
                    continue
                for step_id, start, compute_s, net_s, msgs in records:
                    self.ledger.compute_s += compute_s
                    self.ledger.network_s += net_s
                    node = self.graph.nodes.get(step_id)
                    if node is not None:
                        node.start, node.compute_s, node.network_s = start, compute_s, net_s
                    for msg_id, _src, nbytes, _tag in msgs:
                        self.ledger.merge(msg_id, nbytes)
                        edge = self.graph.transfers.get(msg_id)
                        if edge is not None:
                            edge.nbytes = nbytes

    def _reveal_plaintext(self, ref: PartyRef, party: Party | str) -> PartyRef:
        self._check_open()
        dst = self.party(party)
        if dst.name == ref.party.name:
            return ref
        d = Disclosure(
            kind="plaintext",
            source=ref.party.name,
            members=(ref.party.name,),
            to=dst.name,
            step=self._step_name(ref._obj),
            tag=self._tag("reveal"),
            what=f"plaintext of '{ref.party.name}'",
        )
        rule = self.policy.check(d)
        self.audit.record(d, rule)
        (msg,) = self._channel_round("reveal", [(ref._obj, dst.name)])
        return self._run_at(dst, receive, (msg,), {}, step="receive")


def init(
    parties: Any,
    address: str | None = None,
    backend: str = "ray",
    network: Any = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Runtime:
    """Start a cipherray job.

    parties   ["bank", "insurer"] or {"bank": {"workers": 2, "gpus": 0}, ...}
    address   None: embedded single-node Ray; "auto" or "ray://host:10001": a cluster
              whose nodes offer the resource `party:<name>` for every party
    backend   "ray" (default) or "inline" (same process, deterministic)
    network   None, "lan", "wan" or {"latency_ms": .., "bandwidth_mbps": ..}
    timeout_s every wait gives up after this many seconds with PartyTimeoutError
    """
    return Runtime(parties, address=address, backend=backend, network=network, timeout_s=timeout_s)
