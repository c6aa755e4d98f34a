"""Execution backends: `RayBackend` (default) and `InlineBackend` (same process).

A backend knows how to start each party's actor group, submit a `Call` to one
worker, and wait for results with a timeout. Protocol and workload code never sees
which backend runs it.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Sequence
from typing import Any

from cipherray.runtime.call import Call, Inbox
from cipherray.runtime.config import NetworkModel, PartySpec
from cipherray.runtime.errors import (
    CipherrayError,
    ConfigError,
    PartyError,
    PartyTimeoutError,
    PlacementError,
    StepError,
    WireError,
)
from cipherray.runtime.payload import payload_nbytes
from cipherray.runtime.worker import PartyWorker, keep_freed_memory

PARTY_RESOURCE = "party:{}"


class Worker:
    """A handle to one worker of a party's actor group."""

    __slots__ = ("party", "index", "handle")

    def __init__(self, party: str, index: int, handle: Any):
        self.party = party
        self.index = index
        self.handle = handle


class Backend:
    """Interface every backend implements."""

    name = "base"

    def start(self, specs: Sequence[PartySpec], network: NetworkModel | None) -> None:
        raise NotImplementedError

    def workers(self, party: str) -> list[Worker]:
        raise NotImplementedError

    def submit(self, worker: Worker, call: Call, deps: list) -> Any:
        """Run `call` on `worker` once `deps` (message futures) are ready; returns the
        future of the step's `Receipt`."""
        raise NotImplementedError

    def emit(self, worker: Worker, key: int, guards: list, step: str = "send") -> Any:
        """A future of the message form of value `key` held by `worker`, once the
        `guards` (receipts of the step that made it) are ready; a failure names `step`
        (the message's tag)."""
        raise NotImplementedError

    def fetch(self, worker: Worker, key: int) -> Any:
        """A future of value `key` held by `worker`, for the driver."""
        raise NotImplementedError

    def get(self, futures: list, timeout: float, describe) -> list:
        raise NotImplementedError

    def wait(self, futures: list, num_returns: int, timeout: float) -> tuple[list, list]:
        raise NotImplementedError

    def cancel(self, futures: list) -> None:
        """Cancel steps that did not answer in time (no actor stays blocked on them)."""

    def call_worker(self, worker: Worker, method: str, timeout: float) -> Any:
        raise NotImplementedError

    def kill(self, party: str, index: int = 0) -> None:
        raise NotImplementedError

    def shutdown(self) -> None:
        raise NotImplementedError

    # -- cross-silo: this process's endpoint towards the other organisations' processes
    def start_silo(self, silo: SiloSpec) -> None:
        raise ConfigError(f"the {self.name} backend does not run in cross-silo mode yet")

    def silo_send(self, dst: str, tag: str, future: Any) -> int:
        """Send the value of `future` (emitted by a local worker) to party `dst`'s
        process under `tag`; returns its size as the ledger counts it."""
        raise NotImplementedError

    def silo_forward(self, worker: Worker, key: int, guards: list, dst: str, tag: str) -> int | Any:
        """Send value `key` held by `worker` (once its `guards` are ready) to party
        `dst`'s process under `tag`: its size as the ledger counts it, or a future of it
        (`silo_sent`). By default the value is emitted and sent by the driver's side."""
        return self.silo_send(dst, tag, self.emit(worker, key, guards, tag))

    def silo_sent(self, future: Any) -> int:
        """The size of a message `silo_forward` sent, once it was sent."""
        (nbytes,) = self.get([future], self.timeout_s, lambda _f: ("", "send"))
        return nbytes

    def silo_recv(self, src: str, tag: str) -> Any:
        """A future of the value party `src`'s process sends under `tag` (a dependency
        of the receiving step: it fails with PartyTimeoutError naming `src` if late)."""
        raise NotImplementedError

    def silo_get(self, src: str, tag: str) -> Any:
        """The value party `src`'s process sends under `tag`, for the driver."""
        raise NotImplementedError

    def silo_send_value(self, dst: str, tag: str, value: Any) -> None:
        """Send public metadata the driver holds (a shape) to party `dst`'s process."""
        raise NotImplementedError

    def silo_fail(self, error: PartyError) -> None:
        """Tell the other organisations' processes that this job failed."""

    def silo_close(self) -> None:
        """Say goodbye to the other processes (waiting for theirs) and close."""


