"""Paillier key generation and key objects (g = n + 1).

``keygen`` draws two primes of exactly ``bits/2`` bits from the OS CSPRNG
(``secrets``): random odd candidates with the top two bits set (so n has exactly
``bits`` bits), then ``gmpy2.next_prime``; p != q with |p - q| > 2^(bits/2 - 64) (Fermat factoring),
gcd(n, (p-1)(q-1)) = 1. The public key carries the DJN
randomness base ``hs`` and ``rand_bits`` (see :mod:`.randomness`).

PublicKey attributes: ``n``, ``nsquare``, ``g`` (= n+1), ``max_int`` (= n//3 - 1, as
in phe), ``hs`` (lazy for keys imported from phe), ``rand_bits``, ``fingerprint``
(16 bytes of SHA-256 over n), ``bits``.
PrivateKey attributes: ``public_key``, ``p``, ``q`` (p < q), ``psquare``, ``qsquare``,
``hp``, ``hq``, ``p_inverse`` (p^-1 mod q). Its repr never shows the factors; only the
explicit ``to_phe()`` exports it.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from typing import TYPE_CHECKING, Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from . import backend as _backend
from . import device as _device
from . import randomness as _rnd
from .arith import _decrypt_raw, _encrypt_raw

if TYPE_CHECKING:
    from .cipher_array import CipherArray

MIN_SECURE_BITS = 2048


def _random_prime(bits: int) -> mpz:
    while True:
        cand = mpz(secrets.randbits(bits)) | (mpz(3) << (bits - 2)) | 1
        p = gmpy2.next_prime(cand)
        if p.bit_length() == bits and gmpy2.is_prime(p, 50):
            return p


def keygen(
    bits: int = 2048, insecure: bool = False, rand_bits: int | None = None
) -> tuple[PublicKey, PrivateKey]:
    """Generate a Paillier key pair with an n of exactly ``bits`` bits.

    ``bits`` < 2048 is refused unless ``insecure=True`` (tests only). ``rand_bits``
    overrides the DJN short-exponent length (default: twice the security level).
    """
    bits = int(bits)
    if bits < MIN_SECURE_BITS and not insecure:
        raise ValueError(
            f"Paillier modulus of {bits} bits is below the {MIN_SECURE_BITS}-bit minimum "
            "(112-bit security); pass insecure=True for tests only"
        )
    if bits < 128 or bits % 2:
        raise ValueError("bits must be an even number >= 128")
    half = bits // 2
    while True:
        p = _random_prime(half)
        q = _random_prime(half)
        if abs(p - q).bit_length() < half - 64:  # p != q, and far apart (Fermat)
            continue
        n = p * q
        if n.bit_length() == bits and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1:
            break
    pk = PublicKey(n, hs=_rnd.make_hs(n), rand_bits=rand_bits)
    return pk, PrivateKey(pk, p, q)


class PublicKey:
    """Paillier public key with g = n+1 and DJN randomness base ``hs``."""

    def __init__(self, n: int, hs: int | None = None, rand_bits: int | None = None) -> None:
        self.n = mpz(n)
        if self.n < 3 or self.n % 2 == 0:
            raise ValueError("n must be an odd integer > 2")
        self.nsquare = self.n * self.n
        self.g = self.n + 1
        self.max_int = self.n // 3 - 1
        self.bits = self.n.bit_length()
        self.rand_bits = int(rand_bits) if rand_bits else _rnd.default_rand_bits(self.bits)
        if hs is not None:
            hs = mpz(hs)
            if not (0 < hs < self.nsquare) or gmpy2.gcd(hs, self.n) != 1:
                raise ValueError("hs must be an invertible element of Z*_{n^2}")
        self._hs = hs
        self.fingerprint = hashlib.sha256(
            int(self.n).to_bytes((self.bits + 7) // 8, "big")
        ).digest()[:16]
        self._init_caches()

    def _init_caches(self) -> None:
        self._lock = threading.Lock()
        self._table: _rnd.FixedBaseTable | None = None
        self._pool: _rnd.RandomnessPool | None = None
        self._phe = None

    # -- DJN randomness -------------------------------------------------------------
    @property
    def hs(self) -> mpz:
        """DJN base; generated lazily (CSPRNG) for keys imported without one (phe)."""
        if self._hs is None:
            with self._lock:
                if self._hs is None:
                    self._hs = _rnd.make_hs(self.n)
        return self._hs

    def _fixed_base(self) -> _rnd.FixedBaseTable:
        if self._table is None:
            hs = self.hs
            with self._lock:
                if self._table is None:
                    self._table = _rnd.fixed_base_table(hs, self.nsquare, self.rand_bits)
        return self._table

    def precompute(self, count: int) -> _rnd.RandomnessPool:
        """Offline phase: add ``count`` randomness values to this key's pool (used first
        by :meth:`encrypt`). Returns the pool."""
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = _rnd.RandomnessPool(self)
        self._pool.fill(int(count))
        return self._pool

    @property
    def pool_size(self) -> int:
        return 0 if self._pool is None else len(self._pool)

    # -- encryption -----------------------------------------------------------------
    def encrypt(
        self, x: Any, precision: float | None = None, exponent: int | None = None
    ) -> CipherArray:
        """Encrypt an array / scalar / list of ints or floats; returns a CipherArray of
        the same shape. Floats use base-16 fixed point (default resolution 2^-32, or
        ``precision``; or an explicit base-16 ``exponent``); see :mod:`.encoding`.

        Randomness (DJN): ``c = (1 + m*n) * hs^a mod n^2`` with ``a`` uniform in
        [0, 2^rand_bits) from ``os.urandom``; ``rand_bits`` = 2 x the security level
        (224 for 2048-bit n, 256 for 3072-bit n). Security rests on DCR plus the
        short-exponent indistinguishability of ``h^a`` (generic attacks cost
        2^(rand_bits/2)); the full argument is in :mod:`.randomness`. ``hs^a`` comes
        from the key's randomness pool when one was filled (:meth:`precompute`), else
        from the cached fixed-base table (rand_bits/8 multiplications mod n^2)."""
        from .cipher_array import CipherArray
        from .encoding import encode, int64_mantissas

        arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
        on_gpu = _backend.use_gpu(arr.size) and self.pool_size < arr.size
        if on_gpu:  # same DJN scheme, on the GPU; the ciphertexts stay there until needed
            m64, exp, kind = int64_mantissas(self, arr, precision=precision, exponent=exponent)
            if m64 is not None:  # array operations all the way to the device
                dev = _device.encrypt_int64(self, m64)
                return CipherArray._wrap_device(self, dev, arr.shape, exp, kind)
        enc, exp, kind = encode(self, arr, precision=precision, exponent=exponent)
        if on_gpu:
            dev = _device.encrypt(self, enc)
            return CipherArray._wrap_device(self, dev, arr.shape, exp, kind)
        r = _rnd.fresh_randomness(self, len(enc))
        flat = _encrypt_raw(self, enc, r)
        data = np.fromiter(flat, dtype=object, count=len(flat)).reshape(arr.shape)
        return CipherArray._wrap(self, data, exp, kind)

    # -- phe interop ----------------------------------------------------------------
    @classmethod
    def from_phe(cls, phe_pk: Any) -> PublicKey:
        """Import a ``phe.PaillierPublicKey`` (g must be n+1); ``hs`` made lazily."""
        if int(phe_pk.g) != int(phe_pk.n) + 1:
            raise ValueError("only phe keys with g = n + 1 are supported")
        return cls(phe_pk.n)

    def to_phe(self) -> Any:
        """The equivalent ``phe.PaillierPublicKey`` (cached)."""
        if self._phe is None:
            import phe

            self._phe = phe.PaillierPublicKey(int(self.n))
        return self._phe

    # -- misc -----------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes of n: the size of the key as a message (the ledger counts this; a
        cross-silo message carries n only)."""
        return (self.bits + 7) // 8

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self.n == other.n

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"<PublicKey {self.bits}-bit n, fingerprint {self.fingerprint.hex()[:12]}>"

    def __getstate__(self) -> dict:
        # caches (fixed-base table, randomness pool) are never pickled
        return {
            "n": int(self.n),
            "hs": None if self._hs is None else int(self._hs),
            "rand_bits": self.rand_bits,
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["n"], hs=state["hs"], rand_bits=state["rand_bits"])


