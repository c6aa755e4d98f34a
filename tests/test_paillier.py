"""Paillier protocol vs plaintext NumPy / Python ints (no Ray)."""

from __future__ import annotations

import pickle

import gmpy2
import numpy as np
import phe
import pytest

import cipherray.protocols.paillier as P
from cipherray.protocols.paillier import CipherArray

TOL = 2.0**-28  # default precision 2^-32 per encoded value, a few values combined


@pytest.fixture(scope="module")
def keys():
    return P.keygen(1024, insecure=True)


@pytest.fixture(scope="module")
def other_keys():
    return P.keygen(512, insecure=True)


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(1234)  # test data only, never key material


# -- keys --------------------------------------------------------------------------------
def test_keygen_default_2048(keys):
    pk, sk = P.keygen()
    assert pk.n.bit_length() == 2048 and pk.bits == 2048
    assert pk.rand_bits == 224
    assert sk.p != sk.q and sk.p * sk.q == pk.n
    assert sk.p.bit_length() == sk.q.bit_length() == 1024
    assert 0 < pk.hs < pk.nsquare and gmpy2.gcd(pk.hs, pk.n) == 1
    x = np.array([-3, 0, 2**40, 7])
    np.testing.assert_array_equal(sk.decrypt(pk.encrypt(x)), x)


def test_keygen_3072_supported():
    pk, sk = P.keygen(3072)
    assert pk.n.bit_length() == 3072 and pk.rand_bits == 256
    np.testing.assert_array_equal(sk.decrypt(pk.encrypt([1, -2])), [1, -2])


def test_keygen_refuses_small_keys():
    with pytest.raises(ValueError, match="insecure"):
        P.keygen(1024)
    with pytest.raises(ValueError):
        P.keygen(1023, insecure=True)
    assert P.default_rand_bits(3072) == 256
    assert P.default_rand_bits(2048) == 224


def test_keys_pickle_and_repr(keys):
    pk, sk = keys
    pk2, sk2 = pickle.loads(pickle.dumps((pk, sk)))
    assert pk2 == pk and sk2 == sk and pk2.hs == pk.hs and pk2.rand_bits == pk.rand_bits
    assert str(int(sk.p)) not in repr(sk) and str(int(sk.q)) not in repr(sk)
    c = pk2.encrypt([5, -6])
    np.testing.assert_array_equal(sk.decrypt(CipherArray.from_bytes(c.to_bytes(), pk)), [5, -6])


# -- roundtrips ----------------------------------------------------------------------------
def test_roundtrip_ints_shapes(keys, rng):
    pk, sk = keys
    for x in [
        np.array(7),
        np.arange(-5, 5),
        rng.integers(-(2**62), 2**62, size=(3, 4)),
        rng.integers(-100, 100, size=(2, 3, 2)),
    ]:
        d = sk.decrypt(pk.encrypt(x))
        assert d.dtype == np.int64 and d.shape == x.shape
        np.testing.assert_array_equal(d, x)
    assert sk.decrypt(pk.encrypt(5)).item() == 5
    np.testing.assert_array_equal(sk.decrypt(pk.encrypt([1, -2, 3])), [1, -2, 3])
    np.testing.assert_array_equal(sk.decrypt(pk.encrypt(np.array([True, False]))), [1, 0])


def test_roundtrip_big_python_ints(keys):
    pk, sk = keys
    big = [2**100, -(2**90) - 1, 3]
    d = sk.decrypt(pk.encrypt(np.array(big, dtype=object)))
    assert d.dtype == object and [int(v) for v in d] == big


def test_roundtrip_floats(keys, rng):
    pk, sk = keys
    x = rng.normal(size=(4, 5)) * 1000
    d = sk.decrypt(pk.encrypt(x))
    assert d.dtype == np.float64 and d.shape == x.shape
    assert np.max(np.abs(d - x)) <= 2.0**-33
    d = sk.decrypt(pk.encrypt(x, precision=2.0**-64))
    assert np.max(np.abs(d - x)) <= 2.0**-64 * 1e3 + np.max(np.abs(x)) * 2.0**-52
    c = pk.encrypt(np.array([0.5, -0.25]), precision=1e-3)
    assert c.exponent == -3 and c.kind == "float"
    np.testing.assert_allclose(sk.decrypt(c), [0.5, -0.25], atol=1e-3)


def test_randomised_encryption(keys):
    pk, sk = keys
    c = pk.encrypt([1, 1])
    assert c.ciphertexts()[0] != c.ciphertexts()[1]
    r = c.rerandomize()
    assert r.ciphertexts()[0] != c.ciphertexts()[0]
    np.testing.assert_array_equal(sk.decrypt(r), [1, 1])


