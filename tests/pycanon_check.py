"""pycanon's k, distinct ℓ and t of a released table, for tests/test_deid*.py.

pycanon pins numpy==2.0.2 and pandas==2.3.3 exactly, so it is no dependency of the
project. Where it imports in this interpreter it runs here; else, where the venv of
bench/pycanon_peer exists (`bash bench/pycanon_peer/setup.sh`; $CIPHERRAY_PYCANON_VENV),
bench/pycanon_peer/check.py runs in it on the table as CSV (about 0.5 s a call); else
`measures` returns None and the caller skips the comparison (CI has neither).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_peer():
    name = "cipherray_bench_pycanon_peer"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, ROOT / "bench" / "pycanon_peer" / "peer.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


peer = _load_peer()

try:
    import pycanon.anonymity as in_process
except ImportError:
    in_process = None


def via() -> str | None:
    """Where pycanon runs: "in-process", "venv" or None (neither: the pycanon comparisons are skipped)."""
    if in_process is not None:
        return "in-process"
    return "venv" if peer.venv_python() is not None else None


def missing_note() -> str:
    return peer.missing_note()


def measures(table, qis: list[str], sensitive: str | None = None, *, t: bool = False):
    """{"k": int, "l": int | None, ["t": float]} of `table` (a DataFrame, or the path of
    a released CSV) by pycanon, or None where pycanon is neither importable nor in its
    venv. l needs `sensitive`, t needs `t=True` too."""
    where = via()
    if where is None:
        return None
    if where == "venv":
        out = peer.check(table, qis, sensitive, t=t, timeout=120)
        return {key: out[key] for key in ("k", "l", "t") if key in out}
    if isinstance(table, (str, Path)):
        import pandas as pd

        table = pd.read_csv(table, dtype=dict.fromkeys(qis, str))
    out = {"k": int(in_process.k_anonymity(table, qis)), "l": None}
    if sensitive is not None:
        out["l"] = int(in_process.l_diversity(table, qis, [sensitive]))
        if t:
            out["t"] = float(in_process.t_closeness(table, qis, [sensitive]))
    return out
