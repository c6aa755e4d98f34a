"""Bit-matrix transposition for IKNP OT extension (``bit_transpose.cc``: SSE2, or
AVX-512BW through ``bit_transpose_avx512.cc`` where the CPU has it).

``transpose(bits)`` takes a (rows, cols) uint8 array read as a rows x 8*cols bit matrix
(bit j of row i = bit j % 8 of byte j // 8, least significant first) and returns its
transpose as an (8*cols, rows // 8) uint8 array in the same bit order. ``rows`` must be a
multiple of 8. ``transpose_xor(bits, x, row_mask)`` is the transpose of
``bits ^ (x & row_mask[:, None])`` (row_mask 0x00 / 0xff per row) in the same pass: IKNP's
q^i = G(k_i) ^ delta_i * u^i without branching on delta. The kernels (16 x 16 byte tiles,
``_mm_movemask_epi8`` / ``_mm512_movepi8_mask``) run where they are built (see
:mod:`._native`); elsewhere numpy's unpackbits / packbits give the same bytes.
``kernel()`` says which runs.
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import _native

SOURCE, AVX512_SOURCE = "bit_transpose.cc", "bit_transpose_avx512.cc"
_ARGS = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_XOR_ARGS = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, *_ARGS[1:])


_avx512 = True


def set_avx512(flag: bool) -> None:
    """Use the AVX-512 build where the CPU has it (default), or the SSE2 build alone (to
    compare them; both agree with numpy bit for bit)."""
    global _avx512
    _avx512 = bool(flag)


def _function(name: str, args: tuple):
    fn = _native.function(AVX512_SOURCE, name, args, ctypes.c_int) if _avx512 else None
    return fn if fn is not None else _native.function(SOURCE, name, args, ctypes.c_int)


def kernel() -> str:
    """Which implementation runs: "avx512", "sse2" or "numpy"."""
    if _avx512 and _native.function(AVX512_SOURCE, "cr_bit_transpose", _ARGS, ctypes.c_int):
        return "avx512"
    return "sse2" if _function("cr_bit_transpose", _ARGS) is not None else "numpy"


def available() -> bool:
    """True when a native kernel is enabled, built and this CPU can run it."""
    return kernel() != "numpy"


def _check(bits: np.ndarray, what: str = "bits") -> np.ndarray:
    if not isinstance(bits, np.ndarray) or bits.dtype != np.uint8 or bits.ndim != 2:
        raise ValueError(f"{what} must be a 2-D uint8 array")
    if bits.shape[0] % 8:
        raise ValueError(f"the number of rows must be a multiple of 8, not {bits.shape[0]}")
    return bits


def transpose_numpy(bits: np.ndarray) -> np.ndarray:
    """The transpose by numpy alone (unpack to one byte a bit, transpose, pack)."""
    bits = _check(bits)
    rows, cols = bits.shape
    unpacked = np.unpackbits(bits, axis=1, bitorder="little")  # (rows, 8*cols)
    return np.packbits(unpacked.T, axis=1, bitorder="little").reshape(8 * cols, rows // 8)


def _run(fn, arrays: list[np.ndarray], rows: int, cols: int) -> np.ndarray:
    """Call a kernel on arrays padded to whole 16 x 16 byte tiles; trim the result."""
    prow, pcol = -rows % 16, -cols % 16
    if prow or pcol:
        arrays = [np.pad(a, ((0, prow), (0, pcol))) if a.ndim == 2 else a for a in arrays]
        arrays = [np.pad(a, (0, prow)) if a.ndim == 1 else a for a in arrays]
    arrays = [np.ascontiguousarray(a) for a in arrays]
    out = np.empty((8 * (cols + pcol), (rows + prow) // 8), dtype=np.uint8)
    if out.size:
        rc = fn(*(a.ctypes.data for a in arrays), rows + prow, cols + pcol, out.ctypes.data)
        if rc == -2:
            raise MemoryError("bit transpose: no memory for the staging buffer")
        if rc != 0:  # unreachable: the shape was padded above
            raise RuntimeError(f"bit transpose kernel failed ({rc})")
    if prow or pcol:
        out = np.ascontiguousarray(out[: 8 * cols, : rows // 8])
    return out


def transpose(bits: np.ndarray) -> np.ndarray:
    """(8*cols, rows // 8) uint8: the bit transpose of ``bits`` (rows, cols) uint8."""
    bits = _check(bits)
    fn = _function("cr_bit_transpose", _ARGS)
    if fn is None:
        return transpose_numpy(bits)
    return _run(fn, [bits], *bits.shape)


def transpose_xor(bits: np.ndarray, x: np.ndarray, row_mask: np.ndarray) -> np.ndarray:
    """The transpose of ``bits ^ (x & row_mask[:, None])``; ``x`` has the shape of
    ``bits``, ``row_mask`` is (rows,) uint8 of 0x00 / 0xff."""
    bits, x = _check(bits), _check(x, "x")
    if x.shape != bits.shape:
        raise ValueError(f"x must have the shape of bits {bits.shape}, not {x.shape}")
    row_mask = np.asarray(row_mask)
    if row_mask.dtype != np.uint8 or row_mask.shape != (bits.shape[0],):
        raise ValueError(f"row_mask must be a uint8 array of shape ({bits.shape[0]},)")
    if not np.isin(row_mask, (0, 0xFF)).all():
        raise ValueError("row_mask must hold 0x00 or 0xff")
    fn = _function("cr_bit_transpose_xor", _XOR_ARGS)
    if fn is None:
        return transpose_numpy(bits ^ (x & row_mask[:, None]))
    return _run(fn, [bits, x, row_mask], *bits.shape)
