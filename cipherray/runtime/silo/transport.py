"""Cross-silo transport: each party runs one gRPC server and dials its peers directly,
over mutual TLS, with the typed messages of `wire`.

One `Transport` per party process. ``send(dst, tag, value)`` returns once `dst` has
acknowledged the message; ``recv(src, tag, expect)`` returns the value `src` sent under
`tag`, checked against what the step expects. Both have a timeout and name the peer and
the step when they fail.

Sending a message to a peer, step by step:

1. The sender numbers the message (its session, a sequence number per peer) and streams
   its frames (`wire.frames`, chunks of `chunk_bytes`) on one client-streaming call.
   Frames are made as gRPC's flow control pulls them, so a large array is never copied
   whole and a slow receiver slows the sender (backpressure).
2. The receiver's TLS layer has already checked the caller's certificate against the CA;
   its handler checks that the certificate's common name is a party of the job and is
   the `src` of every frame, else the call is refused (`PeerAuthError` at the caller).
3. The receiver checks every frame (`wire.parse_frame`, `wire.Assembler`): job,
   destination, header types, sizes against `max_message_bytes`, order and length of the
   chunks; the chunks of a large message are copied into its buffer on a thread of
   their own (`copy_thread`), so the receive loop reads the next chunk meanwhile, at
   most a few chunks behind (the loop waits beyond), into a buffer reused from an earlier
   message that nothing refers to any more (`buffer_pool_bytes`). A bad message is refused
   (`WireError` at the caller, and at the receiver's next `recv` from that peer, so a
   waiting step fails at once); it is dropped and nothing else changes.
4. A complete message is delivered once: the receiver keeps which (src, session, seq) it
   has delivered, and answers a message it already has with the same acknowledgement
   without delivering it again. The sender re-sends a message whose call broke
   (connection dropped, peer restarting) with the same number until the timeout.
5. The acknowledgement ends the call; ``send`` returns.

Failures: a peer that does not answer in time (unreachable for ``send``, silent for
``recv``) raises `PartyTimeoutError` naming it and the step; the party then tells every
other peer (`broadcast_failure`: a ``fail`` message naming the failed party, the step and
the reason), and from then on every ``send`` and ``recv`` of the job at each party that
heard raises `PartyError` naming the failed party, so no party waits for the full timeout
on a job that has already failed. ``broadcast_failure`` is also what the runtime calls when
a step fails at this party, or when a message from a peer is not what the receiving step
expects (`WireError`): then the peer that sent it is told as well, and its waits end
with `WireError` naming itself, the message's tag and the reason.

What each side learns: the peer's certificate (party name and public key), the headers
and payloads of the messages sent to it (what the protocol declares), their sizes and
timing. Nothing is unpickled; values are arrays, bytes or plain msgpack data.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
import msgpack

from cipherray.runtime.errors import (
    ConfigError,
    PartyError,
    PartyTimeoutError,
    PeerAuthError,
    WireError,
)
from cipherray.runtime.silo import wire
from cipherray.runtime.silo.buffers import BufferPool
from cipherray.runtime.silo.certs import TLS, check_party_name
from cipherray.runtime.silo.copier import CopyThread

SERVICE = "cipherray.silo.v1.Channel"
SEND = f"/{SERVICE}/Send"  # client stream of frames -> acknowledgement
CONTROL = f"/{SERVICE}/Control"  # one frame (failure broadcast) -> acknowledgement
MAX_CHUNK = 16 << 20
CLOSED_IN_HANDSHAKE = 5  # consecutive connections closed in the handshake: refused
_RETRY = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
}
_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


class _Delivered:
    """Sequence numbers delivered from one (peer, session): a floor below which all are,
    and the ones above it."""

    __slots__ = ("floor", "above")

    def __init__(self) -> None:
        self.floor = -1
        self.above: set[int] = set()

    def __contains__(self, seq: int) -> bool:
        return seq <= self.floor or seq in self.above

    def add(self, seq: int) -> None:
        self.above.add(seq)
        while self.floor + 1 in self.above:
            self.floor += 1
            self.above.discard(self.floor)


class Transport:
    """One party's endpoint: a gRPC server on its address and a channel to each peer.

    `addresses` maps every party of the job to ``host:port`` (this party's own entry is
    where it listens unless `listen` says otherwise). `tls` is this party's identity;
    its certificate's common name must be `party`. `timeout_s` bounds every send and
    receive; `max_message_bytes` bounds one incoming message; `max_buffered_bytes` bounds
    what one peer may have delivered and not yet received (a sender beyond it waits).
    `on_delivered(src, tag)` runs after a message is delivered and before it is
    acknowledged; if it raises, the acknowledgement is lost (a test of re-sending).
    `copy_thread`: copy the chunks of a large incoming message into its buffer on a
    thread of its own, so the gRPC receive loop reads the next chunk meanwhile.
    `buffer_pool_bytes`: how much of the buffers of large incoming messages to keep for
    reuse once nothing refers to them (`buffers.BufferPool`; 0: none kept)."""

    def __init__(
        self,
        party: str,
        addresses: dict[str, str],
        tls: TLS,
        *,
        job: str = "default",
        timeout_s: float = 60.0,
        chunk_bytes: int = wire.DEFAULT_CHUNK,
        max_message_bytes: int = 1 << 32,
        max_buffered_bytes: int = 1 << 32,
        listen: str | None = None,
        server_threads: int = 8,
        on_delivered: Callable[[str, str], None] | None = None,
        copy_thread: bool = True,
        buffer_pool_bytes: int = 1 << 30,
    ):
        check_party_name(party)
        if party not in addresses:
            raise ConfigError(f"addresses has no entry for this party '{party}'")
        for p in addresses:
            check_party_name(p)
        if not 0 < chunk_bytes <= MAX_CHUNK:
            raise ConfigError(f"chunk_bytes must be in 1..{MAX_CHUNK}")
        self.party = party
        self.addresses = dict(addresses)
        self.peers = [p for p in addresses if p != party]
        self.job = job
        self.timeout_s = float(timeout_s)
        self.chunk_bytes = int(chunk_bytes)
        self.max_message_bytes = int(max_message_bytes)
        self.max_buffered_bytes = int(max_buffered_bytes)
        self.on_delivered = on_delivered
        self.copy_thread = bool(copy_thread)
        self._cert, self._key, self._ca = tls.read()
        named = tls.party()
        if named != party:
            raise ConfigError(f"the TLS certificate is issued to '{named}', not to '{party}'")
        if not issued_by(self._cert, self._ca):
            raise PeerAuthError(party, "init", "its certificate is not issued by the configured CA")
        self._listen = listen or addresses[party]
        self._server_threads = server_threads
        self._session = int.from_bytes(os.urandom(8), "big") >> 1
        self._lock = threading.Condition()
        self._seq = dict.fromkeys(self.peers, 0)
        self._mailbox: dict[tuple[str, str], deque[wire.Message]] = {}
        self._buffered = dict.fromkeys(self.peers, 0)
        self._delivered: dict[tuple[str, int], _Delivered] = {}
        self._errors: dict[str, deque[WireError]] = {p: deque() for p in self.peers}
        self._failure: PartyError | None = None
        self._channels: dict[str, grpc.Channel] = {}
        self._server: grpc.Server | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._copier: CopyThread | None = None
        self._buffers = BufferPool(buffer_pool_bytes)
        self.rejected: list[PartyError] = []  # every refused message or caller, in order
        # a client that is not started hears no failure notices: this asks the endpoint
        # that does (between re-sends), so a send to a failed job ends at once
        self.failure_hook: Callable[[], PartyError | None] | None = None
        self.port = 0

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> Transport:
        opts = [
            ("grpc.max_receive_message_length", MAX_CHUNK + wire.MAX_HEADER + 64),
            ("grpc.max_send_message_length", wire.MAX_META + wire.MAX_HEADER + 64),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.so_reuseport", 0),
        ]
        self._server = grpc.server(
            ThreadPoolExecutor(self._server_threads, thread_name_prefix=f"silo-{self.party}"),
            options=opts,
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Send": grpc.stream_unary_rpc_method_handler(self._serve_send),
                "Control": grpc.unary_unary_rpc_method_handler(self._serve_control),
            },
        )
        self._server.add_generic_rpc_handlers((handler,))
        creds = grpc.ssl_server_credentials(
            [(self._key, self._cert)], root_certificates=self._ca, require_client_auth=True
        )
        try:
            self.port = self._server.add_secure_port(self._listen, creds)
        except RuntimeError as e:
            raise ConfigError(
                f"party '{self.party}' cannot listen on {self._listen}: {e}"
            ) from None
        self._server.start()
        self._pool = ThreadPoolExecutor(max(4, len(self.peers)), thread_name_prefix="silo-send")
        if self.copy_thread:
            self._copier = CopyThread(name=f"silo-copy-{self.party}")
        return self

    def close(self, grace: float = 0.5) -> None:
        if self._server is not None:
            self._server.stop(grace).wait(grace + 1)
            self._server = None
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._copier is not None:
            self._copier.close()
            self._copier = None
        self._buffers.clear()

    def __enter__(self) -> Transport:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- sending -----------------------------------------------------------------------------
    def send(self, dst: str, tag: str, value: Any, timeout: float | None = None) -> None:
        """Send `value` (array, bytes, `wire.CipherBytes` or plain data) to `dst` under
        `tag`; returns once `dst` acknowledged it. Re-sends across dropped connections;
        PartyTimeoutError if `dst` cannot be reached in time, PeerAuthError if the TLS
        identities are refused, WireError if `dst` refused the message."""
        self._check_peer(dst)
        wire.describe(value)  # TypeError now, not in gRPC's thread
        with self._lock:
            seq = self._seq[dst]
            self._seq[dst] = seq + 1

        def make() -> Iterable[bytes]:
            return wire.frames(
                value, job=self.job, src=self.party, dst=dst, tag=tag, sess=self._session,
                seq=seq, chunk_bytes=self.chunk_bytes,
            )  # fmt: skip

        self._call(dst, tag, make, seq, timeout)

    def send_async(self, dst: str, tag: str, value: Any) -> Future:
        """`send` on a thread of this transport; the future's result is None or the error."""
        if self._pool is None:
            raise ConfigError("the transport is not started")
        return self._pool.submit(self.send, dst, tag, value)

    def send_frames(self, dst: str, frames: list[bytes], tag: str = "?") -> None:
        """Send frames as they are (no checks here): how tests and fuzzers present a
        receiver with malformed messages. The receiver checks everything."""
        self._check_peer(dst)
        self._call(dst, tag, lambda: iter(frames), None, None)

    def _call(self, dst: str, tag: str, make, seq: int | None, timeout: float | None) -> bytes:
        """Stream the frames `make()` gives to `dst` until acknowledged: re-sent (the same
        frames, so the same message number) while the call breaks, until the timeout."""
        timeout = self.timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        stub = self._channel(dst).stream_unary(SEND)
        backoff, last, closed = 0.02, "no answer", 0
        while True:
            self._raise_failure()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                err = PartyTimeoutError(
                    dst,
                    tag,
                    f"could not be reached or did not acknowledge within {timeout:g} s ({last})",
                )
                self.broadcast_failure(err)
                raise err
            try:
                ack = stub(make(), timeout=remaining)
            except grpc.RpcError as e:
                code, details = e.code(), e.details() or ""
                last = f"{code.name}: {details}"
                # connected, then closed before HTTP/2 started, again and again: the
                # server's TLS layer refuses this party's certificate (it tells no more)
                closed = closed + 1 if "socket closed" in details.lower() else 0
                error = _refusal(dst, tag, code, details, closed)
                if error is not None:
                    raise error from None
                if code != grpc.StatusCode.DEADLINE_EXCEEDED:  # else: out of time, above
                    time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                    backoff = min(backoff * 2, 0.5)
                if self._failure is None and self.failure_hook is not None:
                    self._failure = self.failure_hook()  # a failure told to another endpoint
                continue
            if seq is not None:
                try:
                    got = msgpack.unpackb(ack, raw=False)["seq"]
                except Exception:
                    got = None
                if got != seq:
                    raise PartyError(dst, tag, f"acknowledged message {got}, not {seq}")
            return ack

    def _channel(self, dst: str) -> grpc.Channel:
        with self._lock:
            ch = self._channels.get(dst)
            if ch is None:
                creds = grpc.ssl_channel_credentials(
                    root_certificates=self._ca, private_key=self._key, certificate_chain=self._cert
                )
                opts = [
                    ("grpc.ssl_target_name_override", dst),  # the peer's cert must name dst
                    ("grpc.max_send_message_length", MAX_CHUNK + wire.MAX_HEADER + 64),
                    ("grpc.max_receive_message_length", 1 << 16),
                    ("grpc.initial_reconnect_backoff_ms", 50),
                    ("grpc.min_reconnect_backoff_ms", 50),
                    ("grpc.max_reconnect_backoff_ms", 500),
                    *_KEEPALIVE,
                ]
                ch = grpc.secure_channel(self.addresses[dst], creds, options=opts)
                self._channels[dst] = ch
            return ch

    # -- receiving ---------------------------------------------------------------------------
    def recv(
        self, src: str, tag: str, expect: wire.Expect | None = None, timeout: float | None = None
    ) -> Any:
        """The value `src` sent under `tag`, checked against `expect` (WireError naming
        `src` and `tag` if it is not that). PartyTimeoutError if it does not arrive
        within the timeout (the failure is then broadcast); PartyError at once if a party
        of the job failed; WireError at once if `src` sent a malformed message."""
        self._check_peer(src)
        timeout = self.timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                self._raise_failure()
                errors = self._errors[src]
                if errors:
                    raise errors.popleft()
                q = self._mailbox.get((src, tag))
                if q:
                    msg = q.popleft()
                    if not q:
                        del self._mailbox[(src, tag)]
                    self._buffered[src] -= msg.header.nbytes
                    self._lock.notify_all()
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    msg = None
                    break
                self._lock.wait(remaining)
        if msg is None:
            err = PartyTimeoutError(src, tag, f"its message did not arrive within {timeout:g} s")
            self.broadcast_failure(err)
            raise err
        return wire.decode(msg, expect)

    def pending(self) -> dict[tuple[str, str], int]:
        """Messages delivered and not yet received, per (src, tag)."""
        with self._lock:
            return {k: len(q) for k, q in self._mailbox.items()}

    # -- failures ----------------------------------------------------------------------------
    def broadcast_failure(self, error: PartyError) -> None:
        """Record that the job failed (`error` names the failed party and the step) and
        tell every other peer, best effort, within a short timeout each. The party the
        error names is told too when it is alive: a `WireError` (its message was refused
        here, so its own waits end at once with the reason)."""
        with self._lock:
            if self._failure is not None:
                return
            self._failure = error
            self._lock.notify_all()
        body = {"party": error.party, "step": error.step, "reason": error.reason}
        if isinstance(error, WireError):
            body["error"] = "WireError"
        short = min(2.0, self.timeout_s)
        futs = []
        for p in self.peers:
            if p == error.party and not isinstance(error, WireError):
                continue  # (it failed or did not answer: it names the failure itself)
            frames = list(
                wire.frames(
                    body, job=self.job, src=self.party, dst=p, tag=error.step,
                    sess=self._session, seq=0, kind=wire.FAIL,
                )
            )  # fmt: skip
            t = threading.Thread(target=self._tell, args=(p, frames[0], short), daemon=True)
            t.start()
            futs.append(t)
        for t in futs:
            t.join(short + 0.5)

    def _tell(self, peer: str, frame: bytes, timeout: float) -> None:
        try:  # (waits for a peer still starting up, within the short timeout)
            self._channel(peer).unary_unary(CONTROL)(frame, timeout=timeout, wait_for_ready=True)
        except grpc.RpcError:
            pass  # that peer may be the next to time out; it names the failure itself

    @property
    def failure(self) -> PartyError | None:
        return self._failure

    def _raise_failure(self) -> None:
        f = self._failure
        if f is not None:
            raise (WireError if isinstance(f, WireError) else PartyError)(f.party, f.step, f.reason)

    # -- the server --------------------------------------------------------------------------
    def _peer_of(self, context: grpc.ServicerContext) -> str:
        """The party the caller's certificate names (the TLS layer checked its chain)."""
        names = context.auth_context().get("x509_common_name") or []
        name = names[0].decode("utf-8", "replace") if len(names) == 1 else "?"
        if name not in self.peers:
            err = PeerAuthError(name, "connect", f"is not a peer of party '{self.party}'")
            self._reject(None, err)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(err))
        return name

    def _reject(self, peer: str | None, err: PartyError) -> None:
        with self._lock:
            self.rejected.append(err)
            if peer is not None and isinstance(err, WireError):
                self._errors[peer].append(err)
            self._lock.notify_all()

    def _check_first(self, h: wire.Header, peer: str) -> None:
        if h.src != peer:
            raise PeerAuthError(
                peer, h.tag, f"claims to be '{h.src}' with a certificate issued to '{peer}'"
            )
        if h.dst != self.party:
            raise WireError(peer, h.tag, f"message for '{h.dst}' reached '{self.party}'")
        if h.job != self.job:
            raise WireError(peer, h.tag, f"message of job '{h.job}', this is job '{self.job}'")
        if h.nbytes > self.max_message_bytes:
            raise WireError(
                peer, h.tag, f"{h.nbytes} bytes exceed the limit of {self.max_message_bytes}"
            )
        if h.chunk != 0:
            raise WireError(peer, h.tag, f"message starts at frame {h.chunk}")
        if h.kind == wire.FAIL:
            raise WireError(peer, h.tag, "a failure notice on the message stream")

    def _serve_send(self, frames: Iterable[bytes], context: grpc.ServicerContext) -> bytes:
        peer = self._peer_of(context)
        asm: wire.Assembler | None = None
        reserved = 0
        msg = None
        try:
            for frame in frames:
                h, chunk = wire.parse_frame(frame, peer)
                if asm is None:
                    self._check_first(h, peer)
                    key = (peer, h.sess)
                    with self._lock:
                        if key in self._delivered and h.seq in self._delivered[key]:
                            return _ack(h.seq, dup=True)  # delivered before: not again
                        if not self._reserve(peer, h.nbytes, context):
                            context.abort(grpc.StatusCode.UNAVAILABLE, "receiver's buffer full")
                        reserved = h.nbytes
                    asm = wire.Assembler(h, peer, self._copier, self._buffers.take)
                msg = asm.add(h, chunk)
                if msg is not None:
                    break
            if msg is None:
                raise asm.missing() if asm else WireError(peer, "?", "empty message")
        except (WireError, PeerAuthError) as e:
            self._release(peer, reserved)
            self._reject(peer, e)
            code = (
                grpc.StatusCode.UNAUTHENTICATED
                if isinstance(e, PeerAuthError)
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            context.abort(code, str(e))
        except grpc.RpcError:  # the caller went away mid-message: it will send it again
            self._release(peer, reserved)
            return b""
        h = msg.header
        with self._lock:
            d = self._delivered.setdefault((peer, h.sess), _Delivered())
            if h.seq in d:  # a copy that raced the first
                self._buffered[peer] -= reserved
                return _ack(h.seq, dup=True)
            d.add(h.seq)
            self._mailbox.setdefault((peer, h.tag), deque()).append(msg)
            self._lock.notify_all()
        if self.on_delivered is not None:
            try:
                self.on_delivered(peer, h.tag)
            except Exception as e:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"acknowledgement lost ({e})")
        return _ack(h.seq)

    def _reserve(self, peer: str, n: int, context) -> bool:
        """Wait (lock held) until `peer`'s undelivered bytes leave room for `n` more."""
        deadline = time.monotonic() + self.timeout_s
        while self._buffered[peer] and self._buffered[peer] + n > self.max_buffered_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not context.is_active():
                return False
            self._lock.wait(min(remaining, 0.5))
        self._buffered[peer] += n
        return True

    def _release(self, peer: str, n: int) -> None:
        if n:
            with self._lock:
                self._buffered[peer] -= n
                self._lock.notify_all()

    def _serve_control(self, frame: bytes, context: grpc.ServicerContext) -> bytes:
        peer = self._peer_of(context)
        try:
            h, chunk = wire.parse_frame(frame, peer)
            if h.src != peer:
                raise PeerAuthError(peer, h.tag, f"claims to be '{h.src}'")
            if h.kind != wire.FAIL or h.chunks != 1 or h.job != self.job or len(chunk) != h.nbytes:
                raise WireError(peer, h.tag, "not a failure notice of this job")
            body = wire.unpack_meta(bytes(chunk), peer, h.tag)
            if not (
                isinstance(body, dict)
                and all(isinstance(body.get(k), str) for k in ("party", "step", "reason"))
            ):
                raise WireError(peer, h.tag, "malformed failure notice")
        except (WireError, PeerAuthError) as e:
            self._reject(None, e)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        reason = body["reason"][:500]
        if peer != body["party"]:
            reason = f"{reason} (reported by '{peer}')"
        cls = WireError if body.get("error") == "WireError" else PartyError
        with self._lock:
            if self._failure is None:
                self._failure = cls(body["party"][:64], body["step"][:256], reason)
                self._lock.notify_all()
        return _ack(0)

    def _check_peer(self, p: str) -> None:
        if p not in self._seq:
            raise ConfigError(f"'{p}' is not a peer of party '{self.party}' ({self.peers})")