class SiloSpec:
    """This process's place in a cross-silo job (see `runtime.init(party=...)`)."""

    __slots__ = ("party", "addresses", "tls", "job", "timeout_s")

    def __init__(self, party: str, addresses: dict, tls: Any, job: str, timeout_s: float):
        self.party = party
        self.addresses = dict(addresses)
        self.tls = tls
        self.job = job
        self.timeout_s = timeout_s


class SiloEndpoint:
    """The transport of one process, with the runtime's typed value encoding: values are
    packed with `wire.pack_value` (never pickled) and checked on arrival."""

    CLOSE = "cipherray/close"

    def __init__(self, silo: SiloSpec, serve: bool = True):
        """`serve`: listen on this party's address (receive); without it, a client that
        only sends (a Ray worker's own, towards the other organisations' endpoints)."""
        from cipherray.runtime.silo.transport import Transport

        self.transport = Transport(
            silo.party, silo.addresses, silo.tls, job=silo.job, timeout_s=silo.timeout_s
        )
        if serve:
            self.transport.start()
        self._sending: list = []  # sends under way (the step after a send need not wait)

    def send(self, dst: str, tag: str, value: Any, wait: bool = False) -> int:
        """Send `value` to `dst`; returns its size as the ledger counts it. The send goes
        on in the transport's threads unless `wait`; a send that failed raises at the
        next send (a peer that did not answer was already broadcast as failed)."""
        from cipherray.runtime.silo import wire

        self._check_sent()
        try:
            packed = wire.pack_value(value)
        except TypeError as e:
            raise StepError(self.transport.party, tag, f"cannot send to '{dst}': {e}") from None
        if wait:
            self.transport.send(dst, tag, packed)
        else:
            self._sending.append(self.transport.send_async(dst, tag, packed))
        return payload_nbytes(value)

    def _check_sent(self, wait: bool = False) -> None:
        if wait:
            for f in self._sending:
                f.exception()  # waits
        done = [f for f in self._sending if f.done()]
        self._sending = [f for f in self._sending if not f.done()]
        for f in done:
            if f.exception() is not None:
                raise f.exception()

    def recv(self, src: str, tag: str) -> Any:
        """The value `src` sent under `tag`. A malformed message (WireError naming `src`)
        is broadcast as this job's failure at once, `src` included, so nobody waits on a
        job that has failed here."""
        from cipherray.runtime.silo import wire

        try:
            return wire.unpack_value(self.transport.recv(src, tag), src, tag)
        except WireError as e:
            self.fail(e)
            raise

    def fail(self, error: PartyError) -> None:
        self.transport.broadcast_failure(error)

    def close(self) -> None:
        t = self.transport
        try:
            self._check_sent(wait=True)
            if t.failure is None:
                for p in t.peers:
                    t.send(p, self.CLOSE, b"")
                for p in t.peers:
                    t.recv(p, self.CLOSE)
        except CipherrayError:
            pass  # a peer that failed or left: nothing more to wait for
        finally:
            t.close()


# ---------------------------------------------------------------- inline


class InlineFuture:
    """A finished result (or the exception that replaced it)."""

    __slots__ = ("value", "error")

    def __init__(self, value: Any = None, error: BaseException | None = None):
        self.value = value
        self.error = error


class Arrival:
    """A message from another organisation's process, received when the step that
    needs it runs (an `InlineFuture` whose value or error comes from the transport)."""

    __slots__ = ("_get", "_done", "_value", "_error")

    def __init__(self, get: Any):
        self._get = get
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def _resolve(self) -> None:
        if not self._done:
            try:
                self._value = self._get()
            except CipherrayError as e:
                self._error = e
            self._done = True
            self._get = None

    @property
    def value(self) -> Any:
        self._resolve()
        return self._value

    @property
    def error(self) -> BaseException | None:
        self._resolve()
        return self._error


