"""The Runtime: parties, locations, the channel, the ledger, the task graph, the audit.

`cipherray.init(...)` returns a Runtime. Every call returns refs. A step runs in one
worker of a party and its results stay in that worker's store; the driver keeps
handles (`values.Handle`). A value crosses to another worker or party only as a
message that the sending worker puts into the object store itself and the receiving
worker pulls: actor to actor, never through the driver. Messages between parties are
counted in the ledger under the current protocol tag and recorded in the task graph.

The public message API is `rt.send(ref, to=party, tag=...)` (policy-checked:
declared protocol messages pass, anything else needs the owners' grants); reveals go
through `ref.reveal_to(party)`, conversions through `ref.to(location)` (one table:
conversions.py).

Cross-silo mode (`init(party=..., addresses=..., tls=...)`): every organisation runs the
same script, and this process runs only its own party's steps. A step of another party
submits nothing but takes the same ids as in that party's process, so a message between
two parties has the same number in both: the sender's process sends it over the silo
transport under `TAG#NUMBER` (a typed value, `silo.wire.pack_value`), the receiver's
process receives it when the step that needs it runs, and the receiving worker checks it
against what this process's own script expects of it (`Message.expect`, `silo.expect`:
an MPC open's shares have the form of the receiver's own, `rt.send(..., expect=...)`)
before the step runs: WireError naming the sender and the tag otherwise, broadcast to
every party, the sender included. A message between two other parties is not this
process's business. Hence the rule: a script's control flow may depend only on what
every party knows (configuration, `rt.here`, published values, public shapes). Each
process checks the disclosures of values that leave its own party, against its own
grants; the ledger counts the messages this party sent and received.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cipherray.runtime import conversions
from cipherray.runtime.backends import Backend, InlineBackend, SiloSpec, make_backend
from cipherray.runtime.call import Call, Inbox, Key, identity, pack, refs_in
from cipherray.runtime.config import (
    NetworkModel,
    parse_network,
    parse_parties,
    parse_populations,
)
from cipherray.runtime.encrypted import HE
from cipherray.runtime.errors import (
    CipherrayError,
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
from cipherray.runtime.policy import AuditLog, Disclosure, DisclosurePolicy
from cipherray.runtime.refs import PartyRef, Ref
from cipherray.runtime.shared import MPC
from cipherray.runtime.silo.expect import Check, Expect, Like
from cipherray.runtime.values import AGGREGATE, PUBLISHED, Handle, Meta

DEFAULT_TIMEOUT_S = 300.0


class Message:
    """A value on its way from one party (or worker) to another: a counted channel
    message when `msg_id` > 0, an uncounted move between workers of one party else.
    `expect`: what the receiving step expects of it (see `silo.expect`), made by this
    process's own script; the receiving worker checks the value against it."""

    __slots__ = ("handle", "dst", "tag", "msg_id", "round", "future", "expect")

    def __init__(
        self, handle: Handle, dst: str, tag: str, msg_id: int, rnd: int, future: Any,
        expect: Any = None,
    ):  # fmt: skip
        self.handle = handle
        self.dst = dst
        self.tag = tag
        self.msg_id = msg_id
        self.round = rnd
        self.future = future
        self.expect = expect

    def __reduce__(self):
        raise TypeError("a message cannot be pickled: pass it to a step of its receiver")


class _Remote:
    """The receipt of a step that runs in another organisation's process (cross-silo)."""

    def __repr__(self) -> str:
        return "<remote>"


REMOTE = _Remote()


