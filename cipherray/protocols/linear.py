"""Local steps of linear operations on additive shares over Z_2^64.

Each function runs at one party on that party's share (uint64 arrays; arithmetic
wraps mod 2^64). Linear operations need no communication: adding shares adds the
secrets; a public constant is added by the first party only; multiplying every
share by a public integer multiplies the secret.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.protocols import fixedpoint, sharing


def share_owner(x: Any, n_parties: int, frac_bits: int) -> tuple:
    """At the owner: encode, split; returns (own share, (seed, shape) for each other party)."""
    ring = fixedpoint.encode(x, frac_bits, what="value sent to MPC")
    own, seeds = sharing.share_with_seeds(ring, n_parties)
    return (own, *[(seed, ring.shape) for seed in seeds])


def share_receiver(msg: tuple) -> np.ndarray:
    seed, shape = msg
    return sharing.share_from_seed(seed, shape)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.add(a, b, dtype=np.uint64)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.subtract(a, b, dtype=np.uint64)


def neg(a: np.ndarray) -> np.ndarray:
    return np.negative(a, dtype=np.uint64) if a.dtype == np.uint64 else -a


def mul_int(a: np.ndarray, m: Any) -> np.ndarray:
    """Multiply a share by a public integer (scalar or array), wrapping mod 2^64."""
    m_ring = np.asarray(m, dtype=np.int64).astype(np.uint64)
    return np.multiply(a, m_ring, dtype=np.uint64)


def add_public(a: np.ndarray, p_ring: np.ndarray, first: bool) -> np.ndarray:
    """Only the first party adds the encoded public constant."""
    if not first:
        return np.broadcast_to(a, np.broadcast_shapes(a.shape, np.shape(p_ring))).copy()
    return np.add(a, np.asarray(p_ring, dtype=np.uint64), dtype=np.uint64)


def ring_sum(a: np.ndarray, axis: Any) -> np.ndarray:
    return np.asarray(np.sum(a, axis=axis, dtype=np.uint64))


def getitem(a: np.ndarray, key: Any) -> np.ndarray:
    return np.asarray(a[key])


def reshape(a: np.ndarray, shape: Any) -> np.ndarray:
    return a.reshape(shape)


def transpose(a: np.ndarray, axes: Any) -> np.ndarray:
    return np.transpose(a, axes)


def concatenate(*parts: np.ndarray, axis: int = 0) -> np.ndarray:
    return np.concatenate(parts, axis=axis)


def shape_of(a: np.ndarray) -> tuple:
    return tuple(np.shape(a))


def reconstruct_decode(own: np.ndarray, *others: np.ndarray, scale: int) -> np.ndarray:
    """At the receiver of a reveal: add all shares and decode with the public scale.

    A result whose magnitude reaches 2^62 (before scaling) has almost surely wrapped
    around the ring: raise rather than return garbage."""
    total = sharing.reconstruct([own, *others])
    signed = fixedpoint.to_signed(total)
    if signed.size and int(np.max(np.abs(signed.astype(np.float64)))) >= 2**62:
        raise OverflowError(
            "revealed value left the fixed-point range (|x| * scale >= 2^62): an "
            "intermediate result overflowed the 64-bit ring"
        )
    return signed.astype(np.float64) / float(scale)