# -- operators ------------------------------------------------------------------------------
def test_int_operators_exact(keys, rng):
    pk, sk = keys
    a = rng.integers(-1000, 1000, size=(3, 4))
    b = rng.integers(-1000, 1000, size=(3, 4))
    ca, cb = pk.encrypt(a), pk.encrypt(b)
    cases = {
        "c+c": (ca + cb, a + b),
        "c+p": (ca + b, a + b),
        "p+c": (b + ca, b + a),
        "c+scalar": (ca + 5, a + 5),
        "c-c": (ca - cb, a - b),
        "c-p": (ca - b, a - b),
        "p-c": (b - ca, b - a),
        "-c": (-ca, -a),
        "c*k": (ca * -7, a * -7),
        "k*c": (3 * ca, 3 * a),
        "c*arr": (ca * b, a * b),
        "c*row": (ca * b[0], a * b[0]),
        "arr*c": (b * ca, b * a),
        "c*0": (ca * 0, a * 0),
        "bcast": (ca + pk.encrypt(b[0]), a + b[0]),
    }
    for name, (c, want) in cases.items():
        got = sk.decrypt(c)
        assert got.dtype == np.int64, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_float_operators(keys, rng):
    pk, sk = keys
    a = rng.normal(size=6)
    b = rng.normal(size=6)
    ca, cb = pk.encrypt(a), pk.encrypt(b)
    ci = pk.encrypt(np.arange(6))
    cases = {
        "c+c": (ca + cb, a + b),
        "c+p": (ca + b, a + b),
        "c-p": (ca - b, a - b),
        "p-c": (b - ca, b - a),
        "c*float": (ca * 2.5, a * 2.5),
        "c*arr": (ca * b, a * b),
        "c/2": (ca / 4.0, a / 4.0),
        "int+float": (ci + ca, np.arange(6) + a),
        "int*float": (ci * 0.5, np.arange(6) * 0.5),
        "mixed exponents": ((ca * b) + ca, a * b + a),
        "c.mul 64bit": (ca.mul(b, precision=2.0**-64), a * b),
    }
    for name, (c, want) in cases.items():
        got = sk.decrypt(c)
        assert got.dtype == np.float64, name
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0, err_msg=name)


def test_sum_axes(keys, rng):
    pk, sk = keys
    a = rng.integers(-50, 50, size=(3, 4, 2))
    c = pk.encrypt(a)
    assert sk.decrypt(c.sum()).item() == a.sum()
    for axis in [0, 1, 2, -1, (0, 2)]:
        np.testing.assert_array_equal(sk.decrypt(c.sum(axis=axis)), a.sum(axis=axis))
    f = rng.normal(size=(5, 3))
    np.testing.assert_allclose(sk.decrypt(pk.encrypt(f).sum(axis=0)), f.sum(0), atol=TOL)


def test_matmul_ints_exact(keys, rng):
    pk, sk = keys
    v = rng.integers(-1000, 1000, size=40)
    X = rng.integers(-(2**40), 2**40, size=(40, 5))
    c = pk.encrypt(v)
    want = [int(s) for s in np.array(X.T, dtype=object) @ np.array(v, dtype=object)]
    assert [int(s) for s in sk.decrypt(c @ X)] == want
    assert [int(s) for s in sk.decrypt(X.T @ c)] == want
    M = rng.integers(-9, 9, size=(3, 40))
    C = pk.encrypt(M)
    X2 = X[:, :2] // 2**30
    np.testing.assert_array_equal(sk.decrypt(C @ X2), M @ X2)
    np.testing.assert_array_equal(sk.decrypt(M @ pk.encrypt(X2)), M @ X2)
    w = rng.integers(-5, 5, size=40)
    assert sk.decrypt(c @ w).item() == int(v @ w)
    with pytest.raises(ValueError):
        c @ X[:10]


def test_matmul_floats(keys, rng):
    pk, sk = keys
    r = rng.normal(size=60)
    X = rng.normal(size=(60, 4))
    c = pk.encrypt(r)
    np.testing.assert_allclose(sk.decrypt(X.T @ c), X.T @ r, atol=60 * TOL)
    np.testing.assert_allclose(sk.decrypt(c @ X), r @ X, atol=60 * TOL)
    got = sk.decrypt(c.matmul(X, precision=2.0**-64))
    np.testing.assert_allclose(got, r @ X, atol=60 * TOL)


