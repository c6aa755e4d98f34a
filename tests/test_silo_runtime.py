"""Cross-silo runtime (SPMD): every party runs the same job in its own process, with its
own inline runtime, and the processes exchange protocol messages over the mutual-TLS
transport on loopback. Each job gives what it gives in simulation mode, each party's
ledger counts the messages it sent and received, and a killed party is named at the
others within the timeout."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cipherray as cr
from cipherray.runtime.silo import make_dev_pki

ROOT = Path(__file__).resolve().parents[1]
PEER = Path(__file__).resolve().parent / "silo_job_peer.py"
NAMES = ["h1", "h2", "h3", "alice", "bob", "dealer", "bank", "insurer"]


def addresses(parties) -> dict[str, str]:
    """Distinct free ports below the ephemeral range (where Ray, started by a party's
    process, picks its own), each bound until all are chosen."""
    socks: list[socket.socket] = []
    try:
        while len(socks) < len(parties):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", random.randrange(20000, 30000)))
            except OSError:
                s.close()
                continue
            socks.append(s)
        return {p: f"127.0.0.1:{s.getsockname()[1]}" for p, s in zip(parties, socks)}
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_dev_pki(NAMES, d)
    return str(d)


def start(job: str, party: str, **cfg) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_VERBOSITY": "NONE", "TQDM_DISABLE": "1"}
    return subprocess.Popen(
        [sys.executable, str(PEER), job, json.dumps({"party": party, **cfg})],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def run_parties(job: str, parties: list[str], pki: str, timeout: float = 60, **cfg) -> dict:
    addrs = addresses(parties)
    procs = {
        p: start(job, p, addresses=addrs, tls=pki, parties=parties, timeout=timeout, **cfg)
        for p in parties
    }
    out = {}
    for p, proc in procs.items():
        stdout, _ = proc.communicate(timeout=300)
        out[p] = json.loads(stdout.strip().splitlines()[-1])
    return out


def edges(ledger: list) -> dict:
    return {(r["from"], r["to"]): (r["messages"], r["bytes"]) for r in ledger if r["to"]}


def own_edges(all_edges: dict, party: str) -> dict:
    return {k: v for k, v in all_edges.items() if party in k}


def sim_ledger(rt) -> dict:
    df = rt.ledger.summary()
    return edges(json.loads(df.to_json(orient="records")))


# -- quickstart -------------------------------------------------------------------------------
def test_quickstart_three_parties_as_in_simulation(pki):
    from cipherray.workloads import stats

    parties = ["h1", "h2", "h3"]
    got = run_parties("stats", parties, pki)
    for p in parties:
        assert "error" not in got[p], got[p]
    rt = cr.init(parties, backend="inline", driver_as="h1")
    try:
        report = stats.run(stats.StatsConfig(hospitals=parties, backend="inline"), rt=rt)
        sim = sim_ledger(rt)
    finally:
        rt.shutdown()
    want = report["result"].to_dict(orient="list")
    assert got["h1"]["result"] == json.loads(json.dumps(want))
    assert got["h2"]["result"] is None and got["h3"]["result"] is None  # revealed to h1 only
    for p in parties:  # each party counts exactly the messages it sent and received
        assert edges(got[p]["ledger"]) == own_edges(sim, p)


def test_quickstart_two_parties(pki):
    got = run_parties("stats", ["h1", "h2"], pki)
    assert got["h1"]["result"]["patients_total"]
    assert edges(got["h1"]["ledger"]) == edges(got["h2"]["ledger"])


def test_quickstart_on_ray_two_organisations(pki):
    """Each organisation runs its own embedded Ray; a gateway actor holds its transport."""
    got = run_parties("stats", ["h1", "h2"], pki, backend="ray")
    for p in ("h1", "h2"):
        assert "error" not in got[p], got[p]
    inline = run_parties("stats", ["h1", "h2"], pki)
    assert got["h1"]["result"] == inline["h1"]["result"]
    assert got["h2"]["result"] is None
    for p in ("h1", "h2"):
        assert edges(got[p]["ledger"]) == edges(inline[p]["ledger"])


def run_cli(
    argv: list[str], parties: list[str], pki: str, cwd: Path, backend: str = "inline"
) -> dict:
    addrs = addresses(parties)
    flag = ",".join(f"{p}={a}" for p, a in addrs.items())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_VERBOSITY": "NONE", "TQDM_DISABLE": "1"}
    procs = {
        p: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cipherray",
                "run",
                *argv,
                "--backend",
                backend,
                "--no-progress",
                "--timeout",
                "60",
                "--party",
                p,
                "--addresses",
                flag,
                "--tls",
                pki,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )  # fmt: skip
        for p in parties
    }
    out = {p: proc.communicate(timeout=180) for p, proc in procs.items()}
    for p, proc in procs.items():
        assert proc.returncode == 0, out[p]
    return {p: o for p, (o, _) in out.items()}


def test_cli_runs_one_party_of_the_quickstart(pki, tmp_path):
    out = run_cli(["quickstart"], ["h1", "h2"], pki, tmp_path)
    assert "I10 hypertension" in out["h1"]
    assert "this process runs h2; the result is at h1" in out["h2"]


# -- PSI --------------------------------------------------------------------------------------
def test_psi_two_parties_as_in_simulation(pki, tmp_path):
    from cipherray.workloads.psi import job

    a, b = tmp_path / "alice.csv", tmp_path / "bob.csv"
    pd.DataFrame({"id": [f"u{i}" for i in range(0, 300, 2)]}).to_csv(a, index=False)
    pd.DataFrame({"id": [f"u{i}" for i in range(0, 300, 3)]}).to_csv(b, index=False)
    inputs = {"alice": str(a), "bob": str(b)}
    got = run_parties("psi", ["alice", "bob"], pki, inputs=inputs, out=str(tmp_path / "silo"))
    cfg = job.PsiConfig(
        inputs=inputs, keys=["id"], out=str(tmp_path / "sim"), backend="inline", workers=1,
        progress=False,
    )  # fmt: skip
    rt = cr.init(["alice", "bob"], backend="inline")
    try:
        want = job.run(cfg, rt=rt)
        sim = sim_ledger(rt)
    finally:
        rt.shutdown()
    for p in ("alice", "bob"):
        assert "error" not in got[p], got[p]
        assert got[p]["size"] == want["size"] == 50
        assert got[p]["stats"] == json.loads(json.dumps(want["stats"]))
        mine = pd.read_csv(got[p]["files"][p])
        assert sorted(mine["id"]) == sorted(pd.read_csv(want["files"][p])["id"])
        assert edges(got[p]["ledger"]) == sim


def test_psi_three_parties_as_in_simulation(pki, tmp_path):
    from cipherray.workloads.psi import job

    parties = ["h1", "h2", "h3"]
    inputs = {}
    for k, p in enumerate(parties):
        inputs[p] = str(tmp_path / f"{p}.csv")
        ids = [f"u{i}" for i in range(0, 240, k + 2)]  # multiples of 2, 3 and 4
        pd.DataFrame({"id": ids}).to_csv(inputs[p], index=False)
    got = run_parties("psi", parties, pki, inputs=inputs, out=str(tmp_path / "silo"))
    cfg = job.PsiConfig(
        inputs=inputs, keys=["id"], out=str(tmp_path / "sim"), backend="inline", workers=1,
        progress=False,
    )  # fmt: skip
    rt = cr.init(parties, backend="inline")
    try:
        want = job.run(cfg, rt=rt)
        sim = sim_ledger(rt)
    finally:
        rt.shutdown()
    assert want["size"] == 20  # multiples of 12 below 240
    for p in parties:
        assert "error" not in got[p], got[p]
        assert got[p]["size"] == want["size"]
        mine = pd.read_csv(got[p]["files"][p])
        assert sorted(mine["id"]) == sorted(pd.read_csv(want["files"][p])["id"])
        assert edges(got[p]["ledger"]) == own_edges(sim, p)


# -- MPC logistic regression (OT provider, no dealer) -----------------------------------------
def test_mpc_logistic_regression_with_ot_as_in_simulation(pki):
    from cipherray.workloads.vfl import ss_logreg

    got = run_parties("logreg", ["alice", "bob"], pki, timeout=120, epochs=2)
    for p in ("alice", "bob"):
        assert "error" not in got[p], got[p]
    want = ss_logreg.run(ss_logreg.VflLogregConfig(epochs=2, backend="inline", provider="ot"))
    alice, bob = got["alice"], got["bob"]
    # the model is revealed to alice, the accuracy to bob; shares and truncation are
    # random, so both runs agree to fixed-point precision
    np.testing.assert_allclose(alice["w"], want["w"], atol=2e-3)
    assert abs(alice["b"] - want["b"]) < 2e-3
    assert abs(bob["accuracy"] - want["accuracy"]) < 0.01
    assert alice["accuracy"] is None and bob["w"] is None
    assert alice["bytes"] == bob["bytes"] == want["bytes"]  # two parties: every message


def test_mpc_logistic_regression_on_ray_two_organisations(pki):
    """Large messages through the gateway actors (OT extension: ~100 MB per epoch)."""
    from cipherray.workloads.vfl import ss_logreg

    got = run_parties("logreg", ["alice", "bob"], pki, timeout=120, epochs=1, backend="ray")
    for p in ("alice", "bob"):
        assert "error" not in got[p], got[p]
    want = ss_logreg.run(ss_logreg.VflLogregConfig(epochs=1, backend="inline", provider="ot"))
    np.testing.assert_allclose(got["alice"]["w"], want["w"], atol=2e-3)
    assert abs(got["bob"]["accuracy"] - want["accuracy"]) < 0.01
    assert got["alice"]["bytes"] == got["bob"]["bytes"] == want["bytes"]


def test_mpc_logistic_regression_with_a_dealer_in_its_own_process(pki):
    """The dealer holds no share: it learns each shared value's public shape from the
    first member's process, and sends its triples over the transport."""
    from cipherray.workloads.vfl import ss_logreg

    parties = ["alice", "bob", "dealer"]
    got = run_parties("logreg", parties, pki, timeout=120, epochs=1, provider="dealer")
    for p in parties:
        assert "error" not in got[p], got[p]
    rt = cr.init(parties, backend="inline")
    try:
        want = ss_logreg.run(ss_logreg.VflLogregConfig(epochs=1, backend="inline"), rt=rt)
        sim = sim_ledger(rt)
    finally:
        rt.shutdown()
    np.testing.assert_allclose(got["alice"]["w"], want["w"], atol=2e-3)
    assert abs(got["bob"]["accuracy"] - want["accuracy"]) < 0.01
    for p in parties:  # what each party sent and received, as simulation counts it
        assert got[p]["bytes"] == sum(b for _, b in own_edges(sim, p).values())


