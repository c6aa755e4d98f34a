"""The runtime's `gpus` party option on a GPU machine (needs Ray there: see
../shared/device/README.md). Checks that a party created with {"gpus": 1} runs its
steps on its GPU worker, that Paillier work there goes to the GPU and agrees with the
CPU party, and that a secret-shared matmul with a GPU party is exact.

    python bench/gpu_runtime_check.py --out $OUT
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import cipherray as cr


def has_gpu() -> bool:
    from cipherray.gpu_kernels import available

    return available()


def values(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) - n // 2


def matrix(m: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (m, m))  # test data only


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/out"))
    ap.add_argument("--n", type=int, default=50_000)
    args = ap.parse_args()
    res: dict = {"checks": {}, "timings": {}}
    t = time.perf_counter()
    # the driver plays bank and insurer (it reads their checks); the insurer's test
    # values may reach the bank in the clear (it decrypts and checks them)
    rt = cr.init(
        {"bank": {"workers": 2, "gpus": 1}, "insurer": {"workers": 1}, "dealer": {}},
        timeout_s=600,
        driver_as=["bank", "insurer"],
    )
    rt.policy.grant(owner="insurer", to="bank", allow="plaintext")
    res["timings"]["init_s"] = time.perf_counter() - t
    bank, insurer, _ = rt.parties
    res["checks"]["bank_worker_sees_gpu"] = bool(rt.get(bank(has_gpu)()))
    res["checks"]["insurer_worker_sees_no_gpu"] = not rt.get(insurer(has_gpu)())
    he = rt.he(keyholder=bank)  # 2048-bit key, generated inside the bank's GPU worker
    t = time.perf_counter()
    rt.get(bank(values)(512).to(he).reveal_to(bank))  # warm-up: kernel compilation
    res["timings"]["gpu_warmup_s"] = time.perf_counter() - t
    n = args.n
    t = time.perf_counter()
    enc_bank = bank(values)(n).to(he)  # encrypted on the bank's GPU
    got = rt.get(enc_bank.reveal_to(bank))  # decrypted on the bank's GPU
    res["timings"]["bank_gpu_encrypt_decrypt_per_s"] = n / (time.perf_counter() - t)
    res["checks"]["gpu_encrypt_decrypt"] = bool(np.array_equal(got, values(n)))
    m = 2000
    t = time.perf_counter()
    enc_ins = insurer(values)(m).to(he)  # encrypted on the insurer's CPU
    rt.get(insurer(len)(insurer(values)(1)))
    res["timings"]["insurer_cpu_encrypt_per_s"] = m / (time.perf_counter() - t)
    res["checks"]["gpu_decrypts_cpu_ciphertexts"] = bool(
        np.array_equal(rt.get(enc_ins.reveal_to(bank)), values(m))
    )
    mpc = rt.mpc(bank, insurer, dealer="dealer")
    size = 1024
    x = bank(matrix)(size, 1).to(mpc)
    y = insurer(matrix)(size, 2).to(mpc)
    t = time.perf_counter()
    z = rt.get((x @ y).reveal_to(bank))
    res["timings"]["shared_matmul_1024_s"] = time.perf_counter() - t
    res["checks"]["shared_matmul_close"] = bool(
        np.max(np.abs(z - matrix(size, 1) @ matrix(size, 2))) < 5e-3
    )
    res["ledger"] = rt.ledger.report()
    rt.shutdown()
    res["ok"] = all(res["checks"].values())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_runtime_check.json").write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps({k: v for k, v in res.items() if k != "ledger"}, indent=1, default=str))


if __name__ == "__main__":
    main()
