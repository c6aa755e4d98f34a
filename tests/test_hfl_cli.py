"""`cipherray run hfl`: cross-device (plaintext, SecAgg+ with dropout, central and
distributed DP) and cross-silo from one CSV per silo, on the inline backend; the
report's files and contents; the progress lines; clear errors on bad input."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from cipherray.cli import main

BASE = ["run", "hfl", "--backend", "inline", "--no-progress", "--seed", "1"]
ROUND_KEYS = {"round", "loss", "accuracy", "seconds", "clients", "dropped"}


def report(out) -> dict:
    data = json.loads((out / "report.json").read_text())
    assert "| round | loss | accuracy |" in (out / "report.md").read_text()
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "learning_curve.png").stat().st_size > 1000
    return data


def test_cross_device_plaintext_with_progress(tmp_path, capsys):
    out = tmp_path / "plain"
    args = ["--clients", "20", "--rounds", "3", "--lr", "0.5", "--out", str(out)]
    assert main([a for a in BASE if a != "--no-progress"] + args) == 0
    err = capsys.readouterr().err  # not a terminal: one progress line per round
    assert [ln.split("[")[0].strip() for ln in err.splitlines() if ln.startswith("round")] == [
        "round 1/3",
        "round 2/3",
        "round 3/3",
    ]
    assert "acc " in err
    r = report(out)
    assert [x["round"] for x in r["rounds"]] == [1, 2, 3]
    for x in r["rounds"]:
        assert ROUND_KEYS <= set(x)
        assert 0.0 <= x["accuracy"] <= 1.0 and x["loss"] > 0 and x["seconds"] > 0
        assert x["clients"] == 20 and x["dropped"] == []
    assert r["final_accuracy"] == r["rounds"][-1]["accuracy"] > 0.5
    assert r["secagg"] is None and "epsilon" not in r
    assert r["settings"]["clients"] == 20 and r["settings"]["dataset"] == "digits"


def test_cross_device_secagg_dropout_and_dp(tmp_path):
    out = tmp_path / "secure"
    args = ["--clients", "40", "--rounds", "2", "--secagg", "--dropout", "0.1",
            "--dp-epsilon", "4", "--partition", "dirichlet:0.5", "--out", str(out)]  # fmt: skip
    assert main([*BASE, *args]) == 0
    r = report(out)
    assert len(r["rounds"]) == 2 and all(x["dropped"] for x in r["rounds"])
    for x in r["rounds"]:
        assert {d["cid"] for d in x["dropped"]} <= set(range(40))
        assert x["included"] == 40 - len(x["dropped"]) and 0 <= x["accuracy"] <= 1
    assert 0 < r["epsilon"] <= 4.0 and r["delta"] == 1e-5 and r["dp_mode"] == "central"
    assert r["noise_multiplier"] > 0 and r["sampling_rate"] == 1.0 and r["clipping_norm"] == 0.5
    assert r["rounds"][0]["epsilon"] < r["rounds"][1]["epsilon"] == pytest.approx(r["epsilon"])
    assert r["secagg"]["threshold"] >= 2 and r["secagg"]["clients"] == 40


def test_cross_device_distributed_dp_with_sampling_and_dropout(tmp_path):
    out = tmp_path / "distributed"
    # the dropout is planned for: every round keeps the calibrated noise, so the target
    # holds (unplanned, the last round would be refused with PrivacyBudgetExceeded)
    args = ["--clients", "40", "--rounds", "3", "--fraction", "0.5", "--secagg",
            "--dropout", "0.1", "--dp-epsilon", "2", "--dp-mode", "distributed",
            "--dp-delta", "1e-6", "--strategy", "fedadam", "--out", str(out)]  # fmt: skip
    assert main([*BASE, *args]) == 0
    r = report(out)
    assert len(r["rounds"]) == 3 and all(x["clients"] == 20 for x in r["rounds"])
    assert all(x["dropped"] and x["included"] < 20 for x in r["rounds"])
    assert r["dp_mode"] == "distributed" and 0 < r["epsilon"] <= 2.0 and r["delta"] == 1e-6
    assert r["sampling_rate"] == pytest.approx(0.5)


def breast_cancer_silos(tmp_path, label_names=("malignant", "benign")) -> list:
    x, y = load_breast_cancer(return_X_y=True)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    df["label"] = np.asarray(label_names)[y]
    shuffled = df.sample(frac=1, random_state=0)
    paths = []
    for i, rows in enumerate(np.array_split(np.arange(len(df)), 3)):
        paths.append(tmp_path / f"h{i + 1}.csv")
        shuffled.iloc[rows].to_csv(paths[-1], index=False)
    return paths


def silos_arg(paths) -> str:
    return ",".join(f"h{i + 1}={p}" for i, p in enumerate(paths))


def test_cross_silo_reads_each_csv_inside_its_silo_step(tmp_path, monkeypatch):
    paths = breast_cancer_silos(tmp_path)
    callers = []
    read_csv = pd.read_csv

    def spy(*a, **kw):
        callers.append(sys._getframe(1).f_code.co_name)
        return read_csv(*a, **kw)

    monkeypatch.setattr(pd, "read_csv", spy)
    out = tmp_path / "silos"
    args = ["--silos", silos_arg(paths), "--label", "label", "--rounds", "3", "--secagg",
            "--lr", "0.5", "--model", "logistic", "--out", str(out)]  # fmt: skip
    assert main([*BASE, *args]) == 0
    # the schema once per silo, the data once per silo: never the driver's own code
    assert sorted(callers) == ["silo_data"] * 3 + ["silo_schema"] * 3
    r = report(out)
    assert r["secagg"]["complete"] and r["secagg"]["clients"] == 3
    assert r["silos"] == {"features": 30, "classes": ["benign", "malignant"]}
    assert all(x["clients"] == 3 and x["dropped"] == [] for x in r["rounds"])
    assert r["final_accuracy"] > 0.85 and "silos" in r["accuracy_on"]


def test_cross_silo_public_feature_range_and_dp(tmp_path):
    paths = breast_cancer_silos(tmp_path, label_names=(0, 1))
    out = tmp_path / "silos_dp"
    args = ["--silos", silos_arg(paths), "--label", "label", "--rounds", "2",
            "--feature-range", "0,100", "--dp-epsilon", "8", "--out", str(out)]  # fmt: skip
    assert main([*BASE, *args]) == 0
    r = report(out)
    assert r["silos"]["classes"] == ["0", "1"] and 0 < r["epsilon"] <= 8.0
    assert r["sampling_rate"] == 1.0 and len(r["rounds"]) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "mnist"], "unknown dataset"),
        (["--dataset", "csv:nowhere.csv"], "--label"),
        (["--dataset", "csv:nowhere.csv", "--label", "y"], "no such file"),
        (["--dp-epsilon", "1", "--dp-mode", "distributed"], "needs --secagg"),
        (["--dp-mode", "local"], "needs --dp-epsilon"),
        (["--dp-epsilon", "1", "--dp-delta", "2"], "--dp-delta"),
        (["--partition", "zipf:2"], "--partition"),
        (["--partition", "shards:1000"], "--partition shards:1000"),
        (["--dropout", "0.1"], "needs --secagg"),
        (["--clients", "8", "--secagg"], "too few for SecAgg+"),
        (["--fraction", "1.5"], "--fraction"),
        (["--silos", "h1=a.csv,h2=b.csv,h3=c.csv"], "--silos needs --label"),
        (["--silos", "h1=a.csv,h1=b.csv", "--label", "y"], "twice"),
        (["--silos", "a.csv", "--label", "y"], "name=path.csv"),
        (["--feature-range", "0,1"], "--silos only"),
        (["--populations", "a=20,b=20", "--silos", "h1=a.csv", "--label", "y"], "not both"),
        (["--populations", "a=20,b=x"], "org=N"),
        (["--populations", "a=20,a=5"], "listed twice"),
        (["--populations", "server=5"], "is the server"),
        (["--clients", "30", "--populations", "a=20,b=20"], "the populations' 40"),
        (["--party", "a", "--addresses", "a=127.0.0.1:9", "--tls", "pki"], "--populations"),
        (
            ["--populations", "a=10,b=10", "--model", "logistic", "--dataset", "breast_cancer"],
            None,
        ),  # fmt: skip
        (["--dataset", "breast_cancer", "--model", "logistic", "--clients", "4"], None),
    ],
)
def test_bad_input_is_a_clear_error(args, message, tmp_path, capsys):
    code = main([*BASE, "--rounds", "1", "--out", str(tmp_path), *args])
    if message is None:  # the control: a good run
        assert code == 0
        return
    assert code == 2
    assert message in capsys.readouterr().err


def test_silo_input_errors_name_the_silo(tmp_path, capsys):
    paths = breast_cancer_silos(tmp_path)
    missing = ",".join([f"h1={paths[0]}", f"h2={paths[1]}", f"h3={tmp_path / 'gone.csv'}"])
    assert main([*BASE, "--silos", missing, "--label", "label", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'h3'" in err and "gone.csv does not exist" in err
    pd.read_csv(paths[2]).drop(columns=["f3"]).to_csv(paths[2], index=False)
    assert main([*BASE, "--silos", silos_arg(paths), "--label", "label",
                 "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "silo h3's feature columns differ" in capsys.readouterr().err
    assert main([*BASE, "--silos", silos_arg(paths), "--label", "nolabel",
                 "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "label column 'nolabel' is missing" in capsys.readouterr().err
    assert main([*BASE, "--silos", silos_arg(paths[:2]), "--label", "label", "--secagg",
                 "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "at least 3 silos" in capsys.readouterr().err


def test_help_lists_the_hfl_options():
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "cipherray", "run", "hfl", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    for flag in ("--dataset", "--label", "--clients", "--rounds", "--partition", "--strategy",
                 "--fraction", "--secagg", "--dropout", "--dp-epsilon", "--dp-delta",
                 "--dp-mode", "--clip", "--out", "--silos", "--feature-range", "--backend",
                 "--populations",
                 "--workers", "--model", "--local-epochs", "--lr", "--batch-size", "--seed"):  # fmt: skip
        assert flag in out.stdout, flag
