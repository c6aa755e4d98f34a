"""Mondrian k-anonymity (cipherray.protocols.deid) against anonypy, checked with pycanon.

Synthetic Adult-like tables with 8 quasi-identifiers (5 numeric, 3 categorical) and a
sensitive column, from a seeded NumPy generator (benchmark data only, never keys).
For each size: cipherray's Mondrian at k=10, and at k=10 with distinct ℓ (--l, 4 of 6); pycanon's
k_anonymity / l_diversity on our output (each capped by --check-timeout); anonypy's
Mondrian at k=10 on the same rows for --anonypy-sizes (each capped by
--anonypy-timeout; a size past the cap is reported as a timeout and larger ones skipped).
Writes bench/results/deid.{json,md}. pycanon pins numpy==2.0.2 and pandas==2.3.3 exactly,
so it is in no extra of the project: where it is not importable here, each released table
goes as CSV to bench/pycanon_peer/check.py in its own venv (bench/pycanon_peer/setup.sh;
~/.cache/cipherray/pycanon-venv or $CIPHERRAY_PYCANON_VENV), one run per table capped at
twice --check-timeout; with neither, the pycanon columns say "no pycanon" and the JSON and
markdown carry a note saying how to create the venv.

    python bench/deid.py [--sizes 100000 1000000] [--out bench/results]
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's cipherray
import common  # noqa: E402
from pycanon_peer import peer  # noqa: E402

from cipherray.protocols.deid import achieved_k, certainty_penalty, distinct_l, mondrian  # noqa: E402

QIS = ["age", "zip", "hours", "edu", "capital", "sex", "race", "work"]
SENSITIVE = "disease"


def adult_like(n: int, seed: int = 0) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": g.integers(17, 91, n),
            "zip": g.integers(10000, 99999, n),
            "hours": g.integers(1, 100, n),
            "edu": g.integers(1, 17, n),
            "capital": np.round(g.lognormal(8, 1.5, n), 2),
            "sex": g.choice(["F", "M"], n),
            "race": g.choice(["white", "black", "asian", "amer-indian", "other"], n),
            "work": g.choice([f"w{i}" for i in range(9)], n),
            SENSITIVE: g.choice(["flu", "hiv", "cancer", "cold", "none", "asthma"], n),
        }
    )


def _in_child(fn, args, timeout: float):
    """fn(*args) in a forked process: (result, seconds) or (None, 'timeout')."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()

    def target():
        t = time.perf_counter()
        out = fn(*args)
        q.put((out, time.perf_counter() - t))

    p = ctx.Process(target=target)
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.terminate()
        p.join()
        return None, "timeout"
    return q.get() if not q.empty() else (None, "failed")


def _pycanon_k(table):
    from pycanon.anonymity import k_anonymity

    return int(k_anonymity(table, QIS))


def _pycanon_l(table):
    from pycanon.anonymity import l_diversity

    return int(l_diversity(table, QIS, [SENSITIVE]))


def _anonypy_k10(df):
    from anonypy.mondrian import Mondrian

    d = df.copy()
    for c in ("sex", "race", "work"):
        d[c] = d[c].astype("category")
    parts = Mondrian(d, QIS, SENSITIVE).partition(k=10)
    return {"classes": len(parts), "k": int(min(len(p) for p in parts))}


def run_ours(df, n, l_div, check_timeout, via):
    t = time.perf_counter()
    r = mondrian(df, QIS, 10, sensitive=SENSITIVE, l=l_div)
    secs = time.perf_counter() - t
    row = {
        "tool": "cipherray.protocols.deid" + (f" (ℓ={l_div})" if l_div else ""),
        "rows": n,
        "k": 10,
        "seconds": round(secs, 3),
        "classes": len(r.class_sizes),
        "achieved_k": achieved_k(r.class_id),
        "achieved_l": distinct_l(r.class_id, df[SENSITIVE]),
        "gcp": round(certainty_penalty(r)["gcp"], 4),
    }
    row.update(pycanon_check(r.table, via, check_timeout))
    print(row, flush=True)
    return row


def pycanon_via() -> str | None:
    """Where pycanon runs: "in-process", "venv" (bench/pycanon_peer) or None."""
    if importlib.util.find_spec("pycanon") is not None:
        return "in-process"
    return "venv" if peer.venv_python() is not None else None


