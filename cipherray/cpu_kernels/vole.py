"""SoftSpokenOT's small-field VOLE planes (``vole_planes.cc``, VAES + AVX-512; elsewhere
:func:`aes_ctr.keystreams` and a numpy tree give the same bytes).

``planes(seeds, k, nbytes, stream, want_sum)``: ``seeds`` (nb, 2^k, 32) uint8, the 2^k
AES-256-CTR seeds of each of nb blocks. With G_x the first ``nbytes`` of the keystream of
seed x under counter block ``stream`` || 0 (as :func:`aes_ctr.keystreams`), returns
(planes (nb * k, nbytes) uint8 with row b k + l = XOR of the G_x of block b with bit l of
x set, and sums (nb, nbytes) = XOR of all G_x of each block, or None unless
``want_sum``). ``kernel()`` says which implementation runs.
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import _native, aes_ctr

SOURCE = "vole_planes.cc"
_ARGS = (
    ctypes.c_void_p,  # seeds, nb * 2^k * 32 bytes
    ctypes.c_int64,  # nb
    ctypes.c_int32,  # k
    ctypes.c_uint64,  # stream
    ctypes.c_void_p,  # planes, nb * k * nbytes
    ctypes.c_void_p,  # sums, nb * nbytes, or NULL
    ctypes.c_int64,  # nbytes
)
GROUP_SEEDS = 256  # seeds per aes_ctr call in the fallback (a cache-sized group of blocks)


def _fn():
    return _native.function(SOURCE, "cr_vole_planes", _ARGS, ctypes.c_int32)


def kernel() -> str:
    """ "vaes" where the native kernel runs, else "numpy" (keystreams of aes_ctr)."""
    return "vaes" if _fn() is not None else "numpy"


def tree(g: np.ndarray, k: int, want_sum: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """g (nb, 2^k, W) uint64 (the G_x of nb blocks) -> (planes (nb, k, W), sums (nb, W)
    or None). A binary tree over x: level l XORs the odd members of each pair into plane
    l and sends the pair sums up, 2 * 2^k vector XORs per block."""
    nb, _, w = g.shape
    out = np.empty((nb, k, w), dtype=np.uint64)
    for lvl in range(k):
        pairs = g.reshape(nb, -1, 2, w)
        odd = pairs[:, :, 1]
        np.bitwise_xor.reduce(odd, axis=1, out=out[:, lvl])
        if lvl < k - 1 or want_sum:
            g = pairs[:, :, 0] ^ odd
    return out, (g[:, 0] if want_sum else None)


def planes_numpy(
    seeds: np.ndarray, k: int, nbytes: int, stream: int, want_sum: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The planes from aes_ctr.keystreams and :func:`tree` (``nbytes`` a multiple of 8)."""
    nb, n, _ = seeds.shape
    group = max(1, GROUP_SEEDS // n)
    out = np.empty((nb * k, nbytes // 8), dtype=np.uint64)
    sums = np.empty((nb, nbytes // 8), dtype=np.uint64) if want_sum else None
    for b0 in range(0, nb, group):
        b1 = min(nb, b0 + group)
        g = aes_ctr.keystreams(seeds[b0:b1].reshape(-1, seeds.shape[2]), nbytes, stream)
        p, s = tree(g.view(np.uint64).reshape(b1 - b0, n, nbytes // 8), k, want_sum)
        out[b0 * k : b1 * k] = p.reshape(-1, nbytes // 8)
        if want_sum:
            sums[b0:b1] = s
    return out.view(np.uint8), (sums.view(np.uint8) if want_sum else None)


def planes(
    seeds: np.ndarray, k: int, nbytes: int, stream: int, want_sum: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """See the module docstring. ``nbytes`` must be a multiple of 16."""
    k, nbytes = int(k), int(nbytes)
    if not 1 <= k <= 8:
        raise ValueError(f"k must be in 1..8, not {k}")
    if (
        not isinstance(seeds, np.ndarray)
        or seeds.dtype != np.uint8
        or seeds.ndim != 3
        or seeds.shape[1:] != (1 << k, aes_ctr.SEED_BYTES)
    ):
        raise ValueError(f"seeds must be a uint8 array of shape (nb, {1 << k}, 32)")
    if nbytes < 0 or nbytes % 16:
        raise ValueError(f"nbytes must be a non-negative multiple of 16, not {nbytes}")
    stream = int(stream)
    if not 0 <= stream < 1 << 64:
        raise ValueError("stream must be in [0, 2^64)")
    fn = _fn()
    if fn is None:
        return planes_numpy(seeds, k, nbytes, stream, want_sum)
    nb = seeds.shape[0]
    seeds = np.ascontiguousarray(seeds)
    out = np.empty((nb * k, nbytes), dtype=np.uint8)
    sums = np.empty((nb, nbytes), dtype=np.uint8) if want_sum else None
    rc = fn(
        seeds.ctypes.data, nb, k, stream, out.ctypes.data,
        sums.ctypes.data if want_sum else None, nbytes,
    )  # fmt: skip
    if rc == -2:
        raise MemoryError("vole planes: no memory for the kernel's buffers")
    if rc != 0:  # unreachable: k was checked above
        raise RuntimeError(f"cr_vole_planes failed ({rc})")
    return out, sums
