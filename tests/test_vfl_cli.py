"""`cipherray run vfl`: PSI alignment, training, the guest's report and predictions, each
party's own importance, and named errors for bad input (inline backend, small keys)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cipherray.cli import main as cli_main
from cipherray.workloads.vfl import job
from cipherray.workloads.vfl.demo import write_demo

FAST = ["--backend", "inline", "--no-progress", "--key-bits", "1024", "--insecure"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("vfl_demo")
    return write_demo(str(d), rows=400, guest_features=3, host_features=4, seed=3)


def _run(args: list[str]) -> int:
    return cli_main(["run", "vfl", *args, *FAST])


@pytest.mark.parametrize(
    "model,extra",
    [
        ("hetero_lr", ["--epochs", "3", "--batch", "128"]),
        ("secureboost", ["--trees", "2", "--depth", "2", "--bins", "8"]),
    ],
)
def test_vfl_cli_end_to_end(demo, tmp_path, model, extra):
    out = tmp_path / "out"
    rc = _run(
        [
            "--input", f"bank={demo['bank']}", "--input", f"insurer={demo['insurer']}",
            "--key", "id", "--label", "default", "--model", model, "--out", str(out), *extra,
        ]
    )  # fmt: skip
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    bank = pd.read_csv(demo["bank"])
    ins = pd.read_csv(demo["insurer"])
    common = set(bank["id"]) & set(ins["id"])
    assert rep["rows"] == len(common)
    assert rep["train_rows"] + rep["test_rows"] == len(common)
    assert 0.5 < rep["auc"] <= 1.0 and 0.0 <= rep["ks"] <= 1.0 and 0.0 <= rep["accuracy"] <= 1.0
    unit = "epoch" if model == "hetero_lr" else "tree"
    assert rep[f"seconds_per_{unit}"] > 0 and rep["bytes_train"] > 0
    pred = pd.read_csv(out / "predictions.csv")
    assert set(pred["id"]) == common and pred["score"].between(0, 1).all()
    assert (pred["split"] == "test").sum() == rep["test_rows"]
    # the report's AUC is the AUC of the written test predictions
    lab = bank.set_index("id")["default"]
    t = pred[pred["split"] == "test"]
    assert rep["auc"] == pytest.approx(
        job.auc_score(lab[t["id"]].to_numpy(), t["score"].to_numpy())
    )
    assert (out / "report.md").read_text().startswith("# Vertical FL")
    assert (out / "roc.csv").exists()
    # each party's importance names its own features only
    imp_bank = pd.read_csv(out / "importance_bank.csv")
    imp_ins = pd.read_csv(out / "importance_insurer.csv")
    assert set(imp_bank["feature"]) <= {c for c in bank.columns if c.startswith("bank_")}
    assert set(imp_ins["feature"]) <= {c for c in ins.columns if c.startswith("ins_")}


def test_auc_and_roc_helpers():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.9])
    pos, neg = s[y == 1], s[y == 0]
    pairs = [(p > q) + 0.5 * (p == q) for p in pos for q in neg]
    assert job.auc_score(y, s) == pytest.approx(np.mean(pairs))
    fpr, tpr = job.roc_points(y, s)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def _bad_files(tmp_path, *, bank=None, ins=None):
    rows = 60
    ids = [f"C{i}" for i in range(rows)]
    gen = np.random.default_rng(0)
    b = pd.DataFrame({"id": ids, "a": gen.normal(size=rows), "default": gen.integers(0, 2, rows)})
    i = pd.DataFrame({"id": ids, "x": gen.normal(size=rows), "z": gen.normal(size=rows)})
    if bank:
        b = bank(b)
    if ins:
        i = ins(i)
    pb, pi = tmp_path / "bank.csv", tmp_path / "ins.csv"
    b.to_csv(pb, index=False)
    i.to_csv(pi, index=False)
    return ["--input", f"bank={pb}", "--input", f"insurer={pi}", "--key", "id"]


@pytest.mark.parametrize(
    "bank,ins,label,expect",
    [
        (None, None, "nope", ["bank", "bank.csv", "label column 'nope' is missing"]),
        (lambda d: d.assign(default=d["a"] * 3), None, "default", ["bank", "0/1"]),
        (None, lambda d: d.assign(z="txt"), "default", ["insurer", "ins.csv", "non-numeric", "z"]),
        (None, lambda d: d.assign(x=1.0), "default", ["insurer", "ins.csv", "constant", "x"]),
        (None, lambda d: d.assign(id=[f"Z{k}" for k in range(len(d))]), "default",
         ["no rows in common", "insurer"]),
    ],
)  # fmt: skip
def test_vfl_cli_bad_input_names_party_and_file(tmp_path, capsys, bank, ins, label, expect):
    args = _bad_files(tmp_path, bank=bank, ins=ins)
    rc = _run([*args, "--label", label, "--out", str(tmp_path / "o"), "--epochs", "1"])
    assert rc == 2
    err = capsys.readouterr().err
    for word in expect:
        assert word in err, err


def test_vfl_cli_checks_options(tmp_path, capsys):
    args = _bad_files(tmp_path)
    assert _run([*args, "--label", "default", "--model", "secureboost", "--arbiter", "bank"]) == 2
    assert "--arbiter" in capsys.readouterr().err
    assert _run([*args[:2], "--key", "id", "--label", "default"]) == 2
    assert "guest and at least one host" in capsys.readouterr().err