class Runtime:
    """A running cipherray job: use `cipherray.init(...)` to make one."""

    def __init__(
        self,
        parties: Any,
        address: str | None = None,
        backend: str = "ray",
        network: Any = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        driver_as: str | Sequence[str] | None = None,
        populations: Any = None,
        party: str | None = None,
        addresses: dict[str, str] | None = None,
        tls: Any = None,
        job: str = "cipherray",
    ):
        silo = None
        if party is not None or addresses is not None or tls is not None:
            parties, silo = _parse_silo(parties, party, addresses, tls, job, timeout_s, populations)
        specs = parse_parties(parties)
        specs += parse_populations(populations, {s.name for s in specs})
        if not isinstance(timeout_s, int | float) or timeout_s <= 0:
            raise ConfigError(f"timeout_s must be a positive number, got {timeout_s!r}")
        names = [s.name for s in specs]
        if silo is not None:
            if set(names) != set(silo.addresses):
                raise ConfigError(
                    f"cross-silo: the parties {names} and the addresses "
                    f"{sorted(silo.addresses)} must name the same parties"
                )
            driver_as = silo.party  # this process acts for its own organisation only
        # the parties whose steps run in this process (None: all, simulation mode)
        self._here: frozenset[str] | None = None if silo is None else frozenset([silo.party])
        self.driver_as = _parse_driver_as(driver_as, names)
        self.network: NetworkModel | None = parse_network(network)
        self.timeout_s = float(timeout_s)
        self._closed = False
        self._tables: Any = None
        self._published: dict[int, tuple[str, str]] = {}  # remote value id -> (owner, tag)
        self._sending: list[tuple[int | None, Any]] = []  # (msg_id, future of its size)
        self._public_values: dict[int, Any] = {}
        self._backend: Backend = make_backend(backend, address, self.timeout_s)
        local_specs = [s for s in specs if self._is_local(s.name)]
        if silo is not None:
            self._backend.start_silo(silo)
        try:
            self._backend.start(local_specs, self.network)
        except BaseException:
            self._backend.silo_close()
            raise
        self._parties = {s.name: Party(self, s) for s in specs}
        self.ledger = Ledger()
        self.ledger._refresh = self._pull_stats
        self.graph = TaskGraph()
        self.graph._refresh = self._pull_stats
        self.audit = AuditLog()
        self.policy = DisclosurePolicy(parties=tuple(names))
        self._ids = itertools.count(1)
        self._scope: list[str] = []
        self._receipts: dict[int, tuple[Any, int]] = {}  # value id -> (receipt future, index)
        self._free: dict[tuple[str, int], list[int]] = defaultdict(list)
        self.started = time.time()

    # ------------------------------------------------------------ public
    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def here(self) -> str | None:
        """Cross-silo mode: the party this process runs (None in simulation, where this
        process runs every party)."""
        return None if self._here is None else next(iter(self._here))

    def is_local(self, party: str | Party) -> bool:
        """Whether `party`'s steps run in this process (always, in simulation). In
        cross-silo mode a script may branch on it: which process runs which party is
        public."""
        return self._is_local(self.party(party).name)

    @property
    def parties(self) -> list[Party]:
        """The ordinary parties (populations are listed by `rt.populations`)."""
        return [p for p in self._parties.values() if not p.clients]

    @property
    def populations(self) -> list[Party]:
        """Virtual-client populations (`init(..., populations=...)`)."""
        return [p for p in self._parties.values() if p.clients]

    def population(self, name: str) -> Party:
        """A population by name: a party whose workers host `clients` virtual clients
        (see `Party.chunks`)."""
        p = self.party(name)
        if not p.clients:
            raise ConfigError(f"'{name}' is a party, not a population")
        return p

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
        check_overflow: bool = False,
    ) -> MPC:
        """An MPC location: additive secret sharing over Z_2^64 among `parties`.
        `dealer` names a party that plays the trusted dealer of correlated randomness
        (Beaver triples) for multiplications; without one, two parties get an
        OTProvider (oblivious transfer, every operation). `provider` may also be
        "dealer", "ot", "paillier" (two members, no dealer, products only) or a
        Provider object. `check_overflow=True`
        checks every product of two shared values against its domain (|x*y| < 2^30 for
        16 fractional bits) and raises RangeError naming the step if any element is
        beyond it, revealing only how many are (costs a comparison: see the README)."""
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
        return MPC(
            self, members, frac_bits, dealer=dealer_party, provider=provider,
            check_overflow=check_overflow,
        )  # fmt: skip

    def he(self, keyholder: Party | str, bits: int = 2048, insecure: bool = False) -> HE:
        """An HE location: Paillier under a key pair generated inside `keyholder`'s actor
        (2048-bit n by default; smaller only with insecure=True, for tests)."""
        self._check_open()
        return HE(self, self.party(keyholder), bits=bits, insecure=insecure)

    @property
    def table(self) -> Any:
        """Joint tables: `rt.table({bank: df_ref, insurer: df_ref}, on="id",
        dealer="dealer")` joins two parties' tables privately; `rt.table.union(h1_ref,
        h2_ref, ...)` stacks same-schema tables (workloads/analytics/table.py)."""
        if self._tables is None:
            from cipherray.workloads.analytics.table import TableFactory

            self._tables = TableFactory(self)
        return self._tables

    def get(self, ref: Any, timeout: float | None = None) -> Any:
        """The value of a PartyRef (or a list/tuple of them) that the driver may read:
        one revealed to a party, or any value at a party the driver runs as
        (`init(..., driver_as=...)`). Anything else raises DisclosureError."""
        self._check_open()
        timeout = self.timeout_s if timeout is None else timeout
        single = not isinstance(ref, list | tuple)
        refs = [ref] if single else list(ref)
        for r in refs:
            self._check_driver_reads(r)
        try:
            values = self._read([r._h for r in refs], timeout)
        except PartyError as e:
            self._fail(e)
            raise
        return values[0] if single else type(ref)(values) if isinstance(ref, tuple) else values

    def wait(self, *refs: Ref, timeout: float | None = None) -> None:
        """Wait until the steps that compute `refs` have finished (reads nothing; a
        failed step raises its error here)."""
        self._check_open()
        handles: list[Handle] = []
        for r in refs:
            if isinstance(r, list | tuple):
                self.wait(*r, timeout=timeout)
                continue
            if not isinstance(r, Ref):
                raise TypeError(f"rt.wait expects refs, got {type(r).__name__}")
            handles.extend(h for h in r._handles() if self._is_local(h.party))
        try:
            self._receipts_for(handles, timeout)
        except PartyError as e:
            self._fail(e)
            raise

    def send(
        self, ref: PartyRef, to: Party | str, tag: str, worker: int | None = None,
        expect: Expect | None = None,
    ) -> PartyRef:  # fmt: skip
        """Send a party's value to another party as a protocol message (counted in the
        ledger under `tag`, recorded in the graph and the audit). Allowed when `tag`
        names a message that a registered protocol declares (`rt.protocol(...)`), or
        when every owner of the value granted it to `to`; else DisclosureError.
        `worker` picks the worker of `to` that receives it (a population's workers
        each fetch it from there; default: the next worker in turn).

        `expect` (a `cipherray.Expect`) is what the receiving party must get, checked at
        the receiver when the message arrives, before any step uses it:
        ``Expect.array(np.uint64, (n, None))`` (dtype; shape, None for any length, a name
        such as "n" for a length that is the same wherever it appears),
        ``Expect.bytes(32)``, ``Expect.tuple(...)`` of those, ``max_bytes``. Anything
        else raises WireError naming the sender and the tag at the receiver (and, cross-
        silo, the failure is broadcast to the other parties). It is the receiver's own
        script's expectation: in cross-silo mode every party runs this line, and only the
        receiver's process checks; the sender's message never says what it should be.
        None: any value the wire format allows."""
        self._check_open()
        if not isinstance(ref, PartyRef):
            raise LocationError(
                f"rt.send sends a party's value; got a {type(ref).__name__} (use .to or reveal_to)"
            )
        dst = self.party(to)
        if worker is not None and not 0 <= worker < dst.spec.workers:
            raise ConfigError(f"'{dst.name}' has workers 0..{dst.spec.workers - 1}, not {worker}")
        if dst.name == ref.party.name:
            return ref
        full = self._tag(tag)
        d = Disclosure(
            form="plaintext",
            source=ref.party.name,
            members=(ref.party.name,),
            to=dst.name,
            step=full,
            tag=full,
            meta=ref.meta,
            protocol_message=self.policy.protocol_message(full),
        )
        if expect is not None and not isinstance(expect, Expect):
            raise TypeError(f"rt.send: expect must be a cipherray.Expect, not {expect!r}")
        self._authorise(d)
        meta = ref.meta.with_(revealed_to=dst.name)
        return self._deliver(ref, dst, tag, meta, worker, expect)

    def protocol(self, name: str, messages: dict[str, str]) -> None:
        """Register protocol `name` and the messages it sends ({"blinded": "what it
        discloses"}); `rt.send(..., tag="name/blinded")` is then allowed."""
        self.policy.declare_protocol(name, messages)

    @contextlib.contextmanager
    def scope(self, tag: str) -> Iterator[None]:
        """Tag the steps and messages inside with a protocol namespace, e.g. 'epoch3'."""
        self._scope.append(str(tag))
        try:
            yield
        finally:
            self._scope.pop()

    @contextlib.contextmanager
    def record_messages(self) -> Iterator[list]:
        """Inline backend only, for security tests: collect every counted message as
        (src, dst, tag, payload) while the block runs."""
        backend = self._backend
        if not isinstance(backend, InlineBackend):
            raise ConfigError("record_messages needs backend='inline'")
        sink: list = []
        backend.recorder = sink
        try:
            yield sink
        finally:
            backend.recorder = None

    def kill_worker(self, party: str | Party, index: int = 0) -> None:
        """Fault injection: kill one worker of a party (tests, chaos drills)."""
        self._backend.kill(self._local_party(party).name, index)

    def where(self, party: str | Party) -> list[dict]:
        """Where each worker of a party runs (node id, host, pid)."""
        p = self._local_party(party)
        return [
            self._backend.call_worker(w, "where", self.timeout_s)
            for w in self._backend.workers(p.name)
        ]

    def held(self, party: str | Party) -> int:
        """How many values the workers of `party` hold now (freed values are gone)."""
        self._flush_free(self._local_party(party).name)
        return sum(
            self._backend.call_worker(w, "held", self.timeout_s)
            for w in self._backend.workers(self.party(party).name)
        )

    def shutdown(self) -> None:
        if self._closed:
            return
        if self._here is not None:
            import sys

            exc = sys.exc_info()[1]  # the script is unwinding from an error: say so
            if isinstance(exc, PartyError):
                self._fail(exc)
            elif exc is not None:
                self._fail(PartyError(self.here, "script", type(exc).__name__))
        try:
            self._pull_stats()  # after the failure is told: sends to a failed job end
        except Exception:
            pass
        self._closed = True
        self._receipts.clear()
        try:
            self._backend.silo_close()
        finally:
            self._backend.shutdown()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.backend
        return f"<cipherray Runtime {state} parties={list(self._parties)}>"

    # ------------------------------------------------------------ internals
    # (used by the runtime's own modules only: refs, locations, conversions, engine)
    def _is_local(self, party: str) -> bool:
        return self._here is None or party in self._here

    def _local_party(self, party: str | Party) -> Party:
        p = self.party(party)
        if not self._is_local(p.name):
            raise LocationError(
                f"party '{p.name}' runs in another organisation's process, not in this one "
                f"('{self.here}')"
            )
        return p

    def _fail(self, error: PartyError) -> None:
        """Cross-silo: tell the other processes that the job failed (once)."""
        if self._here is not None:
            try:
                self._backend.silo_fail(error)
            except Exception:  # pragma: no cover - best effort
                pass

    def _check_open(self) -> None:
        if self._closed:
            raise ShutdownError("this cipherray runtime was shut down; call cipherray.init again")

    def _tag(self, name: str) -> str:
        return "/".join([*self._scope, name]) if self._scope else name

    def _step_name(self, h: Handle) -> str:
        node = self.graph.nodes.get(h.step_id)
        return node.step if node else f"step{h.step_id}"

    def _check_driver_reads(self, r: Any) -> None:
        if isinstance(r, PartyRef) and not self._is_local(r.party.name):
            if r._h.id in self._published:
                return
            raise DisclosureError(
                f"rt.get: {r.meta.describe()} at party '{r.party.name}' (step "
                f"'{self._step_name(r._h)}') lives in that organisation's process; this "
                f"process ('{self.here}') reads its own party's values and published ones"
            )
        if isinstance(r, PartyRef):
            m = r.meta
            if m.revealed_to is not None or r.party.name in self.driver_as:
                return
            raise DisclosureError(
                f"rt.get: the driver may not read {m.describe()} at party "
                f"'{r.party.name}' (step '{self._step_name(r._h)}'): it reads values "
                "revealed to a party, or a party's values with init(..., "
                f"driver_as='{r.party.name}')"
            )
        if isinstance(r, Ref):
            raise DisclosureError(
                f"rt.get cannot read a {type(r).__name__}: its value is hidden from "
                "everyone; reveal it with .reveal_to(party) and read that PartyRef"
            )
        raise TypeError(f"rt.get expects PartyRefs, got {type(r).__name__}")

    def _authorise(self, d: Disclosure) -> str:
        if self._here is not None and not set(d.members) & self._here:
            # cross-silo: the value leaves another organisation, whose process checks
            # its own grants; nothing this script declares can allow or stop that
            rule = "checked by " + ", ".join(d.members)
            self.audit.record(d, rule)
            return rule
        rule = self.policy.check(d)
        self.audit.record(d, rule)
        return rule

    def _release(self, h: Handle) -> None:
        """A handle was dropped: forget its receipt and have its worker free the value
        with the worker's next call."""
        if self._closed:
            return
        self._receipts.pop(h.id, None)
        if self._is_local(h.party):
            self._free[(h.party, h.worker)].append(h.id)

    def _flush_free(self, party: str) -> None:
        if not self._is_local(party):
            return
        for i in range(len(self._backend.workers(party))):
            if self._free.get((party, i)):
                self._step(self._parties[party], _nothing, (), step="free", worker=i)

    def _describe(self, futs: Sequence[Any], names: Sequence[tuple[str, str]]):
        by_future = {id(f): n for f, n in zip(futs, names)}

        def describe(fut: Any) -> tuple[str, str]:
            return by_future.get(id(fut), ("?", "?"))

        return describe

    def _receipt(self, h: Handle) -> tuple[Any, int]:
        try:
            return self._receipts[h.id]
        except KeyError:
            raise ShutdownError(
                "this value's runtime was shut down or the value was freed"
            ) from None

    def _receipts_for(
        self, handles: Sequence[Handle], timeout: float | None = None
    ) -> list[tuple[Any, int]]:
        """(receipt, result index) of the steps that made `handles`: waits for them, and
        a failed step raises its error naming its party and step."""
        steps: dict[int, tuple[Any, tuple[str, str]]] = {}
        for h in handles:
            if not self._is_local(h.party):
                raise LocationError(
                    f"the value of step '{self._step_name(h)}' lives at party '{h.party}', "
                    f"which runs in another organisation's process (this one runs "
                    f"'{self.here}')"
                )
        recs = [self._receipt(h) for h in handles]
        for (fut, _), h in zip(recs, handles):
            steps.setdefault(id(fut), (fut, (h.party, self._step_name(h))))
        futs = [f for f, _ in steps.values()]
        got = self._backend.get(
            futs, self.timeout_s if timeout is None else timeout,
            self._describe(futs, [name for _, name in steps.values()]),
        )  # fmt: skip
        by_future = {id(f): rec for f, rec in zip(futs, got)}
        return [(by_future[id(fut)], idx) for fut, idx in recs]

    def _read(self, handles: Sequence[Handle], timeout: float) -> list:
        """The values behind `handles`, for the driver (callers check the policy)."""
        names = [(h.party, self._step_name(h)) for h in handles]
        out: list[Any] = [None] * len(handles)
        public = [k for k, h in enumerate(handles) if not self._is_local(h.party)]
        for k in public:
            out[k] = self._public_value(handles[k])
        handles = [h if k not in public else None for k, h in enumerate(handles)]
        mine = [(k, h) for k, h in enumerate(handles) if h is not None]
        fetch, fetch_at = [], []
        receipts = self._receipts_for([h for _, h in mine], timeout)
        for (k, h), (rec, idx) in zip(mine, receipts):
            if rec.values is not None:
                out[k] = rec.values[idx]
            else:
                worker = self._backend.workers(h.party)[h.worker]
                fetch.append(self._backend.fetch(worker, h.id))
                fetch_at.append(k)
        if fetch:
            got = self._backend.get(
                fetch, timeout, self._describe(fetch, [names[k] for k in fetch_at])
            )
            for k, v in zip(fetch_at, got):
                out[k] = v
        return out

    def _public_value(self, h: Handle) -> Any:
        """A value its owner in another organisation published: sent to every party
        when its step ran (see `_publish`), received here once."""
        if h.id not in self._public_values:
            owner, tag = self._published[h.id]
            self._public_values[h.id] = self._backend.silo_get(owner, tag)
        return self._public_values[h.id]

    def _publish(self, handles: Sequence[Handle]) -> None:
        """Cross-silo: a published value (`declare="public"`) goes to every party's
        process as its step finishes, so every copy of the script can read it."""
        for h in handles:
            tag = f"publish#{h.id}"
            if not self._is_local(h.party):
                self._published[h.id] = (h.party, tag)
                continue
            for p in self._parties:  # every other organisation's process
                if p != h.party:
                    self._silo_send(p, tag, h)

    def _silo_send(self, dst: str, tag: str, h: Handle, msg_id: int | None = None) -> None:
        """Send a value of this process's party to `dst`'s process (its worker hands it
        to the transport); message `msg_id` is counted in the ledger with the size the
        backend reports (now, or for Ray when the gateway has sent it: every send is
        waited for before the job ends)."""
        fut, _ = self._receipt(h)  # the value must still be named
        worker = self._backend.workers(h.party)[h.worker]
        guards = [fut] if h.guarded else []
        try:
            nbytes = self._backend.silo_forward(worker, h.id, guards, dst, tag)
        except PartyError as e:
            self._fail(e)
            raise
        if isinstance(nbytes, int):
            if msg_id is not None:
                self.ledger.merge(msg_id, nbytes)
        else:
            self._sending.append((msg_id, nbytes))

    def _shared_shape(self, shares: Sequence[Handle]) -> tuple:
        """The public shape of a shared value, from a share held here. Cross-silo, a
        process that holds none (a dealer's) gets it from the first member's process,
        which sends it to every such party when the script asks (every process asks at
        the same point of the same script)."""
        local = [h for h in shares if self._is_local(h.party)]
        first = shares[0]
        if local:
            m = self._meta_of(local[0])
            shape = tuple(m[0]) if m is not None else ()
            if self._here is not None and self._is_local(first.party):
                holders = {h.party for h in shares}
                for p in self._parties:
                    if p not in holders:
                        self._backend.silo_send_value(p, f"shape#{first.id}", list(shape))
            return shape
        got = self._backend.silo_get(first.party, f"shape#{first.id}")
        if type(got) is not list or not all(type(n) is int and n >= 0 for n in got):
            raise PartyError(first.party, f"shape#{first.id}", "sent a malformed shape")
        return tuple(got)

    def _meta_of(self, h: Handle) -> tuple | None:
        """(shape, dtype) of a value, from its step's receipt (waits for the step)."""
        ((rec, idx),) = self._receipts_for([h])
        return rec.metas[idx]

    def _wait(self, h: Handle) -> None:
        if not self._is_local(h.party):
            return
        fut, _ = self._receipt(h)
        ready, _ = self._backend.wait([fut], 1, self.timeout_s)
        if not ready:
            self._backend.cancel([fut])
            raise PartyTimeoutError(
                h.party, self._step_name(h), f"no answer within {self.timeout_s:g} s"
            )

    def _messages(
        self, tag: str, sends: Sequence[tuple[Handle, str]], expect: Any = None
    ) -> list[Message]:
        """One communication round: each (handle, dst party) becomes a counted message.

        All messages of one call travel concurrently; the round's number is 1 + the
        deepest communication depth among the values sent. `expect`: what the receiving
        step expects of each message (`silo.expect`: an `Expect`, or `Like(handle)` of a
        handle among the receiving step's inputs), one for all or a list, one per send;
        the receiving worker checks the value (WireError naming the sender)."""
        tag = self._tag(tag)
        expects = list(expect) if isinstance(expect, list) else [expect] * len(sends)
        if len(expects) != len(sends):
            raise ValueError(f"{len(expects)} expectations for {len(sends)} messages")
        rnd = 1 + max((h.depth for h, _ in sends), default=0)
        out, edges, sent = [], [], []
        emitted: dict[int, Any] = {}  # a value sent to several parties is put once
        for (h, dst), want in zip(sends, expects):
            if h.party == dst:
                raise LocationError("a channel message must go to another party")
            msg_id = next(self._ids)
            src_here, dst_here = self._is_local(h.party), self._is_local(dst)
            fut = None
            if src_here and dst_here:
                if h.id not in emitted:
                    emitted[h.id] = self._emit(h, tag)
                fut = emitted[h.id]
            elif src_here:  # to another organisation's process, over the transport
                sent.append((dst, f"{tag}#{msg_id}", h, msg_id))
            elif dst_here:  # from another organisation: received when the step runs
                fut = self._backend.silo_recv(h.party, f"{tag}#{msg_id}")
            out.append(Message(h, dst, tag, msg_id, rnd, fut, want))
            if src_here or dst_here:  # each process counts what it sends and receives
                edges.append((msg_id, h.party, dst, rnd))
        self.ledger.add_messages(tag, edges)
        for send in sent:
            self._silo_send(*send)
        return out

    def _emit(self, h: Handle, step: str = "send") -> Any:
        """The sending worker puts the value into the object store (it owns that copy;
        it goes when the receiving steps are done with it). `step`: the message's tag,
        which a failure of the sender names."""
        fut, _ = self._receipt(h)  # the value must still be named
        worker = self._backend.workers(h.party)[h.worker]
        return self._backend.emit(worker, h.id, [fut] if h.guarded else [], step)

    def _deliver(
        self, ref: PartyRef, dst: Party, tag: str, meta: Meta, worker: int | None = None,
        expect: Any = None,
    ) -> PartyRef:  # fmt: skip
        """Move a party's value to `dst` as one counted message (policy already checked);
        `expect`: what `dst` must receive (see `_messages`)."""
        (msg,) = self._messages(tag, [(ref._h, dst.name)], expect)
        (h,) = self._step(
            dst, identity, (msg,), step=f"{tag}/receive", eager=dst.name in self.driver_as,
            worker=worker,
        )  # fmt: skip
        return PartyRef(self, h, dst, meta)

    def _step(
        self,
        party: Party,
        fn: Callable,
        args: tuple,
        kwargs: dict | None = None,
        *,
        step: str,
        num_returns: int = 1,
        worker: int | None = None,
        location: str | None = None,
        eager: bool = False,
    ) -> list[Handle]:
        """Submit one step at `party`: `fn(*args, **kwargs)` where refs, handles and
        messages in the arguments become the values they name. Returns one handle per
        result (the results stay in the worker's store)."""
        self._check_open()
        name = party.name
        full_step = self._tag(step)
        p_args, p_kwargs, leaves = pack(args, kwargs or {}, _is_input, lambda v: v)
        inputs = [self._input_at(v, name, full_step) for v in leaves]
        if worker is None:
            held = [v.worker for v in inputs if isinstance(v, Handle)]
            worker = held[0] if held else party._next_worker()
        if not self._is_local(name):
            return self._remote_step(party, full_step, inputs, worker, num_returns, location)
        wiring = self._wire(inputs, name, worker)
        step_id = next(self._ids)
        out_ids = tuple(next(self._ids) for _ in range(num_returns))
        free = tuple(self._free.pop((name, worker), ()))
        call = Call(
            fn, full_step, step_id, p_args, p_kwargs, tuple(wiring.sources), out_ids, eager,
            free, self.timeout_s, tuple(wiring.dep_parties),
        )  # fmt: skip
        fut = self._backend.submit(self._backend.workers(name)[worker], call, wiring.deps)
        node = StepNode(step_id, full_step, location or name, name, worker, wiring.steps)
        self.graph.add_step(node)
        for t in wiring.messages:
            self.graph.add_transfer(
                TransferEdge(t.msg_id, t.handle.step_id, step_id, t.handle.party, name, t.tag)
            )
        outs = []
        guarded = bool(wiring.deps)
        for k, oid in enumerate(out_ids):
            self._receipts[oid] = (fut, k)
            outs.append(Handle(oid, name, worker, step_id, wiring.depth, self._release, guarded))
        return outs

    def _remote_step(
        self, party: Party, step: str, inputs: list, worker: int, num_returns: int,
        location: str | None,
    ) -> list[Handle]:  # fmt: skip
        """A step of a party that runs in another organisation's process: nothing runs
        here, but it takes the same ids as there (every process runs the same script),
        so that the messages it sends and receives get the same numbers everywhere."""
        name = party.name
        step_id = next(self._ids)
        out_ids = tuple(next(self._ids) for _ in range(num_returns))
        depth, steps = 0, []
        for v in inputs:
            if isinstance(v, Message):
                depth, src = max(depth, v.round), v.handle
                steps.append(src.step_id)
                if self._is_local(src.party):
                    self.graph.add_transfer(
                        TransferEdge(v.msg_id, src.step_id, step_id, src.party, name, v.tag)
                    )
            else:
                depth = max(depth, v.depth)
                steps.append(v.step_id)
        self.graph.add_step(StepNode(step_id, step, location or name, name, worker, steps))
        outs = []
        for k, oid in enumerate(out_ids):
            self._receipts[oid] = (REMOTE, k)
            outs.append(Handle(oid, name, worker, step_id, depth, self._release))
        return outs

    @staticmethod
    def _input_at(v: Any, party: str, step: str) -> Handle | Message:
        """A step's input as a handle or message of `party`, or LocationError."""
        if isinstance(v, PartyRef):
            if v.party.name != party:
                raise LocationError(
                    f"step '{step}' at party '{party}' was given a value that lives "
                    f"at party '{v.party.name}'; move it with .to(...) first"
                )
            return v._h
        if isinstance(v, Ref):
            raise LocationError(
                f"step '{step}' at party '{party}' was given a {type(v).__name__} "
                f"at {v.location!r}; only values at '{party}' can be used here"
            )
        if isinstance(v, Message):
            if v.dst != party:
                raise LocationError(f"message {v.msg_id} is addressed to '{v.dst}'")
            return v
        if v.party != party:
            raise LocationError(f"internal value of '{v.party}' used at '{party}'")
        return v

    def _wire(self, inputs: list, party: str, worker: int) -> _Wiring:
        """Where each input comes from at `worker`: its store, a counted message, or a
        move from another worker of the party; plus the receipts that carry an earlier
        failure along (values whose step waited for messages)."""
        w = _Wiring()
        guards: dict[Any, str] = {}
        for v in inputs:
            if isinstance(v, Message):
                want = _expect_at(v, inputs)
                w.add_dep(
                    Inbox(len(w.deps), v.handle.party, v.msg_id, v.tag, want), v.future,
                    v.handle.party,
                )  # fmt: skip
                w.messages.append(v)
                w.steps.append(v.handle.step_id)
                w.depth = max(w.depth, v.round)
                continue
            w.steps.append(v.step_id)
            w.depth = max(w.depth, v.depth)
            if v.worker == worker:
                w.sources.append(Key(v.id))
                if v.guarded:
                    guards[self._receipt(v)[0]] = v.party
            else:  # held by another worker of this party: an uncounted move
                w.add_dep(Inbox(len(w.deps), party), self._emit(v), party)
        for receipt, p in guards.items():  # not arguments: they only carry a failure along
            w.deps.append(receipt)
            w.dep_parties.append(p)
        return w

    def _party_call(
        self,
        party: Party,
        fn: Callable,
        args: tuple,
        kwargs: dict,
        step: str,
        num_returns: int = 1,
        declare: str | None = None,
        rows: int | None = None,
        worker: int | None = None,
    ) -> Any:
        """`party(fn)(*args, **kwargs)`: the results are PartyRefs whose provenance is
        this party plus the owners of the refs among the arguments."""
        owners = {party.name}
        for r in refs_in(args, kwargs):
            if not isinstance(r, Ref):
                raise LocationError(
                    f"step '{self._tag(step)}' at party '{party.name}' was given an internal "
                    f"{type(r).__name__}; pass refs"
                )
            owners |= r.meta.owners
        if declare is None:
            meta = Meta(frozenset(owners))
        elif declare == PUBLISHED:
            meta = Meta(frozenset(), AGGREGATE, None, None, revealed_to=PUBLISHED)
        else:
            meta = Meta(frozenset(owners), AGGREGATE, rows, None)
        hs = self._step(
            party, fn, args, kwargs, step=step, num_returns=num_returns, worker=worker,
            eager=party.name in self.driver_as,
        )  # fmt: skip
        if declare == PUBLISHED and self._here is not None:
            self._publish(hs)
        refs = tuple(PartyRef(self, h, party, meta) for h in hs)
        return refs[0] if num_returns == 1 else refs

    def _convert(self, ref: Ref, location: Any) -> Ref:
        self._check_open()
        return conversions.convert(self, ref, location)

    def _reveal(self, ref: Ref, party: Party | str) -> PartyRef:
        self._check_open()
        return conversions.reveal(self, ref, self.party(party))

    def _pull_stats(self) -> None:
        if self._closed:
            return
        if self._sending:  # messages to other organisations, counted by the sender
            sending, self._sending = self._sending, []
            for msg_id, fut in sending:
                try:
                    nbytes = self._backend.silo_sent(fut)
                except CipherrayError:
                    continue  # not sent: the failure was broadcast and is raised elsewhere
                if msg_id is not None:
                    self.ledger.merge(msg_id, nbytes)
        for party in self._parties.values():
            if not self._is_local(party.name):
                continue
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


