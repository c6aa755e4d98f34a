"""GPU integration check: protocols.paillier's backend selection and the ring matmul
dispatch of the secret-sharing engine, against their CPU paths, on one GPU.

    python bench/gpu_integration.py --out $OUT     (needs numpy, cupy, gmpy2; phe optional)

It loads cipherray's protocol packages without the package's __init__ (which pulls in
the Ray runtime), so the GPU machine needs no Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
pkg = types.ModuleType("cipherray")
pkg.__path__ = [str(ROOT / "cipherray")]
sys.modules["cipherray"] = pkg

from cipherray.gpu_kernels import available  # noqa: E402
from cipherray.protocols import paillier  # noqa: E402
from cipherray.protocols.mpc import ring  # noqa: E402

_SHARED: dict = {}  # inherited by the forked CPU-reference workers (no pickling of 10^5 values)


def _cpu_columns(cols: list[int]) -> tuple[list[int], list[int], float]:
    """Worker: our CPU path's X[:, cols].T @ c (backend "cpu"; never touches the GPU)."""
    paillier.set_backend("cpu")
    c, X = _SHARED["c"], _SHARED["X"]
    t = time.perf_counter()
    out = X[:, cols].T @ c
    return cols, [int(v) for v in out.ciphertexts()], time.perf_counter() - t


def cpu_matmul_all_cores(c, X: np.ndarray) -> tuple[list[int], float, float, int]:
    """X.T @ c on our CPU path with its columns split over every core this process may use,
    as forked processes (the CPU path runs one column at a time in one process). Returns
    the ciphertexts, the wall time, the summed per-process compute time (one core's time)
    and the process count."""
    import multiprocessing as mp

    procs = len(os.sched_getaffinity(0))
    J = X.shape[1]
    chunks = [list(range(J))[i::procs] for i in range(min(procs, J))]
    _SHARED.update(c=c, X=X)
    t = time.perf_counter()
    with mp.get_context("fork").Pool(len(chunks)) as pool:
        parts = pool.map_async(_cpu_columns, chunks, chunksize=1).get(timeout=600)
    wall = time.perf_counter() - t
    out = [0] * J
    for cols, vals, _ in parts:
        for j, v in zip(cols, vals):
            out[j] = v
    return out, wall, sum(p[2] for p in parts), len(chunks)


def phe_reference(count: int) -> dict:
    """python-paillier (phe, on gmpy2 where importable) on one core, 2048-bit n: its
    encryptions, decryptions, additions and multiplications by 64-bit scalars per second
    (the issue's peer reference); {} when phe is not importable."""
    try:
        import phe
    except ImportError:
        return {}
    import secrets

    pk, sk = phe.generate_paillier_keypair(n_length=2048)
    xs = [secrets.randbits(40) - (1 << 39) for _ in range(count)]
    ks = [secrets.randbits(64) - (1 << 63) for _ in range(count)]
    res: dict = {}

    def rate(name: str, fn):
        t = time.perf_counter()
        out = fn()
        res[f"phe_{name}_per_s_one_core"] = count / (time.perf_counter() - t)
        return out

    cs = rate("encrypt", lambda: [pk.encrypt(x) for x in xs])
    back = rate("decrypt", lambda: [sk.decrypt(c) for c in cs])
    rate("add", lambda: [a + b for a, b in zip(cs, cs)])
    rate("scalar_mul64", lambda: [c * k for c, k in zip(cs, ks)])
    return {"phe_decrypts_its_encryptions": back == xs, **res}


def sync() -> None:
    """Wait for the device's queued work (kernels run asynchronously: a result left on the
    device is timed once it is computed, and no earlier work is counted against the next)."""
    if available():
        import cupy

        cupy.cuda.Device().synchronize()


