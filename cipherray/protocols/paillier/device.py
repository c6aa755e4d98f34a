"""Ciphertexts kept on the GPU between operations.

A CipherArray that the GPU path made (encryption, ``c + c``, ``c + x``, ``c * k``,
``c.sum()``, ``rerandomize()``, the matrix products of a 1-d ``c``, ``from_bytes``) holds its
ciphertexts as device limbs (:class:`DeviceCiphertexts`) and turns them into gmpy2 integers
only when something needs them: indexing, an operation that runs on the CPU (decryption and
``to_bytes`` read the limbs). A chain such as encrypt -> ``c * k`` -> ``+`` -> ``sum`` -> decrypt then converts
between Python integers and limbs once at each end instead of around every step (on a GPU
that conversion, about a microsecond per value each way, costs more than the kernels).

The limbs are the normal-form ciphertexts mod n^2 in ``gpu_kernels.bigint`` layout (words,
count), one column per element in C order. Every function here returns new limbs; none
modifies its inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend as _backend
from . import randomness as _rnd


class DeviceCiphertexts:
    """The ciphertexts of one CipherArray as device limbs, with the GPU key that made them."""

    __slots__ = ("key", "limbs")

    def __init__(self, key: Any, limbs: Any) -> None:
        self.key, self.limbs = key, limbs

    @property
    def size(self) -> int:
        return int(self.limbs.shape[1])

    def to_mpz(self) -> list:
        return list(self.key.ctx.get(self.limbs, as_mpz=True))

    def to_bytes(self, width: int) -> bytes:
        """Each ciphertext as `width` big-endian bytes, concatenated in C order."""
        return self.key.ctx.get_bytes(self.limbs, width)


def _gpu_key(pk: Any, sk: Any = None) -> Any:
    """The cached gpu_kernels PaillierGpu for pk (with sk: the one holding p, q)."""
    from cipherray.gpu_kernels import paillier as gp

    if sk is None:
        return gp._key(int(pk.n), int(pk.hs), pk.rand_bits, backend=_backend.KERNEL)
    return gp._key(int(pk.n), p=int(sk.p), q=int(sk.q), backend=_backend.KERNEL)


def upload(pk: Any, flat: list) -> DeviceCiphertexts:
    """Ciphertexts (validated ints / mpz) to the device."""
    key = _gpu_key(pk)
    return DeviceCiphertexts(key, key.ctx.put(flat))


def from_wire(pk: Any, payload: Any, count: int, width: int) -> DeviceCiphertexts:
    """`count` ciphertexts of `width` big-endian bytes each (CipherArray.to_bytes) to device
    limbs, with CipherArray.from_bytes's checks: each in [1, n^2) (compared as limbs) and
    invertible mod n^2 (the product of all mod n shares no factor with n: one gcd)."""
    import gmpy2

    key = _gpu_key(pk)
    words = key.ctx.words
    if width > 8 * words:
        raise ValueError("corrupt CipherArray header")
    be = np.frombuffer(payload, dtype=np.uint8, count=count * width).reshape(count, width)
    le = np.zeros((count, 8 * words), dtype=np.uint8)
    le[:, :width] = be[:, ::-1]
    vals = le.view("<u8")  # (count, words), word k of each value little-endian
    bound = np.frombuffer(int(pk.nsquare).to_bytes(8 * words, "little"), dtype="<u8")
    bad = ~vals.any(axis=1) | ~_less_than(vals, bound)
    if bad.any():
        raise ValueError(f"ciphertext #{int(np.flatnonzero(bad)[0])} is out of range [1, n^2)")
    limbs = key.backend.asarray(np.ascontiguousarray(vals.T).astype(np.uint64, copy=False))
    out = DeviceCiphertexts(key, limbs)
    if count and gmpy2.gcd(product(out).to_mpz()[0] % pk.n, pk.n) != 1:
        from .cipher_array import validate_ciphertexts

        validate_ciphertexts(pk, out.to_mpz())  # names the first one that is not invertible
    return out


def _less_than(vals: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Row-wise vals < bound for multi-word little-endian numbers (rows of uint64 words)."""
    neq = vals != bound
    top = vals.shape[1] - 1 - np.argmax(neq[:, ::-1], axis=1)  # most significant differing
    rows = np.arange(vals.shape[0])
    return neq.any(axis=1) & (vals[rows, top] < bound[top])


