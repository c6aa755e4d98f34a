"""Fixed-point encoding of real numbers into the ring Z_2^64.

A real x is stored as the signed 64-bit integer round(x * 2^f) reinterpreted as an
element of Z_2^64 (dtype uint64, arithmetic wraps). With the default f = 16
fractional bits the resolution is 2^-16 ~ 1.5e-5.

Range: an input must satisfy |x| < 2^(62 - f) (2^46 ~ 7.0e13 for f = 16), which
keeps one bit of headroom so that sums of a few values and the comparison protocols
stay inside the signed range; anything larger raises `OverflowError` instead of
wrapping. NaN and infinity raise `ValueError`; non-numeric dtypes raise `TypeError`.
"""

from __future__ import annotations

import numpy as np

DEFAULT_FRAC_BITS = 16
RING_BITS = 64


def max_abs(frac_bits: int = DEFAULT_FRAC_BITS) -> float:
    """The largest magnitude (exclusive) that `encode` accepts."""
    return float(2 ** (RING_BITS - 2 - frac_bits))


def check_numeric(x: np.ndarray, what: str = "input") -> np.ndarray:
    """Return `x` as a numeric ndarray or raise a clear error for bad input."""
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{what} must be real, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = "NaN" if np.isnan(arr).any() else "infinity"
        raise ValueError(f"{what} contains {bad}; secret sharing needs finite values")
    return arr


def encode(x: np.ndarray, frac_bits: int = DEFAULT_FRAC_BITS, what: str = "input") -> np.ndarray:
    """Encode a numeric array as fixed point in Z_2^64 (uint64): always a new array
    (one allocation, which the caller may overwrite)."""
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        if not np.issubdtype(arr.dtype, np.floating):
            arr = check_numeric(arr, what)  # raises TypeError (complex, object, ...)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        _check_range(arr, frac_bits, what)
        out = arr.astype(np.int64)  # a copy, shifted in place
        np.left_shift(out, np.int64(frac_bits), out=out)
        return out.view(np.uint64)
    # scale, check, round and convert block by block through a small float buffer that
    # stays in cache: the input is read once and the result is the only allocation of
    # its size. The scaled block's max and min show a NaN, an infinity or a value out of
    # range (scaling by 2^f is exact); then the whole input is checked for the message.
    out = np.empty(arr.shape, dtype=np.int64)
    scale = float(2**frac_bits)
    bound = max_abs(frac_bits) * scale
    src, dst = arr.reshape(-1), out.reshape(-1)
    buf = np.empty(min(_BLOCK, src.size), dtype=np.float64)
    for lo in range(0, src.size, _BLOCK):
        hi = min(lo + _BLOCK, src.size)
        b = buf[: hi - lo]
        np.multiply(src[lo:hi], scale, out=b, dtype=np.float64)
        if not (-bound < b.min() and b.max() < bound):  # False for NaN too
            check_numeric(arr, what)
            _check_range(arr, frac_bits, what)
            raise AssertionError("unreachable: a block failed the range check")  # pragma: no cover
        np.rint(b, out=b)
        dst[lo:hi] = b
    return out.view(np.uint64)


def _check_range(arr: np.ndarray, frac_bits: int, what: str) -> None:
    """OverflowError when some |x| reaches 2^(62 - f) (NaN and infinity were checked)."""
    limit = max_abs(frac_bits)
    if not arr.size or max(abs(float(arr.max())), abs(float(arr.min()))) < limit:
        return
    # the message states the range only: the peak is the party's data
    count = int(np.count_nonzero(np.abs(arr) >= limit))
    raise OverflowError(
        f"{what}: {count} value(s) beyond the fixed-point range "
        f"|x| < 2^{RING_BITS - 2 - frac_bits} (= {limit:.3g}) for {frac_bits} "
        "fractional bits"
    )


_BLOCK = 1 << 16  # elements (512 KiB of float64)


def to_signed(ring: np.ndarray) -> np.ndarray:
    """Reinterpret ring elements as two's-complement int64."""
    return np.asarray(ring, dtype=np.uint64).view(np.int64)


def decode(ring: np.ndarray, scale: int = 2**DEFAULT_FRAC_BITS) -> np.ndarray:
    """Decode ring elements with the given public scale (2^f, or 2^f times a divisor)."""
    signed = to_signed(np.asarray(ring, dtype=np.uint64))
    return signed.astype(np.float64) / float(scale)


def encode_public_scalar(c: float, significant_bits: int = 20) -> tuple[int, int]:
    """Write a public real c as m / 2^e with |m| < 2^significant_bits (m, e integers).

    Used to multiply shares by a public real: shares are multiplied by the integer m
    and the public scale grows by 2^e, so nothing is truncated and the result is exact
    up to the rounding of c itself (relative error < 2^-(significant_bits-1)).
    """
    if not np.isfinite(c):
        raise ValueError(f"public scalar must be finite, got {c}")
    if c == int(c) and abs(c) < 2**significant_bits:
        return int(c), 0
    mant, exp = np.frexp(c)  # c = mant * 2^exp, 0.5 <= |mant| < 1
    e = significant_bits - int(exp)
    m = int(np.rint(c * 2.0**e))
    while e > 0 and m % 2 == 0:
        m //= 2
        e -= 1
    return m, e
