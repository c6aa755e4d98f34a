"""Cross-silo transport on loopback: parties in separate processes over mutual TLS;
impostors refused; malformed messages named at the receiver, which keeps working; a
killed party named within the timeout; a dropped connection re-sent without duplicates."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from cipherray.runtime.errors import PartyError, PartyTimeoutError, PeerAuthError, WireError
from cipherray.runtime.silo import TLS, Expect, make_dev_pki, wire
from cipherray.runtime.silo.transport import SEND, Transport

ROOT = Path(__file__).resolve().parents[1]
PEER = Path(__file__).resolve().parent / "silo_peer.py"
PARTIES = ["bank", "insurer", "hospital"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def addresses(parties=PARTIES) -> dict[str, str]:
    return {p: f"127.0.0.1:{free_port()}" for p in parties}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_dev_pki(PARTIES, d)
    return d


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    d = tmp_path_factory.mktemp("other")
    make_dev_pki(PARTIES, d)
    return d


def transport(pki, party, addrs, **kw) -> Transport:
    kw.setdefault("timeout_s", 10)
    return Transport(party, addrs, TLS.from_dir(pki, party), job="test", **kw).start()


class Peer:
    """A party in its own process (tests/silo_peer.py)."""

    def __init__(self, role: str, **cfg):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_VERBOSITY": "NONE"}
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), role, json.dumps(cfg)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def result(self, timeout: float = 30) -> dict:
        out, _ = self.proc.communicate(timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


# -- parties in separate processes --------------------------------------------------------------
def test_two_parties_exchange_arrays_bytes_and_metadata(pki):
    addrs = addresses(["bank", "insurer"])
    values = [
        np.arange(5, dtype=np.int64),
        np.zeros((0, 4)),
        np.random.default_rng(1).random((300, 700)),  # 1.6 MB: 26 chunks of 64 KiB
        (np.arange(3 << 18, dtype=np.uint64) * 0x9E3779B97F4A7C15),  # 6 MiB, uint64 ring
        b"\x00ciphertexts\xff" * 1000,
        wire.CipherBytes(b"\x01" * 4096),
        {"round": 1, "sizes": [3, 4], "final": False},
        (np.arange(200_000, dtype=np.uint64), {"scale": 16}, b"x"),  # a share and its scale
    ]
    peer = Peer("echo", party="insurer", addresses=addrs, tls=str(pki), src="bank",
                n=len(values), chunk=1 << 16)  # fmt: skip
    with transport(pki, "bank", addrs, chunk_bytes=1 << 16) as bank:
        for i, v in enumerate(values):
            bank.send("insurer", f"m/{i}", v)
            back = bank.recv("insurer", f"r/{i}")
            if isinstance(v, tuple):
                assert np.array_equal(back[0], v[0]) and back[1:] == v[1:]
            elif isinstance(v, np.ndarray):
                assert back.dtype == v.dtype and np.array_equal(back, v)
            else:
                assert back == v and type(back) is type(v)
        assert bank.pending() == {} and bank.rejected == []
    assert peer.result() == {"echoed": len(values)}


def test_three_parties_in_a_ring(pki):
    addrs = addresses()
    peers = [
        Peer("ring", party=p, addresses=addrs, tls=str(pki), size=1000)
        for p in ("insurer", "hospital")
    ]
    with transport(pki, "bank", addrs) as bank:  # bank < hospital < insurer
        fut = bank.send_async("hospital", "ring", np.arange(1000, dtype=np.int64))
        got = bank.recv("insurer", "ring", expect=Expect.array(np.int64, (1000,)))
        fut.result()
    total = 999 * 1000 // 2
    assert int(got.sum()) == 3 * total
    assert peers[0].result() == {"from": "hospital", "sum": 2 * total}
    assert peers[1].result() == {"from": "bank", "sum": 1 * total}


def test_a_killed_party_is_named_within_the_timeout_and_the_failure_is_broadcast(pki):
    addrs = addresses()
    silent = Peer("idle", party="hospital", addresses=addrs, tls=str(pki))
    waiting = Peer("wait", party="insurer", addresses=addrs, tls=str(pki), src="bank",
                   timeout=60)  # fmt: skip
    with transport(pki, "bank", addrs, timeout_s=3) as bank:
        bank.send("hospital", "hello", np.ones(3))  # alive and answering
        silent.kill()
        t0 = time.monotonic()
        with pytest.raises(PartyTimeoutError) as e:
            bank.recv("hospital", "shares")
        assert e.value.party == "hospital" and e.value.step == "shares"
        assert time.monotonic() - t0 < 5
        with pytest.raises(PartyError, match="hospital"):  # the job has failed: at once
            bank.send("insurer", "next", np.ones(3))
    # insurer waited for bank with a 60 s timeout; the broadcast ended it
    out = waiting.result()
    assert out["error"] == "PartyError" and out["party"] == "hospital"
    assert out["after_s"] < 20


def test_sending_to_a_dead_party_fails_within_the_timeout(pki):
    addrs = addresses(["bank", "insurer"])  # nobody listens at insurer's address
    with transport(pki, "bank", addrs, timeout_s=1.5) as bank:
        t0 = time.monotonic()
        with pytest.raises(PartyTimeoutError, match="could not be reached") as e:
            bank.send("insurer", "x", np.ones(10))
        assert e.value.party == "insurer" and time.monotonic() - t0 < 3


# -- identities ---------------------------------------------------------------------------------
def test_a_certificate_of_another_ca_is_refused(pki, other_ca):
    addrs = addresses()
    with transport(pki, "bank", addrs) as bank:
        # an impostor trusting neither: it refuses bank's certificate, and bank its own
        alien = TLS.from_dir(other_ca, "insurer")
        with pytest.raises(PeerAuthError, match="not issued by the configured CA"):
            Transport("insurer", addrs, TLS(alien.cert, alien.key, pki / "ca.crt"))
        lone = Transport("insurer", addrs, alien, timeout_s=5, listen=f"127.0.0.1:{free_port()}")
        with lone:
            with pytest.raises(PeerAuthError) as e:
                lone.send("bank", "x", np.ones(3))
            assert e.value.party == "bank"
        # a raw client with the right CA but a foreign certificate: the handshake fails
        creds = grpc.ssl_channel_credentials(
            (pki / "ca.crt").read_bytes(),
            Path(alien.key).read_bytes(),
            Path(alien.cert).read_bytes(),
        )
        opts = [("grpc.ssl_target_name_override", "bank")]
        with grpc.secure_channel(addrs["bank"], creds, options=opts) as ch:
            frame = next(wire.frames(b"hi", job="test", src="insurer", dst="bank", tag="x",
                                     sess=1, seq=0))  # fmt: skip
            with pytest.raises(grpc.RpcError) as r:
                ch.stream_unary(SEND)(iter([frame]), timeout=3)
            assert r.value.code() == grpc.StatusCode.UNAVAILABLE
        assert bank.pending() == {}


def test_a_party_claiming_another_name_or_dialling_an_impostor_is_refused(pki):
    addrs = addresses()
    with transport(pki, "bank", addrs) as bank, transport(pki, "insurer", addrs) as insurer:
        # insurer's valid certificate, frames claiming to come from hospital
        frames = list(wire.frames(np.ones(4), job="test", src="hospital", dst="bank",
                                  tag="x", sess=1, seq=0))  # fmt: skip
        with pytest.raises(PeerAuthError):
            insurer.send_frames("bank", frames)
        assert isinstance(bank.rejected[-1], PeerAuthError)
        assert "claims to be 'hospital'" in str(bank.rejected[-1])
        assert bank.pending() == {}
        # bank dials "insurer" at an address where hospital answers
        fooled = dict(addrs, insurer=addrs["hospital"])
        with transport(pki, "hospital", addrs):
            b2 = Transport("bank", fooled, TLS.from_dir(pki, "bank"), job="test",
                           listen=f"127.0.0.1:{free_port()}")  # fmt: skip
            with b2, pytest.raises(PeerAuthError, match="TLS") as e:
                b2.send("insurer", "x", np.ones(3))
            assert e.value.party == "insurer"
        # insurer still talks to bank
        insurer.send("bank", "ok", np.ones(2))
        assert bank.recv("insurer", "ok").tolist() == [1.0, 1.0]


# -- malformed messages ---------------------------------------------------------------------------
def _frames(value, **kw):
    h = dict(job="test", src="insurer", dst="bank", tag="bad", sess=9, seq=0)
    h.update(kw)
    return list(wire.frames(value, chunk_bytes=1024, **h))


def _forge(frame: bytes, **fields) -> bytes:
    import msgpack

    n = int.from_bytes(frame[:4], "big")
    d = msgpack.unpackb(frame[4 : 4 + n])
    d.update(fields)
    h = msgpack.packb(d, use_bin_type=True)
    return len(h).to_bytes(4, "big") + h + frame[4 + n :]


def test_fuzzed_messages_are_named_errors_at_the_receiver_which_keeps_working(pki):
    addrs = addresses()
    with (
        transport(pki, "bank", addrs, max_message_bytes=1 << 20) as bank,
        transport(pki, "insurer", addrs) as fuzzer,
    ):
        a = np.arange(1000, dtype=np.float64)  # 8 frames of 1 KiB
        cases = {
            "truncated stream": _frames(a)[:-1],
            "truncated frame": [_frames(a)[0][:40]],
            "chunk out of order": [_frames(a)[1], _frames(a)[0]],
            "oversized": [_forge(_frames(b"x")[0], nbytes=1 << 30)],
            "longer than declared": [_forge(_frames(np.ones(2))[0], nbytes=8, shape=[1])],
            "mistyped dtype": [_forge(_frames(np.ones(2))[0], dtype="object")],
            "unknown kind": [_forge(_frames(b"xy")[0], kind="pickle")],
            "another job": _frames(np.ones(2), job="other"),
            "another receiver": _frames(np.ones(2), dst="hospital"),
            "garbage": [os.urandom(100)],
            "empty": [],
        }
        for what, frames in cases.items():
            with pytest.raises(WireError, match="refused the message"):
                fuzzer.send_frames("bank", frames, tag=what)
            with pytest.raises(WireError) as e:  # the step waiting for insurer fails at once
                bank.recv("insurer", "bad", timeout=5)
            assert e.value.party == "insurer", what
        assert len(bank.rejected) == len(cases)
        # random corruption of a valid frame's bytes
        rng = np.random.default_rng(7)
        good = _frames(np.arange(4.0), seq=100)[0]
        refused = 0
        for k in range(40):
            f = bytearray(_forge(good, seq=100 + k))
            for pos in rng.integers(4, len(f), size=3):
                f[pos] ^= int(rng.integers(1, 256))
            try:
                fuzzer.send_frames("bank", [bytes(f)])
            except WireError:
                refused += 1
            except PeerAuthError:
                pass
        assert refused > 0
        for _ in range(refused):
            with pytest.raises(WireError):
                bank.recv("insurer", "bad", timeout=5)
        # well-formed messages that are not what the step expects
        fuzzer.send("bank", "typed", np.arange(3, dtype=np.int32))
        with pytest.raises(WireError, match="expected dtype float64") as e:
            bank.recv("insurer", "typed", expect=Expect.array(np.float64, (3,)))
        assert e.value.step == "typed"
        fuzzer.send("bank", "big", np.zeros(1000))
        with pytest.raises(WireError, match="limit"):
            bank.recv("insurer", "big", expect=Expect.array(np.float64, max_bytes=4096))
        # state intact: the next good message arrives, nothing failed
        fuzzer.send("bank", "good", np.arange(3.0))
        got = bank.recv("insurer", "good", expect=Expect.array(np.float64, (3,)))
        assert got.tolist() == [0.0, 1.0, 2.0] and bank.failure is None


# -- dropped connections ------------------------------------------------------------------------
class CuttingProxy:
    """A TCP forwarder that, once, cuts its connection after `cut_after` bytes went
    from the caller to the server (in the middle of a message)."""

    def __init__(self, target: str, cut_after: int):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.cut_after = cut_after
        self.cuts = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(self.target)
            cut = self.cuts == 0
            threading.Thread(target=self._pump, args=(c, s, cut), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, False), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket, cut: bool) -> None:
        sent = 0
        try:
            while data := a.recv(65536):
                b.sendall(data)
                sent += len(data)
                if cut and sent > self.cut_after and self.cuts == 0:
                    self.cuts += 1
                    break
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.sock.close()


def test_a_connection_dropped_mid_message_is_re_sent_and_delivered_once(pki):
    addrs = addresses(["bank", "insurer"])
    proxy = CuttingProxy(addrs["insurer"], cut_after=1 << 20)
    via = dict(addrs, insurer=proxy.address)
    with (
        transport(pki, "insurer", addrs) as insurer,
        transport(pki, "bank", via, chunk_bytes=1 << 16) as bank,
    ):
        a = np.random.default_rng(3).random(1 << 19)  # 4 MiB
        bank.send("insurer", "big", a)
        assert proxy.cuts == 1
        assert np.array_equal(insurer.recv("bank", "big"), a)
        bank.send("insurer", "after", np.ones(2))
        assert insurer.recv("bank", "after").tolist() == [1.0, 1.0]
        assert insurer.pending() == {}
    proxy.close()


def test_a_lost_acknowledgement_is_re_sent_without_a_second_delivery(pki):
    addrs = addresses(["bank", "insurer"])
    calls = []

    def lose_first_ack(src, tag):
        calls.append((src, tag))
        if len(calls) == 1:
            raise ConnectionError("link dropped before the acknowledgement")

    with (
        transport(pki, "insurer", addrs, on_delivered=lose_first_ack) as insurer,
        transport(pki, "bank", addrs) as bank,
    ):
        bank.send("insurer", "once", np.arange(5))
        assert calls == [("bank", "once")]  # the copy sent again was not delivered again
        assert insurer.pending() == {("bank", "once"): 1}
        assert insurer.recv("bank", "once").tolist() == [0, 1, 2, 3, 4]
        bank.send("insurer", "twice", np.arange(2))
        assert insurer.pending() == {("bank", "twice"): 1}


def test_the_readme_transport_example_runs(pki, tmp_path):
    """README, "Deploying across organisations": bank's side as written (loopback
    addresses), insurer's mirror image here."""
    import re

    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "Transport(" in b)
    addrs = addresses(["bank", "insurer"])
    block = block.replace('"10.0.0.1:9401"', repr(addrs["bank"]))
    block = block.replace('"10.0.0.2:9401"', repr(addrs["insurer"]))
    block = block.replace('"pki"', repr(str(pki))) + "\nprint(y.sum())\n"
    script = tmp_path / "bank.py"
    script.write_text(block)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_VERBOSITY": "NONE"}
    bank = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    t = Transport("insurer", addrs, TLS.from_dir(pki, "insurer"), job="job-1", timeout_s=20)
    with t:
        x = t.recv("bank", "psi/blinded", expect=Expect.array(np.uint64, (10,)))
        t.send("bank", "psi/reply", x * 2)
    out, _ = bank.communicate(timeout=30)
    assert bank.returncode == 0 and out.strip() == "90"


