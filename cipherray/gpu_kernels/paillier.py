"""Paillier on the GPU (or on the host build of the same kernels), on plain ints.

Scheme (identical to the CPU path in ``cipherray.protocols.paillier``): g = n + 1,
encryption ``c = (1 + m n) * hs^a mod n^2`` with ``hs`` a fixed public base in Z*_{n^2} and ``a``
a short random exponent (DJN style, ``rand_bits`` bits); decryption by CRT:
``m_p = L_p(c^(p-1) mod p^2) * hp mod p`` with ``L_p(x) = (x - 1) / p`` and
``hp = L_p(g^(p-1) mod p^2)^-1 mod p`` (same for q), recombined with CRT.

Every function comes in two flavours:

* ``encrypt(n, hs, m, a, rand_bits)`` etc. take numpy object arrays (or lists) of Python ints
  or gmpy2 mpz and return numpy object arrays of Python ints (``as_mpz=True``: of mpz, made
  straight from the limbs); conversion and host<->device transfers are included.
* ``PaillierGpu(...).encrypt_limbs(...)`` etc. take and return backend arrays in the
  limb-major layout of :mod:`.bigint` (shape ``(limbs, count)``) and keep data on the device.

Negative plaintext scalars (``scalar_mul``, ``matvec``): ``c^k`` with ``k < 0`` is computed as
``(c^-1)^|k|``. The inverses come from ``MontContext.invert``: batched multiplications on the
device and one modular inversion on the host per batch -- of the ciphertexts with negative
scalars for ``scalar_mul``, of the per-output products of the negative terms for ``matvec``
(the kernel accumulates positive and negative exponents separately).

``backend``: ``"auto"`` (GPU when CuPy sees one, else host build), ``"gpu"`` or ``"host"``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from . import bigint as bi
from . import multiexp, plain64
from ._build import get_backend

try:
    from gmpy2 import mpz as _mpz_type
except ImportError:  # pragma: no cover
    _mpz_type = int


def _ints(values) -> list:
    """Values as a list of ints; ints and mpz stay as they are (both write their own limbs)."""
    if isinstance(values, np.ndarray):
        values = values.ravel()
    return [v if type(v) is int or type(v) is _mpz_type else int(v) for v in values]


def _like(values: list, x: int):
    """x as the type of values' first element: an mpz compared with (or reduced by) a Python
    int converts that int every time, mpz with mpz does not."""
    return _mpz_type(x) if values and type(values[0]) is _mpz_type else x


def _require_ciphertexts(values: list, nsq: int) -> None:
    """Ciphertexts (already through _ints) must lie in [0, n^2): the kernels reduce only
    products of operands below the modulus."""
    if values and (min(values) < 0 or max(values) >= _like(values, nsq)):
        raise ValueError("ciphertexts must lie in [0, n^2)")


def _check_scalars(ks: list) -> None:
    k_lim = _like(ks, 1 << 64)
    if ks and (max(ks) >= k_lim or min(ks) <= -k_lim):
        raise ValueError("scalars must fit in 64 bits (|k| < 2^64)")


def _checked_pair(c1, c2, nsq: int) -> tuple[list, list]:
    a, b = _ints(c1), _ints(c2)
    if len(a) != len(b):
        raise ValueError("c1 and c2 differ in length")
    _require_ciphertexts(a, nsq)
    _require_ciphertexts(b, nsq)
    return a, b


class PaillierGpu:
    """Per-key state on one backend: Montgomery contexts, comb table, CRT constants.

    Public-key operations need ``n`` (and ``hs`` for encryption); decryption needs ``p, q``.
    """

    def __init__(
        self,
        n: int,
        hs: int | None = None,
        rand_bits: int = 448,
        p: int | None = None,
        q: int | None = None,
        backend: str | Any = "auto",
        comb_w: int = 8,
    ) -> None:
        self.n = n = int(n)
        self.nsq = n * n
        self.backend = get_backend(backend)
        self.ctx = bi.MontContext(self.nsq, self.backend)
        self.half = self.ctx.limbs // 2
        self.n_words = bi._words(bi.ints_to_limbs([n], self.half)[0])  # host copy
        self.n_arr = self.backend.asarray(self.n_words)
        self.rand_bits = rand_bits
        self.hs = None if hs is None else int(hs)
        self._tab = None
        self.comb_w = comb_w
        self.p = self.q = None
        if p is not None and q is not None:
            self._init_private(int(p), int(q))

    # -- keys ----------------------------------------------------------------------------
    def _init_private(self, p: int, q: int) -> None:
        if p * q != self.n:
            raise ValueError("p * q != n")
        self.p, self.q = p, q
        nl = max(bi.limbs_for_bits((p * p).bit_length()), bi.limbs_for_bits((q * q).bit_length()))
        self.ctx_p = bi.MontContext(p * p, self.backend, limbs=nl)
        self.ctx_q = bi.MontContext(q * q, self.backend, limbs=nl)
        h = nl // 2
        R32 = 1 << (32 * h)  # exact division by p, q: inverses mod 2^(32 H)
        RH = 1 << bi.mont_r_bits(h, self.ctx_p.variant)  # dec_finish's mont_mul<H> radix
        g = self.n + 1

        def hfun(x: int) -> int:
            xsq = x * x
            return bi._invmod((bi._powmod(g, x - 1, xsq) - 1) // x, x)

        hp, hq = hfun(p), hfun(q)
        prm = [p, pow(p, -1, R32), hp * RH % p, q, pow(q, -1, R32), hq * RH % q,
               bi._invmod(q, p) * RH % p]  # fmt: skip
        self.crt_prm = self.backend.asarray(bi._words(bi.ints_to_limbs(prm, h).reshape(-1)))
        self.p_minv = (-pow(p, -1, 1 << 32)) % (1 << 32)
        self.q_minv = (-pow(q, -1, 1 << 32)) % (1 << 32)
        self.exp_p = self.backend.asarray(bi.ints_to_limbs([p - 1], (p.bit_length() + 31) // 32)[0])
        self.exp_q = self.backend.asarray(bi.ints_to_limbs([q - 1], (q.bit_length() + 31) // 32)[0])

    def table(self):
        if self._tab is None:
            if self.hs is None:
                raise ValueError("encryption needs the public base hs")
            self._tab = self.ctx.fixed_base_table(self.hs, self.rand_bits, self.comb_w)
        return self._tab

    # -- int64 plaintexts and scalars (vectorised, no Python int per value) ----------------
    def plain_words_from_int64(self, m: np.ndarray):
        """Plaintext words (L/4, count) on the backend of m mod n for int64 m (n + m for
        m < 0), computed on the backend from 8 bytes per value."""
        if self.n >> 64 == 0:
            raise ValueError("int64 plaintexts need n > 2^64")
        m = self.backend.asarray(np.ascontiguousarray(m, dtype=np.int64).ravel())
        return plain64.words_from_int64(self.backend.xp, m, self.n_words)

    def int64_from_plain_words(self, w) -> np.ndarray | None:
        """Plaintexts in [0, n) as words (>= L/4, count) -> signed int64 host array (v, or
        v - n for v near n), or None where some value fits neither."""
        m, ok = plain64.int64_from_words(self.backend.xp, w, self.n_words)
        if not bool(ok.all()):
            return None
        return self.backend.to_host(m)

    def encrypt_int64_to_limbs(self, m: np.ndarray, a_digits: np.ndarray):
        """Encryption of int64 plaintexts m (mod n) with exponents given as their
        little-endian bytes (see encrypt_digits_to_limbs); ciphertexts stay on the device."""
        return self.encrypt_digits_to_limbs(self.plain_words_from_int64(m), a_digits)

    def encrypt_digits_to_limbs(self, m_words, a_digits: np.ndarray):
        """Encryption of plaintext words m_words (L/4, count) in [0, n) with exponents given
        as their little-endian bytes a_digits (count, ceil(rand_bits / 8)) uint8, as
        randomness.random_exponent_digits draws them (no integer per exponent)."""
        count = int(m_words.shape[1])
        nbytes = (self.rand_bits + 7) // 8
        if a_digits.shape != (count, nbytes) or a_digits.dtype != np.uint8:
            raise ValueError(f"randomness digits must be uint8 of shape ({count}, {nbytes})")
        extra = 8 * nbytes - self.rand_bits
        if extra and count and int(a_digits[:, -1].max()) >> (8 - extra):
            raise ValueError(f"randomness exponents must be in [0, 2^{self.rand_bits})")
        limbs32 = (self.rand_bits + 31) // 32
        a_l = plain64.digits_to_limbs(a_digits)[:limbs32]
        return self.encrypt_limbs(m_words, self.backend.asarray(a_l))

    def add_plain_int64_to_limbs(self, c_l, m: np.ndarray):
        """c * (1 + m n) mod n^2 (the homomorphic c + m) for int64 plaintexts m."""
        return self.add_limbs(c_l, self.one_plus_mn_limbs(self.plain_words_from_int64(m)))

    def scalar_mul_int64_limbs(self, c_l, k: np.ndarray):
        """c^k for device limbs c_l and an int64 array k (one per column); c_l is not
        modified."""
        k = np.ascontiguousarray(k, dtype=np.int64).ravel()
        if k.size != c_l.shape[1]:
            raise ValueError("c and k differ in length")
        kabs, negm = plain64.magnitudes(np, k)
        kl = self.backend.asarray(plain64.uint64_to_limbs(kabs))
        # windows only up to the batch's longest scalar (fixed-point data is often short)
        kbits = (int(kabs.max()).bit_length() if k.size else 0) or 1
        return self.scalar_mul_limbs(self._invert_columns(c_l, np.flatnonzero(negm)), kl, kbits)

    def _invert_columns(self, c_l, neg: np.ndarray):
        """c_l with the columns `neg` replaced by their inverses mod n^2 (a copy if any)."""
        if not neg.size:
            return c_l
        cols = self.backend.asarray(neg)
        c_l = c_l.copy()
        try:
            c_l[:, cols] = self.ctx.invert(c_l[:, cols])
        except bi.NotInvertibleError as e:
            at = [int(neg[j]) for j in e.columns[:10]]
            raise ValueError(
                f"ciphertexts at {at} have no inverse mod n^2 (needed for negative scalars)"
            ) from None
        return c_l

    # -- limb-array (device-resident) API --------------------------------------------------
    def plain_words(self, m_ints):
        """Plaintext words (L/4, count) on the backend of ints (or mpz) m, reduced mod n."""
        ms = _ints(m_ints)
        n = _like(ms, self.n)
        return self.ctx.put([v % n for v in ms], limbs=self.half)

    def encrypt_limbs(self, m_limbs, a_limbs):
        """m_limbs: words (L/4, count) of plaintexts in [0, n); a_limbs: uint32
        (ceil(rand_bits/32), count). Returns ciphertext words (L/2, count)."""
        return self.ctx.fixed_base_pow(self.table(), a_limbs, mulin=self.one_plus_mn_limbs(m_limbs))

    def one_plus_mn_limbs(self, m_limbs):
        """(1 + m n) mod n^2 for plaintext words m_limbs (L/4, count) in [0, n): the
        encryption of m with randomness 1, by which c + m is c * (1 + m n)."""
        count = m_limbs.shape[1]
        out = self.ctx.empty(count)
        self.ctx.launch(
            "one_plus_xn", [out, bi._ld(out), m_limbs, bi._ld(m_limbs), self.n_arr], count
        )
        return out

    def add_plain_to_limbs(self, c_l, m_ints):
        """c * (1 + m n) mod n^2 (the homomorphic c + m) for device limbs c_l and plaintexts
        m (reduced mod n), leaving the result on the device."""
        return self.add_limbs(c_l, self.one_plus_mn_limbs(self.plain_words(m_ints)))

    def decrypt_limbs(self, c_limbs):
        """c_limbs: words (>= L_p, count) of ciphertexts mod n^2 -> plaintext words (< n)."""
        if self.p is None:
            raise ValueError("decryption needs p and q")
        count = c_limbs.shape[1]
        cp, cq = self.ctx_p, self.ctx_q
        nl = cp.limbs
        xp = self.backend.xp
        cw = c_limbs
        if cw.shape[0] < nl:  # pad (c has 2 * nl limbs = nl words)
            cw = xp.zeros((nl, count), dtype=np.uint64)
            cw[: c_limbs.shape[0]] = c_limbs
        elif cw.shape[0] > nl:
            cw = cw[:nl]
        ep, eq = self.exp_p, self.exp_q
        x_p = cp.modexp(cp.reduce_wide(cw), ep, self.p.bit_length())
        x_q = cq.modexp(cq.reduce_wide(cw), eq, self.q.bit_length())
        out = cp.empty(count)
        cp.launch(
            "dec_finish",
            [out, bi._ld(out), x_p, x_q, bi._ld(x_p), self.crt_prm, self.p_minv, self.q_minv],
            count,
        )
        return out

    def add_limbs(self, c1, c2):
        return self.ctx.mulmod(c1, c2)

    def scalar_mul_limbs(self, c_limbs, k_abs_limbs, kbits: int = 64):
        """c^k for non-negative k given as uint32 (ceil(kbits/32), count) limbs."""
        return self.ctx.modexp(c_limbs, k_abs_limbs, kbits)

    def sum_limbs(self, c_limbs, groups: int):
        """Product over the leading `groups` blocks of c_limbs viewed as (groups, M)."""
        x = self.ctx.to_mont(c_limbs)
        r = self.ctx.prod_tree(x, groups)
        return self.ctx.from_mont(r)

    def matvec_limbs(self, c_limbs, X: np.ndarray, window: int | None = None):
        """(pos, neg), normal form: prod_r c_r^max(X, 0) and prod_r c_r^max(-X, 0) per column
        of X, by the bucket method (:mod:`.multiexp`)."""
        return multiexp.matvec(self.ctx, c_limbs, np.asarray(X), window)

    # -- int API -------------------------------------------------------------------------
    def encrypt(self, m_ints, a_exponents, as_mpz: bool = False) -> np.ndarray:
        return self.ctx.get(self.encrypt_to_limbs(m_ints, a_exponents), as_mpz)

    def encrypt_to_limbs(self, m_ints, a_exponents):
        """encrypt, leaving the ciphertexts on the device as limbs."""
        a = _ints(a_exponents)
        if a and (min(a) < 0 or max(a) >> self.rand_bits):
            raise ValueError(f"randomness exponents must be in [0, 2^{self.rand_bits})")
        m_l = self.plain_words(m_ints)
        if m_l.shape[1] != len(a):
            raise ValueError("m and a differ in length")
        a_l = self.ctx.put32(a, limbs=(self.rand_bits + 31) // 32)
        return self.encrypt_limbs(m_l, a_l)

    def decrypt(self, c_ints, as_mpz: bool = False) -> np.ndarray:
        c = _ints(c_ints)
        _require_ciphertexts(c, self.nsq)
        cl = self.ctx_p.put(c, limbs=2 * self.ctx_p.limbs)
        return self.ctx_p.get(self.decrypt_limbs(cl), as_mpz)

    def add(self, c1, c2, as_mpz: bool = False) -> np.ndarray:
        a, b = _checked_pair(c1, c2, self.nsq)
        return self.ctx.get(self.add_limbs(self.ctx.put(a), self.ctx.put(b)), as_mpz)

    def scalar_mul(self, c, k, as_mpz: bool = False) -> np.ndarray:
        cs = _ints(c)
        ks = _ints(k)
        if len(cs) != len(ks):
            raise ValueError("c and k differ in length")
        _require_ciphertexts(cs, self.nsq)
        return self.ctx.get(self.scalar_mul_signed_limbs(self.ctx.put(cs), ks), as_mpz)

    def scalar_mul_signed_limbs(self, c_l, ks):
        """c^k for device limbs c_l and signed ints |k| < 2^64 (one per column; an int64
        array or a list); c_l is not modified. A negative k takes the inverse of its
        ciphertext (batched on the device)."""
        if isinstance(ks, np.ndarray) and ks.dtype.kind in "iub" and ks.dtype != np.uint64:
            return self.scalar_mul_int64_limbs(c_l, ks)
        ks = _ints(ks)
        _check_scalars(ks)
        if not ks or (min(ks) >= -(1 << 63) and max(ks) < (1 << 63)):
            return self.scalar_mul_int64_limbs(c_l, np.array(ks, dtype=np.int64))
        kabs = [abs(x) for x in ks]  # magnitudes up to 2^64 - 1
        kl = self.ctx.put32(kabs, limbs=2)
        kbits = max(x.bit_length() for x in kabs) or 1
        neg = np.flatnonzero(np.fromiter((x < 0 for x in ks), dtype=bool, count=len(ks)))
        return self.scalar_mul_limbs(self._invert_columns(c_l, neg), kl, kbits)

    def matvec(self, X, c, as_mpz: bool = False) -> np.ndarray:
        """X.T @ c in the exponent: out_j = prod_r c_r^X[r, j] mod n^2 (X int64, shape (R, J))."""
        cs = _ints(c)
        _require_ciphertexts(cs, self.nsq)
        return self.ctx.get(self.matvec_to_limbs(self.ctx.put(cs), X), as_mpz)

    def matvec_to_limbs(self, c_l, X):
        """matvec on device limbs c_l (R columns), leaving the J results on the device."""
        pos, neg = self.matvec_limbs(c_l, np.asarray(X))
        return self.ctx.mulmod(pos, self.ctx.invert(neg))


@lru_cache(maxsize=8)
def _cached(n: int, hs, rand_bits: int, p, q, backend: str) -> PaillierGpu:
    return PaillierGpu(n, hs=hs, rand_bits=rand_bits, p=p, q=q, backend=backend)


def _key(n, hs=None, rand_bits=448, p=None, q=None, backend="auto") -> PaillierGpu:
    b = get_backend(backend).name
    return _cached(int(n), None if hs is None else int(hs), int(rand_bits),
                   None if p is None else int(p), None if q is None else int(q), b)  # fmt: skip


def encrypt(
    n: int,
    hs: int,
    m_ints,
    a_exponents,
    rand_bits: int,
    backend: str = "auto",
    as_mpz: bool = False,
) -> np.ndarray:
    """c_i = (1 + m_i n) * hs^(a_i) mod n^2 (fixed-base comb on hs); numpy object array."""
    return _key(n, hs, rand_bits, backend=backend).encrypt(m_ints, a_exponents, as_mpz)


def decrypt_crt(p: int, q: int, c, backend: str = "auto", as_mpz: bool = False) -> np.ndarray:
    """Plaintexts in [0, n) of ciphertexts c under n = p q (CRT; exponentiations on device)."""
    return _key(int(p) * int(q), p=p, q=q, backend=backend).decrypt(c, as_mpz)


def add(nsq: int, c1, c2, backend: str = "auto", as_mpz: bool = False) -> np.ndarray:
    """Homomorphic addition: c1_i * c2_i mod n^2."""
    a, b = _checked_pair(c1, c2, int(nsq))
    ctx = bi.MontContext(int(nsq), backend)
    return ctx.get(ctx.mulmod(ctx.put(a), ctx.put(b)), as_mpz)


def _nsq_key(nsq: int, backend: str) -> PaillierGpu:
    n = _isqrt_exact(int(nsq))
    return _key(n, backend=backend)


def _isqrt_exact(nsq: int) -> int:
    from math import isqrt

    n = isqrt(nsq)
    if n * n != nsq:
        raise ValueError("nsq is not a perfect square n^2")
    return n


def scalar_mul(nsq: int, c, k, backend: str = "auto", as_mpz: bool = False) -> np.ndarray:
    """c_i^k_i mod n^2 for 64-bit signed k_i (negative k: batch inverse of those c_i)."""
    return _nsq_key(nsq, backend).scalar_mul(c, k, as_mpz)


def sum(nsq: int, c, axis: int | None = None, backend: str = "auto"):  # noqa: A001
    """Homomorphic sum (product of ciphertexts mod n^2) along ``axis`` (None: all)."""
    arr = np.asarray(c, dtype=object)
    key = _nsq_key(nsq, backend)
    if axis is None:
        flat = arr.reshape(-1)
        if flat.size == 0:
            return 1
        return key.ctx.get(key.sum_limbs(key.ctx.put(_ints(flat)), flat.size))[0]
    arr = np.moveaxis(arr, axis, 0)
    K, rest = arr.shape[0], arr.shape[1:]
    if K == 0:
        return np.ones(rest, dtype=object)
    r = key.ctx.get(key.sum_limbs(key.ctx.put(_ints(arr.reshape(K, -1))), K))
    return r.reshape(rest) if rest else r[0]


def matvec(nsq: int, X, c, backend: str = "auto", as_mpz: bool = False) -> np.ndarray:
    """Encrypted X.T @ c: out_j = prod_r c_r^X[r, j] mod n^2, X int64 of shape (rows, J)."""
    return _nsq_key(nsq, backend).matvec(X, c, as_mpz)
