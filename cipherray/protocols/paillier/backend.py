"""Where the Paillier arithmetic runs: the CPU (gmpy2) or a GPU (`gpu_kernels.paillier`).

`set_backend("cpu" | "gpu" | "auto")`, or the environment variable
`CIPHERRAY_PAILLIER_BACKEND`. The default "auto" uses the GPU for batches of at least
`GPU_MIN_BATCH` values when this process sees a CUDA device through CuPy (a party's
GPU worker in the runtime) and the CPU otherwise. Both paths compute the same
function — the same DJN randomness scheme, CRT decryption and raw operations — so a
ciphertext made on one decrypts on the other, and deterministic operations (add,
scalar multiply, matrix products, encryption with given exponents) agree bit for bit.
"""

from __future__ import annotations

import functools
import os
from typing import Any

GPU_MIN_BATCH = 64
# which build of gpu_kernels runs the "gpu" path: the CUDA one, or "host" (the same
# source compiled for the CPU) so that tests check this dispatch without a GPU
KERNEL = "gpu"
_BACKENDS = ("cpu", "gpu", "auto")
_backend = os.environ.get("CIPHERRAY_PAILLIER_BACKEND", "auto")


def set_backend(name: str) -> None:
    global _backend
    if name not in _BACKENDS:
        raise ValueError(f"Paillier backend must be one of {_BACKENDS}, got {name!r}")
    if name == "gpu" and not gpu_path_usable():
        raise RuntimeError("Paillier backend 'gpu' requested but no CuPy-usable GPU is present")
    _backend = name


def get_backend() -> str:
    return _backend


@functools.lru_cache(maxsize=1)
def gpu_present() -> bool:
    try:
        from cipherray.gpu_kernels import available

        return available()
    except Exception:
        return False


def gpu_path_usable() -> bool:
    """Whether the "gpu" path can run here: on a GPU, or on gpu_kernels' host build
    (KERNEL = "host": tests and the device scripts' dry runs)."""
    return KERNEL == "host" or gpu_present()


def use_gpu(count: int) -> bool:
    if _backend == "cpu" or count == 0:
        return False
    if _backend == "gpu":
        return True
    return count >= GPU_MIN_BATCH and gpu_path_usable()


def decrypt(sk: Any, c_list: list) -> list:
    from cipherray.gpu_kernels import paillier as gp

    return list(gp.decrypt_crt(int(sk.p), int(sk.q), c_list, backend=KERNEL, as_mpz=True))


def add(a: list, b: list, nsq: Any) -> list:
    from cipherray.gpu_kernels import paillier as gp

    return list(gp.add(int(nsq), a, b, backend=KERNEL, as_mpz=True))


def fits_int64(values: Any) -> bool:
    return all(-(2**63) <= int(v) < 2**63 for v in values)


def scalar_mul(c: list, k: list, nsq: Any) -> list:
    from cipherray.gpu_kernels import paillier as gp

    return list(gp.scalar_mul(int(nsq), c, k, backend=KERNEL, as_mpz=True))


def matmul(bases: list, exp_columns: list[list[int]], nsq: Any) -> list:
    """prod_i bases[i]^col[i] for each column: X.T @ c with X[:, j] = exp_columns[j]."""
    import numpy as np

    from cipherray.gpu_kernels import paillier as gp

    X = np.array(exp_columns, dtype=np.int64).T.copy()
    return list(gp.matvec(int(nsq), X, bases, backend=KERNEL, as_mpz=True))
