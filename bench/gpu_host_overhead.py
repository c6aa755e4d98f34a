#!/usr/bin/env python3
"""Host-side cost per element of the GPU Paillier path, on a CPU, with the kernels stubbed out.

Every kernel launch of ``gpu_kernels.bigint`` is replaced by a no-op, and the GPU path runs on
the host backend. What remains is the Python side a GPU run also pays: int <-> limb
conversion, input checks, object arrays, the layer of ``protocols.paillier``. The results
are garbage (nothing is computed); only the times mean something. On a GPU the limb
transposes run on the device, so this overstates that part slightly.

The chain rows run encrypt (x and y), ``c * k``, ``+``, ``sum`` and decrypt, once with the
ciphertexts kept on the device between steps and once with each result turned into integers
(as every step did before ``protocols.paillier.device``); per element of x.

    python bench/gpu_host_overhead.py [--n 20000]   # bench/out/gpu_host_overhead.{json,md}
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

import numpy as np
from gmpy2 import mpz

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from cipherray.gpu_kernels import bigint as bi  # noqa: E402
from cipherray.gpu_kernels import paillier as gp  # noqa: E402
from cipherray.protocols import paillier  # noqa: E402
from cipherray.protocols.paillier import backend as B  # noqa: E402
from cipherray.protocols.paillier import device, encoding  # noqa: E402


def best_of(fn, reps: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _on_host(c):
    """c with its ciphertexts fetched as integers and its device copy dropped."""
    c.ciphertexts()
    c._dev = None
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--out", default="bench/out")
    args = ap.parse_args()
    n = args.n

    def no_arithmetic(self, kernel, a, count, tpi=0):
        if kernel == "dec_finish":  # plaintexts 0: decryption's int64 read-out sees valid values
            a[0][...] = 0

    bi.MontContext.launch = no_arithmetic
    B.KERNEL, B._backend = "host", "gpu"  # protocols.paillier -> gpu_kernels, host build
    pk, sk = paillier.keygen(2048)
    nsq = int(pk.nsquare)
    c_mpz = [mpz(secrets.randbelow(nsq)) for _ in range(n)]
    c_int = [int(x) for x in c_mpz]
    k = [secrets.randbits(64) - (1 << 63) for _ in range(n)]
    k_pos = [abs(x) >> 1 for x in k]
    x = np.array([secrets.randbits(40) - (1 << 39) for _ in range(n)], dtype=np.int64)
    c_arr = pk.encrypt(x)
    kk = np.array(k, dtype=np.int64)
    y = x[::-1].copy()
    x_obj, k_obj = x.astype(object), kk.astype(object)  # object arrays: the exact paths

    def decrypt_exact(c):
        m = device.decrypt(sk, c._device())
        return encoding.decode(pk, m, c.exponent, c.kind, c.shape)

    def chain(between_steps_on_host: bool) -> None:
        """encrypt x, y -> x * k -> + y -> sum -> decrypt; optionally with each result turned
        into integers and its device copy dropped (what every step paid before ciphertexts
        stayed on the device)."""

        def step(c):
            return _on_host(c) if between_steps_on_host else c

        cx, cy = step(pk.encrypt(x)), step(pk.encrypt(y))
        s = step(step(step(cx * kk) + cy).sum())
        sk.decrypt(s)

    rows = {
        "gpu_kernels.paillier.add (int in, int out)": lambda: gp.add(nsq, c_int, c_int[::-1]),
        "gpu_kernels.paillier.add (mpz in, mpz out)": lambda: gp.add(
            nsq, c_mpz, c_mpz[::-1], as_mpz=True
        ),
        "gpu_kernels.paillier.scalar_mul (k >= 0, mpz)": lambda: gp.scalar_mul(
            nsq, c_mpz, k_pos, as_mpz=True
        ),
        "protocols.paillier: encrypt": lambda: pk.encrypt(x),
        "protocols.paillier: encrypt, the same values as Python ints (exact path)": (
            lambda: pk.encrypt(x_obj)
        ),
        "protocols.paillier: decrypt": lambda: sk.decrypt(c_arr),
        "protocols.paillier: decrypt, exact path (mpz, then decode)": lambda: decrypt_exact(c_arr),
        "protocols.paillier: c * k (half negative)": lambda: c_arr * kk,
        "protocols.paillier: c * k, k as Python ints (exact path)": lambda: c_arr * k_obj,
        "protocols.paillier: c + x": lambda: c_arr + x,
        "protocols.paillier: c + x, x as Python ints (exact path)": lambda: c_arr + x_obj,
        "chain: 2 encrypts, c * k, +, sum, decrypt (on the device between steps)": (
            lambda: chain(False)
        ),
        "the same chain with integers between steps": lambda: chain(True),
        "to_bytes of a result on the device (what the runtime ships)": lambda: (
            c_arr * kk
        ).to_bytes(),
        "to_bytes of the same result as integers": lambda: _on_host(c_arr * kk).to_bytes(),
    }
    table = [{"operation": name, "us per element": round(best_of(fn) / n * 1e6, 2)}
             for name, fn in rows.items()]  # fmt: skip
    data = {"machine": common.machine(), "n": n, "n_bits": 2048, "kernels": "stubbed",
            "rows": table}  # fmt: skip
    common.write(args.out, "gpu_host_overhead", data, table, ["operation", "us per element"])


if __name__ == "__main__":
    main()
