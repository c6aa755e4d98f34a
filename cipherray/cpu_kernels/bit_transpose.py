"""Bit-matrix transposition for IKNP OT extension (``bit_transpose.cc``: SSE2, or
AVX-512BW through ``bit_transpose_avx512.cc`` where the CPU has it).

``transpose(bits)`` takes a (rows, cols) uint8 array read as a rows x 8*cols bit matrix
(bit j of row i = bit j % 8 of byte j // 8, least significant first) and returns its
transpose as an (8*cols, rows // 8) uint8 array in the same bit order. ``rows`` must be a
multiple of 8. ``transpose_xor(bits, x, row_mask)`` is the transpose of
``bits ^ (x & row_mask[:, None])`` (row_mask 0x00 / 0xff per row) in the same pass: IKNP's
q^i = G(k_i) ^ delta_i * u^i without branching on delta. ``transpose_acc(bits, acc, row)``
returns the transpose of ``bits`` and sets ``acc ^= bits ^ row`` in place in the same pass
(IKNP's u^i = G(k_i^1) ^ t^i ^ c). The kernels (16 x 16 byte tiles,
``_mm_movemask_epi8`` / ``_mm512_movepi8_mask``) run where they are built (see
:mod:`._native`); elsewhere numpy's unpackbits / packbits give the same bytes.
``kernel()`` says which runs. Each takes an optional ``out`` to write the transpose into
(e.g. a slice of rows of a larger result).
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import _native

SOURCE, AVX512_SOURCE = "bit_transpose.cc", "bit_transpose_avx512.cc"
_ARGS = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_XOR_ARGS = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, *_ARGS[1:])  # and _acc


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


def _check_out(out: np.ndarray | None, rows: int, cols: int) -> np.ndarray | None:
    shape = (8 * cols, rows // 8)
    if out is not None and not (
        isinstance(out, np.ndarray)
        and out.dtype == np.uint8
        and out.shape == shape
        and out.flags.c_contiguous
        and out.flags.writeable
    ):
        raise ValueError(f"out must be a writeable contiguous uint8 array of shape {shape}")
    return out


def _deliver(result: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return result
    out[...] = result
    return out


def _run(fn, arrays: list[np.ndarray], rows: int, cols: int, out: np.ndarray | None) -> np.ndarray:
    """Call a kernel on arrays padded to whole 16 x 16 byte tiles; trim the result. A
    given ``out`` (checked by the caller) receives the transpose directly where no padding
    is needed."""
    prow, pcol = -rows % 16, -cols % 16
    if prow or pcol:
        arrays = [np.pad(a, ((0, prow), (0, pcol))) if a.ndim == 2 else a for a in arrays]
        arrays = [np.pad(a, (0, prow)) if a.ndim == 1 else a for a in arrays]
    arrays = [np.ascontiguousarray(a) for a in arrays]
    direct = out is not None and not (prow or pcol)
    res = out if direct else np.empty((8 * (cols + pcol), (rows + prow) // 8), dtype=np.uint8)
    if res.size:
        rc = fn(*(a.ctypes.data for a in arrays), rows + prow, cols + pcol, res.ctypes.data)
        if rc == -2:
            raise MemoryError("bit transpose: no memory for the staging buffer")
        if rc != 0:  # unreachable: the shape was padded above
            raise RuntimeError(f"bit transpose kernel failed ({rc})")
    if direct:
        return res
    if prow or pcol:
        res = np.ascontiguousarray(res[: 8 * cols, : rows // 8])
    return _deliver(res, out)


def transpose(bits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(8*cols, rows // 8) uint8: the bit transpose of ``bits`` (rows, cols) uint8, written
    into ``out`` where given."""
    bits = _check(bits)
    out = _check_out(out, *bits.shape)
    fn = _function("cr_bit_transpose", _ARGS)
    if fn is None:
        return _deliver(transpose_numpy(bits), out)
    return _run(fn, [bits], *bits.shape, out)


def transpose_xor(
    bits: np.ndarray, x: np.ndarray, row_mask: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
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
    out = _check_out(out, *bits.shape)
    fn = _function("cr_bit_transpose_xor", _XOR_ARGS)
    if fn is None:
        return _deliver(transpose_numpy(bits ^ (x & row_mask[:, None])), out)
    return _run(fn, [bits, x, row_mask], *bits.shape, out)


def transpose_acc(
    bits: np.ndarray, acc: np.ndarray, row: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """The transpose of ``bits``; also ``acc ^= bits ^ row[None, :]`` in place (``acc`` a
    writeable C-contiguous array of the shape of ``bits``, ``row`` (cols,) uint8)."""
    bits, acc = _check(bits), _check(acc, "acc")
    if acc.shape != bits.shape or not acc.flags.c_contiguous or not acc.flags.writeable:
        raise ValueError(f"acc must be a writeable contiguous array of shape {bits.shape}")
    row = np.asarray(row)
    if row.dtype != np.uint8 or row.shape != (bits.shape[1],):
        raise ValueError(f"row must be a uint8 array of shape ({bits.shape[1]},)")
    out = _check_out(out, *bits.shape)
    fn = _function("cr_bit_transpose_acc", _XOR_ARGS)
    rows, cols = bits.shape
    if fn is None or rows % 16 or cols % 16:  # acc is updated in place: no padded copies
        np.bitwise_xor(acc, bits, out=acc)
        np.bitwise_xor(acc, row, out=acc)
        return transpose(bits, out)
    return _run(fn, [bits, acc, row], rows, cols, out)
