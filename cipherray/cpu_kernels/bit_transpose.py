"""Bit-matrix transposition for IKNP OT extension (``bit_transpose.cc``, SSE2).

``transpose(bits)`` takes a (rows, cols) uint8 array read as a rows x 8*cols bit matrix
(bit j of row i = bit j % 8 of byte j // 8, least significant first) and returns its
transpose as an (8*cols, rows // 8) uint8 array in the same bit order. ``rows`` must be a
multiple of 8. The SSE2 kernel (16 x 16 byte tiles, ``_mm_movemask_epi8``) runs where it
is built (see :mod:`._native`); elsewhere numpy's unpackbits / packbits give the same
bytes. ``available()`` says whether the kernel is used.
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import _native

SOURCE = "bit_transpose.cc"
_ARGS = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)


def _kernel():
    return _native.function(SOURCE, "cr_bit_transpose", _ARGS, ctypes.c_int)


def available() -> bool:
    """True when the SSE2 kernel is enabled, built and this CPU can run it."""
    return _kernel() is not None


def _check(bits: np.ndarray) -> np.ndarray:
    if not isinstance(bits, np.ndarray) or bits.dtype != np.uint8 or bits.ndim != 2:
        raise ValueError("bits must be a 2-D uint8 array")
    if bits.shape[0] % 8:
        raise ValueError(f"the number of rows must be a multiple of 8, not {bits.shape[0]}")
    return bits


def transpose_numpy(bits: np.ndarray) -> np.ndarray:
    """The transpose by numpy alone (unpack to one byte a bit, transpose, pack)."""
    bits = _check(bits)
    rows, cols = bits.shape
    unpacked = np.unpackbits(bits, axis=1, bitorder="little")  # (rows, 8*cols)
    return np.packbits(unpacked.T, axis=1, bitorder="little").reshape(8 * cols, rows // 8)


def transpose(bits: np.ndarray) -> np.ndarray:
    """(8*cols, rows // 8) uint8: the bit transpose of ``bits`` (rows, cols) uint8."""
    bits = _check(bits)
    kernel = _kernel()
    if kernel is None:
        return transpose_numpy(bits)
    rows, cols = bits.shape
    prow, pcol = -rows % 16, -cols % 16
    src = np.ascontiguousarray(bits)
    if prow or pcol:  # the kernel works on 16 x 16 byte tiles
        src = np.pad(src, ((0, prow), (0, pcol)))
    out = np.empty((8 * (cols + pcol), (rows + prow) // 8), dtype=np.uint8)
    if out.size:
        rc = kernel(src.ctypes.data, src.shape[0], src.shape[1], out.ctypes.data)
        if rc != 0:  # unreachable: the shape was padded above
            raise RuntimeError(f"cr_bit_transpose failed ({rc})")
    if prow or pcol:
        out = np.ascontiguousarray(out[: 8 * cols, : rows // 8])
    return out