def test_indexing_and_concatenate(keys, rng):
    pk, sk = keys
    a = rng.integers(-9, 9, size=(4, 3))
    c = pk.encrypt(a)
    assert c.shape == (4, 3) and c.ndim == 2 and c.size == 12 and len(c) == 4
    assert c[3].shape == (3,) and c[1, 2].shape == ()
    np.testing.assert_array_equal(sk.decrypt(c[3]), a[3])
    np.testing.assert_array_equal(sk.decrypt(c[1:3]), a[1:3])
    np.testing.assert_array_equal(sk.decrypt(c[:, 1]), a[:, 1])
    assert sk.decrypt(c[-1, -1]).item() == a[-1, -1]
    np.testing.assert_array_equal(sk.decrypt(c.T), a.T)
    np.testing.assert_array_equal(sk.decrypt(c.reshape(2, 6)), a.reshape(2, 6))
    assert [sk.decrypt(row).tolist() for row in c] == a.tolist()
    f = rng.normal(size=(2, 3))
    cat = P.concatenate([c, pk.encrypt(f)], axis=0)
    assert cat.shape == (6, 3) and cat.kind == "float"
    np.testing.assert_allclose(sk.decrypt(cat), np.concatenate([a, f]), atol=TOL)
    np.testing.assert_array_equal(
        sk.decrypt(P.concatenate([c, c[:, :1]], axis=1)), np.concatenate([a, a[:, :1]], axis=1)
    )
    with pytest.raises(TypeError):
        len(c[0, 0])


def test_unsupported_ops_raise_typeerror(keys):
    pk, _ = keys
    c = pk.encrypt([1, 2])
    for op in (lambda: c * c, lambda: c / c, lambda: c**2, lambda: 2 / c, lambda: c @ c):
        with pytest.raises(TypeError, match="additively homomorphic"):
            op()
    with pytest.raises(TypeError):
        c + "x"


# -- serialisation ----------------------------------------------------------------------------
def test_bytes_and_pickle_roundtrip(keys, rng):
    pk, sk = keys
    a = rng.normal(size=(3, 5))
    c = pk.encrypt(a) * 3
    b = c.to_bytes()
    width = (pk.nsquare.bit_length() + 7) // 8
    assert len(b) <= c.size * width + 64
    c2 = CipherArray.from_bytes(b, pk)
    assert c2.shape == c.shape and c2.exponent == c.exponent and c2.kind == c.kind
    assert (c2.ciphertexts() == c.ciphertexts()).all()
    p = pickle.dumps(c)
    assert len(p) < c.size * width + 2000
    c3 = pickle.loads(p)
    np.testing.assert_allclose(sk.decrypt(c3), a * 3, atol=TOL)
    assert c3.public_key == pk
    z = pickle.loads(pickle.dumps(pk.encrypt(4)))
    assert z.shape == () and sk.decrypt(z).item() == 4


def test_nbytes_is_the_wire_size_without_serialising(keys, monkeypatch):
    from cipherray.runtime.payload import payload_nbytes

    pk, _ = keys
    arrays = [pk.encrypt(7), pk.encrypt(np.arange(4)), pk.encrypt(np.ones((2, 3))) * 2]
    sizes = [len(c.to_bytes()) for c in arrays]
    assert [c.nbytes for c in arrays] == sizes
    width = (pk.nsquare.bit_length() + 7) // 8
    assert sizes[1] - sizes[0] == 3 * width + 8  # three more ciphertexts, one more dim

    def no_serialising(self):
        raise AssertionError("the ledger must not serialise a CipherArray to size it")

    monkeypatch.setattr(CipherArray, "to_bytes", no_serialising)
    assert payload_nbytes(arrays[2]) == sizes[2]
    assert payload_nbytes((arrays[0], arrays[1])) == sizes[0] + sizes[1]


def test_from_bytes_rejects_bad_input(keys, other_keys):
    pk, _ = keys
    opk, _ = other_keys
    c = pk.encrypt([1, 2, 3])
    b = c.to_bytes()
    with pytest.raises(ValueError, match="different public key"):
        CipherArray.from_bytes(b, opk)
    with pytest.raises(ValueError):
        CipherArray.from_bytes(b[:-1], pk)
    with pytest.raises(ValueError):
        CipherArray.from_bytes(b"XXXX" + b[4:], pk)
    width = (pk.nsquare.bit_length() + 7) // 8
    zero = b[: len(b) - width] + bytes(width)
    with pytest.raises(ValueError, match="out of range"):
        CipherArray.from_bytes(zero, pk)
    big = b[: len(b) - width] + b"\xff" * width
    with pytest.raises(ValueError, match="out of range"):
        CipherArray.from_bytes(big, pk)


