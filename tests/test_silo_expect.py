"""What a receiving step expects of a protocol message (`silo.expect`): the receiver's own
script says what dtype, shape and length a peer's value must have, the receiving party
checks it before any step uses it, and a value that is not that raises `WireError` naming
the sender and the message's tag, at the receiver and (told by the failure broadcast) at
the sender, with the receiver's state intact and no wait running into its timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from silo_fuzz_peer import BANK_INPUT, INSURER_INPUT, MUTATIONS, SCRIPTS, script
from test_silo_runtime import addresses, pki  # noqa: F401 - the module's PKI fixture

import cipherray as cr
from cipherray.runtime.errors import WireError
from cipherray.runtime.silo import expect, wire
from cipherray.runtime.silo.expect import Like, check_value, expect_of, resolve
from cipherray.runtime.silo.wire import CipherBytes, Expect

ROOT = Path(__file__).resolve().parents[1]
FUZZ_PEER = Path(__file__).resolve().parent / "silo_fuzz_peer.py"


def refused(value, want, match: str) -> WireError:
    with pytest.raises(WireError, match=match) as e:
        check_value(value, want, "bank", "mpc/open#7")
    assert e.value.party == "bank" and e.value.step == "mpc/open#7"
    return e.value


# -- check_value ------------------------------------------------------------------------------
def test_values_the_step_expects_pass():
    share = np.arange(12, dtype=np.uint64).reshape(3, 4)
    assert check_value(share, expect.ring_shares((3, 4)), "bank", "t") is share
    assert check_value(share, expect.ring_shares((None, 4), max_bytes=96), "bank", "t") is share
    seed = (os.urandom(32), (3, 4))
    assert check_value(seed, expect.seed(32, max_share_bytes=96), "bank", "t") is seed
    pair = (np.zeros((5, 2)), np.zeros(5, dtype=np.int64))
    tied = Expect.tuple(Expect.array(np.float64, ("n", 2)), Expect.array(np.int64, ("n",)))
    assert check_value(pair, tied, "bank", "t") is pair
    assert check_value(b"x" * 32, Expect.bytes(32), "bank", "t") == b"x" * 32
    assert check_value(np.uint64(3), Expect("scalar", "uint64"), "bank", "t") == 3
    assert check_value({"any": [1, "plain"]}, None, "bank", "t") == {"any": [1, "plain"]}


def test_wrong_dtype_shape_and_kind_are_named():
    share = np.arange(4, dtype=np.uint64)
    refused(share.astype(np.float64), expect.ring_shares((4,)), "expected dtype uint64")
    refused(share.astype(np.int64), expect.ring_shares((4,)), "expected dtype uint64")
    refused(share[:3], expect.ring_shares((4,)), r"expected shape \(4,\)")  # truncated
    refused(np.tile(share, 2), expect.ring_shares((4,)), r"expected shape \(4,\)")
    refused(share.reshape(2, 2), expect.ring_shares((4,)), r"expected shape")
    refused(share.tobytes(), expect.ring_shares((4,)), "kind array, got 32 bytes")
    refused({"shares": [1, 2]}, expect.ring_shares(), "kind array, got a dict")
    refused(np.uint64(1), expect.ring_shares(), "kind array, got a uint64 scalar")
    pair = (np.zeros((5, 2)), np.zeros(4, dtype=np.int64))  # "n" is 5, then 4
    tied = Expect.tuple(Expect.array(np.float64, ("n", 2)), Expect.array(np.int64, ("n",)))
    refused(pair, tied, r"expected shape \('n',\)")


def test_lengths_and_sizes_are_bounded():
    refused(b"x" * 31, Expect.bytes(32), "expected 32 bytes, got 31 bytes")  # truncated
    refused(b"x" * 33, Expect.bytes(32), "expected 32 bytes, got 33 bytes")
    refused(CipherBytes(b"x" * 32), Expect.bytes(32), "kind bytes, got 32 bytes")
    big = np.zeros(1000, dtype=np.uint64)
    refused(big, expect.ring_shares(max_bytes=4096), "8000 bytes exceed the step's limit")
    seed = expect.seed(32, max_share_bytes=1 << 20)
    refused((os.urandom(32), (1 << 40,)), seed, r"shape \(1099511627776,\) means")
    refused((os.urandom(16), (4,)), seed, "expected 32 bytes, got 16 bytes")
    refused((os.urandom(32), (-1,)), seed, "expected a shape")
    refused((os.urandom(32), ("4",)), seed, "expected a shape")


def test_tuples_are_checked_value_by_value():
    two = Expect.tuple(expect.ring_shares((2,)), Expect.bytes(4))
    good = (np.zeros(2, np.uint64), b"abcd")
    assert check_value(good, two, "bank", "t") is good
    refused((*good, b"more"), two, "expected a tuple of 2 values, got 3")  # oversized
    refused(good[:1], two, "expected a tuple of 2 values, got 1")
    refused((good[1], good[0]), two, "kind array, got 4 bytes")
    refused(good[0], two, "kind tuple, got a uint64 array")
    refused(good, Expect.tuple(None, None, max_bytes=8), "20 bytes exceed")


def test_like_takes_the_form_of_the_receivers_own_value():
    own = np.zeros((3, 2), dtype=np.uint64)
    values = [own, None]
    want = resolve(Like(0), values)
    assert want == expect_of(own)
    assert check_value(np.ones((3, 2), np.uint64), want, "bank", "t").shape == (3, 2)
    refused(np.ones((3, 2), np.int64), want, "expected dtype uint64")
    refused(np.ones((2, 3), np.uint64), want, r"expected shape \(3, 2\)")
    pair = resolve(Like(0), [(own, np.zeros(3, np.uint8))])
    refused((own, np.zeros(3, np.bool_)), pair, "expected dtype uint8")
    assert expect_of({"plain": 1}) is None  # no form to ask for: the wire's checks only


def test_the_wire_format_checks_lengths_and_named_dimensions():
    def decode(value, want):
        (frame,) = wire.frames(value, job="j", src="bank", dst="insurer", tag="t", sess=1, seq=0)
        h, chunk = wire.parse_frame(frame, "bank")
        return wire.decode(wire.Message(h, np.frombuffer(chunk, np.uint8)), want)

    assert decode(b"x" * 32, Expect.bytes(32)) == b"x" * 32
    with pytest.raises(WireError, match="expected 32 bytes, got 31"):
        decode(b"x" * 31, Expect.bytes(32))
    tied = Expect.tuple(Expect.array(np.float64, ("n", 2)), Expect.array(np.int64, ("n",)))
    assert len(decode((np.zeros((5, 2)), np.zeros(5, np.int64)), tied)) == 2
    with pytest.raises(WireError, match="expected shape"):
        decode((np.zeros((5, 2)), np.zeros(4, np.int64)), tied)


# -- in one runtime ---------------------------------------------------------------------------
def test_rt_send_checks_what_the_receiver_expects():
    with cr.init(["bank", "insurer"], backend="inline", driver_as="insurer") as rt:
        bank, insurer = rt.parties
        rt.protocol("demo", {"ids": "hashed identifiers"})
        x = bank(np.arange)(6)
        ok = rt.send(x, to=insurer, tag="demo/ids", expect=cr.Expect.array(np.int64, (6,)))
        assert rt.get(ok).tolist() == list(range(6))
        bad = rt.send(x, to=insurer, tag="demo/ids", expect=cr.Expect.array(np.int64, (5,)))
        with pytest.raises(cr.WireError, match=r"expected shape \(5,\)") as e:
            rt.get(bad)
        assert e.value.party == "bank" and e.value.step.startswith("demo/ids#")
        assert rt.get(ok).tolist() == list(range(6))  # what insurer held is unchanged
        with pytest.raises(TypeError, match="cipherray.Expect"):
            rt.send(x, to=insurer, tag="demo/ids", expect=(6,))


def test_mpc_messages_of_honest_parties_pass_their_checks():
    """Simulation checks the same expectations: an MPC job that opens, reveals and
    shares gives its result, so what the engine declares is what honest parties send."""
    with cr.init(["a", "b", "c"], backend="inline", driver_as="a") as rt:
        a, b, c = rt.parties
        mpc = rt.mpc(a, b, dealer=c)
        for owner in ("b", "c"):
            rt.policy.grant(owner=owner, to="a", allow="plaintext")
        x = a(np.array)([[1.0, 2.0], [3.0, 4.0]]).to(mpc)
        y = b(np.array)([[0.5, -1.0], [2.0, 0.25]]).to(mpc)
        z = c(np.array)([1.0, -1.0]).to(mpc)  # a non-member owner deals its shares
        got = rt.get(((x * y).sum(axis=0) + z).reveal_to(a))
        np.testing.assert_allclose(got, [0.5 + 6.0 + 1.0, -2.0 + 1.0 - 1.0], atol=1e-3)


# -- two processes: a party that sends what the protocol does not expect -----------------------
def test_a_malicious_peer_is_named_at_the_honest_party_which_keeps_its_state(pki):  # noqa: F811
    """bank (its own process) runs the same job but sends its share of an open, or its
    input's seed, changed: another dtype, truncated, oversized, bytes, a tuple, frames cut
    short, a short seed, a shape of 2^40 elements. insurer gets WireError naming bank and
    the message's tag, at once (not its 20 s timeout); its own values are intact; bank
    is told and ends too. The unchanged job passes the same checks."""
    runs = [
        {"mutation": m, "addresses": addresses(["bank", "insurer"]), "job": f"fuzz-{m}"}
        for m in MUTATIONS
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_VERBOSITY": "NONE"}
    cfg = {"party": "bank", "tls": pki, "timeout": 20, "runs": runs}
    bank = subprocess.Popen(
        [sys.executable, str(FUZZ_PEER), json.dumps(cfg)], stdout=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip
    try:
        assert bank.stdout.readline().strip() == "ready"
        seen = {}
        for run in runs:
            refs: dict = {}
            t0 = time.monotonic()
            with cr.init(
                party="insurer", addresses=run["addresses"], tls=pki, backend="inline",
                timeout_s=20, job=run["job"],
            ) as rt:  # fmt: skip
                try:
                    seen[run["mutation"]] = script(rt, refs)
                except cr.CipherrayError as e:
                    seen[run["mutation"]] = e
                assert rt.get(refs["kept"]).tolist() == list(range(5))  # state intact
                if run["mutation"] == "none":
                    total = rt.get(refs["total"])
                    np.testing.assert_allclose(total, BANK_INPUT + INSURER_INPUT, atol=1e-4)
                elif "total" in refs:  # the refused message's result stays refused
                    with pytest.raises(cr.WireError):
                        rt.get(refs["total"])
            assert time.monotonic() - t0 < 10, run["mutation"]  # never the 20 s timeout
        stdout, _ = bank.communicate(timeout=60)
    finally:
        if bank.poll() is None:
            bank.kill()
    told = dict(zip(MUTATIONS, json.loads(stdout.strip().splitlines()[-1])))
    assert seen["none"] == 4 and told["none"] == {"result": "ok"}
    for m, (prefix, _) in MUTATIONS.items():
        if m == "none":
            continue
        err = seen[m]
        assert isinstance(err, cr.WireError), (m, err)
        assert err.party == "bank" and err.step.startswith(prefix), (m, err)
        # the sender learns that its message was refused (its waits end at once)
        assert told[m]["party"] == "bank" or m == "frames", (m, told[m])
        assert told[m]["error"] == "WireError", (m, told[m])


def test_a_malicious_provider_is_named_at_the_honest_party(pki):  # noqa: F811
    """bank (its own process) plays the OT provider's member 0, or the dealer of insurer
    and alice (alice honest, a third process), and sends its correlated randomness
    changed: its base-OT point truncated, its extension matrix oversized, its COT
    corrections of another dtype; a seed cut short, member 0's triple correction
    truncated or as bytes. insurer gets WireError naming bank and the provider's tag
    (the OT layer's own check, or the correction's shape from the request), at once;
    its own values are intact."""
    from silo_fuzz_peer import PROVIDER_MUTATIONS

    names = list(PROVIDER_MUTATIONS)
    runs = []
    for m in names:
        script_name = PROVIDER_MUTATIONS[m][0]
        parties = ["bank", "insurer"] + (["alice"] if script_name == "dealer" else [])
        runs.append({"mutation": m, "script": script_name, "addresses": addresses(parties),
                     "job": f"fuzz-{m}"})  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_VERBOSITY": "NONE"}

    def peer(party: str, mine: list) -> subprocess.Popen:
        cfg = {"party": party, "tls": pki, "timeout": 20, "runs": mine}
        return subprocess.Popen(
            [sys.executable, str(FUZZ_PEER), json.dumps(cfg)], stdout=subprocess.PIPE,
            text=True, env=env,
        )  # fmt: skip

    bank = peer("bank", runs)
    alice_runs = [{**r, "mutation": "none"} for r in runs if r["script"] == "dealer"]
    alice = peer("alice", alice_runs)
    try:
        assert bank.stdout.readline().strip() == "ready"
        assert alice.stdout.readline().strip() == "ready"
        seen, totals = {}, {}
        for run in runs:
            refs: dict = {}
            t0 = time.monotonic()
            with cr.init(
                party="insurer", addresses=run["addresses"], tls=pki, backend="inline",
                timeout_s=20, job=run["job"],
            ) as rt:  # fmt: skip
                try:
                    seen[run["mutation"]] = SCRIPTS[run["script"]](rt, refs)
                except cr.CipherrayError as e:
                    seen[run["mutation"]] = e
                assert rt.get(refs["kept"]).tolist() == list(range(5))  # state intact
                if PROVIDER_MUTATIONS[run["mutation"]][2] is None:
                    totals[run["mutation"]] = rt.get(refs["total"])
                elif "total" in refs:  # the refused message's result stays refused
                    with pytest.raises(cr.WireError):
                        rt.get(refs["total"])
            assert time.monotonic() - t0 < 10, run["mutation"]  # never the 20 s timeout
        bank.communicate(timeout=60)
        alice.communicate(timeout=60)
    finally:
        for p in (bank, alice):
            if p.poll() is None:
                p.kill()
    expected = BANK_INPUT * INSURER_INPUT + (BANK_INPUT + INSURER_INPUT) * (
        BANK_INPUT - INSURER_INPUT)  # fmt: skip
    for m in names:
        _, prefix, change = PROVIDER_MUTATIONS[m]
        err = seen[m]
        if change is None:  # the honest providers' messages pass their checks
            assert err == 4, (m, err)
            np.testing.assert_allclose(totals[m], expected, atol=1e-3)
            continue
        assert isinstance(err, cr.WireError), (m, err)
        assert err.party == "bank" and err.step.startswith(prefix), (m, err)