def timed(fn, *a):
    sync()
    t = time.perf_counter()
    out = fn(*a)
    sync()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/out"))
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument(
        "--skip-cpu-all-cores", action="store_true", help="leave out the CPU X.T @ c reference"
    )
    ap.add_argument(
        "--tuning",
        help="a bench/gpu.py gpu.json: use the kernels it measured fastest (bigint.apply_tuning)",
    )
    ap.add_argument(
        "--host-dry-run",
        action="store_true",
        help="the GPU path on the host build of the kernels, small ring sizes: tests this "
        "script on a CPU (its timings mean nothing)",
    )
    args = ap.parse_args()
    res: dict = {"gpu": available(), "checks": {}, "timings": {}}
    if args.host_dry_run:
        from cipherray.protocols.paillier import backend as paillier_backend

        paillier_backend.KERNEL = "host"  # "auto" and "gpu" run gpu_kernels' host build
        res["device"] = "host build of the kernels (dry run)"
    else:
        try:
            import cupy

            props = cupy.cuda.runtime.getDeviceProperties(0)
            res["device"] = (
                props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            )
        except Exception as e:  # pragma: no cover
            res["device"] = f"none ({e})"
    from cipherray.gpu_kernels import bigint as bi

    if args.tuning:  # a missing or broken file (bench/gpu.py cut short): the defaults
        try:
            res["tuning_applied"] = bi.apply_tuning(json.loads(Path(args.tuning).read_text()))
            res["tuning"] = args.tuning
        except (OSError, ValueError) as e:
            res["tuning_error"] = f"{args.tuning}: {e}"
    # the kernels in use (4096-bit: c * k, X.T @ c; 2048-bit: decryption's CRT halves)
    kernels = bi.get_backend("host" if args.host_dry_run else "auto")
    res["modexp_coop"] = {str(32 * n): bi._modexp_coop(n) for n in (64, 128)}
    res["montmul_coop"] = {str(32 * n): bi._montmul_coop(n) for n in (64, 128)}
    res["montmul_variant"] = {str(32 * n): bi.auto_variant(n, kernels) for n in (64, 128)}
    res["modexp_steps"] = {str(32 * n): bi.MODEXP_STEPS[n] for n in (64, 128)}
    pk, sk = paillier.keygen(2048)
    n = args.n
    gen = np.random.default_rng(0)  # test data only
    x = gen.integers(-(2**40), 2**40, n)
    X = gen.integers(-(2**31), 2**31, (n, 30))
    k = gen.integers(-(2**62), 2**62, n)

    # GPU path ("auto" on a GPU machine) vs the CPU path, same inputs
    paillier.set_backend("auto")
    # warm-up of every timed operation: kernel compilation (one NVRTC module per limb count:
    # decryption's CRT half-size module is not encryption's), tables, CRT constants
    w = min(1000, n)
    c_w, t_first = timed(pk.encrypt, x[:w])
    sk.decrypt(c_w)
    _ = c_w + c_w, c_w * k[:w], X[:w].T @ c_w
    res["timings"]["first_encrypt_1000_s_with_compilation"] = t_first
    # results stay on the device between operations (protocols.paillier.device); the
    # "*_ints" rows also turn them into integers (or start from integers), as a result that is
    # serialised or sent to another party is
    c_gpu, t_enc_gpu = timed(pk.encrypt, x)
    _, t_enc_ints = timed(lambda: pk.encrypt(x).ciphertexts())
    dec_gpu, t_dec_gpu = timed(sk.decrypt, c_gpu)
    c_host = c_gpu[:]  # the same ciphertexts as integers on the host
    _, t_dec_ints = timed(sk.decrypt, c_host)
    add_gpu, t_add_gpu = timed(lambda: c_gpu + c_gpu)
    mul_gpu, t_mul_gpu = timed(lambda: c_gpu * k)
    _, t_mul_ints = timed(lambda: (c_gpu[:] * k).ciphertexts())
    mm_gpu, t_mm_gpu = timed(lambda: X.T @ c_gpu)
    paillier.set_backend("cpu")
    m = min(2000, n)
    c_cpu, t_enc_cpu = timed(pk.encrypt, x[:m])
    dec_cpu = sk.decrypt(c_gpu[:m])  # the CPU decrypts GPU ciphertexts
    _, t_dec_cpu = timed(sk.decrypt, c_cpu)
    res["checks"]["gpu_decrypt_equals_plain"] = bool(np.array_equal(dec_gpu, x))
    res["checks"]["cpu_decrypts_gpu_ciphertexts"] = bool(np.array_equal(dec_cpu, x[:m]))
    res["checks"]["gpu_decrypts_cpu_ciphertexts"] = None
    res["checks"]["add_bitwise_equal"] = list((c_gpu[:m] + c_gpu[:m]).ciphertexts()) == list(
        add_gpu[:m].ciphertexts()
    )
    res["checks"]["scalar_mul_bitwise_equal"] = list((c_gpu[:m] * k[:m]).ciphertexts()) == list(
        mul_gpu[:m].ciphertexts()
    )
    mm_cpu = X[:m].T @ c_gpu[:m]
    paillier.set_backend("auto")
    mm_gpu_m = X[:m].T @ c_gpu[:m]
    res["checks"]["matmul_bitwise_equal"] = list(mm_cpu.ciphertexts()) == list(
        mm_gpu_m.ciphertexts()
    )
    res["checks"]["gpu_decrypts_cpu_ciphertexts"] = bool(np.array_equal(sk.decrypt(c_cpu), x[:m]))
    res["checks"]["matmul_decrypts_to_plain"] = bool(
        np.array_equal(sk.decrypt(mm_gpu), X.T.astype(object) @ x.astype(object))
    )
    # our CPU path on all cores, same X and ciphertexts (the reference for c @ X)
    if not args.skip_cpu_all_cores:
        paillier.set_backend("cpu")
        mm_cpu_all, t_cpu_all, t_cpu_sum, procs = cpu_matmul_all_cores(c_host, X)
        paillier.set_backend("auto")
        res["checks"]["matmul_all_cores_equal_gpu"] = mm_cpu_all == [
            int(v) for v in mm_gpu.ciphertexts()
        ]
        speedup = t_cpu_all / t_mm_gpu
        res["timings"].update(
            {
                "xt_at_c_cpu_all_cores_s": t_cpu_all,
                "xt_at_c_cpu_processes": procs,
                "xt_at_c_cpu_summed_process_s": t_cpu_sum,
                "xt_at_c_gpu_speedup_vs_cpu_all_cores": speedup,
            }
        )
        res["targets"] = {"X.T @ c >= 50x our CPU path on all cores": speedup >= 50}
    res["timings"].update(
        {
            "items": n,
            "encrypt_gpu_per_s": n / t_enc_gpu,
            "encrypt_gpu_to_ints_per_s": n / t_enc_ints,
            "encrypt_cpu_per_s_one_core": m / t_enc_cpu,
            "decrypt_gpu_per_s": n / t_dec_gpu,
            "decrypt_gpu_from_ints_per_s": n / t_dec_ints,
            "decrypt_cpu_per_s_one_core": m / t_dec_cpu,
            "add_gpu_per_s": n / t_add_gpu,
            "scalar_mul_gpu_per_s": n / t_mul_gpu,
            "scalar_mul_gpu_ints_in_and_out_per_s": n / t_mul_ints,
            "xt_at_c_gpu_s": t_mm_gpu,
            "note": "through protocols.paillier's API; *_gpu_per_s: results left on the device "
            "(encrypt, add, c * k) or read from it (decrypt); *_ints: Python-int/mpz "
            "conversions included",
        }
    )
    # the peer on one core (phe: r^n mod n^2 encryption with a full-size r), same key size
    ref = phe_reference(20 if args.host_dry_run else 200)
    if ref:
        res["checks"]["phe_decrypts_its_encryptions"] = ref.pop("phe_decrypts_its_encryptions")
        tm = res["timings"]
        tm.update(ref)
        for op, ours in (
            ("encrypt", "encrypt_gpu_per_s"),
            ("decrypt", "decrypt_gpu_per_s"),
            ("add", "add_gpu_per_s"),
            ("scalar_mul64", "scalar_mul_gpu_per_s"),
        ):
            tm[f"{op}_gpu_vs_phe_one_core"] = tm[ours] / tm[f"phe_{op}_per_s_one_core"]
    else:
        res["timings"]["phe"] = "not importable: no peer reference"
    # ring matmul dispatch (secret-sharing engine)
    for size in (64,) if args.host_dry_run else (1024, 2048, 4096):
        a = gen.integers(0, 2**63, (size, size), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        b = gen.integers(0, 2**63, (size, size), dtype=np.uint64)
        ring.matmul_u64(a, b)  # warm-up
        got, t = timed(ring.matmul_u64, a, b)
        res["timings"][f"ring_matmul_{size}_s_with_transfers"] = t
        if size <= 1024:
            ring._gpu.cache_clear()
            ref = (
                ring.matmul_u64.__wrapped__(a, b)
                if hasattr(ring.matmul_u64, "__wrapped__")
                else None
            )
            if ref is None:
                saved = ring._GPU_MIN
                ring._GPU_MIN = 1 << 62
                ref, t_cpu = timed(ring.matmul_u64, a, b)
                ring._GPU_MIN = saved
                res["timings"][f"ring_matmul_{size}_s_cpu"] = t_cpu
            res["checks"][f"ring_matmul_{size}_equal_cpu"] = bool(np.array_equal(got, ref))
    res["ok"] = all(v for v in res["checks"].values() if v is not None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_integration.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "gpu_integration.md").write_text(markdown(res))
    print(json.dumps(res, indent=1, default=str))


def markdown(res: dict) -> str:
    """gpu_integration.md: every timing and check of the run, the device named."""
    md = [
        f"`bench/gpu_integration.py` on {res.get('device')} (through `protocols.paillier`; "
        f"Montgomery variant {res.get('montmul_variant')}, modexp one launch per "
        f"multiplication {res.get('modexp_steps')}, cooperative kernels: modexp "
        f"{res.get('modexp_coop')}, multiplications {res.get('montmul_coop')}; kernel choice "
        f"from {res.get('tuning', 'the defaults')}); checks pass: "
        f"{'yes' if res.get('ok') else 'no'}.",
        "",
        "| what | value |",
        "|---|---:|",
    ]
    for k, v in res.get("timings", {}).items():
        if k != "note":
            md.append(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |")
    for k, v in res.get("targets", {}).items():
        md.append(f"| target: {k} | {'met' if v else 'not met'} |")
    if "note" in res.get("timings", {}):
        md += ["", res["timings"]["note"]]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
