"""k, distinct ℓ (and t) of a released table by pycanon, printed as one JSON line.

Run by the pycanon venv's python (bench/pycanon_peer/setup.sh), never by the project's
interpreter: it imports pandas and pycanon only, never cipherray.

    $VENV/bin/python bench/pycanon_peer/check.py TABLE.csv --qi age,zip,sex \\
        [--sensitive disease] [--t]

TABLE.csv is the released table as written by DataFrame.to_csv(index=False) ("-": read
from stdin). The quasi-identifier columns are read as strings (released labels such as
"20-40" or "{F,M}"; empty cells stay missing, as in the table that was written); the
sensitive column is read as written, so a numeric one gets pycanon's ordered distance
for t. Prints {"k": int, "l": int | null, "t": float (with --t), "k_s", "l_s", "t_s":
seconds of each pycanon call, "rows", "versions"}.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time

import pandas as pd
from pycanon import anonymity


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, round(time.perf_counter() - t, 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", help="released table, CSV with a header ('-': stdin)")
    ap.add_argument("--qi", required=True, help="quasi-identifier columns, comma-separated")
    ap.add_argument("--sensitive", help="sensitive column (for l and t)")
    ap.add_argument("--t", action="store_true", help="also t-closeness of --sensitive")
    args = ap.parse_args(argv)
    qis = [c for c in args.qi.split(",") if c]
    if args.t and not args.sensitive:
        ap.error("--t needs --sensitive")
    table = pd.read_csv(
        sys.stdin if args.table == "-" else args.table, dtype=dict.fromkeys(qis, str)
    )
    out: dict = {"rows": len(table)}
    out["k"], out["k_s"] = _timed(anonymity.k_anonymity, table, qis)
    out["l"], out["l_s"] = None, None
    if args.sensitive:
        out["l"], out["l_s"] = _timed(anonymity.l_diversity, table, qis, [args.sensitive])
        if args.t:
            out["t"], out["t_s"] = _timed(anonymity.t_closeness, table, qis, [args.sensitive])
            out["t"] = float(out["t"])
    out["k"] = int(out["k"])
    out["l"] = None if out["l"] is None else int(out["l"])
    out["versions"] = {p: importlib.metadata.version(p) for p in ("pycanon", "numpy", "pandas")}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
