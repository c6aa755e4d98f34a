"""Batched modular exponentiation on the CPU with AVX-512 IFMA (``modexp_ifma.cc``).

``powmod(bases, exps, m)`` returns ``[b ** e % m]`` for a shared odd modulus ``m`` of
up to 6186 bits (p^2 and n^2 of Paillier keys up to 3072-bit n), computing eight
exponentiations at a time in the lanes of AVX-512 registers. It agrees bit for bit with
``gmpy2.powmod``. How it compares with GMP: the README's Performance section.

``available()`` says whether it can run here (see :mod:`._native`); callers fall back to
gmpy2 otherwise.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from functools import lru_cache

import gmpy2
import numpy as np
from gmpy2 import mpz

from . import _native

SOURCE = "modexp_ifma.cc"
LIMB_COUNTS = (40, 60, 79, 119)  # 52-bit limbs per number; see cr_ifma_limbs
_ONE = mpz(1)
MIN_BATCH = 8  # below one register's worth of lanes gmpy2 is as fast


_SIGNATURE = (
    ctypes.c_void_p,  # modulus, k64 words
    ctypes.c_int32,  # k64
    ctypes.c_uint64,  # k0 = -m^-1 mod 2^52
    ctypes.c_void_p,  # R^2 mod m, k64 words
    ctypes.c_int32,  # L
    ctypes.c_void_p,  # bases, count * k64 words
    ctypes.c_void_p,  # exponents, count * ewords words
    ctypes.c_int32,  # ewords
    ctypes.c_int32,  # window
    ctypes.c_void_p,  # out, count * k64 words
    ctypes.c_int64,  # count
    ctypes.c_int32,  # threads
)


def _kernel():
    return _native.function(SOURCE, "cr_ifma_powmod", _SIGNATURE, ctypes.c_int)


def available() -> bool:
    """True when the IFMA kernel is enabled, built and this CPU can run it."""
    return _kernel() is not None


def supports(m: int) -> bool:
    """True when ``available()`` and ``m`` is odd with a supported size."""
    return available() and _limbs_for(int(m).bit_length()) is not None and int(m) & 1 == 1


def _limbs_for(bits: int) -> int | None:
    # the smallest built size with R = 2^(52 L) > 4 m, which keeps almost-Montgomery
    # results in [0, 2m)
    for L in LIMB_COUNTS:
        if 52 * L >= bits + 2:
            return L
    return None


@lru_cache(maxsize=16)
def _modulus_constants(m: int) -> tuple[int, int, int, np.ndarray, np.ndarray]:
    bits = m.bit_length()
    L = _limbs_for(bits)
    if L is None or m % 2 == 0:
        raise ValueError(f"IFMA powmod needs an odd modulus of at most 6186 bits, got {bits}")
    k64 = (bits + 63) // 64
    k0 = int(-gmpy2.invert(mpz(m), mpz(1) << 52) % (1 << 52))
    r2 = int(gmpy2.powmod(2, 2 * 52 * L, m))
    return L, k64, k0, _words([m], k64), _words([r2], k64)


def _words(values: Sequence[int], k: int) -> np.ndarray:
    """Little-endian 64-bit words, k per value, as one contiguous uint64 array."""
    nb = 8 * k
    data = b"".join(mpz(v).to_bytes(nb, "little") for v in values)
    return np.frombuffer(data, dtype=np.uint64).copy()


def _mpz_list(out: np.ndarray, k: int, count: int) -> list:
    """The first ``count`` values of k little-endian 64-bit words each, as gmpy2 mpz."""
    raw = out.tobytes()
    nb = 8 * k
    from_bytes = mpz.from_bytes
    return [from_bytes(raw[i * nb : (i + 1) * nb], "little") for i in range(count)]


def _window(ebits: int) -> int:
    # a table of 2^w entries costs 2^w - 2 multiplications and a masked pass over all
    # entries per window; the thresholds give w=4 for 64-bit exponents (scalar multiply)
    # and w=5 for 1024-bit ones (decryption mod p^2), the fastest of those timed
    if ebits <= 24:
        return 2
    if ebits <= 80:
        return 4
    if ebits <= 2048:
        return 5
    return 6


def powmod(bases: Sequence, exps: Sequence | int, m: int, threads: int = 1) -> list:
    """[b ** e mod m] as gmpy2 mpz for integer bases (reduced mod m first where needed)
    and exponents >= 0.

    ``exps`` is one exponent per base or a single shared one. ``threads`` > 1 splits the
    batch over OpenMP threads (the GIL is released during the call)."""
    kernel = _kernel()
    if kernel is None:
        raise RuntimeError("the IFMA kernel is not available on this machine")
    m = int(m)
    L, k64, k0, m_words, r2_words = _modulus_constants(m)
    count = len(bases)
    if count == 0:
        return []
    if isinstance(exps, (int, type(_ONE))):
        exps = [exps] * count
    elif len(exps) != count:
        raise ValueError(f"{count} bases but {len(exps)} exponents")
    ebits = max(int(e).bit_length() for e in exps)
    if any(e < 0 for e in exps):
        raise ValueError("exponents must be non-negative")
    ewords = max(1, (ebits + 63) // 64)
    mz = mpz(m)
    base_words = _words([b if 0 <= b < mz else b % mz for b in bases], k64)
    exp_words = _words(exps, ewords)
    out = np.empty(count * k64, dtype=np.uint64)
    rc = kernel(
        m_words.ctypes.data,
        k64,
        k0,
        r2_words.ctypes.data,
        L,
        base_words.ctypes.data,
        exp_words.ctypes.data,
        ewords,
        _window(ebits),
        out.ctypes.data,
        count,
        max(1, int(threads)),
    )
    if rc != 0:
        raise RuntimeError(f"IFMA powmod failed ({rc}) for a {m.bit_length()}-bit modulus")
    return _mpz_list(out, k64, count)


_FB_NEW = (
    ctypes.c_void_p,  # modulus, k64 words
    ctypes.c_int32,  # k64
    ctypes.c_uint64,  # k0
    ctypes.c_void_p,  # R^2 mod m
    ctypes.c_int32,  # L
    ctypes.c_void_p,  # table, rows * 256 values of k64 words
    ctypes.c_int32,  # rows
)
_FB_POW = (
    ctypes.c_void_p,  # handle
    ctypes.c_void_p,  # digits, count * rows bytes
    ctypes.c_void_p,  # out, count * k64 words
    ctypes.c_int64,  # count
    ctypes.c_int32,  # threads
)


class FixedBasePowers:
    """``g^a mod m`` for many exponents ``a`` from a byte-window table
    ``rows[i][d] = g^(d * 256^i) mod m`` (i < len(rows), d < 256): the table lives in the
    kernel in Montgomery form and each value costs ``len(rows)`` multiplications, eight
    values at a time. Create only where :func:`supports` ``(m)``."""

    def __init__(self, rows: Sequence[Sequence], m: int) -> None:
        new = _native.function(SOURCE, "cr_ifma_fb_new", _FB_NEW, ctypes.c_void_p)
        self._pow = _native.function(SOURCE, "cr_ifma_fb_pow", _FB_POW, ctypes.c_int)
        self._free = _native.function(SOURCE, "cr_ifma_fb_free", (ctypes.c_void_p,), None)
        if new is None or self._pow is None or self._free is None:
            raise RuntimeError("the IFMA kernel is not available on this machine")
        if any(len(r) != 256 for r in rows):
            raise ValueError("each table row needs 256 entries (byte windows)")
        self.m = int(m)
        L, self.k64, k0, m_words, r2_words = _modulus_constants(self.m)
        self.rows = len(rows)
        table = _words([v for row in rows for v in row], self.k64)
        self._handle = new(
            m_words.ctypes.data, self.k64, k0, r2_words.ctypes.data, L, table.ctypes.data, self.rows
        )
        if not self._handle:
            raise RuntimeError("the IFMA kernel refused the fixed-base table")

    def pow(self, digits: np.ndarray, threads: int = 1) -> list:
        """``g^a`` for each row of ``digits`` (uint8, shape (count, rows): the
        little-endian bytes of each exponent)."""
        d = np.ascontiguousarray(digits, dtype=np.uint8)
        if d.ndim != 2 or d.shape[1] != self.rows:
            raise ValueError(f"digits must have shape (count, {self.rows})")
        count = d.shape[0]
        out = np.empty(count * self.k64, dtype=np.uint64)
        rc = self._pow(self._handle, d.ctypes.data, out.ctypes.data, count, max(1, int(threads)))
        if rc != 0:
            raise RuntimeError(f"IFMA fixed-base power failed ({rc})")
        return _mpz_list(out, self.k64, count)

    def __del__(self) -> None:
        handle, free = getattr(self, "_handle", None), getattr(self, "_free", None)
        if handle and free is not None:
            self._handle = None
            try:
                free(handle)
            except Exception:  # interpreter shutdown: the library may be gone already
                pass
