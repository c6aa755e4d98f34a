"""`ray job submit` against a head started with party resources — the README's commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray")

RESOURCES = '{"party:h1": 2, "party:h2": 2, "party:h3": 2}'
HEAD = [
    "ray",
    "start",
    "--head",
    "--port=6390",
    "--dashboard-port=8265",
    "--dashboard-host=127.0.0.1",
    "--num-cpus=2",
    f"--resources={RESOURCES}",
]
SUBMIT = [
    "ray",
    "job",
    "submit",
    "--address",
    "http://127.0.0.1:8265",
    "--",
    "cipherray",
    "run",
    "quickstart",
    "--address",
    "auto",
    "--no-progress",
]


def _ray_cli() -> str:
    exe = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    if not os.path.exists(exe):
        pytest.skip("ray CLI not found")
    return exe


def test_job_submit_runs_quickstart_on_a_started_head():
    if ray.is_initialized():
        ray.shutdown()
    exe = _ray_cli()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "token"  # Ray >= 2.59 enables token auth on local clusters
    started = subprocess.run([exe, *HEAD[1:]], capture_output=True, text=True, timeout=120, env=env)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        job = subprocess.run(
            [exe, *SUBMIT[1:]], capture_output=True, text=True, timeout=240, env=env
        )
        out = job.stdout + job.stderr
        assert job.returncode == 0, out[-3000:]
        assert "Joint statistics of 3 hospitals" in out, out[-3000:]
        assert "succeeded" in out, out[-3000:]
        assert "I10 hypertension" in out
    finally:
        subprocess.run([exe, "stop", "--force"], capture_output=True, timeout=120, env=env)