class InlineBackend(Backend):
    """Runs every step at once in the calling process; deterministic, for debugging."""

    name = "inline"

    def __init__(self) -> None:
        self._workers: dict[str, list[Worker]] = {}
        self._dead: set[tuple[str, int]] = set()
        self.recorder: list | None = None  # see Runtime.record_messages
        self._silo: SiloEndpoint | None = None

    def start_silo(self, silo: SiloSpec) -> None:
        self._silo = SiloEndpoint(silo)

    def silo_send(self, dst: str, tag: str, future: Any) -> int:
        if future.error is not None:
            raise future.error
        return self._silo.send(dst, tag, future.value)

    def silo_recv(self, src: str, tag: str) -> Any:
        silo = self._silo
        return Arrival(lambda: silo.recv(src, tag))

    def silo_get(self, src: str, tag: str) -> Any:
        return self._silo.recv(src, tag)

    def silo_send_value(self, dst: str, tag: str, value: Any) -> None:
        self._silo.send(dst, tag, value)

    def silo_fail(self, error: PartyError) -> None:
        if self._silo is not None:
            self._silo.fail(error)

    def silo_close(self) -> None:
        if self._silo is not None:
            silo, self._silo = self._silo, None
            silo.close()

    def start(self, specs: Sequence[PartySpec], network: NetworkModel | None) -> None:
        for spec in specs:
            self._workers[spec.name] = [
                Worker(spec.name, i, PartyWorker(spec.name, i, network))
                for i in range(spec.workers)
            ]

    def workers(self, party: str) -> list[Worker]:
        return self._workers[party]

    def _dead_error(self, worker: Worker, step: str) -> PartyError:
        return PartyError(worker.party, step, f"worker {worker.index} is dead")

    def submit(self, worker: Worker, call: Call, deps: list) -> Any:
        if (worker.party, worker.index) in self._dead:
            return InlineFuture(error=self._dead_error(worker, call.step))
        values = []
        for f in deps:
            if f.error is not None:
                worker.handle.run(_failing_call(call, f.error))  # marks the outputs failed
                return InlineFuture(error=f.error)
            values.append(f.value)
        for src in call.sources:  # a message is a copy, never an alias of the sender's data
            if isinstance(src, Inbox):
                v = values[src.dep]
                if not isinstance(deps[src.dep], Arrival):  # (one from the wire is a copy)
                    v = pickle.loads(pickle.dumps(v, protocol=5))
                values[src.dep] = v
                if self.recorder is not None and src.counted:
                    self.recorder.append((src.src, worker.party, src.tag, v))
        try:
            return InlineFuture(worker.handle.run(call, *values))
        except WireError as e:  # a message not what the step expects: the job failed
            self.silo_fail(e)
            return InlineFuture(error=e)
        except CipherrayError as e:
            return InlineFuture(error=e)

    def emit(self, worker: Worker, key: int, guards: list, step: str = "send") -> Any:
        if (worker.party, worker.index) in self._dead:
            return InlineFuture(error=self._dead_error(worker, step))
        for g in guards:
            if g.error is not None:
                return InlineFuture(error=g.error)
        try:
            return InlineFuture(worker.handle.emit(key, step=step))
        except CipherrayError as e:
            return InlineFuture(error=e)

    def fetch(self, worker: Worker, key: int) -> Any:
        if (worker.party, worker.index) in self._dead:
            return InlineFuture(error=self._dead_error(worker, "get"))
        try:
            return InlineFuture(worker.handle.fetch(key))
        except CipherrayError as e:
            return InlineFuture(error=e)

    def get(self, futures: list, timeout: float, describe) -> list:
        out = []
        for f in futures:
            if f.error is not None:
                raise f.error
            out.append(f.value)
        return out

    def wait(self, futures: list, num_returns: int, timeout: float) -> tuple[list, list]:
        return list(futures[:num_returns]), list(futures[num_returns:])

    def call_worker(self, worker: Worker, method: str, timeout: float) -> Any:
        if (worker.party, worker.index) in self._dead:
            raise self._dead_error(worker, method)
        return getattr(worker.handle, method)()

    def kill(self, party: str, index: int = 0) -> None:
        self._dead.add((party, index))

    def shutdown(self) -> None:
        self._workers.clear()


def _raise(e: BaseException) -> Any:
    raise e


def _failing_call(call: Call, error: BaseException) -> Call:
    """A copy of `call` whose function raises `error`: the worker stores the failure
    under the call's outputs, so later steps that use them fail the same way."""
    return Call(_raise, call.step, call.step_id, (error,), {}, (), call.outputs, False, call.free)


