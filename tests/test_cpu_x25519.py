"""The AVX-512 IFMA X25519 kernel agrees with RFC 7748 and with ``cryptography`` bit for
bit, and PSI blinding gives the same points with the kernel on and off."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from cipherray import cpu_kernels
from cipherray.cpu_kernels import x25519
from cipherray.protocols.psi import curve

needs_ifma = pytest.mark.skipif(
    not x25519.available(), reason="CPU without AVX-512 IFMA, or no C++ compiler"
)

P = 2**255 - 19


def _one(k: bytes, u: bytes) -> bytes:
    out, zeros = x25519.x25519_batch(k, u)
    assert zeros == 0
    return out


@needs_ifma
def test_rfc7748_vectors():
    k = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    want = "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
    assert _one(k, u).hex() == want
    k = bytes.fromhex("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d")
    u = bytes.fromhex("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493")
    want = "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"
    assert _one(k, u).hex() == want


@needs_ifma
def test_rfc7748_iterated_1000():
    k = u = (9).to_bytes(32, "little")
    for _ in range(1000):
        k, u = _one(k, u), k
    assert k.hex() == "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"


@needs_ifma
def test_random_and_edge_inputs_match_cryptography():
    key = os.urandom(32)
    sk = X25519PrivateKey.from_private_bytes(key)
    pts = [os.urandom(32) for _ in range(997)]  # not a multiple of the 8 lanes
    pts[0] = (P + 9).to_bytes(32, "little")  # non-canonical
    pts[1] = (2**255 - 1).to_bytes(32, "little")  # non-canonical, top bit clear
    pts[2] = (2**256 - 1).to_bytes(32, "little")  # bit 255 set: ignored
    pts[3] = (P - 2).to_bytes(32, "little")
    out, zeros = x25519.x25519_batch(key, b"".join(pts))
    want = b"".join(sk.exchange(X25519PublicKey.from_public_bytes(p)) for p in pts)
    assert zeros == 0
    assert out == want
    out2, _ = x25519.x25519_batch(key, b"".join(pts), threads=2)
    assert out2 == want


@needs_ifma
def test_small_order_inputs_are_counted():
    key = os.urandom(32)
    pts = [os.urandom(32) for _ in range(10)]
    pts[4] = (0).to_bytes(32, "little")
    pts[7] = (1).to_bytes(32, "little")
    out, zeros = x25519.x25519_batch(key, b"".join(pts))
    assert zeros == 2
    assert out[4 * 32 : 5 * 32] == bytes(32) and out[7 * 32 : 8 * 32] == bytes(32)


@needs_ifma
def test_rejects_bad_input():
    with pytest.raises(ValueError, match="32 bytes"):
        x25519.x25519_batch(b"short", bytes(32))
    with pytest.raises(ValueError, match="multiple of 32"):
        x25519.x25519_batch(os.urandom(32), bytes(33))


@needs_ifma
def test_psi_blind_same_points_with_kernel_on_and_off():
    key = curve.BlindingKey.generate()
    pts = curve.hash_to_points([b"id-%d" % i for i in range(50)], curve.new_salt())
    on = curve.blind(pts, key)
    cpu_kernels.set_enabled(False)
    try:
        assert not x25519.available()
        off = curve.blind(pts, key)
    finally:
        cpu_kernels.set_enabled(True)
    assert on.tobytes() == off.tobytes()
    bad = pts.copy()
    bad[9] = np.frombuffer(bytes(32), dtype=curve.POINT_DTYPE)[0]
    with pytest.raises(curve.LowOrderPointError):
        curve.blind(bad, key)