def encrypt(pk: Any, m_ints: list) -> DeviceCiphertexts:
    """DJN encryption, (1 + m n) hs^a mod n^2, with fresh exponents a < 2^rand_bits from
    os.urandom (the scheme of the CPU path)."""
    key = _gpu_key(pk)
    digits = _rnd.random_exponent_digits(pk.rand_bits, len(m_ints))
    return DeviceCiphertexts(key, key.encrypt_digits_to_limbs(key.plain_words(m_ints), digits))


def encrypt_int64(pk: Any, m: np.ndarray) -> DeviceCiphertexts:
    """encrypt for int64 plaintext mantissas (signed; reduced mod n on the device): the
    exponents' random bytes go to the device as they are, without an integer per value."""
    key = _gpu_key(pk)
    digits = _rnd.random_exponent_digits(pk.rand_bits, int(m.size))
    return DeviceCiphertexts(key, key.encrypt_int64_to_limbs(m, digits))


def add(a: DeviceCiphertexts, b: DeviceCiphertexts) -> DeviceCiphertexts:
    return DeviceCiphertexts(a.key, a.key.add_limbs(a.limbs, b.limbs))


def add_plain(c: DeviceCiphertexts, m: list) -> DeviceCiphertexts:
    """c_i * (1 + m_i n): the homomorphic c + m for encoded plaintexts m (ints)."""
    return DeviceCiphertexts(c.key, c.key.add_plain_to_limbs(c.limbs, m))


def add_plain_int64(c: DeviceCiphertexts, m: np.ndarray) -> DeviceCiphertexts:
    """add_plain for int64 plaintext mantissas (signed)."""
    return DeviceCiphertexts(c.key, c.key.add_plain_int64_to_limbs(c.limbs, m))


def scalar_mul(c: DeviceCiphertexts, k: Any) -> DeviceCiphertexts:
    """c_i^(k_i) for signed |k_i| < 2^64 (an int64 array, or a list of ints)."""
    return DeviceCiphertexts(c.key, c.key.scalar_mul_signed_limbs(c.limbs, k))


def matvec(c: DeviceCiphertexts, X: Any) -> DeviceCiphertexts:
    """out_j = prod_r c_r^X[r, j] (X int64 of shape (R, J)): X.T @ c in the exponent."""
    return DeviceCiphertexts(c.key, c.key.matvec_to_limbs(c.limbs, X))


def product(c: DeviceCiphertexts) -> DeviceCiphertexts:
    """The product of all ciphertexts (the homomorphic sum), one element."""
    return DeviceCiphertexts(c.key, c.key.sum_limbs(c.limbs, c.size))


def _plain_words(sk: Any, c: DeviceCiphertexts) -> tuple[Any, Any]:
    key = _gpu_key(sk.public_key, sk)
    limbs = c.limbs
    if limbs.shape[0] != key.ctx_p.limbs:  # CRT halves of another width: re-lay the limbs
        limbs = key.ctx_p.put(c.to_mpz(), limbs=2 * key.ctx_p.limbs)
    return key, key.decrypt_limbs(limbs)


def decrypt(sk: Any, c: DeviceCiphertexts) -> list:
    """CRT decryption on the device; plaintexts in [0, n) as mpz."""
    key, words = _plain_words(sk, c)
    return list(key.ctx_p.get(words, as_mpz=True))


def decrypt_signed(sk: Any, c: DeviceCiphertexts) -> np.ndarray | list:
    """CRT decryption on the device. Where every plaintext v is within 2^63 of 0 (v < 2^63)
    or of n (n - v <= 2^63): their signed values (v, or v - n) as an int64 array, made on the
    device; otherwise the plaintexts in [0, n) as mpz, like :func:`decrypt`."""
    key, words = _plain_words(sk, c)
    m = key.int64_from_plain_words(words)
    return list(key.ctx_p.get(words, as_mpz=True)) if m is None else m
