"""Cross-silo workloads that send Paillier keys and ciphertexts between organisations:
each party runs the same job in its own process (inline backend) and the processes
exchange typed messages over mutual TLS on loopback. Each party's results equal the
simulation-mode results, and a party learns only what the protocol gives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cipherray as cr
from cipherray.runtime.silo import make_dev_pki

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_silo_runtime import addresses, edges, own_edges, run_cli, sim_ledger  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PEER = Path(__file__).resolve().parent / "silo_workload_peer.py"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_dev_pki(
        ["alice", "bob", "carol", "guest", "host", "arbiter", "server", "bank", "insurer"], d
    )
    return str(d)


def run_parties(job: str, parties: list[str], pki: str, timeout: float = 60, **cfg) -> dict:
    addrs = addresses(parties)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_VERBOSITY": "NONE", "TQDM_DISABLE": "1"}
    procs = {
        p: subprocess.Popen(
            [
                sys.executable,
                str(PEER),
                job,
                json.dumps({"party": p, "addresses": addrs, "tls": pki, "timeout": timeout, **cfg}),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for p in parties
    }
    out = {}
    for p, proc in procs.items():
        stdout, _ = proc.communicate(timeout=300)
        out[p] = json.loads(stdout.strip().splitlines()[-1])
    for p in parties:
        assert "error" not in out[p], out[p]
    return out


# -- PSI intersection-sum (ECDH + Paillier) ---------------------------------------------------
def test_psi_sum_as_in_simulation_and_only_alice_learns_it(pki, tmp_path):
    from cipherray.workloads.psi import job

    a, b = tmp_path / "alice.csv", tmp_path / "bob.csv"
    pd.DataFrame({"id": [f"u{i}" for i in range(0, 120, 2)]}).to_csv(a, index=False)
    ids = [f"u{i}" for i in range(0, 120, 3)]
    pd.DataFrame({"id": ids, "v": np.arange(len(ids)) * 7 + 1}).to_csv(b, index=False)
    inputs = {"alice": str(a), "bob": str(b)}
    got = run_parties("psi_sum", ["alice", "bob"], pki, inputs=inputs, out=str(tmp_path))
    cfg = job.PsiConfig(
        inputs=inputs, keys=["id"], out=str(tmp_path / "sim"), mode="sum", value="v",
        backend="inline", workers=1, progress=False, insecure=True, paillier_bits=1024,
    )  # fmt: skip
    rt = cr.init(["alice", "bob"], backend="inline")
    try:
        want = job.run(cfg, rt=rt)
        sim = sim_ledger(rt)
    finally:
        rt.shutdown()
    plain = sum(k * 7 + 1 for k, i in enumerate(ids) if int(i[1:]) % 2 == 0)
    assert want["sum"] == plain and want["size"] == 20
    assert got["alice"]["sum"] == plain and got["alice"]["size"] == 20
    assert got["bob"]["sum"] is None and got["bob"]["size"] is None  # revealed to alice only
    for p in ("alice", "bob"):
        assert got[p]["stats"] == json.loads(json.dumps(want["stats"]))
        assert edges(got[p]["ledger"]) == own_edges(sim, p)


# -- VFL: hetero logistic regression and SecureBoost (Paillier) -------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from cipherray.workloads.vfl.demo import write_demo

    d = tmp_path_factory.mktemp("vfl_demo")
    paths = write_demo(str(d), rows=160, guest_features=2, host_features=3, seed=3)
    return {"guest": paths["bank"], "host": paths["insurer"]}


def vfl_as_in_simulation(pki, tmp_path, demo, parties, **params) -> tuple[dict, dict]:
    from cipherray.workloads.vfl import job

    common = dict(inputs=demo, keys=["id"], label="default", key_bits=1024, insecure=True,
                  **params)  # fmt: skip
    got = run_parties(
        "vfl", parties, pki, timeout=120, vfl={**common, "out": str(tmp_path / "silo")}
    )
    want = job.run(
        job.VflConfig(**common, out=str(tmp_path / "sim"), backend="inline", progress=False)
    )
    return got, want


def check_guest_only(got: dict, want: dict, parties: list[str]) -> None:
    g = got["guest"]
    assert g["rows"] == want["rows"]
    for k, v in want["metrics"].items():
        assert g["metrics"][k] == pytest.approx(v, abs=1e-6), k
    for p in parties:
        if p != "guest":  # the metrics and predictions are the guest's
            assert got[p]["metrics"] == {}
            assert not any("predictions" in f for f in got[p]["files"])
    assert any(f.endswith("predictions.csv") for f in g["files"])
    sim_edges = edges(json.loads(want["ledger"].to_json(orient="records")))
    for p in parties:  # each party counts exactly the messages it sent and received
        assert edges(got[p]["ledger"]) == own_edges(sim_edges, p), p
    assert any(f.endswith("importance_host.csv") for f in got["host"]["files"])
    sim = pd.read_csv(next(f for f in want["files"] if f.endswith("predictions.csv")))
    silo = pd.read_csv(next(f for f in g["files"] if f.endswith("predictions.csv")))
    np.testing.assert_allclose(silo["score"], sim["score"], atol=1e-6)


def test_vfl_hetero_lr_guest_key_as_in_simulation(pki, tmp_path, demo):
    got, want = vfl_as_in_simulation(
        pki, tmp_path, demo, ["guest", "host"], model="hetero_lr", epochs=2, batch=64
    )
    check_guest_only(got, want, ["guest", "host"])


def test_vfl_hetero_lr_with_an_arbiter_as_in_simulation(pki, tmp_path, demo):
    parties = ["guest", "host", "arbiter"]
    got, want = vfl_as_in_simulation(
        pki, tmp_path, demo, parties, model="hetero_lr", epochs=2, batch=64, arbiter="arbiter"
    )
    check_guest_only(got, want, parties)
    assert got["arbiter"]["files"] == []  # the arbiter holds no data and writes nothing


def test_vfl_secureboost_as_in_simulation(pki, tmp_path, demo):
    got, want = vfl_as_in_simulation(
        pki, tmp_path, demo, ["guest", "host"], model="secureboost", trees=2, depth=2, bins=8
    )
    check_guest_only(got, want, ["guest", "host"])


# -- `cipherray run ... --party` (the command line each organisation runs) -------------------
def test_cli_stats_over_files_joined_with_a_dealer(pki, tmp_path):

    gen = np.random.default_rng(5)  # test data only
    ids = gen.permutation(150)
    bank = pd.DataFrame({"id": ids[:120], "region": gen.choice(list("NESW"), 120),
                         "age": gen.integers(10, 90, 120)})  # fmt: skip
    ins = pd.DataFrame({"id": ids[30:], "income": gen.normal(5e4, 8e3, 120).round(2)})
    bank.to_csv(tmp_path / "alice.csv", index=False)
    ins.to_csv(tmp_path / "bob.csv", index=False)
    argv = [
        "stats", "--input", "alice=alice.csv", "--input", "bob=bob.csv", "--key", "id",
        "--groupby", "region", "--agg", "income:mean", "--agg", "id:count",
        "--where", "age>=18", "--to", "alice", "--dealer", "arbiter",
    ]  # fmt: skip
    got = run_cli([*argv, "--out", "silo"], ["alice", "bob", "arbiter"], pki, tmp_path)
    assert "the result is at alice" in got["bob"] and "the result is at alice" in got["arbiter"]
    _simulate_cli(argv, tmp_path)
    silo, sim = pd.read_csv(tmp_path / "silo/result.csv"), pd.read_csv(tmp_path / "sim/result.csv")
    pd.testing.assert_frame_equal(silo, sim)
    pooled = bank.merge(ins, on="id")
    assert silo["id_count"].sum() == (pooled.age >= 18).sum()
    report = json.loads((tmp_path / "silo/report.json").read_text())
    assert report["released_groups"] == len(silo) == 4 and report["released_to"] == "alice"


def test_cli_psi_sum(pki, tmp_path):
    pd.DataFrame({"id": [f"u{i}" for i in range(0, 60, 2)]}).to_csv(tmp_path / "a.csv", index=False)
    ids = [f"u{i}" for i in range(0, 60, 3)]
    pd.DataFrame({"id": ids, "v": range(len(ids))}).to_csv(tmp_path / "b.csv", index=False)
    argv = ["psi", "--input", "alice=a.csv", "--input", "bob=b.csv", "--key", "id",
            "--mode", "sum", "--value", "v", "--workers", "1"]  # fmt: skip
    got = run_cli(argv, ["alice", "bob"], pki, tmp_path)
    want = sum(k for k, i in enumerate(ids) if int(i[1:]) % 2 == 0)
    assert f"intersection sum of v: {want} over 10 identifiers" in got["alice"]
    assert "this process runs bob; the sum is at alice" in got["bob"]


def test_cli_hfl_silos_as_in_simulation(pki, tmp_path):
    """A server process and one process per silo; each silo reads only its own CSV."""

    gen = np.random.default_rng(2)  # test data only
    x = gen.normal(size=(240, 4))
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 * gen.normal(size=240) > 0).astype(int)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(4)]).assign(label=y)
    df.iloc[:120].to_csv(tmp_path / "alice.csv", index=False)
    df.iloc[120:].to_csv(tmp_path / "bob.csv", index=False)
    argv = ["hfl", "--silos", "alice=alice.csv,bob=bob.csv", "--label", "label",
            "--rounds", "2", "--model", "logistic", "--lr", "0.5"]  # fmt: skip
    silo, sim = _hfl_cli_as_in_simulation(argv, ["alice", "bob"], pki, tmp_path)
    curve = [(r["loss"], r["accuracy"]) for r in sim["rounds"]]
    assert [(r["loss"], r["accuracy"]) for r in silo["rounds"]] == curve
    assert sim["final_accuracy"] > 0.8


def test_cli_hfl_silos_secagg_as_in_simulation(pki, tmp_path):
    """SecAgg+ across organisations: a server process and three silo processes; the
    round plan, keys, sealed shares, masked inputs and unmask messages cross as typed
    data, and the training curve equals simulation mode's (up to SecAgg+'s stochastic
    rounding, below 1e-6 here)."""

    gen = np.random.default_rng(4)  # test data only
    x = gen.normal(size=(240, 3))
    y = (x @ np.array([1.5, -1.0, 0.5]) + 0.3 * gen.normal(size=240) > 0).astype(int)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(3)]).assign(label=y)
    silos = ["alice", "bob", "carol"]
    for k, name in enumerate(silos):
        df.iloc[80 * k : 80 * (k + 1)].to_csv(tmp_path / f"{name}.csv", index=False)
    argv = ["hfl", "--silos", ",".join(f"{n}={n}.csv" for n in silos), "--label", "label",
            "--rounds", "2", "--model", "logistic", "--lr", "0.5", "--secagg"]  # fmt: skip
    silo, sim = _hfl_cli_as_in_simulation(argv, silos, pki, tmp_path)
    assert len(silo["rounds"]) == len(sim["rounds"]) == 2
    for a, b in zip(silo["rounds"], sim["rounds"]):
        assert a["included"] == b["included"] == 3 and a["dropped"] == []
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1e-6)
    assert silo["secagg"] == sim["secagg"]
    assert silo["secagg"]["clients"] == 3 and silo["secagg"]["complete"]
    assert sim["final_accuracy"] > 0.8


def _simulate_cli(argv: list[str], cwd: Path) -> None:
    """`cipherray run ARGV` in simulation mode (inline, one process) in `cwd`, writing to
    `cwd/sim`."""
    from cipherray.cli import main

    here = os.getcwd()
    os.chdir(cwd)
    try:
        assert main(["run", *argv, "--backend", "inline", "--no-progress", "--out", "sim"]) == 0
    finally:
        os.chdir(here)


def _hfl_cli_as_in_simulation(
    argv: list[str], orgs: list[str], pki: str, tmp_path, backend: str = "inline"
) -> tuple:
    """`argv` run by a server process and one process per organisation (each on its own
    `backend`), and in simulation mode (inline, one process): the two reports."""

    got = run_cli(argv + ["--out", "silo"], ["server", *orgs], pki, tmp_path, backend)
    assert all("final accuracy" in got[p] for p in ["server", *orgs])
    _simulate_cli(argv, tmp_path)
    sim = json.loads((tmp_path / "sim/report.json").read_text())
    silo = json.loads((tmp_path / "silo/report.json").read_text())  # every process wrote it
    return silo, sim


def test_cli_hfl_populations_as_in_simulation(pki, tmp_path):
    """Each organisation hosts a population of 20 virtual clients on its own workers (two
    per process); a server process and the two organisations' processes train the digits
    model across organisations, and the curve is simulation mode's, float for float."""
    argv = ["hfl", "--populations", "alice=20,bob=20", "--rounds", "2", "--lr", "0.5",
            "--workers", "2"]  # fmt: skip
    silo, sim = _hfl_cli_as_in_simulation(argv, ["alice", "bob"], pki, tmp_path)
    curve = [(r["loss"], r["accuracy"], r["included"]) for r in sim["rounds"]]
    assert [(r["loss"], r["accuracy"], r["included"]) for r in silo["rounds"]] == curve
    assert [r["included"] for r in silo["rounds"]] == [40, 40]
    assert sim["rounds"][1]["accuracy"] > sim["rounds"][0]["accuracy"]


