"""Encrypted histograms and weighted column sums: batched ciphertext products mod n^2.

The two hot loops of vertical federated learning with Paillier are products of many
ciphertexts into buckets:

- SecureBoost's host builds, for every feature j and every tree node, the histogram
  ``H[node, j, b] = prod { c_i : row i in node, bin(i, j) = b }`` of the guest's encrypted
  (packed) gradients ``c_i``: a *segmented product*, one multiplication mod n^2 per
  (row, feature);
- hetero logistic regression's host computes ``X_q^T [[d]]`` for features quantised to
  ``b`` bits: the same bucket products with the quantised value as the bucket, then
  ``prod_v B_v^v`` by running products (``2 * 2^b`` multiplications per column).

:func:`bucket_products` is the one primitive; it runs

- in the AVX-512 IFMA kernel (``cpu_kernels/bucket_ifma.cc``) where the CPU has it, eight
  columns at a time in SIMD lanes (Montgomery form, one conversion per row);
- on the GPU when the backend is "gpu" and CuPy sees a device (``gpu_kernels``);
- in gmpy2 otherwise (the reference the other two must match bit for bit).

Empty buckets hold the ciphertext 1 (an encryption of 0 with randomness 1): callers that
send histograms to the key holder re-randomise them first.

Which path runs: ``kernel=`` of :func:`bucket_products`, else the environment variable
``CIPHERRAY_BUCKET_KERNEL`` (``auto``, the default; ``reference``, ``ifma`` or ``gpu`` to
force one, e.g. in tests). ``auto`` takes the GPU when
:func:`cipherray.protocols.paillier.backend.use_gpu` says so for the ``rows x columns``
multiplications, the IFMA kernel where it runs and supports n^2 (1024- to 3072-bit n),
gmpy2 otherwise.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gmpy2 import mpz

from .cipher_array import CipherArray, _objarray

_ONE = mpz(1)
KERNELS = ("auto", "reference", "ifma", "gpu")


def _check_layout(
    n: int,
    keys: np.ndarray,
    nbuckets: int,
    rows: np.ndarray | None,
    slots: np.ndarray | None,
    nslots: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys = np.asarray(keys)
    if keys.ndim != 2 or keys.shape[1] != n:
        raise ValueError(f"keys must have shape (columns, {n}), got {keys.shape}")
    if not np.issubdtype(keys.dtype, np.integer):
        raise TypeError(f"keys must be integers (bin or quantised value), got {keys.dtype}")
    if nbuckets < 1 or nslots < 1:
        raise ValueError("nbuckets and nslots must be positive")
    if keys.size and (int(keys.min()) < 0 or int(keys.max()) >= nbuckets):
        raise ValueError(f"keys must lie in [0, {nbuckets})")
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= n)):
        raise ValueError(f"rows must be a 1-d array of row numbers in [0, {n})")
    if slots is None:
        slots = np.zeros(rows.size, dtype=np.int32)
    slots = np.asarray(slots, dtype=np.int32)
    if slots.shape != rows.shape:
        raise ValueError("slots must have one entry per selected row")
    if slots.size and (slots.min() < 0 or slots.max() >= nslots):
        raise ValueError(f"slots must lie in [0, {nslots})")
    return keys, rows, slots


def bucket_products_reference(
    cts: list,
    keys: np.ndarray,
    nbuckets: int,
    nsq: Any,
    rows: np.ndarray,
    slots: np.ndarray,
    nslots: int,
    weighted: bool,
) -> list:
    """gmpy2 reference: out[(s * d + j) * nbuckets + b] (weighted: out[s * d + j])."""
    d = keys.shape[0]
    nsq = mpz(nsq)
    out: list = []
    sel = [cts[i] for i in rows.tolist()]
    slot_list = slots.tolist()
    tables = [[[_ONE] * nbuckets for _ in range(d)] for _ in range(nslots)]
    for j in range(d):
        kj = keys[j, rows].tolist()
        for c, s, b in zip(sel, slot_list, kj):
            t = tables[s][j]
            t[b] = t[b] * c % nsq
    for s in range(nslots):
        for j in range(d):
            t = tables[s][j]
            if not weighted:
                out.extend(t)
                continue
            running, acc = _ONE, _ONE
            for b in range(nbuckets - 1, 0, -1):
                running = running * t[b] % nsq
                acc = acc * running % nsq
            out.append(acc)
    return out


def bucket_products(
    c: CipherArray,
    keys: np.ndarray,
    nbuckets: int,
    *,
    rows: np.ndarray | None = None,
    slots: np.ndarray | None = None,
    nslots: int = 1,
    weighted: bool = False,
    threads: int | None = None,
    kernel: str | None = None,
) -> CipherArray:
    """Products of the 1-d ciphertexts ``c`` into buckets.

    keys: (d, n) integers in [0, nbuckets): the bucket of row i in column j.
    rows: the rows taken (default all); slots: the slot (e.g. tree node) of each taken
    row, in [0, nslots).

    Returns a CipherArray of shape (nslots, d, nbuckets) whose entry [s, j, b] encrypts
    the sum of the plaintexts of the taken rows in slot s with key b in column j; with
    ``weighted=True`` shape (nslots, d): the sum over taken rows of key * plaintext
    (``keys`` are then quantised values and bucket 0 contributes nothing).
    The exponent and kind of ``c`` carry over.

    threads: OpenMP threads of the IFMA kernel (default
    :func:`cipherray.protocols.paillier.arith.get_num_threads`). kernel: ``auto``,
    ``reference``, ``ifma`` or ``gpu`` (default: ``CIPHERRAY_BUCKET_KERNEL`` or ``auto``).
    """
    if c.ndim != 1:
        raise ValueError(f"bucket_products takes a 1-d CipherArray, got shape {c.shape}")
    n = c.shape[0]
    keys, rows, slots = _check_layout(n, keys, nbuckets, rows, slots, nslots)
    d = keys.shape[0]
    pk = c.public_key
    cts = c.ciphertexts().ravel().tolist()
    flat = _dispatch(pk, cts, keys, nbuckets, rows, slots, nslots, weighted, threads, kernel)
    shape = (nslots, d) if weighted else (nslots, d, nbuckets)
    return CipherArray._wrap(pk, _objarray(flat, shape), c.exponent, c.kind)


def choose_kernel(nsq: Any, multiplications: int, kernel: str | None = None) -> str:
    """The path :func:`bucket_products` takes for modulus ``nsq``: "gpu", "ifma" or
    "reference" (see the module docstring)."""
    kernel = kernel or os.environ.get("CIPHERRAY_BUCKET_KERNEL", "auto")
    if kernel not in KERNELS:
        raise ValueError(f"bucket kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel != "auto":
        return kernel
    from . import backend

    if backend.use_gpu(multiplications):
        return "gpu"
    from cipherray.cpu_kernels import bucket

    return "ifma" if bucket.supports(int(nsq)) else "reference"


def _dispatch(pk, cts, keys, nbuckets, rows, slots, nslots, weighted, threads, kernel) -> list:
    path = choose_kernel(pk.nsquare, rows.size * keys.shape[0], kernel)
    if path == "gpu":
        from cipherray.gpu_kernels import buckets

        from . import backend

        return buckets.bucket_products(
            int(pk.nsquare), cts, keys, nbuckets, rows, slots, nslots, weighted, backend.KERNEL
        )
    if path == "ifma":
        from cipherray.cpu_kernels import bucket

        from .arith import get_num_threads

        nthreads = get_num_threads() if threads is None else threads
        return bucket.bucket_products(
            cts, keys, nbuckets, pk.nsquare, rows, slots, nslots, weighted, nthreads
        )
    return bucket_products_reference(cts, keys, nbuckets, pk.nsquare, rows, slots, nslots, weighted)


def horner_pack(c: CipherArray, k: int, w: int, *, kernel: str | None = None) -> CipherArray:
    """Pack ``k`` ciphertexts into one by Horner's rule: output o encrypts
    ``sum_j m[o k + j] * 2^(w (k - 1 - j))`` (``acc <- acc^(2^w) * c_next``); ``c`` is padded
    with encryptions of 0 (the ciphertext 1) to a multiple of ``k``. The caller keeps every
    packed sum below ``2^w`` and ``k w`` below the plaintext space. Runs in the IFMA kernel
    where the CPU has it (``kernel`` as for :func:`bucket_products`; the GPU path is the
    CipherArray arithmetic, which stays on the device), gmpy2 otherwise. Returns a 1-d
    CipherArray (no fresh randomness)."""
    if k < 1 or w < 0:
        raise ValueError(f"horner_pack needs k >= 1 and w >= 0, got k={k}, w={w}")
    pk = c.public_key
    flat = c.reshape(-1)
    total = flat.size
    nout = -(-total // k)
    path = choose_kernel(pk.nsquare, nout * k * w, kernel)
    if path == "gpu" or nout == 0:
        pad = np.ones(nout * k - total, dtype=object)
        cols = np.concatenate([flat.ciphertexts(), pad]).reshape(nout, k)
        acc = CipherArray.from_ciphertexts(pk, cols[:, 0]) if nout else flat
        for j in range(1, k):
            acc = acc * (1 << w) + CipherArray.from_ciphertexts(pk, cols[:, j])
        return acc
    cts = flat.ciphertexts().tolist() + [_ONE] * (nout * k - total)
    if path == "ifma":
        from cipherray.cpu_kernels import bucket

        from .arith import get_num_threads

        out = bucket.horner(cts, k, w, pk.nsquare, get_num_threads())
    else:
        out = horner_pack_reference(cts, k, w, pk.nsquare)
    return CipherArray._wrap(pk, _objarray(out, (nout,)), c.exponent, c.kind)


def horner_pack_reference(cts: list, k: int, w: int, nsq: Any) -> list:
    """gmpy2 reference of :func:`horner_pack` on a list of ``nout * k`` ciphertexts."""
    import gmpy2

    nsq = mpz(nsq)
    shift = mpz(1) << w
    out = []
    for o in range(len(cts) // k):
        acc = mpz(cts[o * k])
        for j in range(1, k):
            acc = gmpy2.powmod(acc, shift, nsq) * cts[o * k + j] % nsq
        out.append(acc)
    return out
