"""The correlation-robust hash of IKNP OT extension, H(x, i) = pi(pi(x) xor i) xor pi(x)
with pi a fixed-key AES-128 (``ot_hash.cc``: AES-NI, or VAES four blocks an instruction
with ``ot_hash_vaes.cc``).

``tccr(key, x, start, nblocks, delta)`` returns an (m, 16 * nblocks) uint8 array whose row
j holds the blocks b < nblocks of H(x_j xor delta, i) with the tweak i = (start + j) in
bytes 0..7 and b in bytes 8..15 (little-endian). Where the kernel cannot run, one
`cryptography` AES-ECB call per pi over all blocks gives the same bytes. ``kernel()`` says
which runs.
"""

from __future__ import annotations

import ctypes

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import _native

SOURCE, VAES_SOURCE = "ot_hash.cc", "ot_hash_vaes.cc"
BLOCK = 16
_ARGS = (
    ctypes.c_void_p,  # key, 16 bytes
    ctypes.c_void_p,  # x, m * 16 bytes
    ctypes.c_int64,  # m
    ctypes.c_void_p,  # delta, 16 bytes or null
    ctypes.c_uint64,  # start
    ctypes.c_int64,  # nblocks
    ctypes.c_void_p,  # out, m * nblocks * 16 bytes
)


_vaes = True


def set_vaes(flag: bool) -> None:
    """Use the VAES build where the CPU has it (default), or the AES-NI build alone (to
    compare them; both agree with `cryptography` bit for bit)."""
    global _vaes
    _vaes = bool(flag)


def _wide():
    return _native.function(VAES_SOURCE, "cr_tccr", _ARGS, None) if _vaes else None


def _kernel():
    fn = _wide()
    return fn if fn is not None else _native.function(SOURCE, "cr_tccr", _ARGS, None)


def kernel() -> str:
    """Which implementation runs: "vaes", "aes-ni" or "cryptography"."""
    if _wide() is not None:
        return "vaes"
    return "aes-ni" if _kernel() is not None else "cryptography"


def _pi(key: bytes, blocks: np.ndarray) -> np.ndarray:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    out = enc.update(np.ascontiguousarray(blocks)) + enc.finalize()
    return np.frombuffer(out, dtype=np.uint8).reshape(blocks.shape).copy()


def tccr_numpy(
    key: bytes, x: np.ndarray, start: int, nblocks: int, delta: np.ndarray | None = None
) -> np.ndarray:
    """The hash with `cryptography` and numpy alone."""
    m = x.shape[0]
    if delta is not None:
        x = np.bitwise_xor(x, delta)
    xs = np.broadcast_to(x[:, None, :], (m, nblocks, BLOCK)).reshape(m * nblocks, BLOCK)
    p = _pi(key, xs)
    y = p.copy()
    y64 = y.view(np.uint64).reshape(m, nblocks, 2)  # little-endian hosts (x86, arm64)
    y64[:, :, 0] ^= np.arange(start, start + m, dtype=np.uint64)[:, None]
    y64[:, :, 1] ^= np.arange(nblocks, dtype=np.uint64)[None, :]
    h = _pi(key, y)
    np.bitwise_xor(h, p, out=h)
    return h.reshape(m, nblocks * BLOCK)


def tccr(
    key: bytes, x: np.ndarray, start: int, nblocks: int, delta: np.ndarray | None = None
) -> np.ndarray:
    """(m, 16 * nblocks) uint8: H(x_j xor delta, (start + j, b)) for b < nblocks.
    ``x`` is (m, 16) uint8, ``delta`` (16,) uint8 or None."""
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != BLOCK:
        raise ValueError(f"x must be an (m, 16) uint8 array, not {x.dtype} {x.shape}")
    if len(key) != BLOCK or nblocks < 1 or not 0 <= start < 1 << 64:
        raise ValueError("tccr needs a 16-byte key, nblocks >= 1 and start in [0, 2^64)")
    fn = _kernel()
    if fn is None:
        return tccr_numpy(key, x, start, nblocks, delta)
    x = np.ascontiguousarray(x)
    m = x.shape[0]
    out = np.empty((m, nblocks * BLOCK), dtype=np.uint8)
    if m:
        d = None
        if delta is not None:
            d = np.ascontiguousarray(delta, dtype=np.uint8)
            if d.shape != (BLOCK,):
                raise ValueError(f"delta must have shape (16,), not {d.shape}")
        fn(
            bytes(key),
            x.ctypes.data,
            m,
            None if d is None else d.ctypes.data,
            start,
            nblocks,
            out.ctypes.data,
        )
    return out
