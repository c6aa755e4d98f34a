"""The scripts a device call runs (bench/device_check.sh: bench/gpu.py, then
bench/gpu_integration.py with gpu.py's kernel choice, then bench/gpu_buckets.py) and
bench/gpu_host_overhead.py, run on the host build of the kernels with tiny sizes: a session
gets one short device call, and a script broken by a change elsewhere would waste it. Timings
here mean nothing; the checks inside the scripts (kernels against Python ints, the GPU path
against the CPU path) do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV_DROPPED = (
    "CIPHERRAY_KERNEL_TUNING",
    "CIPHERRAY_MONT_VARIANT",
    "CIPHERRAY_MODEXP_COOP",
    "CIPHERRAY_MONTMUL_COOP",
    "CIPHERRAY_PAILLIER_BACKEND",
)


def _run(args: list[str], out: Path, timeout: float) -> subprocess.CompletedProcess:
    """A script from the repository root, writing under `out`, with none of the kernel
    settings of this environment."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROPPED}
    env["OUT"] = str(out)
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def device_check(tmp_path_factory):
    out = tmp_path_factory.mktemp("device_check")
    return out, _run(["bash", "bench/device_check.sh", "--host-dry-run"], out, 600)


def test_gpu_script_checks_pass_on_the_host_build(device_check):
    out, proc = device_check
    assert "bench/gpu.py exit 0" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((out / "gpu.json").read_text())
    assert res["errors"] == {}
    assert len(res["checks"]) >= 40
    assert [k for k, ok in res["checks"].items() if not ok] == []
    # every Montgomery form was timed and a choice recorded for both sizes
    for key in ("montmul_variant_used", "modexp_steps_used", "modexp_coop_used"):
        assert set(res[key]) == {"2048", "4096"}
    assert (out / "gpu.md").read_text().count("|") > 50


def test_integration_runs_gpu_scripts_choice(device_check):
    out, proc = device_check
    assert "bench/gpu_integration.py exit 0" in proc.stdout, proc.stdout[-3000:]
    gpu = json.loads((out / "gpu.json").read_text())
    res = json.loads((out / "gpu_integration.json").read_text())
    assert res["ok"] is True and "tuning_error" not in res
    assert res["tuning"] == str(out / "gpu.json")
    expected_checks = {
        "gpu_decrypt_equals_plain",
        "cpu_decrypts_gpu_ciphertexts",
        "gpu_decrypts_cpu_ciphertexts",
        "add_bitwise_equal",
        "scalar_mul_bitwise_equal",
        "matmul_bitwise_equal",
        "matmul_decrypts_to_plain",
        "matmul_all_cores_equal_gpu",
    }
    assert expected_checks <= {k for k, ok in res["checks"].items() if ok is True}
    # the protocol layer ran the kernels bench/gpu.py measured fastest
    assert res["montmul_variant"] == gpu["montmul_variant_used"]
    assert res["modexp_steps"] == gpu["modexp_steps_used"]
    assert res["modexp_coop"] == gpu["modexp_coop_used"]
    assert res["montmul_coop"] == gpu["montmul_coop_used"]


def test_bucket_script_checks_pass_on_the_host_build(device_check):
    out, proc = device_check
    assert "bench/gpu_buckets.py exit 0" in proc.stdout, proc.stdout[-3000:]
    res = json.loads((out / "gpu_buckets.json").read_text())
    assert res["checks_ok"] is True and res["backend"] == "host"


def test_device_check_refuses_unknown_arguments(tmp_path):
    proc = _run(["bash", "bench/device_check.sh", "--quick"], tmp_path, 60)
    assert proc.returncode == 2 and "usage" in proc.stderr
    assert not (tmp_path / "gpu.json").exists()


def test_host_overhead_script_runs(tmp_path):
    args = [sys.executable, "bench/gpu_host_overhead.py", "--n", "200", "--out", str(tmp_path)]
    proc = _run(args, tmp_path, 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "gpu_host_overhead.json").read_text())["rows"]
    assert len(rows) >= 10
    assert all(r["us per element"] > 0 for r in rows)
