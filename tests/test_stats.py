"""The joint-statistics job (`cipherray run stats`, alias `quickstart`): results equal the
plaintext computation; the CLI runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cipherray.workloads.stats import StatsConfig, hospital_table, run


def plaintext(cfg: StatsConfig):
    tables = [hospital_table(i, cfg.diagnoses, cfg.seed) for i in range(len(cfg.hospitals))]
    stacked = np.stack([t[["patients", "bed_days"]].to_numpy(float) for t in tables])
    return stacked.sum(0), stacked.mean(0)


@pytest.mark.parametrize("backend", ["inline", "ray"])
def test_stats_equals_plaintext(backend):
    cfg = StatsConfig(backend=backend, progress=False, seed=11)
    report = run(cfg)
    total, mean = plaintext(cfg)
    res = report["result"]
    np.testing.assert_array_equal(res["patients_total"].to_numpy(), total[:, 0].astype(int))
    np.testing.assert_allclose(res["bed_days_total"].to_numpy(), total[:, 1], atol=0.051)
    np.testing.assert_allclose(res["patients_mean"].to_numpy(), mean[:, 0], atol=0.0051)
    np.testing.assert_allclose(res["bed_days_mean"].to_numpy(), mean[:, 1], atol=0.0051)
    assert report["reveals"] == 2
    ledger = report["ledger"]
    assert ledger.iloc[-1]["messages"] == 10  # 6 seed messages + 4 share messages to h1


def test_cli_runs_quickstart_and_writes_graph(tmp_path):
    dot, js = tmp_path / "g.dot", tmp_path / "r.json"
    cmd = [
        sys.executable,
        "-m",
        "cipherray",
        "run",
        "quickstart",
        "--backend",
        "inline",
        "--graph",
        str(dot),
        "--json",
        str(js),
        "--no-progress",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Joint statistics of 3 hospitals, revealed to h1 only" in out.stdout
    assert "simulated network" in out.stdout
    assert dot.read_text().startswith("digraph")
    report = json.loads(js.read_text())
    assert len(report["result"]) == 12
