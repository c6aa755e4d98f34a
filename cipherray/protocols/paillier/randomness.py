"""Encryption randomness: the DJN short-exponent scheme with fixed-base precomputation.

Scheme (Damgård, Jurik, Nielsen, "A generalization of Paillier's public-key system
with applications to electronic voting", IJIS 2010, the "short randomness" variant), fixed bit for bit
so that the GPU kernels reproduce our ciphertexts from the same exponents:

1. Key setup (once per key): pick ``x`` uniformly in Z*_n (CSPRNG), ``h = -x^2 mod n``,
   ``hs = h^n mod n^2``. ``hs`` and ``rand_bits`` are public key material.
2. Encryption of an encoded plaintext ``m`` in [0, n): draw ``a`` uniformly in
   [0, 2^rand_bits) from ``os.urandom`` and output ``c = (1 + m*n) * hs^a mod n^2``.

Security argument and assumption. ``hs^a = (h^a)^n`` is an n-th residue, so ``c`` is
an ordinary Paillier encryption of ``m`` with randomness ``r = h^a``. If ``a`` were
uniform modulo ord(h) (about n/4), ``r^n`` would be uniform in <hs> and IND-CPA would
follow from the Decisional Composite Residuosity (DCR) assumption as for Paillier
(as argued by DJN). With a short exponent we additionally assume *short-exponent
indistinguishability* in <h>: ``h^a`` for ``a`` of ``rand_bits`` bits is computationally
indistinguishable from ``h^a`` with ``a`` uniform modulo ord(h). For prime-order groups
this follows from the hardness of discrete logarithms with short exponents (DLSE;
Koshiba and Kurosawa, PKC 2004); the best known attacks on an ``l``-bit exponent are
generic (Pollard kangaroo / baby-step giant-step, about 2^(l/2) group operations; the
order of <h> is unknown to the attacker, which only makes them harder). Hence
``rand_bits = 2*k`` targets ``k``-bit security.

Parameter. ``rand_bits = 2*k`` with ``k`` the NIST SP 800-57 security level of the
modulus: k = 112 for 2048-bit n (rand_bits = 224), k = 128 for 3072-bit n (256),
k = 152 for 4096-bit n (304). DJN themselves draw ``a`` from [0, 2^ceil(bits(n)/2)),
i.e. 1024 bits for a 2048-bit n, and so does SecretFlow HEU's DJ implementation; that
more conservative setting is available as ``keygen(..., rand_bits=bits // 2)`` and
only costs proportionally more multiplications per encryption (128 instead of 28 at
2048 bits; still ~3x fewer than a full 2048-bit exponentiation). ``rand_bits`` is part
of the public key (pickled with it) so every party and backend uses the same value.
Keys imported from ``phe`` have no ``hs``; one is generated lazily (step 1, CSPRNG)
on first encryption.

Fixed-base precomputation. With window ``w = 8`` the exponent ``a`` is read as its
little-endian bytes ``a = sum_i d_i 256^i`` and ``hs^a = prod_i T[i][d_i]`` where
``T[i][d] = hs^(d * 256^i) mod n^2``; the table (rand_bits/8 rows of 256 entries) is
computed lazily once per key and cached on the PublicKey (never pickled). One
encryption therefore costs rand_bits/8 modular multiplications mod n^2 (28 at 2048 bits)
instead of a 2048-bit exponentiation.

Offline/online split. ``RandomnessPool`` (``pk.precompute(count)``) makes ``hs^a``
values ahead of time; an online encryption then costs one multiplication. Pool values
are consumed exactly once and a pool is never pickled with the key (reusing a
randomness value under two encryptions would leak the difference of plaintexts).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import gmpy2
import numpy as np
from gmpy2 import mpz

from cipherray.cpu_kernels import modexp as _cpu_modexp

if TYPE_CHECKING:
    from .keys import PublicKey

WINDOW_BITS = 8  # fixed: exponent digits are the exponent's little-endian bytes

# NIST SP 800-57 part 1, table 2: modulus bits -> security level (bits).
_SECURITY_LEVELS = ((15360, 256), (7680, 192), (4096, 152), (3072, 128), (2048, 112))


def security_level(n_bits: int) -> int:
    """Security level in bits of an RSA/Paillier modulus of ``n_bits`` (NIST SP 800-57)."""
    for bits, level in _SECURITY_LEVELS:
        if n_bits >= bits:
            return level
    return 80  # below 2048 bits: insecure test keys only


def default_rand_bits(n_bits: int) -> int:
    """DJN short-exponent length: twice the security level (224 for 2048-bit n)."""
    return 2 * security_level(n_bits)


def make_hs(n: int) -> mpz:
    """Step 1 of the scheme: ``hs = (-x^2)^n mod n^2`` with x uniform in Z*_n (CSPRNG)."""
    n = mpz(n)
    while True:
        x = mpz(int.from_bytes(os.urandom((n.bit_length() + 7) // 8 + 8), "big")) % n
        if x > 1 and gmpy2.gcd(x, n) == 1:
            break
    h = (-(x * x)) % n
    return gmpy2.powmod(h, n, n * n)


def _rand_bytes(rand_bits: int) -> int:
    return (rand_bits + WINDOW_BITS - 1) // WINDOW_BITS


def random_exponent_digits(rand_bits: int, count: int) -> np.ndarray:
    """``count`` exponents uniform in [0, 2^rand_bits) as a (count, rand_bits/8) uint8
    matrix of little-endian bytes, from ``os.urandom``."""
    nbytes = _rand_bytes(rand_bits)
    digits = np.frombuffer(os.urandom(count * nbytes), dtype=np.uint8).reshape(count, nbytes)
    extra = nbytes * WINDOW_BITS - rand_bits
    if extra:
        digits = digits.copy()
        digits[:, -1] &= (1 << (WINDOW_BITS - extra)) - 1
    return digits


def exponents_to_digits(rand_bits: int, exponents) -> np.ndarray:
    """Convert Python-int exponents in [0, 2^rand_bits) to the digit matrix."""
    nbytes = _rand_bytes(rand_bits)
    flat = [int(a) for a in np.asarray(exponents, dtype=object).ravel()]
    for a in flat:
        if a < 0 or a >> rand_bits:
            raise ValueError(f"randomness exponent out of range [0, 2^{rand_bits})")
    raw = b"".join(a.to_bytes(nbytes, "little") for a in flat)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(flat), nbytes)


def digits_to_exponents(digits: np.ndarray) -> list[int]:
    """Inverse of :func:`exponents_to_digits` (for cross-checks)."""
    return [int.from_bytes(row.tobytes(), "little") for row in digits]


class FixedBaseTable:
    """``T[i][d] = hs^(d * 256^i) mod n^2`` for i < rand_bits/8, d < 256."""

    def __init__(self, hs: mpz, nsquare: mpz, rand_bits: int) -> None:
        self.hs = hs
        self.nsquare = nsquare
        self.rand_bits = rand_bits
        rows = []
        base = mpz(hs)
        for _ in range(_rand_bytes(rand_bits)):
            row = [mpz(1), base]
            acc = base
            for _ in range(2, 1 << WINDOW_BITS):
                acc = acc * base % nsquare
                row.append(acc)
            rows.append(np.fromiter(row, dtype=object, count=len(row)))
            base = acc * base % nsquare  # hs^(256^(i+1))
        self.rows = rows
        self._native: _cpu_modexp.FixedBasePowers | None = None  # built on first use

    def pow(self, digits: np.ndarray) -> list:
        """``hs^a mod n^2`` for every exponent row in ``digits`` (rand_bits/8
        multiplications per value): in the AVX-512 IFMA kernel where the CPU has it, else
        one gmpy2 list comprehension per window."""
        nsq = self.nsquare
        count = digits.shape[0]
        if count == 0:
            return []
        if count >= _cpu_modexp.MIN_BATCH and _cpu_modexp.supports(nsq):
            from .arith import get_num_threads

            if self._native is None:
                self._native = _cpu_modexp.FixedBasePowers(self.rows, nsq)
            return self._native.pow(digits, threads=get_num_threads())
        acc = self.rows[0][digits[:, 0]].tolist()
        for i in range(1, digits.shape[1]):
            col = self.rows[i][digits[:, i]].tolist()
            acc = [a * b % nsq for a, b in zip(acc, col)]
        return acc


_TABLE_CACHE: dict[tuple[int, int, int], FixedBaseTable] = {}
_TABLE_CACHE_MAX = 8
_TABLE_LOCK = threading.Lock()


def fixed_base_table(hs: mpz, nsquare: mpz, rand_bits: int) -> FixedBaseTable:
    """Process-wide cache of tables, so an unpickled copy of a key (e.g. a key shipped
    to a Ray actor with every task) does not rebuild its table."""
    key = (hash(hs), int(nsquare).bit_length(), rand_bits)
    with _TABLE_LOCK:
        t = _TABLE_CACHE.get(key)
    if t is not None and t.hs == hs and t.nsquare == nsquare:
        return t
    t = FixedBaseTable(hs, nsquare, rand_bits)
    with _TABLE_LOCK:
        if len(_TABLE_CACHE) >= _TABLE_CACHE_MAX:
            _TABLE_CACHE.pop(next(iter(_TABLE_CACHE)))
        _TABLE_CACHE[key] = t
    return t


class RandomnessPool:
    """Offline store of ``hs^a`` values; each value is handed out once (thread-safe)."""

    def __init__(self, public_key: PublicKey) -> None:
        self.public_key = public_key
        self._values: list = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._values)

    def fill(self, count: int) -> None:
        """Offline phase: make ``count`` more randomness values."""
        values = self.public_key._fixed_base().pow(
            random_exponent_digits(self.public_key.rand_bits, count)
        )
        with self._lock:
            self._values.extend(values)

    def take(self, count: int) -> list:
        """Up to ``count`` values, removed from the pool (may return fewer)."""
        with self._lock:
            k = min(count, len(self._values))
            out = self._values[len(self._values) - k :]
            del self._values[len(self._values) - k :]
        return out

    def __reduce__(self):
        raise TypeError("a RandomnessPool must not be pickled (values would be reused)")


def fresh_randomness(public_key: PublicKey, count: int, use_pool: bool = True) -> list:
    """``count`` values ``hs^a`` with fresh CSPRNG exponents; pool values first."""
    out: list = []
    pool = public_key._pool
    if use_pool and pool is not None and len(pool):
        out = pool.take(count)
    missing = count - len(out)
    if missing:
        out.extend(
            public_key._fixed_base().pow(random_exponent_digits(public_key.rand_bits, missing))
        )
    return out