@pytest.mark.slow
def test_cli_hfl_populations_on_ray_as_in_simulation(pki, tmp_path):
    """The same across organisations, each process with its own embedded Ray (the
    population's workers are Ray actors; a gateway actor holds the transport)."""
    argv = ["hfl", "--populations", "alice=20,bob=20", "--rounds", "2", "--lr", "0.5",
            "--workers", "2"]  # fmt: skip
    silo, sim = _hfl_cli_as_in_simulation(argv, ["alice", "bob"], pki, tmp_path, "ray")
    curve = [(r["loss"], r["accuracy"], r["included"]) for r in sim["rounds"]]
    assert [(r["loss"], r["accuracy"], r["included"]) for r in silo["rounds"]] == curve


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_cli_hfl_populations_secagg_as_in_simulation(pki, tmp_path, dropout):
    """SecAgg+ over two organisations' populations (one graph over all 40 clients):
    the plan, keys, sealed shares, masked inputs and unmask messages of each population
    worker cross as typed data. Without dropout the curve equals simulation mode's (up to
    SecAgg+'s stochastic rounding); with 10% simulated dropout per stage (which clients
    drop is drawn from the CSPRNG, in either mode) as many clients drop as in simulation,
    in both organisations, and the dropped ones' masks are recovered."""
    argv = ["hfl", "--populations", "alice=20,bob=20", "--rounds", "2", "--lr", "0.5",
            "--workers", "2", "--secagg", "--dropout", str(dropout)]  # fmt: skip
    silo, sim = _hfl_cli_as_in_simulation(argv, ["alice", "bob"], pki, tmp_path)
    assert len(silo["rounds"]) == len(sim["rounds"]) == 2
    for a, b in zip(silo["rounds"], sim["rounds"]):
        assert a["included"] == b["included"] == 40 - len(a["dropped"])
        assert sorted(d["reason"] for d in a["dropped"]) == sorted(
            d["reason"] for d in b["dropped"]
        )
        if not dropout:
            assert a["dropped"] == []
            assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
            assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1e-6)
        else:
            assert a["included"] < 40
            # other clients drop (CSPRNG), but the total is still the survivors' update:
            # an unrecovered mask would make it noise and the loss far from simulation's
            assert abs(a["loss"] - b["loss"]) < 0.1
            cids = {d["cid"] for d in a["dropped"]}
            assert cids & set(range(20)) and cids & set(range(20, 40))  # in both
    assert silo["secagg"] == sim["secagg"]
    assert silo["secagg"]["clients"] == 40
    assert silo["secagg"]["complete"] == bool(dropout)  # 40 clients: sparse without dropout