def test_hostile_ciphertexts_rejected(keys):
    pk, sk = keys
    n, nsq = int(pk.n), int(pk.nsquare)
    for bad in (0, nsq, nsq + 5, -3):
        with pytest.raises(ValueError, match="out of range"):
            CipherArray.from_ciphertexts(pk, [bad])
    for bad in (int(sk.p), int(sk.q) * 7, n):
        with pytest.raises(ValueError, match="invertible"):
            CipherArray.from_ciphertexts(pk, [3, bad])
    good = CipherArray.from_ciphertexts(pk, pk.encrypt([9]).ciphertexts())
    assert sk.decrypt(good).item() == 9


# -- key mixing ---------------------------------------------------------------------------------
def test_different_keys_rejected(keys, other_keys):
    pk, sk = keys
    opk, osk = other_keys
    c, d = pk.encrypt([1]), opk.encrypt([1])
    for op in (lambda: c + d, lambda: c - d, lambda: P.concatenate([c, d])):
        with pytest.raises(ValueError, match="different"):
            op()
    with pytest.raises(ValueError, match="different public key"):
        osk.decrypt(c)


# -- encoding range ---------------------------------------------------------------------------
def test_overflow_and_nan_raise(keys):
    pk, sk = keys
    too_big = int(pk.max_int) + 1
    for bad in ([too_big], [-too_big]):
        with pytest.raises(OverflowError):
            pk.encrypt(np.array(bad, dtype=object))
        with pytest.raises(ValueError):
            pk.encrypt(np.array(bad, dtype=object))
    with pytest.raises(OverflowError):
        pk.encrypt([1e300])
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="NaN"):
            pk.encrypt([1.0, bad])
    c = pk.encrypt(np.array([int(pk.max_int) // 2], dtype=object))
    with pytest.raises(OverflowError):
        sk.decrypt(c * 4)  # wrapped into the overflow band: refused, not wrapped
    with pytest.raises(TypeError):
        pk.encrypt(["a"])


# -- low level / randomness ---------------------------------------------------------------------
def test_encrypt_with_exponents_deterministic(keys):
    pk, sk = keys
    m = [0, 5, int(pk.n) - 1, 123456789]
    a = [0, 1, 2**pk.rand_bits - 1, 0xDEADBEEF]
    c1 = P.encrypt_with_exponents(pk, m, a)
    c2 = P.encrypt_with_exponents(pk, m, a)
    assert (c1 == c2).all()
    nsq = pk.nsquare
    for ci, mi, ai in zip(c1, m, a):
        assert ci == (1 + mi * pk.n) * gmpy2.powmod(pk.hs, ai, nsq) % nsq
    np.testing.assert_array_equal(
        sk.decrypt(CipherArray.from_ciphertexts(pk, c1)), [0, 5, -1, 123456789]
    )
    with pytest.raises(ValueError):
        P.encrypt_with_exponents(pk, [1], [2**pk.rand_bits])
    with pytest.raises(ValueError):
        P.encrypt_with_exponents(pk, [int(pk.n)], [1])


def test_randomness_pool(keys, rng):
    pk, sk = keys
    pk.precompute(10)
    assert pk.pool_size >= 10
    before = pk.pool_size
    x = rng.normal(size=6)
    c = pk.encrypt(x)
    assert pk.pool_size == before - 6
    np.testing.assert_allclose(sk.decrypt(c), x, atol=TOL)
    assert pickle.loads(pickle.dumps(pk)).pool_size == 0  # pools never travel
    c = pk.encrypt(np.arange(before))  # drains pool, rest made online
    assert pk.pool_size == 0
    np.testing.assert_array_equal(sk.decrypt(c), np.arange(before))


def test_threads_same_results(keys, rng):
    pk, sk = keys
    x = np.arange(-10, 10)
    k = rng.normal(size=20)
    c = pk.encrypt(x)
    P.set_num_threads(2)
    try:
        assert P.get_num_threads() == 2
        np.testing.assert_array_equal(sk.decrypt(c), x)
        np.testing.assert_allclose(sk.decrypt(c * k), x * k, atol=TOL)
        np.testing.assert_allclose(sk.decrypt(c + k), x + k, atol=TOL)  # aligned exponents
    finally:
        P.set_num_threads(1)
    assert P.get_num_threads() == 1


# -- phe interop -------------------------------------------------------------------------------
def test_phe_key_interop(keys):
    pk, sk = keys
    ppk, psk = pk.to_phe(), sk.to_phe()
    assert ppk.n == pk.n and psk.p * psk.q == pk.n
    pk2 = P.PublicKey.from_phe(ppk)
    sk2 = P.PrivateKey.from_phe(psk)
    assert pk2 == pk and sk2 == sk
    assert pk2._hs is None
    c = pk2.encrypt([3, -4])  # hs made lazily
    assert pk2._hs is not None
    np.testing.assert_array_equal(sk2.decrypt(c), [3, -4])


def test_phe_ciphertext_interop(keys, rng):
    pk, sk = keys
    ppk, psk = pk.to_phe(), sk.to_phe()
    x = rng.normal(size=4)
    y = rng.normal(size=4)
    # ours -> phe
    ours = pk.encrypt(x)
    as_phe = ours.to_phe()
    assert isinstance(as_phe[0], phe.EncryptedNumber)
    np.testing.assert_allclose([psk.decrypt(e) for e in as_phe], x, atol=TOL)
    # phe (default encoding: per-element exponents) -> ours
    pe = [ppk.encrypt(float(v)) for v in y]
    theirs = CipherArray.from_phe(pe, public_key=pk)
    np.testing.assert_allclose(sk.decrypt(theirs), y, atol=1e-12)
    # mixed add, decrypted by both libraries
    mixed = ours + theirs
    np.testing.assert_allclose(sk.decrypt(mixed), x + y, atol=TOL)
    np.testing.assert_allclose([psk.decrypt(e) for e in mixed.to_phe()], x + y, atol=TOL)
    # phe-side add of our ciphertexts
    tot = [a + b for a, b in zip(as_phe, pe)]
    np.testing.assert_allclose(sk.decrypt(CipherArray.from_phe(tot)), x + y, atol=TOL)
    # ints, nested shapes
    pi = [[ppk.encrypt(1), ppk.encrypt(-2)], [ppk.encrypt(3), ppk.encrypt(4)]]
    ci = CipherArray.from_phe(pi)
    assert ci.shape == (2, 2) and ci.kind == "int"
    np.testing.assert_array_equal(
        sk.decrypt(ci + pk.encrypt(np.ones((2, 2), int))), [[2, -1], [4, 5]]
    )
    nested = (ci * 2).to_phe()
    assert [[psk.decrypt(e) for e in row] for row in nested] == [[2, -4], [6, 8]]
    assert psk.decrypt(pk.encrypt(7).to_phe()) == 7


def test_phe_mixed_keys_rejected(keys, other_keys):
    pk, _ = keys
    opk, _ = other_keys
    e = [pk.to_phe().encrypt(1), opk.to_phe().encrypt(1)]
    with pytest.raises(ValueError):
        CipherArray.from_phe(e)
    with pytest.raises(ValueError):
        CipherArray.from_phe([opk.to_phe().encrypt(1)], public_key=pk)


# -- packing ------------------------------------------------------------------------------------
def test_packing_sums(keys, rng):
    pk, sk = keys
    parts = [rng.uniform(-1, 1, size=(7, 9)) for _ in range(5)]
    packed = [P.pack(pk, v, max_addends=8, precision=2.0**-16) for v in parts]
    assert len(packed[0]) < 63 / 4  # several values per ciphertext
    total = P.packed_sum(packed)
    assert total.addends == 5
    np.testing.assert_allclose(P.unpack(sk, total), sum(parts), atol=5 * 2.0**-16)
    ints = [rng.integers(-100, 101, size=30) for _ in range(3)]
    tot = P.packed_sum([P.pack(pk, v, slot_bits=12, max_addends=3, bound=100) for v in ints])
    out = P.unpack(sk, tot)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, sum(ints))


def test_packing_bounds(keys):
    pk, _ = keys
    a = P.pack(pk, [0.5, -0.5], max_addends=2)
    b = P.pack(pk, [0.5, -0.5], max_addends=2)
    with pytest.raises(OverflowError):
        a + b + a
    with pytest.raises(ValueError):
        P.pack(pk, [1.5], max_addends=2)
    with pytest.raises(ValueError):
        P.pack(pk, [100], slot_bits=8, max_addends=2, bound=100)
    with pytest.raises(ValueError):
        P.pack(pk, [np.nan], max_addends=2)
    with pytest.raises(ValueError):
        a + P.pack(pk, [0.5, -0.5], max_addends=3)
