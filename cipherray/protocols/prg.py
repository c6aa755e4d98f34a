"""Cryptographic pseudo-random generator for shares, masks and seeds.

Every random ring element in cipherray comes from here: AES-256 in counter mode
(from `cryptography`, AES-NI accelerated) keyed by a 32-byte seed that itself comes
from `os.urandom`. NumPy's generators are never used for anything secret.

Two parties that hold the same seed expand it to the same stream, which is how
pairwise-correlated randomness (a share sent as a 32-byte seed, zero shares) saves
communication.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SEED_BYTES = 32


def new_seed() -> bytes:
    """A fresh 32-byte seed from the operating system's CSPRNG."""
    return os.urandom(SEED_BYTES)


def random_bytes(seed: bytes, nbytes: int, stream: int = 0) -> bytes:
    """`nbytes` pseudo-random bytes: AES-256-CTR keystream under `seed`.

    `stream` selects an independent keystream for the same seed (it is the high
    half of the initial counter block), so one seed can feed several arrays.
    """
    if len(seed) != SEED_BYTES:
        raise ValueError(f"PRG seed must be {SEED_BYTES} bytes, got {len(seed)}")
    if nbytes < 0:
        raise ValueError("nbytes must be >= 0")
    nonce = int(stream).to_bytes(8, "big") + bytes(8)
    enc = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
    return enc.update(bytes(nbytes)) + enc.finalize()


_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)


def random_ring(seed: bytes, shape: int | Sequence[int], stream: int = 0) -> np.ndarray:
    """Uniform elements of Z_2^64 (dtype uint64) of the given shape, from `seed`.

    The keystream is written straight into the result array, 1 MiB at a time."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"PRG seed must be {SEED_BYTES} bytes, got {len(seed)}")
    shape = (shape,) if isinstance(shape, int | np.integer) else tuple(int(s) for s in shape)
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = 8 * count
    # update_into needs room for one extra block beyond the data
    out = np.empty(nbytes + 16, dtype=np.uint8)
    nonce = int(stream).to_bytes(8, "big") + bytes(8)
    enc = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
    view = memoryview(out)
    pos = 0
    while pos < nbytes:
        n = min(_CHUNK, nbytes - pos)
        pos += enc.update_into(_ZEROS[:n] if n < _CHUNK else _ZEROS, view[pos : pos + n + 15])
    enc.finalize()
    return out[:nbytes].view("<u8").reshape(shape)


def fresh_ring(shape: int | Sequence[int]) -> np.ndarray:
    """Uniform elements of Z_2^64 under a fresh OS-random seed."""
    return random_ring(new_seed(), shape)
