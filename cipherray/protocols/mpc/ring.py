"""Exact arithmetic in Z_2^64 on the CPU, with a fast matrix product.

NumPy has no integer BLAS: `uint64 @ uint64` runs a naive loop, far slower than a
float64 BLAS GEMM of the same shape (the README's Performance section has figures).
`matmul_u64` therefore computes the exact product mod 2^64 with float64 GEMMs on
*limbs* whose partial products stay exact:

1. Split every entry v of A and B into three balanced signed limbs
   v = d0 + d1 * 2^22 + d2 * 2^43 (mod 2^64), |d0| <= 2^21, |d1|, |d2| <= 2^20
   (the top limb only matters mod 2^21 because 2^43 * 2^21 = 2^64).
2. Only limb pairs whose shift is below 64 contribute mod 2^64 (pairs (1,2), (2,1)
   sit at 2^65). Group them by shift: 2^0: A0 B0; 2^22: A0 B1 + A1 B0;
   2^43: A0 B2 + A2 B0 + (2 A1) B1 (A1 B1 sits at 2^44). Each group is ONE float64
   GEMM on limbs concatenated along the inner dimension (e.g. [A0 A2 2A1] @
   [B2; B0; B1]), 6 GEMM-equivalents in all.
3. Every product of limbs is at most 2^42 (2^41 in the groups of 2 and 3), so a
   group over at most 3 * 1024 terms stays below 2^53 and every partial sum (in any
   order, with or without FMA) is an exactly representable integer: the inner
   dimension is cut into chunks of `_CHUNK` = 1024.
4. Convert each exact float64 result to int64, shift it into place and add, all mod
   2^64 (uint64 wraps).

Small products (fewer than `_SMALL` multiply-adds) use NumPy's integer matmul, which
is exact and has less overhead there.
"""

from __future__ import annotations

import functools

import numpy as np

_CHUNK = 1024
_SMALL = 1 << 15
_M21 = np.uint64((1 << 21) - 1)
_M22 = np.uint64((1 << 22) - 1)
_H20 = np.uint64(1 << 20)
_H21 = np.uint64(1 << 21)


def as_ring(x: np.ndarray, what: str = "ring array") -> np.ndarray:
    """Return `x` as a uint64 array (int64 is reinterpreted); other dtypes raise."""
    arr = np.asarray(x)
    if arr.dtype == np.uint64:
        return arr
    if arr.dtype == np.int64:
        return arr.view(np.uint64)
    raise TypeError(f"{what} must be a uint64 (or int64) ring array, got dtype {arr.dtype}")


def _limbs(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 1: three balanced limbs (22, 21, 21 bits) as float64 arrays (exact integers).

    d0 = ((v + 2^21) mod 2^22) - 2^21 and the rest is (v - d0) / 2^22, which equals
    (v + 2^21) >> 22 (mod 2^64, wrap included); likewise for the next limb."""
    t = v.astype(np.uint64, copy=False) + _H21
    d0 = (t & _M22).view(np.int64)
    d0 -= np.int64(1 << 21)
    t1 = (t >> np.uint64(22)) + _H20
    d1 = (t1 & _M21).view(np.int64)
    d1 -= np.int64(1 << 20)
    d2 = (((t1 >> np.uint64(21)) + _H20) & _M21).view(np.int64)
    d2 -= np.int64(1 << 20)
    return d0.astype(np.float64), d1.astype(np.float64), d2.astype(np.float64)


def _exact_to_ring(f: np.ndarray) -> np.ndarray:
    return f.astype(np.int64).view(np.uint64)


_GPU_MIN = 1 << 27  # products this large go to a GPU when the worker has one


@functools.lru_cache(maxsize=1)
def _gpu() -> bool:
    """Whether this process sees a CUDA GPU through CuPy (cached; False without CuPy)."""
    from cipherray.gpu_kernels import available

    return available()


def matmul_u64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact matrix product mod 2^64 of uint64 (or int64) arrays, 1-D or 2-D, like `a @ b`.

    See the module docstring for the limb scheme (6 float64 GEMMs). Raises ValueError
    on incompatible shapes and TypeError on non-ring dtypes."""
    a = as_ring(a, "left operand")
    b = as_ring(b, "right operand")
    if a.ndim not in (1, 2) or b.ndim not in (1, 2):
        raise ValueError(f"matmul_u64 takes 1-D or 2-D arrays, got shapes {a.shape} and {b.shape}")
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    if a2.shape[1] != b2.shape[0]:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape}")
    m, k = a2.shape
    n = b2.shape[1]
    out_shape = _out_shape(a.shape, b.shape)
    if m * k * n <= _SMALL or k == 0:
        return np.matmul(a2, b2).reshape(out_shape)
    if m * k * n >= _GPU_MIN and _gpu():
        # a worker with a GPU: the int8 / fp64 limb-split GEMMs of gpu_kernels.ring64
        import cupy

        from cipherray.gpu_kernels import ring64

        out = ring64.matmul(
            cupy.asarray(np.ascontiguousarray(a2)), cupy.asarray(np.ascontiguousarray(b2))
        )
        return cupy.asnumpy(out).astype(np.uint64, copy=False).reshape(out_shape)
    out = np.zeros((m, n), dtype=np.uint64)
    for s in range(0, k, _CHUNK):
        e = min(k, s + _CHUNK)
        a0, a1, a2_ = _limbs(a2[:, s:e])
        b0, b1, b2_ = _limbs(b2[s:e, :])
        # step 2-4: one GEMM per shift group, exact in float64
        out += _exact_to_ring(a0 @ b0)
        g1 = np.concatenate([a0, a1], axis=1) @ np.concatenate([b1, b0], axis=0)
        out += _exact_to_ring(g1) << np.uint64(22)
        g2 = np.concatenate([a0, a2_, 2.0 * a1], axis=1) @ np.concatenate([b2_, b0, b1], axis=0)
        out += _exact_to_ring(g2) << np.uint64(43)
    return out.reshape(out_shape)


def _out_shape(sa: tuple, sb: tuple) -> tuple:
    if len(sa) == 1 and len(sb) == 1:
        return ()
    if len(sa) == 1:
        return (sb[1],)
    if len(sb) == 1:
        return (sa[0],)
    return (sa[0], sb[1])


def matmul_shape(sa: tuple, sb: tuple) -> tuple:
    """The result shape of `a @ b` for 1-D/2-D shapes; ValueError naming both on mismatch."""
    sa, sb = tuple(sa), tuple(sb)
    if len(sa) not in (1, 2) or len(sb) not in (1, 2):
        raise ValueError(f"matmul takes 1-D or 2-D operands, got shapes {sa} and {sb}")
    ka = sa[-1]
    kb = sb[0]
    if ka != kb:
        raise ValueError(f"matmul shape mismatch: {sa} @ {sb} (inner dimensions {ka} != {kb})")
    return _out_shape(sa, sb)


def broadcast_shape(sa: tuple, sb: tuple) -> tuple:
    """The broadcast shape of two operands; ValueError naming both on mismatch."""
    try:
        return tuple(np.broadcast_shapes(tuple(sa), tuple(sb)))
    except ValueError:
        raise ValueError(f"shape mismatch: {tuple(sa)} and {tuple(sb)} do not broadcast") from None
