"""Fixed-point encoding of ints and floats into Z_n, base 16 like ``phe``.

A value ``v`` is represented by an integer mantissa ``m`` and a base-16 exponent ``e``
with ``v ~= m * 16^e``; the plaintext is ``m mod n``. Integers use ``e = 0`` (exact).
Floats use ``e = floor(log2(precision) / 4)``: the default precision 2^-32 gives
``e = -8`` (resolution 2^-32, rounding error <= 2^-33 per encoded value); rounding is
to nearest, ties to even (the same as phe's ``round(Fraction)``). A CipherArray holds
one exponent for all its elements; adding arrays of different exponents multiplies
the one with the larger exponent by ``16^diff`` (phe's ``decrease_exponent_to``), and
multiplying by a plaintext adds the exponents.

Range: ``|m| <= max_int = n//3 - 1`` (as phe). Negative mantissas are stored as
``n + m``. Decoding maps [0, max_int] to positives, [n - max_int, n) to negatives and
raises :class:`EncodingOverflowError` in between (a result that wrapped). Encoding a
value beyond the range raises the same error; NaN and infinities raise ValueError.
Because the convention is phe's (``EncodedNumber.BASE == 16``, same max_int), a
ciphertext/exponent pair means the same number in both libraries.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
from gmpy2 import mpz

from .errors import EncodingOverflowError

if TYPE_CHECKING:
    from .keys import PublicKey

BASE = 16
LOG2_BASE = 4
DEFAULT_PRECISION = 2.0**-32
INT, FLOAT = "int", "float"


def precision_to_exponent(precision: float | None) -> int:
    """Base-16 exponent giving at least the requested resolution (default 2^-32 -> -8)."""
    if precision is None:
        precision = DEFAULT_PRECISION
    precision = float(precision)
    if not (precision > 0 and math.isfinite(precision)):
        raise ValueError("precision must be a positive finite number")
    return math.floor(math.log2(precision) / LOG2_BASE)


def classify(arr: np.ndarray) -> str:
    """``"int"`` or ``"float"`` for a plaintext array; TypeError for anything else."""
    k = arr.dtype.kind
    if k in "biu":
        return INT
    if k == "f":
        return FLOAT
    if k == "O":
        kind = INT
        for v in arr.flat:
            if isinstance(v, bool | int | np.integer) or type(v).__name__ == "mpz":
                continue
            if isinstance(v, float | np.floating):
                kind = FLOAT
                continue
            raise TypeError(f"cannot encode {type(v).__name__}; expected ints or floats")
        return kind
    raise TypeError(f"cannot encode dtype {arr.dtype}; expected ints or floats")


def _scaled_floats(arr: np.ndarray, exponent: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, x / 16^exponent rounded to the nearest integer, as float64; inf where that
    overflows) for a float array, flat; ValueError for NaN or infinity."""
    x = np.asarray(arr, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot encode NaN or infinity")
    with np.errstate(over="ignore"):
        return x, np.rint(np.ldexp(x, -LOG2_BASE * exponent))


def _float_mantissas(arr: np.ndarray, exponent: int) -> list[int]:
    x, scaled = _scaled_floats(arr, exponent)
    if not np.all(np.isfinite(scaled)):  # astronomically large values: exact slow path
        scale = Fraction(BASE) ** -exponent
        return [round(Fraction(float(v)) * scale) for v in x]
    if scaled.size and float(np.max(np.abs(scaled))) < 2.0**62:
        return scaled.astype(np.int64).tolist()
    return [int(v) for v in scaled.tolist()]


def mantissas(arr: np.ndarray, kind: str, exponent: int) -> list[int]:
    """Signed integer mantissas of ``arr`` at the given base-16 exponent (flat)."""
    if kind == FLOAT:
        return _float_mantissas(arr, exponent)
    if arr.dtype.kind in "biu":
        vals = (
            arr.astype(np.int64).ravel().tolist()
            if arr.dtype.kind != "u"
            else [int(v) for v in arr.ravel().tolist()]
        )
    else:
        vals = [int(v) for v in arr.ravel()]
    if exponent == 0:
        return vals
    if exponent < 0:
        shift = -LOG2_BASE * exponent
        return [v << shift for v in vals]
    div = BASE**exponent
    out = []
    for v in vals:
        q, r = divmod(v, div)
        if r:
            raise ValueError(f"integer {v} is not representable at exponent {exponent}")
        out.append(q)
    return out


def check_range(pk: PublicKey, ms: list[int]) -> None:
    if not ms:
        return
    lim = int(pk.max_int)
    if max(ms) > lim or min(ms) < -lim:
        raise EncodingOverflowError(
            f"value out of the encodable range: |mantissa| must be <= n//3 - 1 "
            f"(~2^{lim.bit_length()})"
        )


def encode(
    pk: PublicKey,
    arr: np.ndarray,
    precision: float | None = None,
    exponent: int | None = None,
) -> tuple[list, int, str]:
    """Encode a plaintext array: (flat list of mpz in [0, n), exponent, kind)."""
    arr = np.asarray(arr)
    kind = classify(arr)
    if exponent is None:
        exponent = precision_to_exponent(precision) if kind == FLOAT else 0
    ms = mantissas(arr, kind, int(exponent))
    check_range(pk, ms)
    n = pk.n
    return [mpz(m) % n for m in ms], int(exponent), kind


def int64_mantissas(
    pk: PublicKey,
    arr: np.ndarray,
    precision: float | None = None,
    exponent: int | None = None,
) -> tuple[np.ndarray | None, int, str]:
    """The signed mantissas of :func:`encode` / :func:`signed_mantissas` as a flat int64
    array, computed with array operations, when they all fit in int64 (None otherwise: the
    caller takes the exact path); plus the exponent and kind. Same errors on bad input."""
    arr = np.asarray(arr)
    kind = classify(arr)
    if exponent is None:
        exponent = precision_to_exponent(precision) if kind == FLOAT else 0
    exponent = int(exponent)
    if pk.max_int < 2**63 or arr.dtype.kind == "O":
        return None, exponent, kind
    if kind == FLOAT:
        _, scaled = _scaled_floats(arr, exponent)
        if scaled.size and not float(np.max(np.abs(scaled))) < 2.0**63:
            return None, exponent, kind
        return scaled.astype(np.int64), exponent, kind
    if exponent != 0 or (arr.dtype.kind == "u" and arr.size and int(arr.max()) >= 2**63):
        return None, exponent, kind
    return arr.astype(np.int64).ravel(), exponent, kind


def signed_mantissas(
    pk: PublicKey, arr: np.ndarray, precision: float | None = None
) -> tuple[list[int], int, str]:
    """Plaintext multiplier encoding: signed mantissas (not reduced mod n), exponent, kind."""
    arr = np.asarray(arr)
    kind = classify(arr)
    exponent = precision_to_exponent(precision) if kind == FLOAT else 0
    ms = mantissas(arr, kind, exponent)
    check_range(pk, ms)
    return ms, exponent, kind


def _to_float(m: int, exponent: int) -> float:
    try:
        return math.ldexp(float(m), LOG2_BASE * exponent)
    except OverflowError:
        shift = abs(m).bit_length() - 64
        mm = (abs(m) >> shift) * (1 if m >= 0 else -1)
        return math.ldexp(float(mm), LOG2_BASE * exponent + shift)


def decode_int64(m: np.ndarray, exponent: int, kind: str, shape: tuple) -> np.ndarray:
    """:func:`decode` for signed mantissas that fit in int64 (from the device's vectorised
    decryption): the same values, without an integer object per element."""
    m = np.asarray(m, dtype=np.int64)
    if kind == INT and exponent == 0:
        return m.reshape(shape)
    if kind == INT and exponent > 0:  # rare (an explicit positive exponent): exact ints
        return _int_values(m.tolist(), exponent, shape)
    return np.ldexp(m.astype(np.float64), LOG2_BASE * exponent).reshape(shape)


def _int_values(ms: list[int], exponent: int, shape: tuple) -> np.ndarray:
    """Integers m * 16^exponent (exponent >= 0): int64, or an object array where they do
    not fit."""
    vals = ms if exponent == 0 else [m * BASE**exponent for m in ms]
    try:
        return np.array(vals, dtype=np.int64).reshape(shape)
    except OverflowError:
        return np.fromiter(vals, dtype=object, count=len(vals)).reshape(shape)


def decode(pk: PublicKey, encoded: list, exponent: int, kind: str, shape: tuple) -> np.ndarray:
    """Decoded NumPy array: ints -> int64 (object array of ints if too large),
    floats -> float64."""
    n, lim = pk.n, pk.max_int
    neg_lo = n - lim
    ms: list[int] = []
    for x in encoded:
        if x <= lim:
            ms.append(int(x))
        elif x >= neg_lo:
            ms.append(int(x - n))
        else:
            raise EncodingOverflowError(
                "decrypted value is in the overflow band: the encrypted result exceeded "
                "the encodable range"
            )
    if kind == INT and exponent >= 0:
        return _int_values(ms, exponent, shape)
    if ms and max(abs(min(ms)), abs(max(ms))) < 2**1000:
        return np.ldexp(
            np.array([float(m) for m in ms], dtype=np.float64), LOG2_BASE * exponent
        ).reshape(shape)
    return np.array([_to_float(m, exponent) for m in ms], dtype=np.float64).reshape(shape)
