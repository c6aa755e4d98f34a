"""The AVX-512 IFMA exponentiation kernel agrees with gmpy2 bit for bit, and the Paillier
CPU path gives the same ciphertexts and plaintexts with the kernel on and off."""

from __future__ import annotations

import os

import gmpy2
import numpy as np
import pytest
from gmpy2 import mpz

import cipherray.protocols.paillier as P
from cipherray import cpu_kernels
from cipherray.cpu_kernels import modexp

needs_ifma = pytest.mark.skipif(
    not modexp.available(), reason="CPU without AVX-512 IFMA, or no C++ compiler"
)


def _rand_below(m: mpz, count: int) -> list:
    nb = (int(m).bit_length() + 7) // 8 + 8
    return [mpz(int.from_bytes(os.urandom(nb), "little")) % m for _ in range(count)]


def _odd_modulus(bits: int) -> mpz:
    return mpz(int.from_bytes(os.urandom(bits // 8), "big")) | (mpz(1) << (bits - 1)) | 1


@needs_ifma
@pytest.mark.parametrize("bits", [512, 2048, 3072, 4096, 6144])
def test_per_lane_exponents_match_gmpy2(bits):
    m = _odd_modulus(bits)
    count = 21  # not a multiple of the 8 lanes
    bases = _rand_below(m, count)
    bases[0], bases[1] = mpz(0), m - 1
    exps = [int.from_bytes(os.urandom(8), "little") for _ in range(count)]
    exps[2], exps[3], exps[4] = 0, 1, 2**64 - 1
    got = modexp.powmod(bases, exps, m)
    assert got == [gmpy2.powmod(b, e, m) for b, e in zip(bases, exps)]


@needs_ifma
def test_shared_long_exponent_and_threads():
    p = gmpy2.next_prime(_odd_modulus(1024))
    psq = p * p
    bases = _rand_below(psq, 19)
    want = [gmpy2.powmod(b, p - 1, psq) for b in bases]
    assert modexp.powmod(bases, p - 1, psq) == want
    assert modexp.powmod(bases, p - 1, psq, threads=2) == want


@needs_ifma
def test_mixed_exponent_lengths_in_one_block():
    m = _odd_modulus(2048)
    bases = _rand_below(m, 8)
    exps = [0, 3, 2**63 + 5, 2**200 + 7, 1, 2**1000 - 1, 12345, 2**64]
    assert modexp.powmod(bases, exps, m) == [gmpy2.powmod(b, e, m) for b, e in zip(bases, exps)]


@needs_ifma
def test_rejects_bad_input():
    with pytest.raises(ValueError, match="odd modulus"):
        modexp.powmod([mpz(3)], [5], mpz(2) ** 2048)
    with pytest.raises(ValueError, match="non-negative"):
        modexp.powmod([mpz(3)], [-5], _odd_modulus(2048))
    with pytest.raises(ValueError, match="exponents"):
        modexp.powmod([mpz(3), mpz(4)], [5], _odd_modulus(2048))
    assert not modexp.supports(_odd_modulus(8192))


@needs_ifma
def test_paillier_same_results_with_kernel_on_and_off():
    pk, sk = P.keygen(bits=1024, insecure=True)
    x = np.linspace(-3.0, 3.0, 37)
    k = np.linspace(-1.0, 1.0, 37)
    c = pk.encrypt(x)
    on = c.mul(k, precision=2.0**-64)
    d_on = sk.decrypt(on)
    cpu_kernels.set_enabled(False)
    try:
        assert not modexp.available()
        off = c.mul(k, precision=2.0**-64)
        d_off = sk.decrypt(off)
    finally:
        cpu_kernels.set_enabled(True)
    assert on.to_bytes() == off.to_bytes()
    assert np.array_equal(d_on, d_off)
    np.testing.assert_allclose(d_on, x * k, atol=1e-9)


def test_disabled_kernel_refuses_and_paillier_falls_back():
    cpu_kernels.set_enabled(False)
    try:
        assert not modexp.available()
        with pytest.raises(RuntimeError, match="not available"):
            modexp.powmod([mpz(2)], [3], _odd_modulus(2048))
        pk, sk = P.keygen(bits=1024, insecure=True)
        x = np.arange(-10, 10)
        np.testing.assert_array_equal(sk.decrypt(pk.encrypt(x) * 3), x * 3)
    finally:
        cpu_kernels.set_enabled(True)


@needs_ifma
def test_bases_outside_the_range_are_reduced_first():
    m = _odd_modulus(2048)
    bases = [m * 3 + 5, mpz(-7), m, mpz(12)] * 3
    assert modexp.powmod(bases, 65537, m) == [gmpy2.powmod(b, 65537, m) for b in bases]


@needs_ifma
def test_fixed_base_powers_match_gmpy2():
    m = _odd_modulus(4096)
    g = _rand_below(m, 1)[0]
    rows, base = [], g
    for _ in range(3):
        row = [gmpy2.powmod(base, d, m) for d in range(256)]
        rows.append(row)
        base = gmpy2.powmod(base, 256, m)
    fb = modexp.FixedBasePowers(rows, m)
    digits = np.frombuffer(os.urandom(19 * 3), dtype=np.uint8).reshape(19, 3).copy()
    digits[0] = 0
    digits[1] = 255
    want = [gmpy2.powmod(g, int.from_bytes(r.tobytes(), "little"), m) for r in digits]
    assert fb.pow(digits) == want
    assert fb.pow(digits, threads=2) == want
    with pytest.raises(ValueError, match="shape"):
        fb.pow(digits[:, :2])
    with pytest.raises(ValueError, match="256 entries"):
        modexp.FixedBasePowers([rows[0][:10]], m)


@needs_ifma
def test_encryption_randomness_same_with_kernel_on_and_off():
    from cipherray.protocols.paillier import randomness

    pk, _ = P.keygen(bits=1024, insecure=True)
    table = pk._fixed_base()
    digits = randomness.random_exponent_digits(pk.rand_bits, 29)
    on = table.pow(digits)
    cpu_kernels.set_enabled(False)
    try:
        off = table.pow(digits)
    finally:
        cpu_kernels.set_enabled(True)
    assert on == off
    hs, nsq = table.hs, table.nsquare
    assert on[:3] == [gmpy2.powmod(hs, e, nsq) for e in randomness.digits_to_exponents(digits[:3])]


def test_unbuildable_kernels_fall_back_to_gmpy2_and_cryptography():
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from cipherray.cpu_kernels import modexp, x25519\n"
        "import cipherray.protocols.paillier as P\n"
        "from cipherray.protocols.psi import curve\n"
        "assert not modexp.available() and not x25519.available()\n"
        "pk, sk = P.keygen(bits=1024, insecure=True)\n"
        "x = np.arange(-20, 20)\n"
        "assert (sk.decrypt(pk.encrypt(x) * -3) == -3 * x).all()\n"
        "k1, k2 = curve.BlindingKey.generate(), curve.BlindingKey.generate()\n"
        "pts = curve.hash_to_points([b'%d' % i for i in range(16)], curve.new_salt())\n"
        "a = curve.blind(curve.blind(pts, k1), k2)\n"
        "b = curve.blind(curve.blind(pts, k2), k1)\n"
        "assert a.tobytes() == b.tobytes()\n"
        "print('fallback ok')\n"
    )
    env = dict(os.environ, CIPHERRAY_CACHE="/proc/cipherray-unwritable")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "fallback ok" in out.stdout