# -- failures ---------------------------------------------------------------------------------
def test_a_killed_party_is_named_at_the_others_within_the_timeout(pki):
    parties = ["h1", "h2", "h3"]
    addrs = addresses(parties)
    cfg = {"addresses": addrs, "tls": pki, "parties": parties, "timeout": 4}
    dead = start("idle", "h3", **cfg)
    assert dead.stdout.readline().strip() == "joined"
    dead.kill()
    dead.wait()
    t0 = time.monotonic()
    live = {p: start("stats", p, **cfg) for p in ("h1", "h2")}
    for proc in live.values():
        stdout, _ = proc.communicate(timeout=60)
        out = json.loads(stdout.strip().splitlines()[-1])
        assert out.get("error") in ("PartyError", "PartyTimeoutError"), out
        assert out["party"] == "h3", out
    assert time.monotonic() - t0 < 30  # the timeout (4 s) plus start-up, never a hang
    # h3 restarted: a new job on the same addresses runs to its end at every party
    again = {p: start("stats", p, **{**cfg, "timeout": 60}) for p in parties}
    for p, proc in again.items():
        stdout, _ = proc.communicate(timeout=120)
        out = json.loads(stdout.strip().splitlines()[-1])
        assert "error" not in out, out
        assert (out["result"] is not None) == (p == "h1")  # revealed to h1 only


