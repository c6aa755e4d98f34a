"""Bucket products on the GPU (``gpu_kernels.buckets``), checked and timed: step 3 of
bench/device_check.sh.

    python3 bench/gpu_buckets.py [--host-dry-run] [--rows 100000] [--cols 300] [--out DIR]

1. Checks, at 2048- and 4096-bit moduli (n^2 of 1024- and 2048-bit n): histograms and the
   weighted form over slots, a subset of rows, bucket counts and column counts that are not
   multiples of 8, empty buckets, against the gmpy2 reference of
   ``protocols.paillier.histogram`` bit for bit.
2. Times the SecureBoost histogram ``--rows`` x ``--cols`` x 32 bins and the weighted form
   with 8-bit keys (256 buckets, ``--cols`` // 10 columns) at 4096 bits, from Python ints to
   gmpy2 mpz (transfers and conversions included), after a warm-up call that compiles.

``--host-dry-run`` runs the same on the host build of the kernels with tiny sizes (its
timings mean nothing). Writes ``gpu_buckets.json`` to ``--out``; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmpy2 import mpz  # noqa: E402

from cipherray.gpu_kernels import buckets  # noqa: E402
from cipherray.protocols.paillier.histogram import bucket_products_reference  # noqa: E402


def _modulus(bits: int) -> int:
    return int.from_bytes(os.urandom(bits // 8), "big") | (1 << (bits - 1)) | 1


def _values(m: int, count: int) -> list:
    nb = (m.bit_length() + 7) // 8 + 8
    return [mpz(int.from_bytes(os.urandom(nb), "little") % m) for _ in range(count)]


def check(backend: str, bits: int, rng: np.random.Generator, small: bool) -> list[str]:
    m = _modulus(bits)
    n, d, nb, ns = (90, 11, 13, 3) if small else (1500, 11, 13, 3)
    vals = _values(m, n)
    keys = rng.integers(0, nb, (d, n)).astype(np.uint8)
    keys[:, :5] = nb - 1
    rows = np.sort(rng.choice(n, n * 4 // 5, replace=False))
    slots = rng.integers(0, ns, rows.size).astype(np.int32)
    fails = []
    for weighted in (False, True):
        want = bucket_products_reference(vals, keys, nb, mpz(m), rows, slots, ns, weighted)
        got = buckets.bucket_products(m, vals, keys, nb, rows, slots, ns, weighted, backend)
        if got != want:
            fails.append(f"{bits}-bit weighted={weighted}")
    return fails


def timed(backend: str, m: int, vals: list, keys: np.ndarray, nb: int, weighted: bool) -> float:
    rows = np.arange(len(vals))
    slots = np.zeros(rows.size, dtype=np.int32)
    t = time.perf_counter()
    buckets.bucket_products(m, vals, keys, nb, rows, slots, 1, weighted, backend)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host-dry-run", action="store_true")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--cols", type=int, default=300)
    ap.add_argument("--out", default="bench/out")
    args = ap.parse_args()
    backend = "host" if args.host_dry_run else "gpu"
    R, D = (200, 10) if args.host_dry_run else (args.rows, args.cols)
    rng = np.random.default_rng(5)  # benchmark data only
    res: dict = {"backend": backend, "rows": R, "cols": D, "checks_failed": []}
    for bits in (2048, 4096):
        res["checks_failed"] += check(backend, bits, rng, args.host_dry_run)
    res["checks_ok"] = not res["checks_failed"]
    print("checks:", "ok" if res["checks_ok"] else res["checks_failed"], flush=True)

    m = _modulus(4096)
    vals = _values(m, R)
    keys = rng.integers(0, 32, (D, R)).astype(np.uint8)
    timed(backend, m, vals[:64], keys[:2, :64], 32, False)  # compile
    s = timed(backend, m, vals, keys, 32, False)
    res["histogram_s"] = s
    res["histogram_mults_per_s"] = R * D / s
    dq = max(1, D // 10)
    q = rng.integers(0, 256, (dq, R)).astype(np.uint8)
    timed(backend, m, vals[:64], q[:1, :64], 256, True)
    s = timed(backend, m, vals, q, 256, True)
    res["weighted8_cols"] = dq
    res["weighted8_s"] = s
    print(json.dumps(res, indent=1), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_buckets.json").write_text(json.dumps(res, indent=1))
    sys.exit(0 if res["checks_ok"] else 1)


if __name__ == "__main__":
    main()
