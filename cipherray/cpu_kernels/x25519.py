"""Batched X25519 (RFC 7748) on the CPU with AVX-512 IFMA (``x25519_ifma.cc``).

``x25519_batch(scalar, points)`` computes ``X25519(scalar, u)`` for every 32-byte
u-coordinate in ``points`` (one bytes-like blob, 32 bytes per point), eight ladders at a
time in the lanes of AVX-512 registers, and returns the results as one blob plus the
number of all-zero results (small-order inputs, which callers must reject as
``cryptography`` does). The output equals ``cryptography``'s
``X25519PrivateKey.from_private_bytes(scalar).exchange(...)`` bit for bit (RFC 7748
vectors and random inputs in the tests); the ladder is constant time (masked swaps, no
secret-dependent branch or index). How it compares with OpenSSL: the README's Performance
section.

``available()`` says whether it can run here (see :mod:`._native`).
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import _native

SOURCE = "x25519_ifma.cc"
MIN_BATCH = 8


_SIGNATURE = (
    ctypes.c_void_p,  # scalar, 32 bytes
    ctypes.c_void_p,  # points, count * 32 bytes
    ctypes.c_void_p,  # out, count * 32 bytes
    ctypes.c_int64,  # count
    ctypes.c_int32,  # threads
)


def _kernel():
    return _native.function(SOURCE, "cr_x25519_batch", _SIGNATURE, ctypes.c_int64)


def available() -> bool:
    """True when the IFMA X25519 kernel is enabled, built and this CPU can run it."""
    return _kernel() is not None


def x25519_batch(scalar: bytes, points: bytes | np.ndarray, threads: int = 1) -> tuple[bytes, int]:
    """(results, zero_count): X25519 of ``scalar`` (32 bytes, clamped here) with each
    32-byte point of ``points``; bit 255 of each point is ignored (RFC 7748)."""
    kernel = _kernel()
    if kernel is None:
        raise RuntimeError("the IFMA X25519 kernel is not available on this machine")
    if len(scalar) != 32:
        raise ValueError("an X25519 scalar is 32 bytes")
    src = np.frombuffer(points, dtype=np.uint8) if not isinstance(points, np.ndarray) else points
    src = np.ascontiguousarray(src).view(np.uint8).reshape(-1)
    if src.size % 32:
        raise ValueError("point data must be a multiple of 32 bytes")
    count = src.size // 32
    out = np.empty(src.size, dtype=np.uint8)
    k = np.frombuffer(bytes(scalar), dtype=np.uint8)
    zeros = kernel(k.ctypes.data, src.ctypes.data, out.ctypes.data, count, max(1, int(threads)))
    return out.tobytes(), int(zeros)


def _many_kernel():
    return _native.function(SOURCE, "cr_x25519_many", _SIGNATURE, ctypes.c_int64)


def x25519_many(
    scalars: np.ndarray, points: np.ndarray, threads: int = 1
) -> tuple[np.ndarray, int]:
    """(results (n, 32) uint8, zero_count): X25519(scalars[i], points[i]) for each row of
    two (n, 32) uint8 arrays, sixteen ladders at a time with a scalar per lane."""
    kernel = _many_kernel()
    if kernel is None:
        raise RuntimeError("the IFMA X25519 kernel is not available on this machine")
    k = np.ascontiguousarray(scalars, dtype=np.uint8).reshape(-1, 32)
    u = np.ascontiguousarray(points, dtype=np.uint8).reshape(-1, 32)
    if k.shape != u.shape:
        raise ValueError(f"{k.shape[0]} scalars for {u.shape[0]} points")
    out = np.empty_like(u)
    zeros = kernel(k.ctypes.data, u.ctypes.data, out.ctypes.data, u.shape[0], max(1, int(threads)))
    return out, int(zeros)
