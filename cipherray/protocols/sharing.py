"""Additive secret sharing over Z_2^64.

A value x (already fixed-point encoded, uint64) is split among n parties as
x = s_0 + s_1 + ... + s_{n-1} (mod 2^64). Any n-1 shares are uniformly random and
independent of x.

Seed-compressed sharing (used by `PartyRef.to(mpc)`):

1. The owner draws one fresh 32-byte seed per other party j from `os.urandom`.
2. Party j's share is PRG(seed_j) (AES-256-CTR), so the owner sends 32 bytes to j
   instead of a whole array.
3. The owner keeps s_owner = x - sum_j PRG(seed_j).

Reconstruction adds all shares mod 2^64. All arithmetic is on uint64 arrays; NumPy's
unsigned arithmetic wraps, which is exactly the ring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cipherray.protocols import prg


def share_with_seeds(x_ring: np.ndarray, n_parties: int) -> tuple[np.ndarray, list[bytes]]:
    """Steps 1-3: the owner's own share and one seed for each of the other n-1 parties."""
    if n_parties < 2:
        raise ValueError("secret sharing needs at least 2 parties")
    seeds = [new_seed() for _ in range(n_parties - 1)]
    return own_share(x_ring, seeds), seeds


def new_seed() -> bytes:
    """A fresh share seed (os.urandom through `prg`)."""
    return prg.new_seed()


def own_share(x_ring: np.ndarray, seeds: Sequence[bytes], overwrite: bool = False) -> np.ndarray:
    """The owner's share: x minus the share that each seed expands to. The keystreams
    are subtracted as they are made (`prg.add_ring`), never stored; with
    `overwrite=True` a contiguous uint64 `x_ring` (that the caller owns) becomes the
    share in place, else a copy does."""
    x_ring = np.asarray(x_ring, dtype=np.uint64)
    inplace = overwrite and x_ring.flags.c_contiguous and x_ring.flags.writeable
    own = x_ring if inplace else np.array(x_ring, dtype=np.uint64, order="C", copy=True)
    return prg.add_ring(own, seeds, [-1] * len(seeds))


def share_from_seed(seed: bytes, shape: Sequence[int]) -> np.ndarray:
    """Step 2 at the receiving party: expand its seed into its share."""
    return prg.random_ring(seed, shape)


def share(x_ring: np.ndarray, n_parties: int) -> list[np.ndarray]:
    """Plain n-way additive sharing (full arrays; used by tests and dealers)."""
    own, seeds = share_with_seeds(x_ring, n_parties)
    shape = np.shape(x_ring)
    return [own] + [share_from_seed(s, shape) for s in seeds]


def reconstruct(shares: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of all shares mod 2^64."""
    if not shares:
        raise ValueError("no shares to reconstruct")
    total = np.array(shares[0], dtype=np.uint64, copy=True)
    for s in shares[1:]:
        s = np.asarray(s, dtype=np.uint64)
        if s.shape != total.shape:
            raise ValueError(f"share shapes differ: {total.shape} vs {s.shape}")
        total += s
    return total
