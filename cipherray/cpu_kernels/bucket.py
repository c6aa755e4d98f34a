"""Bucket products mod m on the CPU with AVX-512 IFMA (``bucket_ifma.cc``).

``bucket_products(values, keys, nbuckets, m, ...)`` multiplies the taken rows' values into
buckets chosen per column by ``keys``, eight columns at a time in the lanes of AVX-512
registers (Montgomery form, the same almost-Montgomery multiplication as :mod:`.modexp`).
It agrees bit for bit with
:func:`cipherray.protocols.paillier.histogram.bucket_products_reference`, which is the
layout documented here.

``available()`` / ``supports(m)`` say whether it can run here (see :mod:`._native`).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np
from gmpy2 import mpz

from . import _native
from .modexp import _limbs_for, _modulus_constants, _mpz_list, _words

SOURCE = "bucket_ifma.cc"

_SIGNATURE = (
    ctypes.c_void_p,  # modulus, k64 words
    ctypes.c_int32,  # k64
    ctypes.c_uint64,  # k0 = -m^-1 mod 2^52
    ctypes.c_void_p,  # R^2 mod m, k64 words
    ctypes.c_int32,  # L
    ctypes.c_void_p,  # taken rows' values, count * k64 words
    ctypes.c_int64,  # count (taken rows)
    ctypes.c_void_p,  # keys, (d, n) int32
    ctypes.c_int64,  # n
    ctypes.c_int32,  # d
    ctypes.c_void_p,  # rows, count int64
    ctypes.c_void_p,  # slots, count int32
    ctypes.c_int32,  # nbuckets
    ctypes.c_int32,  # nslots
    ctypes.c_int32,  # weighted
    ctypes.c_void_p,  # out
    ctypes.c_int32,  # threads
)


def _kernel():
    return _native.function(SOURCE, "cr_ifma_bucket", _SIGNATURE, ctypes.c_int)


def available() -> bool:
    """True when the IFMA bucket kernel is enabled, built and this CPU can run it."""
    return _kernel() is not None


def supports(m: int) -> bool:
    """True when ``available()`` and ``m`` is odd with a size the kernel is built for (n^2
    of 1024- to 3072-bit n)."""
    m = int(m)
    return m & 1 == 1 and _limbs_for(m.bit_length()) is not None and available()


def bucket_products(
    values: Sequence,
    keys: np.ndarray,
    nbuckets: int,
    m: int,
    rows: np.ndarray,
    slots: np.ndarray,
    nslots: int,
    weighted: bool,
    threads: int = 1,
) -> list:
    """The bucket products of ``values`` (one per row of ``keys``' second axis) mod ``m`` as
    gmpy2 ``mpz``: ``out[(s * d + j) * nbuckets + b]``, or ``out[s * d + j]`` when
    ``weighted``. The caller has checked the layout (keys in range, rows and slots valid)."""
    kernel = _kernel()
    if kernel is None:
        raise RuntimeError("the IFMA kernel is not available on this machine")
    m = int(m)
    L, k64, k0, m_words, r2_words = _modulus_constants(m)
    keys32 = np.ascontiguousarray(keys, dtype=np.int32)
    d, n = keys32.shape
    rows64 = np.ascontiguousarray(rows, dtype=np.int64)
    slots32 = np.ascontiguousarray(slots, dtype=np.int32)
    count = rows64.size
    if slots32.size != count:
        raise ValueError("slots must have one entry per taken row")
    mz = mpz(m)
    taken = [values[i] for i in rows64.tolist()]
    cts = _words([v if 0 <= v < mz else v % mz for v in taken], k64)
    if cts.size == 0:
        cts = np.zeros(k64, dtype=np.uint64)
    total = nslots * d if weighted else nslots * d * nbuckets
    out = np.empty(max(1, total) * k64, dtype=np.uint64)
    rc = kernel(
        m_words.ctypes.data,
        k64,
        k0,
        r2_words.ctypes.data,
        L,
        cts.ctypes.data,
        count,
        keys32.ctypes.data,
        n,
        d,
        rows64.ctypes.data,
        slots32.ctypes.data,
        int(nbuckets),
        int(nslots),
        int(bool(weighted)),
        out.ctypes.data,
        max(1, int(threads)),
    )
    if rc != 0:
        raise RuntimeError(f"IFMA bucket products failed ({rc}) for a {m.bit_length()}-bit modulus")
    return _mpz_list(out, k64, total)


_HORNER_SIGNATURE = (
    ctypes.c_void_p,  # modulus, k64 words
    ctypes.c_int32,  # k64
    ctypes.c_uint64,  # k0
    ctypes.c_void_p,  # R^2 mod m
    ctypes.c_int32,  # L
    ctypes.c_void_p,  # inputs, nout * k values of k64 words, row-major
    ctypes.c_int64,  # nout
    ctypes.c_int32,  # k
    ctypes.c_int32,  # w
    ctypes.c_void_p,  # out
    ctypes.c_int32,  # threads
)


def horner(values: Sequence, k: int, w: int, m: int, threads: int = 1) -> list:
    """``out[o] = prod_j values[o k + j]^(2^(w (k - 1 - j))) mod m`` for
    ``o < len(values) / k`` (Horner's rule, eight outputs per SIMD pass), as gmpy2 ``mpz``.
    ``len(values)`` must be a multiple of ``k``."""
    kernel = _native.function(SOURCE, "cr_ifma_horner", _HORNER_SIGNATURE, ctypes.c_int)
    if kernel is None:
        raise RuntimeError("the IFMA kernel is not available on this machine")
    m = int(m)
    if k < 1 or w < 0 or len(values) % k:
        raise ValueError(f"horner needs k >= 1, w >= 0 and a multiple of k values, got {k}, {w}")
    L, k64, k0, m_words, r2_words = _modulus_constants(m)
    nout = len(values) // k
    mz = mpz(m)
    cts = _words([v if 0 <= v < mz else v % mz for v in values], k64)
    if cts.size == 0:
        return []
    out = np.empty(nout * k64, dtype=np.uint64)
    rc = kernel(
        m_words.ctypes.data, k64, k0, r2_words.ctypes.data, L, cts.ctypes.data, nout, int(k),
        int(w), out.ctypes.data, max(1, int(threads)),
    )  # fmt: skip
    if rc != 0:
        raise RuntimeError(f"IFMA Horner packing failed ({rc}) for a {m.bit_length()}-bit modulus")
    return _mpz_list(out, k64, nout)
