"""`cipherray run hfl`: cross-device (plaintext, SecAgg+ with dropout, DP) and cross-silo
from one CSV per silo, on the inline backend; the report's files and contents; clear
errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from cipherray.cli import main

BASE = ["run", "hfl", "--backend", "inline", "--no-progress", "--seed", "1"]


def report(out) -> dict:
    data = json.loads((out / "report.json").read_text())
    assert (out / "report.md").exists() and (out / "learning_curve.png").stat().st_size > 1000
    return data


def test_cross_device_plaintext(tmp_path):
    out = tmp_path / "plain"
    args = ["--clients", "20", "--rounds", "3", "--lr", "0.5", "--out", str(out)]
    assert main([*BASE, *args]) == 0
    r = report(out)
    assert [x["round"] for x in r["rounds"]] == [1, 2, 3]
    for x in r["rounds"]:
        assert {"round", "loss", "accuracy", "seconds", "clients", "dropped"} <= set(x)
        assert 0.0 <= x["accuracy"] <= 1.0 and x["clients"] == 20 and x["dropped"] == []
    assert r["final_accuracy"] == r["rounds"][-1]["accuracy"] > 0.5


def test_cross_device_secagg_dropout_and_dp(tmp_path):
    out = tmp_path / "secure"
    args = ["--clients", "40", "--rounds", "2", "--secagg", "--dropout", "0.1",
            "--dp-epsilon", "4", "--partition", "dirichlet:0.5", "--out", str(out)]  # fmt: skip
    assert main([*BASE, *args]) == 0
    r = report(out)
    assert all(x["dropped"] for x in r["rounds"])
    assert 0 < r["epsilon"] <= 4.0 and r["delta"] == 1e-5
    assert r["noise_multiplier"] > 0 and r["sampling_rate"] == 1.0 and r["clipping_norm"] == 0.5
    assert r["secagg"]["threshold"] >= 2


def test_cross_silo_from_csvs(tmp_path):
    x, y = load_breast_cancer(return_X_y=True)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).assign(label=y)
    paths = []
    shuffled = df.sample(frac=1, random_state=0)
    for i, rows in enumerate(np.array_split(np.arange(len(df)), 3)):
        part = shuffled.iloc[rows]
        paths.append(tmp_path / f"h{i + 1}.csv")
        part.to_csv(paths[-1], index=False)
    silos = ",".join(f"h{i + 1}={p}" for i, p in enumerate(paths))
    out = tmp_path / "silos"
    args = ["--silos", silos, "--label", "label", "--rounds", "3", "--secagg", "--lr", "0.5",
            "--feature-range", "0,4300", "--out", str(out)]  # fmt: skip
    assert main([*BASE, *args]) == 0
    r = report(out)
    assert r["secagg"]["complete"] and r["secagg"]["clients"] == 3
    assert all(x["clients"] == 3 for x in r["rounds"]) and r["final_accuracy"] > 0.5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "mnist"], "unknown dataset"),
        (["--dataset", "csv:nowhere.csv"], "--label"),
        (["--dp-epsilon", "1", "--dp-mode", "distributed"], "needs --secagg"),
        (["--partition", "zipf:2"], "--partition"),
        (["--dropout", "0.1"], "needs --secagg"),
    ],
)
def test_bad_input_is_a_clear_error(args, message, tmp_path, capsys):
    assert main([*BASE, "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