def _nothing() -> None:
    return None


def _expect_at(msg: Message, inputs: list) -> Any:
    """A message's expectation as the receiving worker checks it: `Like(handle)` becomes
    `Like(position of that handle among the step's inputs)` (one argument slot each),
    and so does a `Check`'s `of`."""
    want = msg.expect
    if not isinstance(want, Like | Check) or want.of is None or isinstance(want.of, int):
        return want
    for k, v in enumerate(inputs):
        if isinstance(v, Handle) and v.id == want.of.id:
            return Like(k) if isinstance(want, Like) else Check(want.fn, k)
    raise LocationError(
        f"message {msg.msg_id} ('{msg.tag}') expects the form of a value that is not an "
        "input of its receiving step"
    )


def _is_input(v: Any) -> bool:
    return isinstance(v, Ref | Handle | Message)


class _Wiring:
    """How a step's inputs reach its worker (see Runtime._wire)."""

    def __init__(self) -> None:
        self.sources: list = []  # Key | Inbox per argument slot
        self.deps: list = []  # futures the backend resolves: messages, then guards
        self.dep_parties: list[str] = []  # who each dependency comes from
        self.messages: list[Message] = []  # the counted ones, for the graph
        self.steps: list[int] = []  # the steps that made the inputs
        self.depth = 0

    def add_dep(self, inbox: Inbox, future: Any, party: str) -> None:
        self.sources.append(inbox)
        self.deps.append(future)
        self.dep_parties.append(party)


