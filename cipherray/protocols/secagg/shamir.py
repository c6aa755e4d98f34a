"""Vectorised t-of-k Shamir sharing of 32-byte secrets over GF(p), p = 2^21 - 9.

A secret (32 bytes) is split into 13 field elements of 20 bits each; every element is
shared with its own random polynomial of degree ``t - 1`` whose constant term is the
element, and share ``j`` (j = 1..k) is the polynomials evaluated at ``x = j``. Any ``t``
shares determine the secret (Lagrange interpolation at 0); any ``t - 1`` shares are
uniformly distributed and independent of it (Shamir's perfect secrecy holds in every
field with more than k elements). Coefficients are uniform in GF(p) from the AES-CTR
PRG (64-bit words reduced mod p: statistical distance below 2^-42 from uniform).

Why a 21-bit prime: products of two field elements are below 2^42, so a dot product of
up to 2048 terms is exact in float64, and sharing many secrets (all clients' seeds in
one call, or one client's two seeds) is one BLAS matrix product against a cached
Vandermonde matrix. Thresholds are therefore limited to ``MAX_THRESHOLD``.

What each party learns: a holder of fewer than ``t`` shares learns nothing about the
secret; whoever collects ``t`` shares learns it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from cipherray.protocols import prg

from .errors import InsufficientShares

PRIME = 2**21 - 9
ELEMENT_BITS = 20
SECRET_BYTES = 32
ELEMENTS_PER_SECRET = -(-8 * SECRET_BYTES // ELEMENT_BITS)  # 13
MAX_THRESHOLD = 2048  # t * (p - 1)^2 < 2^53: float64 dot products stay exact
SHARE_DTYPE = np.dtype(np.uint32)

_BIT_WEIGHTS = (1 << np.arange(ELEMENT_BITS, dtype=np.uint32)).astype(np.uint32)


def secrets_to_elements(secrets: np.ndarray) -> np.ndarray:
    """(N, 32) uint8 secrets -> (N, 13) field elements (20 bits each, little-endian bits)."""
    raw = np.asarray(secrets, dtype=np.uint8).reshape(-1, SECRET_BYTES)
    bits = np.unpackbits(raw, axis=1, bitorder="little")
    pad = ELEMENTS_PER_SECRET * ELEMENT_BITS - bits.shape[1]
    bits = np.pad(bits, ((0, 0), (0, pad))).reshape(-1, ELEMENTS_PER_SECRET, ELEMENT_BITS)
    return (bits.astype(np.uint32) @ _BIT_WEIGHTS).astype(np.uint32)


def elements_to_secrets(elements: np.ndarray) -> np.ndarray:
    """Inverse of :func:`secrets_to_elements`: (N, 13) elements -> (N, 32) uint8."""
    el = np.asarray(elements, dtype=np.uint32).reshape(-1, ELEMENTS_PER_SECRET, 1)
    bits = ((el >> np.arange(ELEMENT_BITS, dtype=np.uint32)) & 1).astype(np.uint8)
    bits = bits.reshape(el.shape[0], -1)[:, : 8 * SECRET_BYTES]
    return np.packbits(bits, axis=1, bitorder="little")


def _check_threshold(threshold: int, n_shares: int) -> None:
    if not 1 <= threshold <= n_shares:
        raise ValueError(f"need 1 <= threshold <= shares, got t={threshold}, k={n_shares}")
    if threshold > MAX_THRESHOLD:
        raise ValueError(f"threshold {threshold} exceeds {MAX_THRESHOLD}")
    if n_shares >= PRIME:
        raise ValueError(f"at most {PRIME - 1} shares in GF({PRIME})")


@lru_cache(maxsize=64)
def _vandermonde(threshold: int, n_shares: int) -> np.ndarray:
    """(k, t) float64 matrix of x^i mod p for x = 1..k, i = 0..t-1."""
    x = np.arange(1, n_shares + 1, dtype=np.uint64)[:, None]
    powers = np.ones((n_shares, threshold), dtype=np.uint64)
    for i in range(1, threshold):
        powers[:, i] = powers[:, i - 1] * x[:, 0] % PRIME
    return powers.astype(np.float64)


def _mod_p_float(products: np.ndarray) -> np.ndarray:
    return (products.astype(np.uint64) % np.uint64(PRIME)).astype(SHARE_DTYPE)


def share(secrets: np.ndarray, threshold: int, n_shares: int) -> np.ndarray:
    """Shares of N 32-byte secrets: (k, N, 13) uint32; row j is the share at x = j + 1."""
    _check_threshold(threshold, n_shares)
    elements = secrets_to_elements(secrets)  # (N, m)
    n, m = elements.shape
    coefficients = np.empty((threshold, n * m), dtype=np.float64)
    coefficients[0] = elements.reshape(-1)
    if threshold > 1:
        words = prg.random_ring(prg.new_seed(), (threshold - 1, n * m))
        coefficients[1:] = words % np.uint64(PRIME)
    shares = _vandermonde(threshold, n_shares) @ coefficients  # exact: < 2^53
    return _mod_p_float(shares).reshape(n_shares, n, m)


@lru_cache(maxsize=16)
def _inverse_table(size: int) -> np.ndarray:
    return np.array([pow(i, PRIME - 2, PRIME) for i in range(size)], dtype=np.uint64)


def _inverses(limit: int) -> np.ndarray:
    """Inverses mod p of 0..limit-1 at least (0 maps to 0), by Fermat, cached."""
    return _inverse_table(1 << max(0, limit - 1).bit_length())


def lagrange_at_zero(points: np.ndarray) -> np.ndarray:
    """Lagrange coefficients at 0 for each row of distinct points: (B, t) -> (B, t) mod p.

    lambda_j = prod_{i != j} x_i / (x_i - x_j); points are small integers (1..k)."""
    x = np.asarray(points, dtype=np.int64)
    if x.ndim == 1:
        return lagrange_at_zero(x[None])[0]
    b, t = x.shape
    limit = int(x.max()) + 1
    inv = _inverses(limit)
    diff = x[:, None, :] - x[:, :, None]  # [b, j, i] = x_i - x_j
    if np.any((diff == 0) & ~np.eye(t, dtype=bool)):
        raise ValueError("Shamir points must be distinct")
    inv_diff = np.where(diff >= 0, inv[np.abs(diff)], (PRIME - inv[np.abs(diff)]) % PRIME)
    factor = (x.astype(np.uint64)[:, None, :] * inv_diff) % PRIME  # x_i / (x_i - x_j)
    factor[:, np.arange(t), np.arange(t)] = 1
    coeff = np.ones((b, t), dtype=np.uint64)
    for i in range(t):
        coeff = coeff * factor[:, :, i] % PRIME
    return coeff


RECONSTRUCT_BATCH = 1024  # sharings per Lagrange batch: bounds the (B, t, t) temporaries


def reconstruct(points: np.ndarray, shares: np.ndarray, threshold: int) -> np.ndarray:
    """Secrets from shares, batched over B independent sharings.

    ``points``: (B, s) share points (x = 1..k) or (s,) for all; ``shares``: (B, s, N, 13)
    or (s, N, 13). Uses the first ``threshold`` shares of each row; raises
    ``InsufficientShares`` when s < threshold. Returns (B, N, 32) or (N, 32) uint8."""
    single = np.ndim(points) == 1
    pts = np.atleast_2d(np.asarray(points))
    sh = np.asarray(shares, dtype=SHARE_DTYPE)
    sh = sh[None] if single else sh
    if pts.shape[1] < threshold:
        raise InsufficientShares(
            f"{pts.shape[1]} shares given, the threshold is {threshold}: the secret is undetermined"
        )
    if threshold > MAX_THRESHOLD:
        raise ValueError(f"threshold {threshold} exceeds {MAX_THRESHOLD}")
    pts, sh = pts[:, :threshold], sh[:, :threshold]
    b, t, n, m = sh.shape
    elements = np.empty((b, n * m), dtype=SHARE_DTYPE)
    for lo in range(0, b, RECONSTRUCT_BATCH):
        hi = min(b, lo + RECONSTRUCT_BATCH)
        lam = lagrange_at_zero(pts[lo:hi]).astype(np.float64)  # (B, t)
        flat = sh[lo:hi].reshape(hi - lo, t, n * m).astype(np.float64)
        elements[lo:hi] = _mod_p_float(np.einsum("bt,btx->bx", lam, flat))  # exact: < 2^53
    secrets = elements_to_secrets(elements.reshape(b * n, m)).reshape(b, n, SECRET_BYTES)
    return secrets[0] if single else secrets
