"""Throughput of the exact DP samplers (cipherray.protocols.dp.samplers).

Discrete Gaussian (σ = 1, 10, 1000) and discrete Laplace (scale 1, 10, 1000) in
samples/s, against OpenDP's samplers when `opendp` is installed and NumPy's
(insecure, floating-point) normal / laplace as a floor. Writes bench/results/dp.{json,md}.

    python bench/dp.py [--n 1000000] [--out bench/results]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's cipherray
import common  # noqa: E402

from cipherray.protocols.dp import samplers  # noqa: E402


def _rate(fn, n: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t)
    return n / best


def _opendp_samplers():
    try:
        import opendp.prelude as dp
    except ImportError:
        return None
    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int)
    space1 = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)

    def gauss(sigma):
        m = dp.m.make_gaussian(*space, scale=float(sigma))
        return lambda n: m([0] * n)

    def lap(scale):
        m = dp.m.make_laplace(*space1, scale=float(scale))
        return lambda n: m([0] * n)

    return gauss, lap


def _opendp_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("opendp")
    except Exception:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    n = args.n
    od = _opendp_samplers()
    rng = np.random.default_rng()  # the insecure floor, for comparison only
    rows = []
    for kind, params in (("discrete_gaussian", (1, 10, 1000)), ("discrete_laplace", (1, 10, 1000))):
        for p in params:
            if kind == "discrete_gaussian":
                ours = lambda m, p=p: samplers.discrete_gaussian(p * p, m)  # noqa: E731
                floor = lambda m, p=p: rng.normal(0.0, p, m)  # noqa: E731
                other = od[0](p) if od else None
            else:
                ours = lambda m, p=p: samplers.discrete_laplace(p, m)  # noqa: E731
                floor = lambda m, p=p: rng.laplace(0.0, p, m)  # noqa: E731
                other = od[1](p) if od else None
            row = {
                "sampler": kind,
                "param": p,
                "cipherray_per_s": round(_rate(ours, n)),
                "opendp_per_s": round(_rate(other, n // 10, 1)) if other else None,
                "numpy_float_insecure_per_s": round(_rate(floor, n)),
            }
            print(row, flush=True)
            rows.append(row)
    for r in rows:
        for k in ("cipherray_per_s", "opendp_per_s", "numpy_float_insecure_per_s"):
            if r[k] is not None:
                r[k + "_h"] = f"{r[k] / 1e6:.2f} M/s"
    data = {
        "machine": common.machine(),
        "n": n,
        "opendp": _opendp_version(),
        "note": "opendp timed on n/10 samples, including the conversion of the input list",
        "rows": rows,
    }
    common.write(
        args.out,
        "dp",
        data,
        rows,
        ["sampler", "param", "cipherray_per_s_h", "opendp_per_s_h", "numpy_float_insecure_per_s_h"],
    )


if __name__ == "__main__":
    main()