# ---------------------------------------------------------------- ray


def _ray_worker_class():
    """PartyWorker as a Ray actor: a message is an object the sender puts into the
    object store itself (so the sender owns it and it stays on the sender's node until
    the receiver pulls it); the receiver gets it with a timeout."""
    import ray

    class RayPartyWorker(PartyWorker):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            keep_freed_memory()  # this is the actor's own process
            self._sender: SiloEndpoint | None = None  # cross-silo: see `forward`

        def emit(self, key: int, guards: list, step: str = "send") -> list:
            if guards:
                ray.get(guards)  # re-raises the failure of the step that made the value
            return [ray.put(self._load(key, step))]

        def forward(
            self, key: int, guards: list, gateway: Any, dst: str, tag: str, silo: SiloSpec
        ) -> int:
            """Cross-silo: send value `key` to `dst`'s endpoint from this worker (its own
            client with this organisation's identity: no hop through the gateway, which
            receives); returns its size once `dst` acknowledged it. A failure (of the
            value, or of the send) is told to the other organisations through the
            gateway, then raised."""
            try:
                if guards:
                    ray.get(guards)
                value = self._load(key, tag)
            except ray.exceptions.RayTaskError as e:
                cause = getattr(e, "cause", None)
                err = cause if isinstance(cause, PartyError) else None
                err = err or PartyError(self.party, tag, f"the value to send failed ({e})")
                _tell_gateway(gateway, err)
                raise
            except PartyError as err:
                _tell_gateway(gateway, err)
                raise
            if self._sender is None:
                self._sender = SiloEndpoint(silo, serve=False)
                self._sender.transport.failure_hook = lambda: _gateway_failure(gateway)
            try:
                return self._sender.send(dst, tag, value, wait=True)
            except PartyError as err:
                _tell_gateway(gateway, err)
                raise

        def resolve(self, call: Call, deps: tuple) -> tuple:
            # the dependencies travel nested, so that Ray starts the step at once and the
            # wait happens here, with a timeout and the late party's name
            (refs,) = deps
            if not refs:
                return ()
            ready, pending = ray.wait(refs, num_returns=len(refs), timeout=call.timeout_s)
            if pending:
                late = call.dep_parties[refs.index(pending[0])]
                raise PartyTimeoutError(
                    late, call.step, f"its message did not arrive within {call.timeout_s:g} s"
                )
            out = []
            for ref, src in zip(refs, call.dep_parties):
                try:
                    out.append(ray.get(ref))
                except ray.exceptions.RayTaskError as e:
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, CipherrayError):
                        raise cause from None
                    raise PartyError(
                        src, call.step, f"its message failed ({type(cause).__name__})"
                    ) from None
                except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as e:
                    raise PartyError(
                        src,
                        call.step,
                        f"its worker died or its message was lost ({type(e).__name__})",
                    ) from None
            return tuple(out)

        def open_message(self, msg: Any, inbox: Inbox, call: Call) -> Any:
            (ref,) = msg
            if not isinstance(ref, ray.ObjectRef):  # from another organisation (`recv`)
                return ref
            try:
                return ray.get(ref, timeout=call.timeout_s)
            except ray.exceptions.GetTimeoutError as e:
                raise PartyTimeoutError(
                    inbox.src, call.step, f"its message did not arrive within {call.timeout_s:g} s"
                ) from e
            except (ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError) as e:
                raise PartyError(
                    inbox.src, call.step, f"its message was lost ({type(e).__name__})"
                ) from None

    return ray.remote(RayPartyWorker)


def _tell_gateway(gateway: Any, err: PartyError) -> None:
    """Have this organisation's gateway broadcast `err` to the other organisations."""
    import ray

    try:
        ref = gateway.fail.remote(err.party, err.step, err.reason, isinstance(err, WireError))
        ray.get(ref, timeout=10)
    except Exception:
        pass  # the gateway is gone: the other organisations time out on this party


def _gateway_failure(gateway: Any) -> PartyError | None:
    """The failure this organisation's gateway was told of, if any."""
    import ray

    try:
        return ray.get(gateway.failure.remote(), timeout=10)
    except Exception:
        return None