def _refusal(dst: str, tag: str, code, details: str, closed: int) -> PartyError | None:
    """The error a failed call to `dst` means, or None if the message is to be re-sent."""
    refused_tls = code == grpc.StatusCode.UNAVAILABLE and _handshake_refused(details)
    if code == grpc.StatusCode.UNAUTHENTICATED or refused_tls:
        return PeerAuthError(dst, tag, f"refused the TLS identity: {details}")
    if closed >= CLOSED_IN_HANDSHAKE:
        return PeerAuthError(
            dst, tag, "closes every connection in the TLS handshake: it does not accept "
            f"this party's certificate ({details})",
        )  # fmt: skip
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return WireError(dst, tag, f"refused the message: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED or code in _RETRY:
        return None
    return PartyError(dst, tag, f"{code.name}: {details}")


def parse_addresses(text: str) -> dict[str, str]:
    """``bank=10.0.0.1:9401,insurer=10.0.0.2:9401`` (the CLI's --addresses) as a dict;
    ConfigError on a malformed entry, a bad party name or a party named twice."""
    out: dict[str, str] = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        party, sep, addr = item.partition("=")
        host, colon, port = addr.rpartition(":")
        if not sep or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--addresses entry {item!r} is not PARTY=HOST:PORT")
        check_party_name(party)
        if party in out:
            raise ConfigError(f"party '{party}' is named twice in --addresses")
        out[party] = addr
    if len(out) < 2:
        raise ConfigError("--addresses needs at least two parties")
    return out


def _ack(seq: int, dup: bool = False) -> bytes:
    return msgpack.packb({"seq": seq, "dup": dup})


def issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether the (first) certificate in `cert_pem` is signed by the CA certificate."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except Exception:  # not PEM, not a certificate, or a bad signature
        return False
    return True


def _handshake_refused(details: str) -> bool:
    """Whether a gRPC error's details say the TLS handshake failed (a certificate the
    other side does not accept), as opposed to a peer that is not up."""
    d = details.lower()
    return any(
        w in d for w in ("handshake", "certificate", "verification", "tlsv1_alert", "ssl_error")
    )
