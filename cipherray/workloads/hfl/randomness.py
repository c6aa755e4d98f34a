"""Seeded randomness for federated-learning experiments, drawn from the project's PRG.

Partitioning public experiment data, shuffling local minibatches, initialising model
weights and sampling clients all draw from AES-256-CTR keystreams
(`cipherray.protocols.prg`), never from NumPy's generators. A seed is either 32 bytes
or an integer (hashed to 32 bytes, for reproducible experiments); `None` means a fresh
seed from the operating system. Sub-seeds for separate purposes (a round, an epoch, a
class) are derived by hashing the seed with labels, so streams never overlap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from cipherray.protocols import prg

Seed = bytes | int | None

_DOMAIN = b"cipherray.hfl"


def seed_bytes(seed: Seed) -> bytes:
    """A 32-byte PRG seed: given bytes, the hash of an integer, or a fresh OS seed."""
    if seed is None:
        return prg.new_seed()
    if isinstance(seed, bytes):
        if len(seed) != prg.SEED_BYTES:
            raise ValueError(f"seed must be {prg.SEED_BYTES} bytes, got {len(seed)}")
        return seed
    if isinstance(seed, int | np.integer):
        return hashlib.sha256(_DOMAIN + b"/int/" + str(int(seed)).encode()).digest()
    raise TypeError(f"seed must be bytes, int or None, not {type(seed).__name__}")


def derive(seed: Seed, *labels: object) -> bytes:
    """A sub-seed for one purpose: SHA-256 of the seed and the labels."""
    h = hashlib.sha256(_DOMAIN + b"/derive/" + seed_bytes(seed))
    for label in labels:
        h.update(b"/" + repr(label).encode())
    return h.digest()


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(s) for s in shape)


def uniform(seed: Seed, shape: int | Sequence[int]) -> np.ndarray:
    """Floats uniform on [0, 1) with 53 random bits each."""
    words = prg.random_ring(seed_bytes(seed), _shape(shape))
    return (words >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def uniform_open(seed: Seed, shape: int | Sequence[int]) -> np.ndarray:
    """Floats uniform on (0, 1): safe to take the logarithm of."""
    return uniform(seed, shape) + 0.5 / (1 << 53)


def permutation(seed: Seed, n: int) -> np.ndarray:
    """A uniformly random permutation of range(n) (argsort of random 64-bit keys)."""
    return np.argsort(prg.random_ring(seed_bytes(seed), int(n)), kind="stable").astype(np.int64)


def normal(seed: Seed, shape: int | Sequence[int]) -> np.ndarray:
    """Standard normal floats (Box-Muller on two uniform streams)."""
    shape = _shape(shape)
    s = seed_bytes(seed)
    u1 = uniform_open(derive(s, "normal", 1), shape)
    u2 = uniform(derive(s, "normal", 2), shape)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def log_gamma_variates(seed: Seed, alpha: float, shape: int | Sequence[int]) -> np.ndarray:
    """Logarithms of Gamma(alpha, 1) variates (Marsaglia-Tsang, vectorised rejection).

    Returned in log space so that tiny shapes (alpha << 1, whose variates underflow
    to zero) still normalise into a Dirichlet sample.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    shape = _shape(shape)
    n = int(np.prod(shape, dtype=np.int64))
    s = seed_bytes(seed)
    a = alpha + 1.0 if alpha < 1.0 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    out = np.empty(n)
    pending = np.arange(n)
    attempt = 0
    while pending.size:
        z = normal(derive(s, "gamma-z", attempt), pending.size)
        u = uniform_open(derive(s, "gamma-u", attempt), pending.size)
        v = (1.0 + c * z) ** 3
        ok = (v > 0) & (np.log(u) < 0.5 * z**2 + d - d * v + d * np.log(np.where(v > 0, v, 1.0)))
        out[pending[ok]] = np.log(d) + np.log(v[ok])
        pending = pending[~ok]
        attempt += 1
    if alpha < 1.0:  # Gamma(alpha) = Gamma(alpha + 1) * U^(1 / alpha)
        out += np.log(uniform_open(derive(s, "gamma-boost"), n)) / alpha
    return out.reshape(shape)


def dirichlet(seed: Seed, alpha: float, n: int, size: int | None = None) -> np.ndarray:
    """Dirichlet(alpha * 1_n) samples: shape (n,), or (size, n) rows summing to 1."""
    rows = 1 if size is None else int(size)
    logs = log_gamma_variates(seed, alpha, (rows, int(n)))
    logs -= logs.max(axis=1, keepdims=True)
    p = np.exp(logs)
    p /= p.sum(axis=1, keepdims=True)
    return p[0] if size is None else p
