"""Batched AES-256-CTR keystreams with AES-NI (``aes_ctr.cc``; ``aes_ctr_vaes.cc``, four
blocks per instruction, where the CPU has VAES and AVX-512BW): the PRG of
:mod:`cipherray.protocols.prg` for many seeds in one native call.

``keystreams(seeds, nbytes, stream)`` is row i = ``prg.random_bytes(seeds[i], nbytes,
stream)``; ``masked_sum(seeds, signs, length, bits, stream)`` is the sum of
``signs[i] * keystream_i`` read as ``length`` little-endian elements of Z_2^bits (the
masks of SecAgg, added and subtracted in one pass without materialising them). Both
agree bit for bit with ``cryptography``'s AES-256-CTR (tests/test_aes_masks.py).

Where the kernel cannot run (no AES-NI, no compiler, ``_native.set_enabled(False)`` or
``CIPHERRAY_CPU_KERNELS=0``) the same results come from ``cryptography``, one cipher per
seed. ``available()`` says whether the kernel is used.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import _native

SOURCE = "aes_ctr.cc"
SEED_BYTES = 32
RING_DTYPES = {32: np.dtype("<u4"), 64: np.dtype("<u8")}

_MANY = (
    ctypes.c_void_p,  # seeds, count * 32 bytes
    ctypes.c_int64,  # count
    ctypes.c_uint64,  # stream
    ctypes.c_void_p,  # out, count * nbytes bytes
    ctypes.c_int64,  # nbytes
)
_MASKED_SUM = (
    ctypes.c_void_p,  # seeds, count * 32 bytes
    ctypes.c_void_p,  # signs, count int8
    ctypes.c_int64,  # count
    ctypes.c_uint64,  # stream
    ctypes.c_void_p,  # acc, length ring elements
    ctypes.c_int64,  # length
    ctypes.c_int32,  # bits
)


VAES_SOURCE = "aes_ctr_vaes.cc"  # the same functions with VAES (AVX-512): 4 blocks at once
_vaes = os.environ.get("CIPHERRAY_AES_VAES", "1") != "0"  # 0: the AES-NI build alone


def set_vaes(flag: bool) -> None:
    """Use the VAES build where the CPU has it (default), or the AES-NI build alone
    (to compare them; both agree with ``cryptography`` bit for bit)."""
    global _vaes
    _vaes = bool(flag)


def _function(name: str, argtypes: tuple, restype) -> object:
    fn = _native.function(VAES_SOURCE, name, argtypes, restype) if _vaes else None
    return fn if fn is not None else _native.function(SOURCE, name, argtypes, restype)


def _many():
    return _function("cr_aes_ctr_many", _MANY, None)


def _masked_sum():
    return _function("cr_aes_ctr_masked_sum", _MASKED_SUM, ctypes.c_int32)


def available() -> bool:
    """True when the AES-NI kernel is enabled, built and this CPU can run it."""
    return _many() is not None


def kernel() -> str:
    """Which build runs: "vaes", "aes-ni", or "cryptography" (no kernel)."""
    if _many() is None:
        return "cryptography"
    vaes = _vaes and _native.function(VAES_SOURCE, "cr_aes_ctr_many", _MANY, None) is not None
    return "vaes" if vaes else "aes-ni"


def as_seeds(seeds: Sequence[bytes] | np.ndarray) -> np.ndarray:
    """``seeds`` (32-byte strings, or a (count, 32) uint8 array) as a C-contiguous
    (count, 32) uint8 array."""
    if isinstance(seeds, np.ndarray):
        return _check_seeds(seeds)
    seeds = list(seeds)
    for s in seeds:
        if not isinstance(s, bytes | bytearray | memoryview) or len(s) != SEED_BYTES:
            raise ValueError(f"every seed must be {SEED_BYTES} bytes")
    if not seeds:
        return np.empty((0, SEED_BYTES), dtype=np.uint8)
    return np.frombuffer(b"".join(seeds), dtype=np.uint8).reshape(-1, SEED_BYTES)


def _check_seeds(seeds: np.ndarray) -> np.ndarray:
    if not isinstance(seeds, np.ndarray) or seeds.dtype != np.uint8:
        raise ValueError("seeds must be a uint8 array of shape (count, 32)")
    if seeds.ndim != 2 or seeds.shape[1] != SEED_BYTES:
        raise ValueError(f"seeds must have shape (count, 32), not {seeds.shape}")
    return np.ascontiguousarray(seeds)


def _check_stream(stream: int) -> int:
    stream = int(stream)
    if not 0 <= stream < 1 << 64:
        raise ValueError("stream must be in [0, 2^64)")
    return stream


def _check_count(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, not {value!r}")
    return int(value)


def _encryptor(seed: np.ndarray, stream: int):
    nonce = stream.to_bytes(8, "big") + bytes(8)
    return Cipher(algorithms.AES(seed.tobytes()), modes.CTR(nonce)).encryptor()


def _keystream(seed: np.ndarray, nbytes: int, stream: int) -> bytes:
    enc = _encryptor(seed, stream)
    return enc.update(bytes(nbytes)) + enc.finalize()


def keystreams(seeds: np.ndarray, nbytes: int, stream: int = 0) -> np.ndarray:
    """(count, nbytes) uint8: row i is the first ``nbytes`` of the AES-256-CTR keystream
    under ``seeds[i]`` (counter block ``stream`` (8 bytes big-endian) || 0^8)."""
    seeds = _check_seeds(seeds)
    nbytes = _check_count(nbytes, "nbytes")
    stream = _check_stream(stream)
    count = seeds.shape[0]
    out = np.empty((count, nbytes), dtype=np.uint8)
    if count == 0 or nbytes == 0:
        return out
    kernel = _many()
    if kernel is not None:
        kernel(seeds.ctypes.data, count, stream, out.ctypes.data, nbytes)
        return out
    for i in range(count):
        out[i] = np.frombuffer(_keystream(seeds[i], nbytes, stream), dtype=np.uint8)
    return out


def masked_sum(
    seeds: np.ndarray,
    signs: np.ndarray | Sequence[int],
    length: int,
    bits: int = 32,
    stream: int = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``out`` (zeros when None) += sum_i ``signs[i]`` * keystream_i, each keystream read
    as ``length`` little-endian elements of Z_2^bits (uint32 for 32, uint64 for 64);
    sign 1 adds, -1 subtracts, 0 skips. Returns ``out``."""
    seeds = _check_seeds(seeds)
    length = _check_count(length, "length")
    stream = _check_stream(stream)
    if bits not in RING_DTYPES:
        raise ValueError(f"bits must be 32 or 64, not {bits!r}")
    dtype = RING_DTYPES[bits]
    sg = np.asarray(signs)
    if sg.shape != (seeds.shape[0],):
        raise ValueError(f"signs must have shape ({seeds.shape[0]},), not {sg.shape}")
    if sg.size and (sg.dtype.kind not in "iu" or not np.isin(sg, (-1, 0, 1)).all()):
        raise ValueError("signs must be integers in {-1, 0, 1}")
    sg = np.ascontiguousarray(sg, dtype=np.int8)
    if out is None:
        out = np.zeros(length, dtype=dtype)
    elif (
        not isinstance(out, np.ndarray)
        or out.dtype != dtype
        or out.shape != (length,)
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        raise ValueError(f"out must be a writeable contiguous {dtype} array of shape ({length},)")
    if length == 0 or seeds.shape[0] == 0:
        return out
    kernel = _masked_sum()
    if kernel is not None:
        rc = kernel(
            seeds.ctypes.data, sg.ctypes.data, seeds.shape[0], stream, out.ctypes.data, length, bits
        )
        if rc != 0:  # unreachable: bits was checked above
            raise RuntimeError(f"cr_aes_ctr_masked_sum failed ({rc})")
        return out
    nbytes = dtype.itemsize * length
    for seed, sign in zip(seeds, sg):
        if sign:
            ks = np.frombuffer(_keystream(seed, nbytes, stream), dtype=dtype)
            (np.add if sign > 0 else np.subtract)(out, ks, out=out)
    return out
