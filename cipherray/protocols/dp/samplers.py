"""Exact samplers for differential privacy over a cryptographic PRG.

Which sampler and why
---------------------
Noise comes from *exact* discrete samplers (Canonne, Kamath & Steinke, "The Discrete
Gaussian for Differential Privacy", NeurIPS 2020), driven by AES-256-CTR keystream
(`cipherray.protocols.prg`) under a 32-byte seed from `os.urandom`:

- `bernoulli_exp`: Bernoulli(exp(-γ)) for rational γ = num/den (CKS Algorithm 1);
- `discrete_laplace`: P(x) ∝ exp(-|x|/scale) on Z, rational scale (CKS Algorithm 2);
- `discrete_gaussian`: P(x) ∝ exp(-x²/(2σ²)) on Z, rational σ² (CKS Algorithm 3,
  rejection from a discrete Laplace).

Every decision is a comparison of uniform *integers* (rejection-sampled, so without
modulo bias) with integer numerators; no floating-point number is computed on the way
to a sample. The output distribution is therefore exactly the stated one, up to the
PRG's indistinguishability from uniform. Textbook floating-point Laplace/Gaussian
samplers do not have this property: the set of doubles they can output depends on the
secret value, which breaks differential privacy outright (Mironov, "On significance of
the least significant bits for differential privacy", CCS 2012). NumPy's generators are
never used: they are predictable and their float samplers have the same flaw.

Parameters given as floats are converted to rationals *rounded up* to a multiple of
2^-16 (`as_rational`), so a sampler never adds less noise than asked; ints and
`Fraction`s are used exactly. Sampling time is random (rejection loops) and reveals
how many rounds a batch needed, not the samples themselves.

All samplers are vectorised: they draw a batch for every unfinished entry, accept or
reject it with array operations, and loop only over the entries still unfinished.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from cipherray.protocols import prg

__all__ = [
    "CsprngSource",
    "as_rational",
    "bernoulli_exp",
    "discrete_gaussian",
    "discrete_laplace",
    "uniform_below",
]

_INT64_SAFE = 1 << 62  # bounds below this stay in int64 arithmetic
_RATIONAL_GRID = 1 << 16

Shape = int | Sequence[int]


class CsprngSource:
    """Uniform 64-bit words from AES-256-CTR under a seed from `os.urandom`.

    Each call to `words` reads a fresh keystream (a new `stream` index of the seed), so
    no word is ever used twice, also across threads; a process that forks gets a fresh
    default source. Pass `seed` only for reproducible tests."""

    def __init__(self, seed: bytes | None = None):
        self._seed = prg.new_seed() if seed is None else bytes(seed)
        if len(self._seed) != prg.SEED_BYTES:
            raise ValueError(f"seed must be {prg.SEED_BYTES} bytes")
        self._stream = 0
        self._lock = threading.Lock()

    def words(self, n: int) -> np.ndarray:
        """`n` uniform uint64 words."""
        with self._lock:  # a stream index is never handed out twice
            stream = self._stream
            self._stream += 1
        return prg.random_ring(self._seed, int(n), stream=stream)

    def bits(self, n: int) -> np.ndarray:
        """`n` uniform bits (bool)."""
        w = self.words((int(n) + 63) // 64)
        return np.unpackbits(w.view(np.uint8))[: int(n)].astype(bool)


_DEFAULT: CsprngSource | None = None
_DEFAULT_PID = -1


def _source(source: CsprngSource | None) -> CsprngSource:
    global _DEFAULT, _DEFAULT_PID
    if source is not None:
        return source
    if _DEFAULT is None or _DEFAULT_PID != os.getpid():  # never share a stream after fork
        _DEFAULT, _DEFAULT_PID = CsprngSource(), os.getpid()
    return _DEFAULT


def as_rational(x: int | float | Fraction, grid: int = _RATIONAL_GRID) -> Fraction:
    """`x` as an exact positive rational: ints and Fractions unchanged, floats rounded up
    to a multiple of 1/grid (so the noise parameter never shrinks)."""
    if isinstance(x, bool):
        raise TypeError("expected a number, got bool")
    if isinstance(x, int | Fraction):
        r = Fraction(x)
    else:
        f = Fraction(float(x))
        r = Fraction(math.ceil(f * grid), grid)
    if r <= 0:
        raise ValueError(f"noise parameter must be positive, got {x}")
    return r


def _count(shape: Shape) -> tuple[tuple[int, ...], int]:
    shape = (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(s) for s in shape)
    return shape, int(np.prod(shape, dtype=np.int64))


def _uniform_small(bound: np.ndarray, src: CsprngSource) -> np.ndarray:
    """Uniform in [0, bound_i) for uint64 bounds 1 <= bound_i < 2^64 (OpenBSD
    arc4random_uniform: reject words below 2^64 mod bound, then reduce)."""
    bound = np.asarray(bound, dtype=np.uint64)
    threshold = (np.uint64(0) - bound) % bound  # = 2^64 mod bound
    out = np.empty(bound.shape, dtype=np.uint64)
    todo = np.arange(bound.size)
    flat_b, flat_t = bound.reshape(-1), threshold.reshape(-1)
    flat_out = out.reshape(-1)
    while todo.size:
        w = src.words(todo.size)
        ok = w >= flat_t[todo]
        flat_out[todo[ok]] = w[ok] % flat_b[todo[ok]]
        todo = todo[~ok]
    return out


def _uniform_big(bound: int, n: int, src: CsprngSource) -> np.ndarray:
    """Uniform Python ints in [0, bound) for a large scalar bound (object array):
    draw bound.bit_length() random bits, reject values >= bound."""
    nbits = bound.bit_length()
    nwords = (nbits + 63) // 64
    mask = (1 << nbits) - 1
    out = np.empty(n, dtype=object)
    todo = np.arange(n)
    while todo.size:
        raw = src.words(todo.size * nwords).reshape(todo.size, nwords)
        vals = [int.from_bytes(row.tobytes(), "little") & mask for row in raw]
        ok = np.fromiter((v < bound for v in vals), dtype=bool, count=len(vals))
        for i, v in zip(todo[ok], (v for v, k in zip(vals, ok) if k)):
            out[i] = v
        todo = todo[~ok]
    return out


def uniform_below(
    bound: int | np.ndarray, shape: Shape | None = None, source: CsprngSource | None = None
) -> np.ndarray:
    """Uniform integers in [0, bound), without modulo bias.

    `bound` is a positive int (then `shape` gives the output shape) or an array of
    positive ints below 2^64 (one bound per entry). Scalar bounds of 2^62 and above
    return an object array of Python ints."""
    src = _source(source)
    if isinstance(bound, np.ndarray):
        if bound.size and int(bound.min()) < 1:
            raise ValueError("bounds must be >= 1")
        return _uniform_small(bound.astype(np.uint64), src).astype(np.int64)
    bound = int(bound)
    if bound < 1:
        raise ValueError("bound must be >= 1")
    shp, n = _count(shape if shape is not None else ())
    if bound < _INT64_SAFE:
        b = np.full(n, bound, dtype=np.uint64)
        return _uniform_small(b, src).astype(np.int64).reshape(shp)
    return _uniform_big(bound, n, src).reshape(shp)


def _bernoulli_ratio(num: np.ndarray, den: int, src: CsprngSource) -> np.ndarray:
    """Bernoulli(num_i / den) for 0 <= num_i <= den (exact)."""
    u = uniform_below(den, num.shape[0], src)
    return np.asarray(u < num, dtype=bool)


def _bern_exp_unit(num: np.ndarray, den: int, src: CsprngSource) -> np.ndarray:
    """Bernoulli(exp(-num_i/den)) for 0 <= num_i/den <= 1 (CKS Algorithm 1):
    K = 1; while Bernoulli(γ/K): K += 1; return K odd. Bernoulli(γ/K) is drawn as
    Bernoulli(γ) AND Bernoulli(1/K), which keeps every bound at most max(den, K)."""
    n = num.shape[0]
    k = np.ones(n, dtype=np.int64)
    result = np.empty(n, dtype=bool)
    todo = np.arange(n)
    while todo.size:
        a = _bernoulli_ratio(num[todo], den, src)
        a &= uniform_below(k[todo], source=src) == 0
        stop = todo[~a]
        result[stop] = (k[stop] % 2) == 1
        todo = todo[a]
        k[todo] += 1
    return result


def _bern_exp_one(n: int, src: CsprngSource) -> np.ndarray:
    """n draws of Bernoulli(exp(-1))."""
    return _bern_exp_unit(np.ones(n, dtype=np.int64), 1, src)


def bernoulli_exp(
    num: int | np.ndarray, den: int, source: CsprngSource | None = None
) -> np.ndarray:
    """Bernoulli(exp(-num_i/den)) for integers num_i >= 0 and den >= 1, exactly.

    γ = k + r/den with k = num // den: the draw is 1 iff k draws of Bernoulli(exp(-1))
    and one of Bernoulli(exp(-r/den)) are all 1 (CKS Algorithm 1 for γ > 1)."""
    src = _source(source)
    den = int(den)
    if den < 1:
        raise ValueError("den must be >= 1")
    arr = np.asarray(num)
    shape = arr.shape
    flat = arr.reshape(-1)
    if flat.size and (min(flat) if flat.dtype == object else flat.min()) < 0:
        raise ValueError("num must be >= 0")
    if flat.dtype != object and den < _INT64_SAFE:
        flat = flat.astype(np.int64)
    whole, rem = flat // den, flat % den
    alive = np.ones(flat.size, dtype=bool)
    todo = np.flatnonzero(whole > 0)
    left = whole[todo]
    while todo.size:  # each round kills about 63% of the survivors
        ok = _bern_exp_one(todo.size, src)
        alive[todo[~ok]] = False
        left = left[ok] - 1
        todo = todo[ok]
        more = left > 0
        todo, left = todo[more], left[more]
    idx = np.flatnonzero(alive)
    if idx.size:
        alive[idx] = _bern_exp_unit(rem[idx], den, src)
    return alive.reshape(shape)


def _geometric_exp1(n: int, src: CsprngSource) -> np.ndarray:
    """Number of successes of Bernoulli(exp(-1)) before the first failure."""
    v = np.zeros(n, dtype=np.int64)
    todo = np.arange(n)
    while todo.size:
        ok = _bern_exp_one(todo.size, src)
        todo = todo[ok]
        v[todo] += 1
    return v


def _discrete_laplace_flat(t: int, s: int, n: int, src: CsprngSource) -> np.ndarray:
    """n draws from the discrete Laplace with scale t/s (CKS Algorithm 2)."""
    out = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    while todo.size:
        m = todo.size
        u = uniform_below(t, m, src) if t > 1 else np.zeros(m, dtype=np.int64)
        d = bernoulli_exp(u, t, src)  # accept U with probability exp(-U/t)
        v = _geometric_exp1(int(d.sum()), src)
        x = u[d] + t * v
        y = x // s
        neg = src.bits(y.size)
        ok = ~(neg & (y == 0))  # reject the "-0" so that 0 is not counted twice
        done = todo[d][ok]
        out[done] = np.where(neg[ok], -y[ok], y[ok])
        keep = np.ones(m, dtype=bool)
        keep[np.flatnonzero(d)[ok]] = False
        todo = todo[keep]
    return out


def discrete_laplace(
    scale: int | float | Fraction, shape: Shape = (), source: CsprngSource | None = None
) -> np.ndarray:
    """Exact samples (int64) with P(x) ∝ exp(-|x| / scale), x ∈ Z.

    Adding it to an integer query of L1 sensitivity Δ is (Δ/scale)-DP."""
    r = as_rational(scale)
    shp, n = _count(shape)
    if r.numerator >= _INT64_SAFE or r.denominator >= _INT64_SAFE:
        raise ValueError("scale's numerator and denominator must be below 2^62")
    return _discrete_laplace_flat(r.numerator, r.denominator, n, _source(source)).reshape(shp)


def discrete_gaussian(
    sigma2: int | float | Fraction, shape: Shape = (), source: CsprngSource | None = None
) -> np.ndarray:
    """Exact samples (int64) with P(x) ∝ exp(-x² / (2·sigma2)), x ∈ Z.

    `sigma2` is the variance *parameter* σ² (the actual variance is slightly below it).
    Adding it to an integer query of L2 sensitivity Δ is (Δ²/(2σ²))-zCDP and at least as
    private as the continuous Gaussian mechanism with the same σ (CKS Theorem 4/7)."""
    s2 = as_rational(sigma2)
    p, q = s2.numerator, s2.denominator
    src = _source(source)
    shp, n = _count(shape)
    t = math.isqrt(p // q) + 1  # floor(σ) + 1
    if t >= _INT64_SAFE:
        raise ValueError("sigma2 too large")
    den = 2 * p * q * t * t  # γ = (q·t·|Y| - p)² / den
    out = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    while todo.size:
        y = _discrete_laplace_flat(t, 1, todo.size, src)
        small = q * t < (1 << 31) and p < _INT64_SAFE and int(np.abs(y).max(initial=0)) < (1 << 31)
        a = q * t * np.abs(y) - p if small else None
        if a is not None and int(np.abs(a).max(initial=0)) < (1 << 31) and den < _INT64_SAFE:
            num = a * a
        else:  # exact Python-int arithmetic where int64 could overflow
            ao = np.abs(y).astype(object) * (q * t) - p
            num = ao * ao
        c = bernoulli_exp(num, den, src)
        out[todo[c]] = y[c]
        todo = todo[~c]
    return out.reshape(shp)