def _parse_driver_as(driver_as: Any, names: list[str]) -> frozenset[str]:
    if driver_as is None:
        return frozenset()
    items = [driver_as] if isinstance(driver_as, str) else list(driver_as)
    for p in items:
        if p not in names:
            raise ConfigError(f"driver_as names unknown party {p!r}; parties are {names}")
    return frozenset(items)


def _parse_silo(
    parties: Any, party: Any, addresses: Any, tls: Any, job: Any, timeout_s: float,
    populations: Any = None,
) -> tuple[Any, SiloSpec]:  # fmt: skip
    """(parties, SiloSpec) of `init(party=..., addresses=..., tls=...)`. Every process,
    population or party, has an address; `parties` defaults to the addresses that are not
    populations (a population's organisation hosts its clients on its own workers)."""
    from cipherray.runtime.silo.certs import TLS

    if not isinstance(party, str) or not isinstance(addresses, dict) or not addresses:
        raise ConfigError(
            "cross-silo mode needs party='<this party>', addresses={party: 'host:port', ...} "
            "for every party, and tls=cr.TLS(...) (or cr.TLS.from_dir(dir, party))"
        )
    if party not in addresses:
        raise ConfigError(f"addresses has no entry for this party '{party}'")
    if isinstance(tls, str | os.PathLike):  # a directory as `cipherray certs` writes it
        tls = TLS.from_dir(tls, party)
    if not isinstance(tls, TLS):
        raise ConfigError(
            "cross-silo mode needs tls=cr.TLS(cert=..., key=..., ca=...) or the directory "
            "of `cipherray certs` (DIR/ca.crt, DIR/<party>.crt, DIR/<party>.key)"
        )
    if parties is None:
        hosted = set(populations) if isinstance(populations, dict) else set()
        parties = [p for p in addresses if p not in hosted]
    if not isinstance(job, str) or not job:
        raise ConfigError(f"job must be a non-empty string, got {job!r}")
    return parties, SiloSpec(party, addresses, tls, job, float(timeout_s))