class PrivateKey:
    """Paillier private key with CRT decryption (precomputed hp, hq)."""

    def __init__(self, public_key: PublicKey, p: int, q: int) -> None:
        p, q = mpz(p), mpz(q)
        if p * q != public_key.n:
            raise ValueError("p * q != n")
        if p == q:
            raise ValueError("p and q must differ")
        if q < p:
            p, q = q, p
        self.public_key = public_key
        self.p, self.q = p, q
        self.psquare, self.qsquare = p * p, q * q
        self.p_inverse = gmpy2.invert(p, q)
        self.hp = self._h(p, self.psquare)
        self.hq = self._h(q, self.qsquare)

    def _h(self, x: mpz, xsquare: mpz) -> mpz:
        # h_x = L_x(g^(x-1) mod x^2)^-1 mod x, with g = n+1
        gx = gmpy2.powmod(self.public_key.g, x - 1, xsquare)
        return gmpy2.invert((gx - 1) // x, x)

    def decrypt(self, c: CipherArray) -> np.ndarray:
        """Decrypt a CipherArray to a NumPy array (int64 / object ints / float64)."""
        from .cipher_array import CipherArray
        from .encoding import decode, decode_int64

        if not isinstance(c, CipherArray):
            raise TypeError(f"expected a CipherArray, got {type(c).__name__}")
        if c.public_key != self.public_key:
            raise ValueError("ciphertext was produced under a different public key")
        if c.on_device and _backend.use_gpu(c.size):
            m = _device.decrypt_signed(self, c._device())
            if isinstance(m, np.ndarray):  # signed int64 values, decoded without int objects
                return decode_int64(m, c.exponent, c.kind, c.shape)
        else:
            m = _decrypt_raw(self, c._data.ravel().tolist())
        return decode(self.public_key, m, c.exponent, c.kind, c.shape)

    @classmethod
    def from_phe(cls, phe_sk: Any, public_key: PublicKey | None = None) -> PrivateKey:
        """Import a ``phe.PaillierPrivateKey``."""
        pk = public_key if public_key is not None else PublicKey.from_phe(phe_sk.public_key)
        return cls(pk, phe_sk.p, phe_sk.q)

    def to_phe(self) -> Any:
        """Explicit export to a ``phe.PaillierPrivateKey``."""
        import phe

        return phe.PaillierPrivateKey(self.public_key.to_phe(), int(self.p), int(self.q))

    def __repr__(self) -> str:
        return f"<PrivateKey for {self.public_key!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivateKey) and self.p == other.p and self.q == other.q

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __getstate__(self) -> dict:
        return {"pk": self.public_key, "p": int(self.p), "q": int(self.q)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["pk"], state["p"], state["q"])


def encrypt_with_exponents(pk: PublicKey, m_encoded_ints: Any, a_exponents: Any) -> np.ndarray:
    """Deterministic DJN encryption ``(1 + m*n) * hs^a mod n^2`` for given encoded
    plaintexts ``m`` in [0, n) and exponents ``a`` in [0, 2^rand_bits); same shape out
    (object array of mpz). For cross-checking other backends bit for bit."""
    m_arr = np.asarray(m_encoded_ints, dtype=object)
    a_arr = np.asarray(a_exponents, dtype=object)
    if m_arr.shape != a_arr.shape:
        raise ValueError("m and a must have the same shape")
    ms = [mpz(int(m)) for m in m_arr.ravel()]
    for m in ms:
        if not 0 <= m < pk.n:
            raise ValueError("encoded plaintext must lie in [0, n)")
    digits = _rnd.exponents_to_digits(pk.rand_bits, a_arr)
    r = pk._fixed_base().pow(digits)
    out = _encrypt_raw(pk, ms, r)
    return np.fromiter(out, dtype=object, count=len(out)).reshape(m_arr.shape)
