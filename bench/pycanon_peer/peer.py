"""pycanon's k / ℓ / t of a released table through the pycanon venv (bench/pycanon_peer).

Used by bench/deid.py and tests/pycanon_check.py from the project's interpreter, where
pycanon cannot be installed (it pins numpy==2.0.2 and pandas==2.3.3 exactly). Standard
library only: the table travels as CSV (a DataFrame is written with to_csv, a path is
passed on) to check.py, run by the venv's python in isolated mode.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

VENV_ENV = "CIPHERRAY_PYCANON_VENV"
CHECK = Path(__file__).resolve().with_name("check.py")
SETUP = Path(__file__).resolve().with_name("setup.sh")


class PeerError(RuntimeError):
    """check.py failed or ran past its timeout in the venv."""


class PeerTimeout(PeerError):
    """check.py ran past its timeout (the child is killed)."""


def venv_dir() -> Path:
    return Path(os.environ.get(VENV_ENV) or Path.home() / ".cache" / "cipherray" / "pycanon-venv")


def venv_python() -> Path | None:
    """The venv's python, or None when the venv has not been created."""
    py = venv_dir() / "bin" / "python"
    return py if py.is_file() and os.access(py, os.X_OK) else None


def missing_note() -> str:
    return (
        f"pycanon is not importable here and its venv ({venv_dir()}) does not exist: "
        f"create it with `bash bench/pycanon_peer/setup.sh` (or set {VENV_ENV})"
    )


def check(
    table,
    qis: list[str],
    sensitive: str | None = None,
    *,
    t: bool = False,
    timeout: float = 300.0,
) -> dict:
    """check.py's JSON for `table` (a DataFrame, or the path of a released CSV):
    {"k", "l", ["t"], "k_s", "l_s", ["t_s"], "rows", "versions"}. Raises
    FileNotFoundError when the venv is missing, PeerError when the check fails or
    takes longer than `timeout` seconds (start-up and the CSV transfer included)."""
    py = venv_python()
    if py is None:
        raise FileNotFoundError(missing_note())
    if isinstance(table, (str, os.PathLike)):
        source, stdin = str(table), None
    else:
        source, stdin = "-", table.to_csv(index=False)
    cmd = [str(py), "-I", str(CHECK), source, "--qi", ",".join(qis)]
    if sensitive is not None:
        cmd += ["--sensitive", sensitive]
    if t:
        cmd.append("--t")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired as e:
        raise PeerTimeout(f"pycanon check ran past {timeout:.0f} s") from e
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise PeerError(
            f"pycanon check failed in {py} (exit {proc.returncode}): {tail[0]}; "
            f"rerun `bash {SETUP.relative_to(SETUP.parents[2])}`"
        )
    return json.loads(proc.stdout)
