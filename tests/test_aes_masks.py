"""The AES-NI keystream kernel equals the project's PRG (``prg.random_bytes``, i.e.
``cryptography``'s AES-256-CTR) bit for bit, its masked sum equals the NumPy sum of the
expanded masks, the ``cryptography`` fallback gives the same results, and bad inputs are
refused."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cipherray.cpu_kernels import _native, aes_ctr
from cipherray.protocols import prg
from cipherray.protocols.secagg import masking

needs_aesni = pytest.mark.skipif(
    not aes_ctr.available(), reason="CPU without AES-NI, or no C++ compiler"
)

NBYTES = (0, 1, 15, 16, 17, 127, 128, 129, 2600, 100000)
STREAMS = (0, 1, 2**63 + 5, 2**64 - 1)


@pytest.fixture(params=["kernel", "fallback"])
def path(request):
    """Run a test on the kernel and on the ``cryptography`` fallback."""
    if request.param == "kernel" and not aes_ctr.available():
        pytest.skip("CPU without AES-NI, or no C++ compiler")
    _native.set_enabled(request.param == "kernel")
    try:
        yield request.param
    finally:
        _native.set_enabled(True)


def _seeds(count: int) -> np.ndarray:
    return np.frombuffer(os.urandom(32 * count), dtype=np.uint8).reshape(count, 32)


@pytest.mark.parametrize("stream", STREAMS)
def test_keystreams_equal_prg(path, stream):
    seeds = _seeds(3)
    for nbytes in NBYTES:
        got = aes_ctr.keystreams(seeds, nbytes, stream)
        assert got.shape == (3, nbytes) and got.dtype == np.uint8
        for i in range(3):
            assert got[i].tobytes() == prg.random_bytes(seeds[i].tobytes(), nbytes, stream)


def test_counter_blocks(path):
    # the keystream is AES-256 (ECB) of the counter blocks stream || i, both big-endian
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key, stream = bytes(range(32)), 2**63 + 5
    blocks = b"".join(stream.to_bytes(8, "big") + i.to_bytes(8, "big") for i in range(20))
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    want = ecb.update(blocks) + ecb.finalize()
    seeds = np.frombuffer(key, dtype=np.uint8).reshape(1, 32)
    assert aes_ctr.keystreams(seeds, 320, stream)[0].tobytes() == want


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("length", [0, 1, 3, 31, 33, 650, 4099])
def test_masked_sum_equals_numpy(path, bits, length):
    count = 9
    seeds = _seeds(count)
    signs = np.array([1, -1, 0, 1, 1, -1, -1, 0, 1], dtype=np.int8)
    dtype = np.uint32 if bits == 32 else np.uint64
    ks = np.stack(
        [
            np.frombuffer(
                prg.random_bytes(s.tobytes(), length * (bits // 8), 7), "<" + dtype().dtype.char
            )
            for s in seeds
        ]
    ).reshape(count, length)
    want = np.zeros(length, dtype=dtype)
    for k, s in zip(ks, signs):
        want = want + k if s > 0 else (want - k if s < 0 else want)
    got = aes_ctr.masked_sum(seeds, signs, length, bits=bits, stream=7)
    assert got.dtype == dtype and got.shape == (length,)
    np.testing.assert_array_equal(got, want)
    # accumulates into out, in place
    start = np.arange(length, dtype=dtype) * dtype(0x9E3779B9)
    acc = start.copy()
    res = aes_ctr.masked_sum(seeds, signs.tolist(), length, bits=bits, stream=7, out=acc)
    assert res is acc
    np.testing.assert_array_equal(acc, start + want)


def test_fallback_equals_kernel():
    if not aes_ctr.available():
        pytest.skip("CPU without AES-NI, or no C++ compiler")
    seeds = _seeds(17)
    signs = np.random.default_rng(1).integers(-1, 2, size=17)
    results = []
    for on in (True, False):
        _native.set_enabled(on)
        try:
            assert aes_ctr.available() is on
            results.append(
                (
                    aes_ctr.keystreams(seeds, 2600, 3),
                    aes_ctr.masked_sum(seeds, signs, 650, 32, 3),
                    aes_ctr.masked_sum(seeds, signs, 325, 64, 3),
                )
            )
        finally:
            _native.set_enabled(True)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bits", [32, 64])
def test_masking_helpers(path, bits):
    seeds = [os.urandom(32) for _ in range(6)]
    rows = masking.expand_many(seeds, 650, bits)
    assert rows.shape == (6, 650)
    for i, s in enumerate(seeds):
        np.testing.assert_array_equal(rows[i], masking.expand(s, 650, bits))
    np.testing.assert_array_equal(
        masking.expand_many(np.stack([np.frombuffer(s, np.uint8) for s in seeds]), 650, bits), rows
    )
    signs = [masking.pair_sign(3, v) for v in (1, 2, 4, 5, 6, 7)]
    acc = np.zeros(650, dtype=rows.dtype)
    masking.add_masks(acc, seeds, signs, bits)
    want = np.zeros(650, dtype=rows.dtype)
    for r, s in zip(rows, signs):
        want = want + r if s > 0 else want - r
    np.testing.assert_array_equal(acc, want)
    assert masking.expand_many([], 650, bits).shape == (0, 650)


def test_bad_inputs():
    seeds = _seeds(2)
    with pytest.raises(ValueError, match="shape"):
        aes_ctr.keystreams(seeds[:, :16], 16)
    with pytest.raises(ValueError, match="uint8"):
        aes_ctr.keystreams(seeds.astype(np.int16), 16)
    with pytest.raises(ValueError, match="shape"):
        aes_ctr.keystreams(seeds.reshape(-1), 16)
    with pytest.raises(ValueError, match="nbytes"):
        aes_ctr.keystreams(seeds, -1)
    with pytest.raises(ValueError, match="stream"):
        aes_ctr.keystreams(seeds, 16, stream=-1)
    with pytest.raises(ValueError, match="stream"):
        aes_ctr.keystreams(seeds, 16, stream=2**64)
    with pytest.raises(ValueError, match="bits"):
        aes_ctr.masked_sum(seeds, [1, 1], 4, bits=16)
    with pytest.raises(ValueError, match="signs"):
        aes_ctr.masked_sum(seeds, [1, 2], 4)
    with pytest.raises(ValueError, match="signs"):
        aes_ctr.masked_sum(seeds, [1], 4)
    with pytest.raises(ValueError, match="signs"):
        aes_ctr.masked_sum(seeds, [1.0, -1.0], 4)
    with pytest.raises(ValueError, match="length"):
        aes_ctr.masked_sum(seeds, [1, 1], -4)
    with pytest.raises(ValueError, match="out"):
        aes_ctr.masked_sum(seeds, [1, 1], 4, bits=32, out=np.zeros(4, np.uint64))
    with pytest.raises(ValueError, match="out"):
        aes_ctr.masked_sum(seeds, [1, 1], 4, out=np.zeros(5, np.uint32))
    with pytest.raises(ValueError, match="out"):
        aes_ctr.masked_sum(seeds, [1, 1], 4, out=np.zeros(8, np.uint32)[::2])
    with pytest.raises(ValueError, match="32 bytes"):
        aes_ctr.as_seeds([os.urandom(32), os.urandom(31)])
    with pytest.raises(ValueError, match="Z_2"):
        masking.expand_many([os.urandom(32)], 4, bits=16)


def test_native_targets_keep_ifma_flags():
    assert _native.cpu_supported(aes_ctr.SOURCE) == ({"aes", "sse4_1"} <= _native.cpu_flags())
    assert _native.cpu_supported() == ({"avx512f", "avx512ifma"} <= _native.cpu_flags())
    assert _native.cpu_supported("x25519_ifma.cc") == _native.cpu_supported()
