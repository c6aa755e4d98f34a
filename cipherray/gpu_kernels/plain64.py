"""int64 plaintexts and scalars as limbs, vectorised: no Python integer per value.

Paillier plaintexts live in Z_n with a negative value ``m`` stored as ``n + m``; most data
(fixed-point features, gradients, counts) fits in int64. These helpers turn such arrays into
the word layout of :mod:`.bigint` (``(words, count)`` uint64, least significant word first)
and back, with array operations of the backend's array module ``xp`` (NumPy for the host
build, CuPy on a GPU: there the conversion runs where the data is and only 8 bytes per
value cross the bus). Values that do not fit in int64 are the caller's slow path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_U64 = np.uint64
_TOP = _U64(1 << 63)


def magnitudes(xp: Any, m: Any) -> tuple[Any, Any]:
    """(|m| as uint64, m < 0) for an int64 array; |INT64_MIN| = 2^63 is exact."""
    bits = m.view(xp.uint64)
    neg = m < 0
    return xp.where(neg, (~bits) + _U64(1), bits), neg


def _borrow_rows(nw: np.ndarray) -> int:
    """Number of words above word 0 that a borrow out of word 0 reaches when subtracting from
    n: it stops at the first non-zero word of n."""
    k = 1
    while k < len(nw) and nw[k] == 0:
        k += 1
    return min(k, len(nw) - 1)


def words_from_int64(xp: Any, m: Any, nw: np.ndarray) -> Any:
    """Words (len(nw), count) of m mod n for an int64 array m (on the backend): m itself for
    m >= 0, n - |m| for m < 0 (n > 2^64 assumed, so n - |m| > 0)."""
    W = len(nw)
    mag, neg = magnitudes(xp, m)
    n0 = _U64(nw[0])
    out = xp.zeros((W, m.shape[0]), dtype=xp.uint64)
    out[0] = xp.where(neg, n0 - mag, mag)  # wraps mod 2^64 where |m| > n0: a borrow
    borrow = (neg & (mag > n0)).astype(xp.uint64)
    high = xp.asarray(nw[1:]).reshape(-1, 1)
    out[1:] = xp.where(neg[None, :], high, _U64(0))
    for k in range(1, _borrow_rows(nw) + 1):  # n's zero words turn into 2^64 - 1 and pass it on
        out[k] -= borrow
    return out


def int64_from_words(xp: Any, w: Any, nw: np.ndarray) -> tuple[Any, Any]:
    """(m int64, ok bool) for values v in [0, n) given as words w (at least len(nw) rows):
    m = v where v < 2^63, m = v - n where n - v <= 2^63; ok is False for the values in
    between (the caller decodes those exactly)."""
    W = len(nw)
    w0 = w[0]
    upper = w[1:W]
    pos = ~upper.any(axis=0) & (w0 < _TOP)
    if w.shape[0] > W:  # words beyond n's width must be zero for any value below n
        pos &= ~w[W:].any(axis=0)
    n0 = _U64(nw[0])
    d = n0 - w0  # low word of n - v (mod 2^64)
    borrow = (w0 > n0).astype(xp.uint64)
    expect = xp.asarray(nw[1:]).reshape(-1, 1) + xp.zeros_like(upper)
    for k in range(1, _borrow_rows(nw) + 1):
        expect[k - 1] -= borrow
    neg = (upper == expect).all(axis=0) & (d != _U64(0)) & (d <= _TOP)
    if w.shape[0] > W:
        neg &= ~w[W:].any(axis=0)
    m = xp.where(pos, w0, (~d) + _U64(1)).view(xp.int64)
    return m, pos | neg


def digits_to_limbs(digits: np.ndarray) -> np.ndarray:
    """Little-endian exponent bytes (count, nbytes) uint8 -> uint32 limbs (ceil(nbytes/4),
    count), the layout of the kernels' exponent arguments (host array)."""
    count, nbytes = digits.shape
    padded = np.zeros((count, 4 * ((nbytes + 3) // 4)), dtype=np.uint8)
    padded[:, :nbytes] = digits
    return np.ascontiguousarray(padded.view("<u4").T)


def uint64_to_limbs(v: np.ndarray) -> np.ndarray:
    """uint64 values -> uint32 limbs (2, count) (host array)."""
    return np.ascontiguousarray(np.ascontiguousarray(v, dtype="<u8").view("<u4").reshape(-1, 2).T)