def pycanon_check(table, via: str | None, check_timeout: float) -> dict:
    """pycanon's k and ℓ of a released table (and the seconds of each call), in a forked
    child where pycanon imports, else through the venv; "no pycanon" with neither."""
    out = {}
    if via == "in-process":
        for name, fn in (("k", _pycanon_k), ("l", _pycanon_l)):
            v, secs = _in_child(fn, (table,), check_timeout)
            out[f"pycanon_{name}"] = v if v is not None else secs
            out[f"pycanon_{name}_s"] = round(secs, 2) if v is not None else None
    elif via == "venv":
        try:
            res = peer.check(table, QIS, SENSITIVE, timeout=2 * check_timeout)
        except peer.PeerError as e:
            print(e, file=sys.stderr, flush=True)
            res = {"k": "timeout" if isinstance(e, peer.PeerTimeout) else "failed"}
            res["l"] = res["k"]
        for name in ("k", "l"):
            out[f"pycanon_{name}"] = res[name]
            out[f"pycanon_{name}_s"] = res.get(f"{name}_s")
    else:
        out = {"pycanon_k": "no pycanon", "pycanon_l": "no pycanon"}
    return out


def pycanon_info() -> dict:
    """How the pycanon columns are made, for the JSON (and the note under the table)."""
    via = pycanon_via()
    if via is None:
        return {"via": None, "note": peer.missing_note()}
    if via == "in-process":
        import importlib.metadata as md

        versions = {p: md.version(p) for p in ("pycanon", "numpy", "pandas")}
    else:
        try:
            versions = peer.check(adult_like(20), QIS, SENSITIVE, timeout=60)["versions"]
        except peer.PeerError as e:
            return {"via": None, "note": str(e)}
    ver = ", ".join(f"{p} {v}" for p, v in versions.items())
    where = "in this interpreter" if via == "in-process" else f"in its venv ({peer.venv_dir()})"
    note = (
        f"pycanon_k / pycanon_l: k_anonymity / l_diversity of each released table, {ver}, {where}"
    )
    return {"via": via, "versions": versions, "note": note}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--anonypy-sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--l", type=int, default=4, help="distinct ℓ for the second run")
    ap.add_argument("--anonypy-timeout", type=float, default=300.0)
    ap.add_argument("--check-timeout", type=float, default=300.0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    pycanon = pycanon_info()
    print(pycanon["note"], flush=True)
    rows = []
    for n in sorted(set(args.sizes) | set(args.anonypy_sizes)):
        df = adult_like(n)
        if n in args.sizes or n in args.anonypy_sizes:
            rows.append(run_ours(df, n, None, args.check_timeout, pycanon["via"]))
        if n in args.sizes:
            rows.append(run_ours(df, n, args.l, args.check_timeout, pycanon["via"]))
    anonypy_out, skipping = [], False
    for n in args.anonypy_sizes:
        row = {"tool": "anonypy 0.2.1", "rows": n, "k": 10}
        if skipping:
            row["seconds"] = "skipped"
        else:
            res, secs = _in_child(_anonypy_k10, (adult_like(n),), args.anonypy_timeout)
            if res is None:
                row["seconds"] = f"{secs} (> {args.anonypy_timeout:.0f} s)"
                skipping = True
            else:
                row.update(seconds=round(secs, 3), classes=res["classes"], achieved_k=res["k"])
        print(row, flush=True)
        anonypy_out.append(row)
    rows += anonypy_out
    data = {
        "machine": common.machine(),
        "qis": QIS,
        "sensitive": SENSITIVE,
        "anonypy_timeout_s": args.anonypy_timeout,
        "check_timeout_s": args.check_timeout,
        "pycanon": pycanon,
        "rows": rows,
    }
    columns = [
        "tool",
        "rows",
        "k",
        "seconds",
        "classes",
        "achieved_k",
        "achieved_l",
        "pycanon_k",
        "pycanon_l",
        "gcp",
    ]
    md = common.write(args.out, "deid", data, rows, columns)
    md.write_text(md.read_text() + f"\n{pycanon['note']}\n")


if __name__ == "__main__":
    main()