def _gateway_class():
    """This organisation's endpoint on Ray (as RayFed's proxy actor): one actor holds the
    transport's server; a message from another organisation is received by the gateway
    and returned as the result of its `recv` task, which the receiving step reads. A
    message to another organisation is sent by the local worker that holds the value,
    with a client of its own (`RayPartyWorker.forward`); the gateway sends what the
    driver holds (public metadata) and broadcasts failures."""
    import ray

    class Gateway:
        def __init__(self, silo: SiloSpec):
            keep_freed_memory()  # the actor's own process: messages' arrays reuse memory
            self.party = silo.party
            self.error: CipherrayError | None = None
            try:
                self.endpoint = SiloEndpoint(silo)
            except CipherrayError as e:  # told by `ready` (an actor that dies says less)
                self.error = e

        def ready(self) -> None:
            if self.error is not None:
                raise self.error

        def failure(self) -> PartyError | None:
            return self.error or self.endpoint.transport.failure

        @ray.method(concurrency_group="recv")
        def recv(self, src: str, tag: str) -> list:
            # the value itself, not a reference to it: the receiving step reads it from
            # this task's result (one object, owned by the driver) without another lookup
            return [self.endpoint.recv(src, tag)]

        @ray.method(concurrency_group="recv")
        def get(self, src: str, tag: str) -> Any:
            return self.endpoint.recv(src, tag)

        @ray.method(concurrency_group="send")
        def send_value(self, dst: str, tag: str, value: Any) -> int:
            return self.endpoint.send(dst, tag, value, wait=True)

        def fail(self, party: str, step: str, reason: str, wire: bool = False) -> None:
            self.endpoint.fail((WireError if wire else PartyError)(party, step, reason))

        def close(self) -> None:
            if self.error is None:
                self.endpoint.close()

    # receives wait in their own threads, in the order the driver asked for them (each
    # needs only older messages to have arrived); sends wait for their values in others,
    # so a send can never hold the thread a receive it depends on needs
    return ray.remote(concurrency_groups={"recv": 512, "send": 64})(Gateway)


