"""int64 plaintexts and scalars as limbs (gpu_kernels.plain64 and the PaillierGpu methods on
it) against Python integers, through the host build."""

from __future__ import annotations

import numpy as np
import pytest

from cipherray.gpu_kernels import bigint as bi
from cipherray.gpu_kernels import paillier as P
from cipherray.gpu_kernels import plain64
from cipherray.protocols.paillier import randomness

gmpy2 = pytest.importorskip("gmpy2")

I64 = np.iinfo(np.int64)
EDGES = [0, 1, -1, 2, -2, I64.max, I64.min, I64.min + 1, 2**32, -(2**32), 2**62, -(2**62)]


def _n_words(n: int, words: int) -> np.ndarray:
    return bi._words(bi.ints_to_limbs([n], 2 * words)[0])


def _ns() -> list[int]:
    """Moduli whose low word is below most magnitudes (a borrow out of word 0), with zero words
    above it (the borrow runs through them), and an ordinary odd one."""
    return [
        (3 << 200) + 5,  # low word 5: every |m| > 5 borrows; words 1-2 zero
        (1 << 300) + (1 << 64) + 1,  # word 1 is 1: the borrow stops there
        int(gmpy2.next_prime(1 << 1023)) * int(gmpy2.next_prime(3 << 1020)),
    ]


def _values(n: int) -> list[int]:
    rng = np.random.default_rng(3)  # test data only
    return EDGES + [int(v) for v in rng.integers(I64.min, I64.max, 200, dtype=np.int64)]


@pytest.mark.parametrize("n", _ns(), ids=["borrow-chain", "borrow-one-word", "2048-bit"])
def test_words_from_int64_is_m_mod_n(n):
    words = (n.bit_length() + 63) // 64 + 1  # one spare word above n, as the contexts have
    nw = _n_words(n, words)
    vals = _values(n)
    w = plain64.words_from_int64(np, np.array(vals, dtype=np.int64), nw)
    got = bi.limbs_to_ints(np.ascontiguousarray(w.T).view(np.uint32))
    assert [int(v) for v in got] == [v % n for v in vals]


@pytest.mark.parametrize("n", _ns(), ids=["borrow-chain", "borrow-one-word", "2048-bit"])
def test_int64_from_words_inverts_it_and_flags_the_rest(n):
    words = (n.bit_length() + 63) // 64 + 1
    nw = _n_words(n, words)
    vals = _values(n)
    w = plain64.words_from_int64(np, np.array(vals, dtype=np.int64), nw)
    m, ok = plain64.int64_from_words(np, w, nw)
    assert ok.all() and m.tolist() == vals
    # values that are neither below 2^63 nor within 2^63 of n: not ok (decoded exactly
    # elsewhere); the boundaries on both sides
    outside = [2**63, 2**64, n // 2, n - 2**63 - 1, n - 2**64, 2**63 + 7, n - 1 - 2**70]
    inside = [2**63 - 1, n - 2**63, n - 1, 0]
    raw = [v % n for v in outside + inside]
    w2 = np.ascontiguousarray(bi.ints_to_limbs(raw, 2 * words).view(np.uint64).T)
    m2, ok2 = plain64.int64_from_words(np, w2, nw)
    assert ok2.tolist() == [False] * len(outside) + [True] * len(inside)
    assert m2[len(outside) :].tolist() == [2**63 - 1, -(2**63), -1, 0]


def test_words_beyond_n_must_be_zero():
    n = _ns()[2]
    nw = _n_words(n, 32)
    w = np.zeros((33, 2), dtype=np.uint64)
    w[0] = 5
    w[32, 1] = 1  # a word above n's width: not a value below n
    m, ok = plain64.int64_from_words(np, w, nw)
    assert ok.tolist() == [True, False] and int(m[0]) == 5


def test_digits_to_limbs_is_the_exponents_limbs():
    for bits in (224, 448, 128, 230):
        digits = randomness.random_exponent_digits(bits, 50)
        limbs = plain64.digits_to_limbs(digits)[: (bits + 31) // 32]
        ref = bi.ints_to_limbs(randomness.digits_to_exponents(digits), (bits + 31) // 32).T
        assert np.array_equal(limbs, ref)
    v = np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64)
    assert np.array_equal(plain64.uint64_to_limbs(v), bi.ints_to_limbs([int(x) for x in v], 2).T)


@pytest.fixture(scope="module")
def key():
    p = int(gmpy2.next_prime(0xC3A5 << 1008))
    q = int(gmpy2.next_prime(0xB7E1 << 1008))
    n = p * q
    hs = pow(0x1234567, 2 * n, n * n)
    P._cached.cache_clear()
    return P.PaillierGpu(n, hs=hs, rand_bits=224, p=p, q=q, backend="host")


def test_int64_paths_equal_the_int_paths(key):
    """encrypt / c + m / c * k / decrypt on int64 arrays give the bits of the Python-int
    methods (themselves checked against the formulas in test_kernel_paillier)."""
    n = key.n
    m = np.array(EDGES, dtype=np.int64)
    digits = randomness.random_exponent_digits(224, m.size)
    a = randomness.digits_to_exponents(digits)
    c64 = key.encrypt_int64_to_limbs(m, digits)
    c_ints = key.encrypt([int(v) % n for v in m], a)
    assert [int(v) for v in key.ctx.get(c64)] == [int(v) for v in c_ints]
    assert key.int64_from_plain_words(key.decrypt_limbs(c64)).tolist() == EDGES
    k = np.array(EDGES[::-1], dtype=np.int64)
    got = key.ctx.get(key.scalar_mul_int64_limbs(c64, k))
    nsq = key.nsq
    assert [int(v) for v in got] == [pow(int(c), int(e), nsq) for c, e in zip(c_ints, k)]
    added = key.ctx_p.get(key.decrypt_limbs(key.add_plain_int64_to_limbs(c64, k)))
    assert [int(v) for v in added] == [(x + y) % n for x, y in zip(EDGES, EDGES[::-1])]
    # the list form of scalar_mul takes the int64 path where it can, and the exact one for
    # magnitudes in [2^63, 2^64)
    big = [2**64 - 1, -(2**64 - 1), 2**63, 5] + [1] * (len(EDGES) - 4)
    got = key.ctx.get(key.scalar_mul_signed_limbs(c64, big))
    assert [int(v) for v in got] == [pow(int(c), e, nsq) for c, e in zip(c_ints, big)]


def test_decrypt_outside_int64_is_none(key):
    c = key.encrypt_to_limbs([2**64, key.n - 5], [3, 4])
    assert key.int64_from_plain_words(key.decrypt_limbs(c)) is None


def test_int64_input_checks(key):
    m = np.arange(4, dtype=np.int64)
    with pytest.raises(ValueError, match="shape"):
        key.encrypt_int64_to_limbs(m, randomness.random_exponent_digits(224, 3))
    bad = randomness.random_exponent_digits(230, 4)[:, :28].copy()
    bad[:, -1] = 0xFF  # 224 bits exactly: a full top byte is in range
    key.encrypt_int64_to_limbs(m, bad)
    key.rand_bits = 220
    try:
        with pytest.raises(ValueError, match="2\\^220"):
            key.encrypt_int64_to_limbs(m, bad)
    finally:
        key.rand_bits = 224
    with pytest.raises(ValueError, match="differ in length"):
        key.scalar_mul_int64_limbs(key.encrypt_int64_to_limbs(m, bad), np.arange(3))
