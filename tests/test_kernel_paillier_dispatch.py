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


def test_ciphertexts_stay_on_the_device_between_operations(keys, gpu_path, monkeypatch):
    """encrypt -> c * k -> + -> sum -> decrypt on the GPU path: no conversion of the
    ciphertexts to integers in between, and the same results as the CPU."""
    from cipherray.protocols.paillier import device

    pk, sk = keys
    fetches = []
    to_mpz = device.DeviceCiphertexts.to_mpz
    monkeypatch.setattr(
        device.DeviceCiphertexts, "to_mpz", lambda self: fetches.append(self.size) or to_mpz(self)
    )
    x = np.array([[3, -7, 12], [0, 99, -1]], dtype=np.int64)
    k = np.array([[2, -3, 5], [7, -1, 4]], dtype=np.int64)
    c = pk.encrypt(x)
    ck = c * k
    total = ck + c
    flat = total.ravel()
    s = flat.sum()
    assert all(a.on_device for a in (c, ck, total, flat, s))
    np.testing.assert_array_equal(sk.decrypt(total), x * k + x)
    assert sk.decrypt(s) == (x * k + x).sum()
    assert fetches == []  # decrypted from the device limbs
    # the integers, when asked for, are the CPU path's bits (deterministic operations)
    c_host = paillier.CipherArray.from_ciphertexts(pk, c.ciphertexts(), c.exponent)
    assert fetches == [6]
    monkeypatch.setattr(backend, "_backend", "cpu")
    assert list((c_host * k + c_host).ciphertexts().ravel()) == list(total.ciphertexts().ravel())
    np.testing.assert_array_equal(sk.decrypt(total), x * k + x)  # CPU decryption


def test_device_ciphertexts_behave_as_host_ones(keys, gpu_path):
    import pickle

    pk, sk = keys
    x = np.array([5, -2, 8, 1], dtype=np.int64)
    c = pk.encrypt(x)
    assert c.on_device and c.shape == (4,) and len(c) == 4 and c.size == 4
    assert sk.decrypt(c[1:3]).tolist() == [-2, 8]  # indexing fetches the integers
    d = c * np.array([3, 1, -2, 5])  # on the device only
    wire = d.to_bytes()  # straight from the limbs
    assert d.on_device
    same = paillier.CipherArray.from_ciphertexts(pk, d.ciphertexts(), d.exponent, d.kind)
    assert wire == same.to_bytes()
    back = paillier.CipherArray.from_bytes(c.to_bytes(), pk)
    np.testing.assert_array_equal(sk.decrypt(back), x)
    np.testing.assert_array_equal(sk.decrypt(pickle.loads(pickle.dumps(c))), x)
    np.testing.assert_array_equal(sk.decrypt(c.reshape(2, 2).T), x.reshape(2, 2).T)
    host = paillier.CipherArray.from_ciphertexts(pk, c.ciphertexts(), c.exponent)
    assert not host.on_device
    np.testing.assert_array_equal(sk.decrypt(host + c), 2 * x)  # mixed: result on the device
    assert (host + c).on_device
    X = np.array([[1, -2, 3], [4, 0, -6], [7, 8, 9], [-1, 2**35, 5]], dtype=np.int64)
    for got, want in ((X.T @ c, X.T @ x), (c @ X, x @ X), (c @ x, x @ x)):
        assert got.on_device and got.shape == np.shape(want)
        np.testing.assert_array_equal(sk.decrypt(got), want)
    np.testing.assert_allclose(sk.decrypt(c @ (X * 0.25)), x @ (X * 0.25))
    for plain in (np.array([4, -9, 0, 2**50]), 7, np.array([0.5, 1.5, -2.25, 8.0])):
        got = c + plain
        assert got.on_device == (np.asarray(plain).dtype.kind == "i")  # floats: exponent moves
        np.testing.assert_allclose(sk.decrypt(got), x + plain)
        assert list(got.ciphertexts()) == list((host + plain).ciphertexts())  # the CPU's bits
    r = c.rerandomize()
    assert r.on_device and not set(r.ciphertexts()) & set(c.ciphertexts())
    np.testing.assert_array_equal(sk.decrypt(r), x)
    f = pk.encrypt(np.array([0.5, -1.25, 3.0, 2.0]))  # floats: other exponent -> host path
    np.testing.assert_allclose(sk.decrypt(c + f), x + np.array([0.5, -1.25, 3.0, 2.0]))
    np.testing.assert_allclose(sk.decrypt(c * 0.5), x * 0.5)
    np.testing.assert_array_equal(sk.decrypt(c * np.array([2**40, 1, -1, 3])),
                                  x * np.array([2**40, 1, -1, 3]))  # fmt: skip


def test_from_bytes_on_the_gpu_path_checks_every_ciphertext(keys, gpu_path):
    """A GPU party parses received ciphertexts straight into device limbs, with the same
    checks and messages as the host path."""
    pk, sk = keys
    nsq, width = int(pk.nsquare), (int(pk.nsquare).bit_length() + 7) // 8
    c = pk.encrypt(np.array([1, 2, 3], dtype=np.int64))
    b = c.to_bytes()
    head = b[: len(b) - 3 * width]

    def wire(*vals: int) -> bytes:
        return head + b"".join(v.to_bytes(width, "big") for v in vals)

    ok = paillier.CipherArray.from_bytes(b, pk)
    assert ok.on_device and list(ok.ciphertexts()) == list(c.ciphertexts())
    edge = paillier.CipherArray.from_bytes(wire(nsq - 1, nsq - 2**64, 5), pk)
    assert list(edge.ciphertexts()) == [nsq - 1, nsq - 2**64, 5]
    bad = (((5, 0, 7), 1), ((5, 7, nsq), 2), ((nsq + 2**70, 5, 7), 0), ((5, nsq + 1, 7), 1))
    for vals, at in bad:
        with pytest.raises(ValueError, match=f"ciphertext #{at} is out of range"):
            paillier.CipherArray.from_bytes(wire(*vals), pk)
    with pytest.raises(ValueError, match="out of range"):
        paillier.CipherArray.from_bytes(head + b"\xff" * (3 * width), pk)
    with pytest.raises(ValueError, match="ciphertext #1 is not invertible"):
        paillier.CipherArray.from_bytes(wire(3, int(sk.p), 5), pk)