class RayBackend(Backend):
    """Party actor groups on Ray: embedded single node, or a running cluster."""

    name = "ray"

    def __init__(self, address: str | None = None, timeout_s: float = 300.0):
        import ray

        self.ray = ray
        self.address = address
        self.timeout_s = timeout_s
        self._workers: dict[str, list[Worker]] = {}
        self._actor_party: dict[str, tuple[str, int]] = {}
        self._started_ray = False
        self._silo: SiloSpec | None = None
        self._gateway: Any = None

    # -- start
    def _init_ray(self, specs: Sequence[PartySpec]) -> None:
        ray = self.ray
        quiet = {"logging_level": "ERROR", "log_to_driver": False, "include_dashboard": False}
        if self.address is None:
            if ray.is_initialized():
                self._check_resources(specs, ray.cluster_resources(), "the running Ray")
                return
            resources = {PARTY_RESOURCE.format(s.name): float(max(s.workers, 1)) for s in specs}
            gpus = sum(s.gpus for s in specs)
            kwargs: dict[str, Any] = {
                "address": "local",  # embedded: a new local Ray, never someone's cluster
                "resources": resources,
                "num_cpus": max(os.cpu_count() or 1, 1),
                "namespace": "cipherray",
                **quiet,
            }
            if gpus:
                kwargs["num_gpus"] = int(max(1, round(gpus + 0.4999)))
            _export_sys_path()
            ray.init(**kwargs)
            self._started_ray = True
        else:
            if ray.is_initialized():
                ray.shutdown()
            ray.init(
                address=self.address,
                namespace="cipherray",
                **{k: v for k, v in quiet.items() if k != "include_dashboard"},
            )
            self._started_ray = True
            self._check_resources(specs, ray.cluster_resources(), f"the cluster at {self.address}")

    @staticmethod
    def _check_resources(specs: Sequence[PartySpec], have: dict, where: str) -> None:
        for s in specs:
            key = PARTY_RESOURCE.format(s.name)
            if have.get(key, 0) <= 0:
                res = json.dumps({key: max(s.workers, 1)})
                raise PlacementError(
                    f"party '{s.name}' has no node in {where}: no node offers the Ray "
                    f"resource '{key}'. Start one with:\n"
                    f"    ray start --address=<head-ip>:6379 --resources='{res}'\n"
                    f"(or add it to the head: ray start --head --resources='{res}')"
                )

    def start(self, specs: Sequence[PartySpec], network: NetworkModel | None) -> None:
        ray = self.ray
        self._init_ray(specs)
        cls = _ray_worker_class()
        pending = []
        for s in specs:
            group = []
            for i in range(s.workers):
                opts: dict[str, Any] = {
                    "resources": {PARTY_RESOURCE.format(s.name): 0.001},
                    "num_cpus": 0.01,
                    "max_restarts": 0,
                }
                if s.gpus and i == 0:
                    opts["num_gpus"] = s.gpus
                if s.clients:  # a population's pool spreads over every node offering it
                    opts["scheduling_strategy"] = "SPREAD"
                has_gpu = bool(s.gpus) and i == 0
                handle = cls.options(**opts).remote(s.name, i, network, not has_gpu)
                group.append(Worker(s.name, i, handle))
                self._actor_party[handle._actor_id.hex()] = (s.name, i)
                pending.append((s.name, handle.ping.remote()))
            self._workers[s.name] = group
        deadline = time.monotonic() + self.timeout_s
        for party, ref in pending:
            left = max(deadline - time.monotonic(), 0.01)
            try:
                ray.get(ref, timeout=left)
            except ray.exceptions.GetTimeoutError as e:
                raise PartyTimeoutError(
                    party, "start", f"actor did not start within {self.timeout_s:.0f} s"
                ) from e
        if self._silo is not None:
            opts = {
                "resources": {PARTY_RESOURCE.format(self._silo.party): 0.001},
                "num_cpus": 0.01,
                "max_restarts": 0,
                "max_concurrency": 8,  # ready, fail, close (recv and send: their groups)
            }
            self._gateway = _gateway_class().options(**opts).remote(self._silo)
            party = self._silo.party
            self.get([self._gateway.ready.remote()], self.timeout_s, lambda _f: (party, "start"))

    # -- cross-silo
    def start_silo(self, silo: SiloSpec) -> None:
        self._silo = silo  # the gateway starts with the workers, once Ray is up

    def silo_forward(self, worker: Worker, key: int, guards: list, dst: str, tag: str) -> Any:
        return worker.handle.forward.remote(key, list(guards), self._gateway, dst, tag, self._silo)

    def silo_recv(self, src: str, tag: str) -> Any:
        return self._gateway.recv.remote(src, tag)

    def silo_get(self, src: str, tag: str) -> Any:
        ref = self._gateway.get.remote(src, tag)
        return self.get([ref], self.timeout_s + 5, lambda _f: (src, tag))[0]

    def silo_send_value(self, dst: str, tag: str, value: Any) -> None:
        ref = self._gateway.send_value.remote(dst, tag, value)
        self.get([ref], self.timeout_s + 5, lambda _f: (dst, tag))

    def silo_fail(self, error: PartyError) -> None:
        if self._gateway is not None:
            try:
                ref = self._gateway.fail.remote(
                    error.party, error.step, error.reason, isinstance(error, WireError)
                )
                self.ray.get(ref, timeout=10)
            except Exception:
                pass

    def silo_close(self) -> None:
        if self._gateway is None:
            return
        gateway, self._gateway = self._gateway, None
        try:
            self.ray.get(gateway.close.remote(), timeout=self.timeout_s + 5)
        except Exception:
            pass
        try:
            self.ray.kill(gateway, no_restart=True)
        except Exception:
            pass

    def workers(self, party: str) -> list[Worker]:
        return self._workers[party]

    def submit(self, worker: Worker, call: Call, deps: list) -> Any:
        return worker.handle.run.remote(call, list(deps))

    def emit(self, worker: Worker, key: int, guards: list, step: str = "send") -> Any:
        return worker.handle.emit.remote(key, list(guards), step)

    def fetch(self, worker: Worker, key: int) -> Any:
        return worker.handle.fetch.remote(key)

    def _translate(self, e: BaseException, describe, fut) -> BaseException:
        ray = self.ray
        party, step = describe(fut)
        if isinstance(e, ray.exceptions.RayTaskError):
            cause = e.cause if hasattr(e, "cause") else None
            if isinstance(cause, CipherrayError):
                return cause
            if isinstance(cause, ray.exceptions.RayActorError):
                e = cause
            else:
                return PartyError(party, step, f"{type(cause).__name__}")
        if isinstance(e, ray.exceptions.RayActorError):
            actor_id = getattr(e, "actor_id", None)
            if actor_id and actor_id in self._actor_party:
                dead_party, idx = self._actor_party[actor_id]
                if dead_party != party:
                    return PartyError(
                        dead_party, step, f"worker {idx} died (its result was needed by '{party}')"
                    )
                return PartyError(party, step, f"worker {idx} died")
            return PartyError(party, step, "worker died")
        if isinstance(e, ray.exceptions.ObjectLostError | ray.exceptions.OwnerDiedError):
            return PartyError(party, step, f"a value it needed was lost ({type(e).__name__})")
        if isinstance(e, ray.exceptions.TaskCancelledError):
            return PartyTimeoutError(party, step, "cancelled after the timeout")
        if isinstance(e, ray.exceptions.RayError):  # NodeDiedError and the like
            return PartyError(party, step, f"{type(e).__name__}")
        return e

    def get(self, futures: list, timeout: float, describe) -> list:
        ray = self.ray
        errors = (
            ray.exceptions.RayTaskError,
            ray.exceptions.RayActorError,
            ray.exceptions.ObjectLostError,
            ray.exceptions.TaskCancelledError,
            ray.exceptions.NodeDiedError,
        )
        try:
            return ray.get(list(futures), timeout=timeout)
        except ray.exceptions.GetTimeoutError as e:
            _, pending = ray.wait(list(futures), num_returns=len(futures), timeout=0)
            self.cancel(pending)
            party, step = describe(pending[0] if pending else futures[0])
            raise PartyTimeoutError(party, step, f"no answer within {timeout:g} s") from e
        except errors as e:
            # find the future that failed to name its party and step
            for f in futures:
                try:
                    ray.get(f, timeout=timeout)
                except errors as inner:
                    raise self._translate(inner, describe, f) from None
            raise self._translate(e, describe, futures[0]) from None

    def wait(self, futures: list, num_returns: int, timeout: float) -> tuple[list, list]:
        return self.ray.wait(
            list(futures), num_returns=num_returns, timeout=timeout, fetch_local=False
        )

    def cancel(self, futures: list) -> None:
        for f in futures:
            try:
                self.ray.cancel(f)
            except Exception:
                pass

    def call_worker(self, worker: Worker, method: str, timeout: float) -> Any:
        ray = self.ray
        ref = getattr(worker.handle, method).remote()
        try:
            return ray.get(ref, timeout=timeout)
        except ray.exceptions.GetTimeoutError as e:
            self.cancel([ref])
            raise PartyTimeoutError(worker.party, method, f"no answer within {timeout:g} s") from e
        except ray.exceptions.RayActorError as e:
            raise PartyError(worker.party, method, f"worker {worker.index} died") from e

    def kill(self, party: str, index: int = 0) -> None:
        self.ray.kill(self._workers[party][index].handle, no_restart=True)

    def shutdown(self) -> None:
        ray = self.ray
        for group in self._workers.values():
            for w in group:
                try:
                    ray.kill(w.handle, no_restart=True)
                except Exception:
                    pass
        self._workers.clear()
        if self._started_ray and ray.is_initialized():
            ray.shutdown()


def _export_sys_path() -> None:
    """Let the embedded Ray's workers import what the driver can (a test module, a
    script's sibling modules): workers inherit PYTHONPATH from the driver."""
    import sys

    extra = [p for p in sys.path if p and os.path.isdir(p) and "site-packages" not in p]
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    merged = current + [p for p in extra if p not in current]
    if merged:
        os.environ["PYTHONPATH"] = os.pathsep.join(merged)


def make_backend(name: str, address: str | None, timeout_s: float) -> Backend:
    if name == "ray":
        return RayBackend(address, timeout_s)
    if name == "inline":
        if address is not None:
            raise ConfigError("backend='inline' runs in this process; it takes no address")
        return InlineBackend()
    raise ConfigError(f"unknown backend {name!r}; use 'ray' or 'inline'")
