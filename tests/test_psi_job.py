"""`cipherray run psi`: the job on the runtime, its outputs, its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import cipherray as cr
from cipherray.workloads.psi.job import PsiConfig, PsiInputError, parse_inputs, run


@pytest.fixture
def files(tmp_path):
    gen = np.random.default_rng(3)  # test data only
    ids = [str(x) for x in gen.choice(10**11, 700, replace=False) + 10**11]
    bank = pd.DataFrame(
        {
            "phone": [f" ({i[:3]}) {i[3:]} " for i in ids[:400]],
            "name": [f"Client {k}" for k in range(400)],
            "balance": gen.normal(1000, 50, 400).round(2),
        }
    )
    bank.loc[7, "phone"] = None  # a missing key: dropped and counted
    bank.loc[8, "phone"] = bank.loc[9, "phone"]  # a duplicate: the first row wins
    insurer = pd.DataFrame({"phone": ids[200:700], "premium": gen.integers(10, 100, 500)})
    clinic = pd.DataFrame({"phone": ids[100:350] + ids[600:650], "visits": 1})
    paths = {
        "bank": tmp_path / "bank.csv",
        "insurer": tmp_path / "insurer.parquet",
        "clinic": tmp_path / "clinic.csv",
    }
    bank.to_csv(paths["bank"], index=False)
    insurer.to_parquet(paths["insurer"], index=False)
    clinic.to_csv(paths["clinic"], index=False)
    digits = bank.phone.str.replace(r"\D", "", regex=True)
    return {"paths": {k: str(v) for k, v in paths.items()}, "bank_digits": digits, "ids": ids,
            "insurer": insurer, "clinic": clinic, "out": tmp_path / "out"}  # fmt: skip


def _cfg(files, parties=("bank", "insurer"), **kw):
    return PsiConfig(
        inputs={p: files["paths"][p] for p in parties}, keys=["phone"],
        normalize={"phone": "digits"}, out=str(files["out"]), backend=kw.pop("backend", "inline"),
        progress=False, insecure=True, paillier_bits=1024, **kw,
    )  # fmt: skip


def _expected(files, parties):
    sets = {
        "bank": set(files["bank_digits"].dropna()),
        "insurer": set(files["insurer"].phone),
        "clinic": set(files["clinic"].phone),
    }
    return set.intersection(*(sets[p] for p in parties))


@pytest.mark.parametrize("backend", ["inline", "ray"])
def test_two_party_intersection_files_line_up(files, backend):
    report = run(_cfg(files, backend=backend))
    want = _expected(files, ["bank", "insurer"])
    assert report["size"] == len(want) and report["learners"] == ["bank", "insurer"]
    bank = pd.read_csv(report["files"]["bank"], dtype=str)
    ins = pd.read_parquet(report["files"]["insurer"])
    assert list(bank.columns) == ["phone", "name", "balance"]  # only its own columns
    assert list(ins.columns) == ["phone", "premium"]
    assert set(bank.phone.str.replace(r"\D", "", regex=True)) == want
    # the same row order in both files
    np.testing.assert_array_equal(bank.phone.str.replace(r"\D", "", regex=True), ins.phone)
    st = report["stats"]["bank"]
    assert (st["rows"], st["missing"], st["duplicates"]) == (400, 1, 1)
    assert report["bytes"] > 0 and "psi/blinded" in report["ledger_text"]


def test_receiver_only_learns(files):
    report = run(_cfg(files, receiver="insurer"))
    assert report["learners"] == ["insurer"]
    assert set(report["files"]) == {"insurer"}
    assert not (files["out"] / "bank.csv").exists()


def test_cardinality_and_sum(files):
    want = _expected(files, ["bank", "insurer"])
    card = run(_cfg(files, mode="cardinality"))
    assert card["size"] == len(want) and card["receiver"] == "bank" and "files" not in card
    s = run(_cfg(files, mode="sum", value="premium"))
    ins = files["insurer"]
    assert s["sum"] == int(ins[ins.phone.isin(want)].premium.sum())
    assert s["size"] == len(want)


def test_three_party_intersection(files):
    parties = ("bank", "insurer", "clinic")
    report = run(_cfg(files, parties=parties))
    want = _expected(files, parties)
    assert report["size"] == len(want) > 0
    got = [pd.read_csv(report["files"][p], dtype=str) if p != "insurer"
           else pd.read_parquet(report["files"][p]) for p in parties]  # fmt: skip
    keys = [g.phone.str.replace(r"\D", "", regex=True).to_numpy() for g in got]
    assert set(keys[0]) == want
    np.testing.assert_array_equal(keys[0], keys[1])
    np.testing.assert_array_equal(keys[0], keys[2])


def test_composite_keys_and_strict(files, tmp_path):
    a = pd.DataFrame({"first": [" Ann", "Bob", None, "Cy"], "last": ["Lee", "Ng", "X", "Po"]})
    b = pd.DataFrame({"first": ["ann", "bob", "cy"], "last": ["lee", "NG", "pa"]})
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    cfg = PsiConfig(
        inputs={"a": str(tmp_path / "a.csv"), "b": str(tmp_path / "b.csv")},
        keys=["first", "last"], normalize=["strip", "casefold"], out=str(tmp_path / "o"),
        backend="inline", progress=False,
    )  # fmt: skip
    assert run(cfg)["size"] == 2  # ann lee, bob ng
    cfg.strict = True
    with pytest.raises(cr.InputError, match="party 'a'.*missing"):
        run(cfg)


def test_bad_inputs_name_party_and_file(files, tmp_path):
    with pytest.raises(PsiInputError, match="party 'bank' is given twice"):
        parse_inputs(["bank=a.csv", "bank=b.csv"])
    cfg = _cfg(files)
    cfg.keys = ["email"]
    with pytest.raises(cr.InputError, match=r"party 'bank'.*bank\.csv.*email") as info:
        run(cfg)
    assert "phone" not in str(info.value)  # the party's other columns are not listed
    cfg = _cfg(files)
    cfg.inputs["insurer"] = str(tmp_path / "nope.parquet")
    with pytest.raises(cr.StepError, match=r"party 'insurer'.*nope\.parquet.*does not exist"):
        run(cfg)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"\x00\x01 not a parquet file")
    cfg.inputs["insurer"] = str(garbage)
    with pytest.raises(cr.StepError, match=r"party 'insurer'.*garbage\.parquet"):
        run(cfg)
    empty = tmp_path / "empty.csv"
    empty.write_text("phone,x\n")
    cfg.inputs["insurer"] = str(empty)
    with pytest.raises(cr.StepError, match=r"party 'insurer'.*empty"):
        run(cfg)
    ints = tmp_path / "ints.parquet"
    pd.DataFrame({"phone": np.arange(5, dtype=np.int64)}).to_parquet(ints)
    cfg.inputs["insurer"] = str(ints)
    with pytest.raises(PsiInputError, match=r"key types differ.*bank.*bank\.csv.*insurer.*ints"):
        run(cfg)


def test_cli_psi(files):
    p = files["paths"]
    cmd = [sys.executable, "-m", "cipherray", "run", "psi", "--input", f"bank={p['bank']}",
           "--input", f"insurer={p['insurer']}", "--key", "phone", "--normalize", "phone=digits",
           "--out", str(files["out"]), "--backend", "inline", "--no-progress"]  # fmt: skip
    report, dot = files["out"].parent / "report.json", files["out"].parent / "graph.dot"
    out = subprocess.run(
        [*cmd, "--json", str(report), "--graph", str(dot)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "intersection:" in out.stdout and "Ledger" in out.stdout
    assert (files["out"] / "bank.csv").exists() and (files["out"] / "insurer.parquet").exists()
    written = json.loads(report.read_text())
    assert written["mode"] == "intersection" and written["learners"] == ["bank", "insurer"]
    assert written["size"] == len(pd.read_csv(files["out"] / "bank.csv"))
    assert dot.read_text().startswith("digraph")
    dup = subprocess.run(
        cmd[:7] + ["--input", "bank=x.csv"] + cmd[7:], capture_output=True, text=True
    )
    assert dup.returncode == 2 and "given twice" in dup.stderr
    missing = subprocess.run(
        cmd[:5] + ["--input", "bank=x.csv"] + cmd[7:], capture_output=True, text=True
    )
    assert (
        missing.returncode == 1 and "party 'bank'" in missing.stderr and "x.csv" in missing.stderr
    )
    assert "Traceback" not in missing.stderr