def test_each_party_enforces_its_own_grants(pki):
    """insurer's script grants itself bank's data; bank's does not: bank refuses to send,
    and insurer's wait ends with PartyError naming bank (no hang)."""
    addrs = addresses(["bank", "insurer"])
    out: dict = {}

    def party(name: str) -> None:
        try:
            with cr.init(
                party=name, addresses=addrs, tls=pki, backend="inline", timeout_s=20
            ) as rt:
                bank, insurer = rt.party("bank"), rt.party("insurer")
                if name == "insurer":
                    rt.policy.grant(owner="bank", to="insurer", allow="plaintext")
                x = bank(np.arange)(5)
                y = rt.send(x, to=insurer, tag="raw")
                out[name] = rt.get(y) if rt.is_local(insurer) else "sent"
        except cr.CipherrayError as e:
            out[name] = e

    threads = [threading.Thread(target=party, args=(p,)) for p in ("bank", "insurer")]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert isinstance(out["bank"], cr.DisclosureError), out
    assert isinstance(out["insurer"], cr.PartyError) and out["insurer"].party == "bank", out
    assert time.monotonic() - t0 < 15


def _bad_rows() -> np.ndarray:
    raise ValueError("the input file has no rows")


def test_a_step_that_fails_at_one_party_ends_the_others_waits(pki):
    addrs = addresses(["bank", "insurer"])
    out: dict = {}

    def party(name: str) -> None:
        try:
            with cr.init(
                party=name, addresses=addrs, tls=pki, backend="inline", timeout_s=30
            ) as rt:
                bank, insurer = rt.party("bank"), rt.party("insurer")
                mpc = rt.mpc(bank, insurer)
                x = bank(_bad_rows)().to(mpc)  # bank's step fails before its seed leaves
                y = insurer(np.ones)(3).to(mpc)
                rt.get((x + y).sum().reveal_to(insurer))
        except cr.CipherrayError as e:
            out[name] = e

    threads = [threading.Thread(target=party, args=(p,)) for p in ("bank", "insurer")]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert isinstance(out["bank"], cr.InputError) and out["bank"].party == "bank"
    assert isinstance(out["insurer"], cr.PartyError) and out["insurer"].party == "bank"
    assert "no rows" in str(out["insurer"])  # the reason travels with the failure
    assert time.monotonic() - t0 < 15  # not the 30 s timeout


