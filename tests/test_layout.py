"""DESIGN.md's layout rule: only ``cipherray/runtime/`` imports Ray."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "cipherray"
RAY_IMPORT = re.compile(r"^\s*(import ray\b|from ray\b)", re.MULTILINE)


def test_no_ray_import_outside_runtime_in_the_source():
    offenders = [
        str(p.relative_to(PKG))
        for sub in ("protocols", "gpu_kernels", "cpu_kernels")
        for p in (PKG / sub).rglob("*.py")
        if RAY_IMPORT.search(p.read_text())
    ]
    assert offenders == []


def test_importing_protocols_and_kernels_does_not_load_ray():
    code = (
        "import sys\n"
        "import cipherray.protocols.paillier, cipherray.protocols.psi, cipherray.protocols.mpc\n"
        "import cipherray.gpu_kernels, cipherray.cpu_kernels\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
