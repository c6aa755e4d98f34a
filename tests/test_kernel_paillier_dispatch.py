"""protocols.paillier's GPU path, run through the host build of the same kernels: the
dispatch agrees with the gmpy2 path (bit for bit where the operation is deterministic)."""

from __future__ import annotations

import numpy as np
import pytest

from cipherray.protocols import paillier
from cipherray.protocols.paillier import backend


@pytest.fixture
def gpu_path(monkeypatch):
    monkeypatch.setattr(backend, "KERNEL", "host")
    monkeypatch.setattr(backend, "_backend", "gpu")
    monkeypatch.setattr(backend, "GPU_MIN_BATCH", 1)
    yield


@pytest.fixture(scope="module")
def keys():
    return paillier.keygen(1024, insecure=True)


def test_kernel_dispatch_matches_cpu(keys, gpu_path, monkeypatch):
    pk, sk = keys
    x = np.array([3, -7, 12, 0, 99], dtype=np.int64)
    X = np.arange(15, dtype=np.int64).reshape(5, 3) - 6
    c_gpu = pk.encrypt(x)  # encrypted by the kernel path
    np.testing.assert_array_equal(sk.decrypt(c_gpu), x)  # decrypted by the kernel path
    add_g = (c_gpu + c_gpu).ciphertexts()
    mul_g = (c_gpu * np.array([2, -3, 5, 7, -1])).ciphertexts()
    mm_g = (X.T @ c_gpu).ciphertexts()
    monkeypatch.setattr(backend, "_backend", "cpu")
    np.testing.assert_array_equal(sk.decrypt(c_gpu), x)  # the CPU decrypts GPU ciphertexts
    assert list(add_g) == list((c_gpu + c_gpu).ciphertexts())
    assert list(mul_g) == list((c_gpu * np.array([2, -3, 5, 7, -1])).ciphertexts())
    assert list(mm_g) == list((X.T @ c_gpu).ciphertexts())
    np.testing.assert_array_equal(sk.decrypt(X.T @ c_gpu), X.T @ x)


def test_backend_selection():
    assert backend.get_backend() in ("cpu", "gpu", "auto")
    with pytest.raises(ValueError):
        paillier.set_backend("tpu")
    if not backend.gpu_present():
        with pytest.raises(RuntimeError, match="no CuPy-usable GPU"):
            paillier.set_backend("gpu")
        assert not backend.use_gpu(10_000)  # "auto" on a machine without a GPU: the CPU