def init(
    parties: Any = None,
    address: str | None = None,
    backend: str = "ray",
    network: Any = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    driver_as: str | Sequence[str] | None = None,
    populations: Any = None,
    *,
    party: str | None = None,
    addresses: dict[str, str] | None = None,
    tls: Any = None,
    job: str = "cipherray",
) -> Runtime:
    """Start a cipherray job.

    parties   ["bank", "insurer"] or {"bank": {"workers": 2, "gpus": 0}, ...}
    address   None: embedded single-node Ray; "auto" or "ray://host:10001": a cluster
              whose nodes offer the resource `party:<name>` for every party
    backend   "ray" (default) or "inline" (same process, deterministic)
    network   None, "lan", "wan" or {"latency_ms": .., "bandwidth_mbps": ..}
    timeout_s every wait gives up after this many seconds with PartyTimeoutError
    driver_as the party (or parties) the driver acts for: it may read their values
              with rt.get; without it, only values revealed to some party
    populations {"phones": {"clients": 10000, "workers": 2}}: virtual clients run in
              chunks on a small actor pool that requests `party:phones` (spread over
              every node that offers it)

    Cross-silo mode (each organisation runs the same script with its own `party`):
    party     the party this process runs; only its steps run here
    addresses {party: "host:port"} for every party and every population (parties
              defaults to its keys that are not populations): a population is hosted by
              its own organisation's process, its clients on that process's workers
    tls       this party's identity, cr.TLS(cert=..., key=..., ca=...), or the
              directory `cipherray certs` wrote
    job       a name the parties agree on; messages of another job are refused
    The script's control flow may depend only on values every party can read (public
    configuration, published and revealed-to-all values): each process takes the same
    branches, so its steps and messages get the same ids as at the other parties.
    """
    if parties is None and addresses is None:
        raise ConfigError("init needs parties=[...] (or, cross-silo, party= and addresses=)")
    return Runtime(
        parties,
        address=address,
        backend=backend,
        network=network,
        timeout_s=timeout_s,
        driver_as=driver_as,
        populations=populations,
        party=party,
        addresses=addresses,
        tls=tls,
        job=job,
    )
