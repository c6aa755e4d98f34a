"""SecAgg mask expansion: one AES-NI call per batch against one ``cryptography`` call per seed.

    python bench/aes_masks.py [--seeds 60000] [--nbytes 2600] [--repeat 3] [--out bench/out]

The workload of 1000 SecAgg+ clients with ~60 neighbours each and d = 650 parameters in
Z_2^32: 60,000 masks of 2600 bytes, each expanded from its 32-byte seed by AES-256-CTR and
added or subtracted into an accumulator.

* ``kernel``: ``aes_ctr.masked_sum`` (``cr_aes_ctr_masked_sum``, AES-NI, 8 blocks in
  flight, the masks summed from the registers), one call for all seeds;
* ``per_seed``: what ``masking.expand`` + ``np.add`` / ``np.subtract`` cost before, one
  ``prg.random_bytes`` (one ``cryptography`` Cipher) per seed;
* ``fallback``: ``aes_ctr.masked_sum`` with the kernel disabled (its ``cryptography``
  loop), for reference.

Reported: the best of ``--repeat`` runs of each, in seconds, the kernel's keystream
throughput and the ratios; all three results are checked to be equal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from cipherray.cpu_kernels import _native, aes_ctr  # noqa: E402
from cipherray.protocols import prg  # noqa: E402


def per_seed(seeds: np.ndarray, signs: np.ndarray, length: int) -> np.ndarray:
    acc = np.zeros(length, dtype=np.uint32)
    for s, sign in zip(seeds, signs):
        mask = np.frombuffer(prg.random_bytes(s.tobytes(), 4 * length), dtype="<u4")
        (np.add if sign > 0 else np.subtract)(acc, mask, out=acc)
    return acc


def best(fn, repeat: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=60_000)
    ap.add_argument("--nbytes", type=int, default=2600)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="bench/out")
    args = ap.parse_args()
    if args.nbytes % 4:
        ap.error("--nbytes must be a multiple of 4 (uint32 ring elements)")
    length = args.nbytes // 4
    # benchmark inputs: random seeds, never printed
    seeds = np.frombuffer(os.urandom(32 * args.seeds), dtype=np.uint8).reshape(-1, 32)
    signs = np.where(np.random.default_rng(0).random(args.seeds) < 0.5, 1, -1).astype(np.int8)

    if not aes_ctr.available():
        sys.exit("the AES-NI kernel is not available here (no aes flag or no C++ compiler)")
    aes_ctr.masked_sum(seeds[:8], signs[:8], length)  # build / load the kernel first
    t_kernel, r_kernel = best(lambda: aes_ctr.masked_sum(seeds, signs, length), args.repeat)
    t_loop, r_loop = best(lambda: per_seed(seeds, signs, length), args.repeat)
    _native.set_enabled(False)
    try:
        t_fb, r_fb = best(lambda: aes_ctr.masked_sum(seeds, signs, length), args.repeat)
    finally:
        _native.set_enabled(True)
    equal = bool(np.array_equal(r_kernel, r_loop) and np.array_equal(r_kernel, r_fb))
    if not equal:
        sys.exit("kernel and per-seed results differ")

    total = args.seeds * args.nbytes
    rows = [
        {
            "method": "kernel (cr_aes_ctr_masked_sum)",
            "seconds": round(t_kernel, 4),
            "us_per_seed": round(1e6 * t_kernel / args.seeds, 3),
            "GB_per_s": round(total / t_kernel / 1e9, 2),
            "vs_kernel": 1.0,
        },
        {
            "method": "per-seed prg.random_bytes + np.add",
            "seconds": round(t_loop, 4),
            "us_per_seed": round(1e6 * t_loop / args.seeds, 3),
            "GB_per_s": round(total / t_loop / 1e9, 2),
            "vs_kernel": round(t_loop / t_kernel, 1),
        },
        {
            "method": "aes_ctr fallback (cryptography)",
            "seconds": round(t_fb, 4),
            "us_per_seed": round(1e6 * t_fb / args.seeds, 3),
            "GB_per_s": round(total / t_fb / 1e9, 2),
            "vs_kernel": round(t_fb / t_kernel, 1),
        },
    ]
    data = {
        "machine": common.machine(),
        "seeds": args.seeds,
        "nbytes": args.nbytes,
        "bits": 32,
        "repeat": args.repeat,
        "results_equal": equal,
        "speedup_vs_per_seed": round(t_loop / t_kernel, 2),
        "rows": rows,
    }
    common.write(
        args.out,
        "aes_masks",
        data,
        rows,
        ["method", "seconds", "us_per_seed", "GB_per_s", "vs_kernel"],
    )


if __name__ == "__main__":
    main()