def test_cli_hfl_populations_distributed_dp(pki, tmp_path):
    """Distributed DP over SecAgg+ across organisations: each client adds its share of
    the noise before masking; the privacy spent equals simulation mode's (the noise
    itself is fresh in each run)."""
    argv = ["hfl", "--populations", "alice=20,bob=20", "--rounds", "2", "--lr", "0.5",
            "--secagg", "--dp-epsilon", "8", "--dp-mode", "distributed"]  # fmt: skip
    silo, sim = _hfl_cli_as_in_simulation(argv, ["alice", "bob"], pki, tmp_path)
    assert [r["included"] for r in silo["rounds"]] == [r["included"] for r in sim["rounds"]]
    assert [r["epsilon"] for r in silo["rounds"]] == [r["epsilon"] for r in sim["rounds"]]
    assert silo["epsilon"] == sim["epsilon"] <= 8
    assert silo["noise_multiplier"] == sim["noise_multiplier"] and silo["dp_mode"] == "distributed"


# -- the HE location (rt.he) across organisations ----------------------------------------------
def _double(c):
    return c * 2


def test_he_location_across_organisations(pki):
    """insurer holds the key: its public key reaches bank's process as a wire value,
    bank's ciphertexts reach insurer's; H2A and A2H (rt.mpc with the OT provider) too."""
    addrs = addresses(["bank", "insurer"])
    out: dict = {}

    def party(name: str) -> None:
        try:
            with cr.init(
                party=name, addresses=addrs, tls=pki, backend="inline", timeout_s=30
            ) as rt:
                bank, insurer = rt.party("bank"), rt.party("insurer")
                rt.policy.grant(owner="bank", to="insurer", allow="aggregate", min_rows=1)
                he = rt.he(keyholder=insurer, bits=1024, insecure=True)
                x = bank(np.arange, declare="aggregate", rows=5)(3.0).to(he)  # encrypted at bank
                y = he(_double, declare="aggregate", rows=5)(x)  # evaluated at bank
                shares = y.to(rt.mpc(bank, insurer, provider="ot"))  # H2A
                back = (shares + shares).to(he)  # A2H
                z, w = y.reveal_to(insurer), back.reveal_to(insurer)
                out[name] = (rt.get(z), rt.get(w)) if rt.is_local(insurer) else "sent"
        except cr.CipherrayError as e:
            out[name] = e

    threads = [threading.Thread(target=party, args=(p,)) for p in ("bank", "insurer")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert out["bank"] == "sent", out
    z, w = out["insurer"]
    np.testing.assert_allclose(z, [0.0, 2.0, 4.0])
    np.testing.assert_allclose(w, [0.0, 4.0, 8.0], atol=1e-4)
