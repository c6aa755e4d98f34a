"""PSI through the runtime: `cipherray run psi` end to end on generated CSV files.

    python bench/psi_runtime.py [--sizes 100000,1000000] [--workers 2] [--out bench/out]

Two parties with N 12-digit phone numbers each, 50% overlap, both learn the
intersection; the time includes reading the files, all protocol steps on the parties'
actor groups and writing the aligned outputs (Ray start-up excluded, reported apart).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import cipherray as cr  # noqa: E402
from cipherray.workloads.psi.job import PsiConfig, run  # noqa: E402


def make_files(n: int, folder: Path) -> tuple[str, str, int]:
    gen = np.random.default_rng(n)  # synthetic identifiers, not secrets
    ids = gen.choice(9 * 10**11, int(1.5 * n), replace=False) + 10**11
    a, b = folder / f"a{n}.csv", folder / f"b{n}.csv"
    pd.DataFrame({"phone": ids[:n].astype(str)}).to_csv(a, index=False)
    pd.DataFrame({"phone": ids[n // 2 : n // 2 + n].astype(str)}).to_csv(b, index=False)
    return str(a), str(b), n // 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/out")
    args = ap.parse_args()
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(x) for x in args.sizes.split(",")]:
            a, b, expect = make_files(n, Path(tmp))
            t = time.perf_counter()
            rt = cr.init({"a": {"workers": args.workers}, "b": {"workers": args.workers}})
            t_init = time.perf_counter() - t
            cfg = PsiConfig(
                inputs={"a": a, "b": b}, keys=["phone"], out=str(Path(tmp) / f"out{n}"),
                workers=args.workers, progress=False,
            )  # fmt: skip
            t = time.perf_counter()
            report = run(cfg, rt=rt)
            secs = time.perf_counter() - t
            rt.shutdown()
            ok = report["size"] == expect
            res = {"n": n, "seconds": secs, "ray_start_s": t_init, "items_per_s": n / secs,
                   "bytes": report["bytes"], "intersection": report["size"], "correct": ok}  # fmt: skip
            print(res)
            results.append(res)
            rows.append(
                {
                    "N": f"{n:,}",
                    "seconds": f"{secs:.1f}",
                    "items/s": f"{n / secs:,.0f}",
                    "bytes": f"{report['bytes'] / 1e6:.0f} MB",
                    "correct": "yes" if ok else "NO",
                }  # fmt: skip
            )
    data = {"machine": common.machine(), "command": "python bench/psi_runtime.py " + " ".join(sys.argv[1:]),
            "workers_per_party": args.workers, "results": results}  # fmt: skip
    common.write(
        args.out, "psi_runtime", data, rows, ["N", "seconds", "items/s", "bytes", "correct"]
    )


if __name__ == "__main__":
    main()