def test_addresses_from_the_command_line():
    from cipherray.runtime.errors import ConfigError
    from cipherray.runtime.silo.transport import parse_addresses

    got = parse_addresses("bank=10.0.0.1:9401, insurer=[::1]:9402")
    assert got == {"bank": "10.0.0.1:9401", "insurer": "[::1]:9402"}
    for bad in ("bank=10.0.0.1", "bank:1,insurer=h:2", "bank=h:1,bank=h:2", "bank=h:1",
                "Bank=h:1,insurer=h:2", "bank=h:0,insurer=h:2"):  # fmt: skip
        with pytest.raises(ConfigError):
            parse_addresses(bad)


def test_a_receiver_that_falls_behind_slows_the_sender(pki):
    addrs = addresses(["bank", "insurer"])
    with (
        transport(pki, "insurer", addrs, max_buffered_bytes=1 << 20) as insurer,
        transport(pki, "bank", addrs, chunk_bytes=1 << 16) as bank,
    ):
        a = np.ones(100_000)  # 800 kB: one fits the receiver's buffer, two do not
        bank.send("insurer", "a", a)
        later = bank.send_async("insurer", "b", a * 2)
        time.sleep(0.5)
        assert not later.done() and insurer.pending() == {("bank", "a"): 1}
        assert insurer.recv("bank", "a").sum() == 100_000
        later.result(timeout=5)
        assert insurer.recv("bank", "b").sum() == 200_000


