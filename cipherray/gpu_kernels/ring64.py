"""Z_2^64 arithmetic (uint64 wraparound) on CuPy arrays, with NumPy/host-build references.

* Elementwise ``add``, ``sub``, ``mul``, ``neg``: uint64 wraps natively in NumPy and CuPy.
* ``matmul(a, b, method)``: exact ``a @ b mod 2^64`` three ways

  - ``"native"``: CuPy's own integer matmul (int64 ``@``, exact mod 2^64),
  - ``"int8"``: 8 signed 8-bit digits per operand on int8 tensor cores (cuBLAS ``gemmEx``,
    int32 accumulate). Only digit pairs (i, j) with i + j < 8 matter mod 2^64; the pairs with
    i + j = s are one GEMM over a k-concatenation (36 digit products in 8 GEMMs). Exact while
    (s + 1) * k * 128 * 128 < 2^31; k is cut into chunks otherwise.
  - ``"fp64"``: 4 unsigned 16-bit digits as float64 (10 digit products in 4 GEMMs; exact
    while 4 * k * (2^16 - 1)^2 < 2^53, chunked otherwise).

  ``"auto"`` picks int8 for large shapes and native for small ones.
* ``cpu_matmul_u64``: the fp64 digit split with NumPy's float64 BLAS -- exact, and much faster
  than NumPy's integer matmul. ``matmul_ref`` is the NumPy reference of both splits.
* ``prg_uint64``: ChaCha20 (RFC 8439) keystream as uint64 masks, generated on the device by the
  same block function the host build runs (``chacha20.cuh``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._build import get_backend

SOURCE = "ring64.cu"
_SIG = {
    "chacha_u64": "pppu",
    "split_s8": "ppqqqi",
    "split_u16": "ppqqqi",
    "combine_s8": "ppq",
    "combine_f64": "ppq",
}
# digit geometry: method -> (digits, bits, max k per chunk keeping sums exact)
_GEOM = {
    "int8": (8, 8, (2**31 - 1) // (8 * 128 * 128)),
    "fp64": (4, 16, 2**53 // (4 * 65535 * 65535)),
}


def _xp(a):
    try:
        import cupy

        return cupy.get_array_module(a)
    except ImportError:
        return np


def add(a, b):
    return _xp(a).add(a, b, dtype=np.uint64)


def sub(a, b):
    return _xp(a).subtract(a, b, dtype=np.uint64)


def mul(a, b):
    return _xp(a).multiply(a, b, dtype=np.uint64)


def neg(a):
    return _xp(a).subtract(np.uint64(0), a, dtype=np.uint64)


# -- limb-split matmul ------------------------------------------------------------------------
def _split(backend, x, digits: int, kind: str, rev: bool, cols_pad: int):
    """x: (rows, cols) uint64 view with unit column stride -> (rows, digits * cols_pad)."""
    xp = backend.xp
    rows, cols = x.shape
    dtype = np.int8 if kind == "int8" else np.float64
    out = xp.empty((rows, digits * cols_pad), dtype=dtype)
    ldin = x.strides[0] // 8
    if x.strides[1] != 8:
        raise ValueError("split needs unit column stride")
    kern = "split_s8" if kind == "int8" else "split_u16"
    backend.launch(SOURCE, (), kern, _SIG[kern], [out, x, ldin, cols, cols_pad, int(rev)],
                   rows * cols_pad)  # fmt: skip
    return out


def _gemm_nt(backend, a, b, K: int, ld: int, a_off: int, b_off: int, c, kind: str) -> None:
    """c (m, n) = A @ B^T with A = a[:, a_off : a_off + K], B = b[:, b_off : b_off + K]."""
    if backend.name == "host":
        A = a[:, a_off : a_off + K].astype(np.float64)
        B = b[:, b_off : b_off + K].astype(np.float64)
        c[...] = (A @ B.T).astype(c.dtype)
        return
    from cupy.cuda import device

    try:
        from cupy_backends.cuda.libs import cublas
    except ImportError:  # pragma: no cover
        from cupy.cuda import cublas
    m, n = a.shape[0], b.shape[0]
    handle = device.get_cublas_handle()
    isz = a.itemsize
    # column-major view: C^T (n x m) = op_T(Bcm) (n x K) . Acm (K x m)
    if kind == "int8":
        one = np.array(1, dtype=np.int32)
        zero = np.array(0, dtype=np.int32)
        cublas.gemmEx(
            handle,
            1,
            0,
            n,
            m,
            K,
            one.ctypes.data,
            b.data.ptr + b_off * isz,
            3,
            ld,
            a.data.ptr + a_off * isz,
            3,
            ld,
            zero.ctypes.data,
            c.data.ptr,
            10,
            n,
            72,
            -1,
        )  # fmt: skip  CUDA_R_8I=3, CUDA_R_32I=10, COMPUTE_32I=72
    else:
        one = np.array(1.0, dtype=np.float64)
        zero = np.array(0.0, dtype=np.float64)
        cublas.dgemm(handle, 1, 0, n, m, K, one.ctypes.data, b.data.ptr + b_off * isz, ld,
                     a.data.ptr + a_off * isz, ld, zero.ctypes.data, c.data.ptr, n)  # fmt: skip


def limb_matmul(a, b, method: str = "int8", backend: str | Any = "auto"):
    """a @ b mod 2^64 by digit splitting; a (m, k), b (k, n) uint64 on the backend."""
    be = get_backend(backend)
    xp = be.xp
    digits, bits, kmax = _GEOM[method]
    a = xp.ascontiguousarray(xp.asarray(a).view(np.uint64) if a.dtype != np.uint64 else a)
    b = xp.asarray(b)
    b = b.view(np.uint64) if b.dtype != np.uint64 else b
    m, k = a.shape
    k2, n = b.shape
    if k != k2:
        raise ValueError(f"shapes {a.shape} and {b.shape} do not align")
    bt = xp.ascontiguousarray(b.T)
    out = xp.zeros((m, n), dtype=np.uint64)
    if k == 0:
        return out
    kc = min(k, kmax // 16 * 16)
    cdt = np.int32 if method == "int8" else np.float64
    for k0 in range(0, k, kc):
        kk = min(kc, k - k0)
        kp = (kk + 15) // 16 * 16
        A = _split(be, a[:, k0 : k0 + kk], digits, method, False, kp)
        B = _split(be, bt[:, k0 : k0 + kk], digits, method, True, kp)
        C = xp.empty((digits, m, n), dtype=cdt)
        for s in range(digits):
            _gemm_nt(be, A, B, (s + 1) * kp, digits * kp, 0, (digits - 1 - s) * kp, C[s], method)
        kern = "combine_s8" if method == "int8" else "combine_f64"
        be.launch(SOURCE, (), kern, _SIG[kern], [out, C, m * n], m * n)
    return out


def native_matmul(a, b):
    """CuPy / NumPy integer matmul reinterpreted mod 2^64 (two's complement)."""
    return (a.view(np.int64) @ b.view(np.int64)).view(np.uint64)


def choose_method(m: int, k: int, n: int) -> str:
    """The tensor-core int8 split once every dimension is large, CuPy's matmul below that
    (the device figures behind it: gpu_kernels/README.md, "Measured")."""
    return "int8" if min(m, k, n) >= 256 else "native"


def matmul(a, b, method: str = "auto"):
    """Exact a @ b mod 2^64 for uint64 CuPy arrays (NumPy arrays: CPU path)."""
    xp = _xp(a)
    if xp is np:
        return cpu_matmul_u64(a, b)
    if method == "auto":
        method = choose_method(a.shape[0], a.shape[1], b.shape[1])
    if method == "native":
        return native_matmul(a, b)
    return limb_matmul(a, b, method, backend="gpu")


def _np_digits(x: np.ndarray, digits: int, bits: int, signed: bool) -> list[np.ndarray]:
    x = x.astype(np.uint64, copy=True)
    mask = np.uint64((1 << bits) - 1)
    out = []
    for _ in range(digits):
        d = (x & mask).astype(np.int64)
        if signed:
            d = np.where(d >= (1 << (bits - 1)), d - (1 << bits), d)
        x = (x - d.astype(np.uint64)) >> np.uint64(bits)
        out.append(d.astype(np.float64))
    return out


def matmul_ref(a: np.ndarray, b: np.ndarray, method: str = "fp64") -> np.ndarray:
    """NumPy reference of the digit-split matmuls (float64 BLAS, exact; chunked over k)."""
    digits, bits, kmax = _GEOM[method]
    a = np.asarray(a).view(np.uint64) if np.asarray(a).dtype != np.uint64 else np.asarray(a)
    b = np.asarray(b).view(np.uint64) if np.asarray(b).dtype != np.uint64 else np.asarray(b)
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), dtype=np.uint64)
    kc = max(1, min(k, kmax // digits))  # separate GEMMs per digit pair: exact per pair sum
    with np.errstate(over="ignore"):
        for k0 in range(0, k, kc):
            ad = _np_digits(a[:, k0 : k0 + kc], digits, bits, method == "int8")
            bd = _np_digits(b[k0 : k0 + kc], digits, bits, method == "int8")
            for s in range(digits):
                acc = np.zeros((m, n), dtype=np.float64)
                for i in range(s + 1):
                    acc += ad[i] @ bd[s - i]
                out += acc.astype(np.int64).view(np.uint64) << np.uint64(bits * s)
    return out


def cpu_matmul_u64(a: np.ndarray, b: np.ndarray, kchunk: int = 2048) -> np.ndarray:
    """Exact a @ b mod 2^64 on the CPU with float64 BLAS.

    Signed 22-bit digits (3 per operand; |digit| <= 2^21): every digit product is below 2^42 in
    magnitude, so a GEMM over at most 2048 terms stays below 2^53 and is exact in float64. Only
    the 6 digit pairs with i + j < 3 matter mod 2^64.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    a = a.view(np.uint64) if a.dtype != np.uint64 else a
    b = b.view(np.uint64) if b.dtype != np.uint64 else b
    m, k = a.shape
    if b.shape[0] != k:
        raise ValueError(f"shapes {a.shape} and {b.shape} do not align")
    n = b.shape[1]
    out = np.zeros((m, n), dtype=np.uint64)
    kchunk = min(kchunk, 2048)
    with np.errstate(over="ignore"):
        for k0 in range(0, k, kchunk):
            ad = _np_digits(a[:, k0 : k0 + kchunk], 3, 22, True)
            bd = _np_digits(b[k0 : k0 + kchunk], 3, 22, True)
            for i in range(3):
                for j in range(3 - i):
                    p = (ad[i] @ bd[j]).astype(np.int64).view(np.uint64)
                    out += p << np.uint64(22 * (i + j)) if i + j else p
    return out


# -- ChaCha20 masks ---------------------------------------------------------------------------
def new_key() -> bytes:
    """A fresh 32-byte PRG key from the OS CSPRNG."""
    return os.urandom(32)


def prg_uint64(
    key: bytes,
    count: int,
    nonce: bytes = bytes(12),
    counter: int = 0,
    backend: str | Any = "auto",
):
    """``count`` uint64 from the ChaCha20 keystream (RFC 8439: 32-bit block counter starting at
    ``counter``, 96-bit nonce); word order little-endian, i.e. equal to
    ``np.frombuffer(keystream_bytes, '<u8')``. Returns a CuPy array on the GPU backend."""
    if len(key) != 32 or len(nonce) != 12:
        raise ValueError("ChaCha20 needs a 32-byte key and a 12-byte nonce")
    be = get_backend(backend)
    blocks = (int(count) + 7) // 8
    if counter + blocks > 2**32:
        raise ValueError("ChaCha20 block counter would wrap: use another nonce")
    k = be.asarray(np.frombuffer(key, dtype="<u4").astype(np.uint32))
    nz = be.asarray(np.frombuffer(nonce, dtype="<u4").astype(np.uint32))
    out = be.xp.empty(blocks * 8, dtype=np.uint64)
    be.launch(SOURCE, (), "chacha_u64", _SIG["chacha_u64"], [out, k, nz, counter], blocks)
    return out[:count]
