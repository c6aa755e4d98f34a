"""Z_2^64 limb-split matmuls (NumPy reference + host build) and the ChaCha20 PRG."""

from __future__ import annotations

import numpy as np
import pytest

from cipherray.gpu_kernels import ring64 as R

RNG = np.random.default_rng(64)


def _pair(m, k, n):
    a = RNG.integers(0, 2**64, size=(m, k), dtype=np.uint64)
    b = RNG.integers(0, 2**64, size=(k, n), dtype=np.uint64)
    a[0, :] = 2**64 - 1
    b[:, 0] = 2**63
    if m > 1 and n > 1:
        a[1, :] = 2**63 + 2**21
        b[:, 1] = 2**64 - 2**21
    return a, b


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 4), (17, 33, 9), (40, 3000, 20)])
def test_cpu_matmul_exact(shape):
    a, b = _pair(*shape)
    assert np.array_equal(R.cpu_matmul_u64(a, b), a @ b)


@pytest.mark.parametrize("method", ["int8", "fp64"])
@pytest.mark.parametrize("shape", [(3, 5, 4), (17, 33, 9), (64, 130, 31)])
def test_limb_split_matmul(method, shape):
    a, b = _pair(*shape)
    want = a @ b
    assert np.array_equal(R.matmul_ref(a, b, method), want)
    assert np.array_equal(R.limb_matmul(a, b, method, backend="host"), want)


def test_int8_chunking_exact():
    # all digits -128 (worst case for the int32 accumulators) and k beyond one chunk
    a = np.full((2, 16500), 0x8080808080808080, dtype=np.uint64)
    b = np.full((16500, 2), 0x8080808080808080, dtype=np.uint64)
    assert np.array_equal(R.limb_matmul(a, b, "int8", backend="host"), a @ b)


def test_elementwise_wraps():
    a = np.array([2**64 - 1, 5], dtype=np.uint64)
    b = np.array([2, 2**63], dtype=np.uint64)
    assert list(R.add(a, b)) == [1, 5 + 2**63]
    assert list(R.sub(b, a)) == [3, (2**63 - 5)]
    assert list(R.mul(a, b)) == [2**64 - 2, (5 * 2**63) % 2**64]
    assert list(R.neg(a)) == [1, 2**64 - 5]


def test_chacha20_matches_cryptography():
    ciphers = pytest.importorskip("cryptography.hazmat.primitives.ciphers")
    # RFC 8439 section 2.3.2 test vector (key 00..1f, counter 1)
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a00000000")
    x = R.prg_uint64(key, 8, nonce, counter=1, backend="host")
    assert x.tobytes()[:16].hex() == "10f1e7e4d13b5915500fdd1fa32071c4"
    for counter, count in [(0, 1000), (7, 13), (2**32 - 3, 24)]:
        k = RNG.bytes(32)
        nz = RNG.bytes(12)
        enc = ciphers.Cipher(
            ciphers.algorithms.ChaCha20(k, counter.to_bytes(4, "little") + nz), mode=None
        ).encryptor()
        ks = enc.update(bytes(8 * count))
        got = R.prg_uint64(k, count, nz, counter=counter, backend="host")
        assert np.array_equal(got, np.frombuffer(ks, dtype="<u8"))
    with pytest.raises(ValueError):
        R.prg_uint64(key, 100, nonce, counter=2**32 - 1, backend="host")
    assert len(R.new_key()) == 32