def test_int64_data_never_becomes_integer_objects(keys, gpu_path, monkeypatch):
    """encrypt / c + x / c * k / decrypt of int64 and float arrays run on arrays (the exact
    paths through Python integers are not called), agree with those paths, and values beyond
    int64 still take them."""
    from cipherray.protocols.paillier import device, encoding

    pk, sk = keys
    calls = []
    for mod, name in ((encoding, "encode"), (encoding, "signed_mantissas"), (encoding, "decode"),
                      (device, "encrypt"), (device, "decrypt")):  # fmt: skip
        orig = getattr(mod, name)
        spy = lambda *a, _o=orig, _n=name, **kw: calls.append(_n) or _o(*a, **kw)  # noqa: E731
        monkeypatch.setattr(mod, name, spy)
    I64 = np.iinfo(np.int64)
    x = np.array([I64.min + 2**40, -1, 0, 7, I64.max - 2**40], dtype=np.int64)
    k = np.array([3, -2, I64.min, I64.max, -1], dtype=np.int64)
    c = pk.encrypt(x)
    ck = c * k
    total = c + np.array([5, -5, 0, 1, -1])
    xf = np.array([0.5, -1.25, 3.0, -(2.0**-30), 10.0])  # products below 0.5: int64 mantissas
    cf = pk.encrypt(xf)
    cf2 = cf * np.array([0.25, -0.25, 0.1, 2.0, -1e-3])
    assert all(a.on_device for a in (c, ck, total, cf, cf2))
    got = sk.decrypt(total), sk.decrypt(cf), sk.decrypt(cf2)
    assert calls == []
    np.testing.assert_array_equal(got[0], x + np.array([5, -5, 0, 1, -1]))
    assert got[0].dtype == np.int64
    np.testing.assert_allclose(got[1], xf, rtol=0, atol=2.0**-33)
    np.testing.assert_allclose(got[2], xf * np.array([0.25, -0.25, 0.1, 2.0, -1e-3]), atol=1e-8)
    # c * k wraps beyond int64: decryption falls back to exact integers
    want = x.astype(object) * k.astype(object)
    assert sk.decrypt(ck).tolist() == want.tolist() and calls == ["decode"]
    # the same bits as the exact paths on the CPU
    monkeypatch.setattr(backend, "_backend", "cpu")
    host = paillier.CipherArray.from_ciphertexts(pk, c.ciphertexts(), c.exponent)
    assert list((host * k).ciphertexts()) == list(ck.ciphertexts())
    assert list((host + np.array([5, -5, 0, 1, -1])).ciphertexts()) == list(total.ciphertexts())
    np.testing.assert_array_equal(sk.decrypt(c), x)
    # values beyond int64 (object arrays) take the exact encoding on the GPU path too
    monkeypatch.setattr(backend, "_backend", "gpu")
    calls.clear()
    big = np.array([2**70, -(2**70), 3], dtype=object)
    cb = pk.encrypt(big)
    assert cb.on_device and calls == ["encode", "encrypt"]
    assert sk.decrypt(cb).tolist() == big.tolist()
    u = np.array([2**64 - 1, 5], dtype=np.uint64)  # beyond int64 as uint64: exact path
    assert sk.decrypt(pk.encrypt(u)).tolist() == [2**64 - 1, 5]
    with pytest.raises(ValueError, match="NaN"):  # the array path's checks are encode's
        pk.encrypt(np.array([1.0, np.nan]))


def test_matmul_on_the_gpu_path_takes_int64_matrices_without_integer_objects(
    keys, gpu_path, monkeypatch
):
    """X.T @ c with an int64 (or float) matrix goes from the array to the device: no Python
    integer per entry (that conversion once cost more than the kernels on 10^5 x 30)."""
    from cipherray.protocols.paillier import encoding

    pk, sk = keys
    x = np.array([5, -2, 8, 1, 0, -9], dtype=np.int64)
    c = pk.encrypt(x)
    X = np.array([[1, -2], [4, 0], [7, 8], [-1, 2**40], [3, 3], [-(2**62), 6]], dtype=np.int64)
    big = np.array([[2**64], [1], [0], [5], [1], [2]], dtype=object)  # past int64: exact path
    want_big = sk.decrypt(big.T @ c)
    monkeypatch.setattr(encoding, "signed_mantissas", lambda *a, **k: 1 / 0)
    xo, Xo = x.astype(object), X.astype(object)  # exact: X.T @ x passes 2^63 here
    for got, want in ((X.T @ c, Xo.T @ xo), (c @ X, xo @ Xo), (c @ X[:, 0], xo @ Xo[:, 0])):
        assert got.on_device and got.shape == np.shape(want)
        assert np.asarray(sk.decrypt(got)).tolist() == np.asarray(want).tolist()
    assert Xo[5, 0] * xo[5] > 2**63
    F = np.array([0.5, -1.25, 3.0, 2.0, 0.0, 7.5])
    np.testing.assert_allclose(sk.decrypt(c @ F), x @ F)
    assert want_big.tolist() == (big.T @ x.astype(object)).tolist()
    with pytest.raises(ValueError, match="shape mismatch"):
        X[:5].T @ c
