"""Raw ciphertext arithmetic on flat lists of gmpy2 ``mpz`` (mod n^2).

These small functions are the swap point for a GPU backend: each takes and returns
plain lists, no CipherArray (keys are passed for their moduli only).

- ``_encrypt_raw``: (1 + m*n) * r mod n^2 given r = hs^a (see :mod:`.randomness`).
- ``_decrypt_raw``: CRT decryption with hp, hq (g = n+1 so L-function shortcut).
- ``_add_raw``: E(a) * E(b) mod n^2.
- ``_add_plain_raw``: E(a) * (1 + m*n) = c + n*(m*c mod n) mod n^2 (no exponentiation).
- ``_scalar_mul_raw``: E(a)^k with signed k: c^|k|, and for k < 0 one batched
  inversion (Montgomery's trick: 3 multiplications per element + 1 inversion) instead
  of an exponent n - |k| of 2048 bits.
- ``_multiexp``: prod_i c_i^(e_i) by Pippenger's bucket method; negative e_i use the
  inverse base (inverses batch-computed once per matmul and shared by all columns).
- ``_matmul_raw``: one multi-exponentiation per output column.

Exponentiations of batches go to the AVX-512 IFMA kernel where the CPU has it (eight
at a time in SIMD lanes, the same bits as gmpy2) and to gmpy2 otherwise.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import gmpy2
import numpy as np
from gmpy2 import mpz

from cipherray.cpu_kernels import modexp as _cpu_modexp

from . import backend as _backend

_ONE = mpz(1)

_NUM_THREADS = max(1, int(os.environ.get("CIPHERRAY_PAILLIER_THREADS", "1") or 1))
_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def set_num_threads(k: int) -> None:
    """Threads for the GIL-releasing gmpy2 calls (decryption, scalar multiplication,
    exponent alignment). Default 1 (a Ray worker owns one core), or the environment
    variable ``CIPHERRAY_PAILLIER_THREADS``. ``k > 1`` splits batches over a pool."""
    global _NUM_THREADS, _EXECUTOR
    with _EXECUTOR_LOCK:
        _NUM_THREADS = max(1, int(k))
        if _EXECUTOR is not None:
            _EXECUTOR.shutdown(wait=False)
            _EXECUTOR = None


def get_num_threads() -> int:
    return _NUM_THREADS


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(_NUM_THREADS, thread_name_prefix="paillier")
        return _EXECUTOR


def _split_map(fn, items: list, min_items: int = 2) -> list:
    """fn over chunks of items on the thread pool when threads > 1; concatenated."""
    k = _NUM_THREADS
    if k <= 1 or len(items) < max(min_items, 2 * k):
        return fn(items)
    step = (len(items) + k - 1) // k
    chunks = [items[i : i + step] for i in range(0, len(items), step)]
    return [v for part in _executor().map(fn, chunks) for v in part]


def _use_ifma(count: int, mod: mpz) -> bool:
    """Whether the AVX-512 IFMA kernel (:mod:`cipherray.cpu_kernels.modexp`) takes a batch
    of ``count`` exponentiations mod ``mod``; gmpy2 does them otherwise."""
    return count >= _cpu_modexp.MIN_BATCH and _cpu_modexp.supports(mod)


def _powmod_base_list(bases: list, exp: mpz, mod: mpz) -> list:
    if _use_ifma(len(bases), mod):
        return _cpu_modexp.powmod(bases, exp, mod, threads=_NUM_THREADS)
    return _split_map(lambda ch: gmpy2.powmod_base_list(ch, exp, mod), bases)


def _encrypt_raw(pk, m_ints: list, r_pows: list) -> list:
    """``(1 + m*n) * r mod n^2`` computed as ``r + n*(m*r mod n)`` (one multiplication
    mod n and one by n instead of a product mod n^2)."""
    n, nsq = pk.n, pk.nsquare
    return [(r + n * (m * r % n)) % nsq for m, r in zip(m_ints, r_pows)]


def _decrypt_raw(sk, c_list: list) -> list:
    """CRT decryption: m_p = L_p(c^(p-1) mod p^2) * hp mod p (same for q), then CRT."""
    if _backend.use_gpu(len(c_list)):
        return _backend.decrypt(sk, c_list)
    p, q, psq, qsq = sk.p, sk.q, sk.psquare, sk.qsquare
    xp = _powmod_base_list([c % psq for c in c_list], p - 1, psq)
    xq = _powmod_base_list([c % qsq for c in c_list], q - 1, qsq)
    hp, hq, pinv = sk.hp, sk.hq, sk.p_inverse
    mp = [(x - 1) // p * hp % p for x in xp]
    mq = [(x - 1) // q * hq % q for x in xq]
    return [a + (b - a) * pinv % q * p for a, b in zip(mp, mq)]


def _add_raw(a: list, b: list, nsq: mpz) -> list:
    # one multiplication per element: the GPU pays off only without the int conversions,
    # so "auto" keeps additions of ints on the CPU (gpu_kernels/README.md, "Measured")
    if _backend.get_backend() == "gpu" and _backend.use_gpu(len(a)):
        return _backend.add(a, b, nsq)
    return [x * y % nsq for x, y in zip(a, b)]


def _add_plain_raw(c: list, m: list, n: mpz, nsq: mpz) -> list:
    return [(x + n * (y * x % n)) % nsq for x, y in zip(c, m)]


def _batch_invert(xs: list, nsq: mpz) -> list:
    """Inverses mod nsq of all xs with one modular inversion (Montgomery's trick)."""
    if not xs:
        return []
    prefix = [xs[0]]
    for x in xs[1:]:
        prefix.append(prefix[-1] * x % nsq)
    try:
        inv = gmpy2.invert(prefix[-1], nsq)
    except ZeroDivisionError:
        inv = mpz(0)
    if inv == 0:
        raise ValueError("ciphertext is not invertible modulo n^2 (tampered or foreign)")
    out = [None] * len(xs)
    for i in range(len(xs) - 1, 0, -1):
        out[i] = inv * prefix[i - 1] % nsq
        inv = inv * xs[i] % nsq
    out[0] = inv
    return out


def _pow_abs(pairs: list, nsq: mpz, release_gil: bool) -> list:
    """c^|e| for (c, e) pairs (inversion of negatives done by the caller). With
    ``release_gil`` each power goes through ``powmod_base_list`` on a one-element
    list, which releases the GIL so that worker threads run in parallel."""
    if release_gil:
        pbl = gmpy2.powmod_base_list
        return [x if e == 1 else (_ONE if e == 0 else pbl([x], abs(e), nsq)[0]) for x, e in pairs]
    powmod = gmpy2.powmod
    return [x if e == 1 else (_ONE if e == 0 else powmod(x, abs(e), nsq)) for x, e in pairs]


def _scalar_mul_raw(c: list, k: list, nsq: mpz) -> list:
    """c_i^(k_i) mod nsq for signed Python-int k_i."""
    if _backend.use_gpu(len(c)) and _backend.fits_int64(k):
        return _backend.scalar_mul(c, k, nsq)
    if _use_ifma(len(c), nsq):
        out = _cpu_modexp.powmod(c, [abs(e) for e in k], nsq, threads=_NUM_THREADS)
    elif _NUM_THREADS > 1:
        out = _split_map(lambda ch: _pow_abs(ch, nsq, True), list(zip(c, k)))
    else:
        out = _pow_abs(list(zip(c, k)), nsq, False)
    neg = [i for i, e in enumerate(k) if e < 0]
    if neg:
        inv = _batch_invert([out[i] for i in neg], nsq)
        for i, v in zip(neg, inv):
            out[i] = v
    return out


def _pow_many(c: list, e: int, nsq: mpz) -> list:
    """c_i^e for one shared non-negative exponent (GIL-releasing batch call)."""
    if e == 1:
        return list(c)
    return _powmod_base_list(c, mpz(e), nsq)


def _choose_window(count: int, bits: int) -> int:
    best_w, best = 1, None
    for w in range(1, 17):
        cost = -(-bits // w) * (count + (2 << w)) + bits
        if best is None or cost < best:
            best_w, best = w, cost
    return best_w


def _multiexp(bases: list, exps: list, nsq: mpz) -> mpz:
    """prod bases[i]^exps[i] mod nsq for non-negative exps (Pippenger buckets)."""
    pairs = [(b, e) for b, e in zip(bases, exps) if e]
    if not pairs:
        return _ONE
    bits = max(e for _, e in pairs).bit_length()
    if len(pairs) <= 2 or bits <= 2:
        acc = _ONE
        for b, e in pairs:
            acc = acc * gmpy2.powmod(b, e, nsq) % nsq
        return acc
    bs = [b for b, _ in pairs]
    w = _choose_window(len(pairs), bits)
    mask = (1 << w) - 1
    nwin = -(-bits // w)
    if bits <= 64:
        ev = np.array([e for _, e in pairs], dtype=np.uint64)
        digit_rows = [((ev >> np.uint64(t * w)) & np.uint64(mask)).tolist() for t in range(nwin)]
    else:
        es = [e for _, e in pairs]
        digit_rows = [[(e >> (t * w)) & mask for e in es] for t in range(nwin)]
    result = None
    for t in range(nwin - 1, -1, -1):
        if result is not None:
            result = gmpy2.powmod(result, 1 << w, nsq)
        buckets: list = [None] * (mask + 1)
        for b, d in zip(bs, digit_rows[t]):
            if d:
                v = buckets[d]
                buckets[d] = b if v is None else v * b % nsq
        running = acc = None
        for d in range(mask, 0, -1):
            v = buckets[d]
            if v is not None:
                running = v if running is None else running * v % nsq
            if running is not None:
                acc = running if acc is None else acc * running % nsq
        if acc is not None:
            result = acc if result is None else result * acc % nsq
    return _ONE if result is None else result


def _matmul_raw(bases: list, exp_columns: list[list[int]], nsq: mpz) -> list:
    """For each column of signed exponents e: prod_i bases[i]^e[i] mod nsq."""
    if _backend.use_gpu(len(bases)) and all(_backend.fits_int64(col) for col in exp_columns):
        return _backend.matmul(bases, exp_columns, nsq)
    inv = None
    if any(e < 0 for col in exp_columns for e in col):
        inv = _batch_invert(bases, nsq)
    out = []
    for col in exp_columns:
        if inv is None:
            out.append(_multiexp(bases, col, nsq))
        else:
            bs = [b if e >= 0 else ib for b, ib, e in zip(bases, inv, col)]
            out.append(_multiexp(bs, [abs(e) for e in col], nsq))
    return out


def _prod_raw(c: list, nsq: mpz) -> mpz:
    acc = _ONE
    for x in c:
        acc = acc * x % nsq
    return acc