def test_a_remote_value_cannot_be_read_here(pki):
    addrs = addresses(["bank", "insurer"])
    out: dict = {}

    def party(name: str) -> None:
        with cr.init(party=name, addresses=addrs, tls=pki, backend="inline", timeout_s=20) as rt:
            bank, insurer = rt.party("bank"), rt.party("insurer")
            x = insurer(np.arange)(3)
            public = insurer(len, declare="public")(x)
            try:
                rt.get(x)
                out[name] = "read"
            except cr.DisclosureError:
                out[name] = "refused"
            out[name, "public"] = rt.get(public)
            out[name, "here"] = rt.here
            assert rt.is_local(bank) == (name == "bank")

    threads = [threading.Thread(target=party, args=(p,)) for p in ("bank", "insurer")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out["bank"] == "refused" and out["insurer"] == "read"
    assert out["bank", "public"] == out["insurer", "public"] == 3
    assert out["bank", "here"] == "bank"


# -- a population hosted by its organisation's process ---------------------------------------
def _weighted(cids: np.ndarray, model: np.ndarray) -> np.ndarray:
    return model * float(np.sum(cids))


def _add(*parts: np.ndarray) -> np.ndarray:
    return np.sum(parts, axis=0)


def test_a_population_runs_in_its_organisations_process(pki):
    """alice's process hosts population 'alice' (6 clients on 2 workers); bank's sends
    the model to each of its workers and gets their sums back, typed and checked; a value
    published at either end reaches the other process."""
    addrs = addresses(["bank", "alice"])
    pops = {"alice": {"clients": 6, "workers": 2}}
    out: dict = {}
    vec = cr.Expect.array(np.float64, (2,))

    def party(name: str) -> None:
        try:
            with cr.init(party=name, addresses=addrs, tls=pki, backend="inline",
                         timeout_s=20, populations=pops) as rt:  # fmt: skip
                rt.protocol("fl", {"model": "the model", "sum": "a worker's sum"})
                bank, phones = rt.party("bank"), rt.population("alice")
                out[name, "parties"] = ([p.name for p in rt.parties], rt.populations)
                model = bank(np.full)(2, 0.5)
                sums = []
                for w, cids in phones.chunks(3):
                    at = rt.send(model, to=phones, tag="fl/model", worker=w, expect=vec)
                    s = phones(_weighted, worker=w)(cids, at)
                    sums.append(rt.send(s, to=bank, tag="fl/sum", expect=vec))
                out[name] = rt.get(bank(_add, declare="public")(*sums))
                out[name, "held"] = rt.get(phones(len, declare="public", worker=1)(at))
                out[name, "messages"] = rt.ledger.total_messages
        except cr.CipherrayError as e:
            out[name] = e

    threads = [threading.Thread(target=party, args=(p,)) for p in ("bank", "alice")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for name in ("bank", "alice"):
        np.testing.assert_allclose(out[name], [7.5, 7.5])  # 0.5 * (0 + 1 + ... + 5)
        assert out[name, "held"] == 2
        assert out[name, "messages"] == 4  # each counts the 2 models and the 2 sums
        parties, populations = out[name, "parties"]
        assert parties == ["bank"] and [p.name for p in populations] == ["alice"]
    assert populations[0].clients == 6 and populations[0].workers == 2