def test_parties_may_start_in_any_order(pki):
    addrs = addresses(["bank", "insurer"])
    started = []

    def start_insurer_late():
        time.sleep(0.5)
        started.append(transport(pki, "insurer", addrs))

    with transport(pki, "bank", addrs) as bank:
        threading.Thread(target=start_insurer_late).start()
        bank.send("insurer", "early", np.arange(3))  # re-sent until insurer listens
        (insurer,) = started
        with insurer:
            assert insurer.recv("bank", "early").tolist() == [0, 1, 2]


@pytest.mark.parametrize("copy_thread", [True, False])
def test_a_large_message_arrives_whole_with_or_without_the_copy_thread(
    pki, copy_thread, monkeypatch
):
    from cipherray.runtime.silo import copier

    where = set()
    real = copier.copy_chunk

    def recording(dst, chunk):
        where.add(threading.current_thread().name)
        real(dst, chunk)

    monkeypatch.setattr(copier, "copy_chunk", recording)
    monkeypatch.setattr(wire, "copy_chunk", recording)
    addrs = addresses(["bank", "insurer"])
    with (
        transport(pki, "insurer", addrs, copy_thread=copy_thread) as insurer,
        transport(pki, "bank", addrs, chunk_bytes=1 << 16) as bank,
    ):
        a = np.random.default_rng(3).integers(0, 2**63, size=3 << 17, dtype=np.uint64)  # 3 MiB
        bank.send("insurer", "shares", a)
        got = insurer.recv("bank", "shares", Expect.array(np.uint64, (len(a),)))
        assert np.array_equal(got, a) and got.flags.writeable
        assert insurer.rejected == []
    assert ("silo-copy-insurer" in where) == copy_thread


def test_a_reused_receive_buffer_never_overwrites_a_message_still_in_use(pki):
    addrs = addresses(["bank", "insurer"])
    with (
        transport(pki, "insurer", addrs) as insurer,
        transport(pki, "bank", addrs, chunk_bytes=1 << 20) as bank,
    ):
        n = 1 << 20  # 8 MiB of uint64 shares, a pooled buffer
        first = insurer_got = None
        for i in range(4):
            a = np.full(n, i, dtype=np.uint64)
            bank.send("insurer", f"s/{i}", a)
            got = insurer.recv("bank", f"s/{i}", Expect.array(np.uint64, (n,)))
            assert np.array_equal(got, a) and got.flags.writeable
            if i == 0:
                first = got  # kept: its buffer is never handed out again
            else:
                insurer_got = got  # dropped at the next round: its buffer is
        assert (first == 0).all() and (insurer_got == 3).all()
        assert insurer._buffers.reused >= 1
