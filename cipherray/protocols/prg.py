"""Cryptographic pseudo-random generator for shares, masks and seeds.

Every random ring element in cipherray comes from here: AES-256 in counter mode
keyed by a 32-byte seed that itself comes from `os.urandom`. NumPy's generators are
never used for anything secret. Ring elements come from the AES-NI kernel
(`cpu_kernels.aes_ctr`, written straight into the result, or added into an array in
place by `add_ring`) where it runs, else from `cryptography`: the same keystream bit
for bit (tests/test_prg_kernel.py).

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


def _aes():
    """The AES-NI kernel module when it runs here, else None (checked on every call:
    `cpu_kernels.set_enabled` may turn it off)."""
    from cipherray.cpu_kernels import aes_ctr

    return aes_ctr if aes_ctr.available() else None


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(s) for s in shape)


def public_permutation(label: str, n: int) -> np.ndarray:
    """A permutation of range(n) that every party derives alike from a public label
    (e.g. a run's seed and an epoch): the order of AES-CTR keystream values under
    SHA-256(label). Not secret; reproducible without a NumPy generator."""
    import hashlib

    seed = hashlib.sha256(label.encode()).digest()
    return np.argsort(random_ring(seed, (int(n),)), kind="stable")


def random_ring(seed: bytes, shape: int | Sequence[int], stream: int = 0) -> np.ndarray:
    """Uniform elements of Z_2^64 (dtype uint64) of the given shape, from `seed`.

    The keystream is written straight into the result array (by the AES-NI kernel in
    one call, else 1 MiB at a time)."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"PRG seed must be {SEED_BYTES} bytes, got {len(seed)}")
    shape = _shape(shape)
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = 8 * count
    aes = _aes()
    if aes is not None and count:
        seeds = np.frombuffer(bytes(seed), dtype=np.uint8).reshape(1, SEED_BYTES)
        return aes.keystreams(seeds, nbytes, stream)[0].view("<u8").reshape(shape)
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


def add_ring(
    out: np.ndarray, seeds: Sequence[bytes], signs: Sequence[int], stream: int = 0
) -> np.ndarray:
    """`out` (uint64, C-contiguous, writeable) += sum_i signs[i] * random_ring(seeds[i],
    out.shape, stream), in place: the keystreams are added (sign 1) or subtracted (-1)
    as they are made (AES-NI kernel), or one array at a time (`cryptography`). Returns
    `out`."""
    if not (
        isinstance(out, np.ndarray)
        and out.dtype == np.uint64
        and out.flags.c_contiguous
        and out.flags.writeable
    ):
        raise ValueError("add_ring needs a writeable C-contiguous uint64 array")
    seeds, signs = list(seeds), [int(s) for s in signs]
    if len(seeds) != len(signs) or any(s not in (-1, 0, 1) for s in signs):
        raise ValueError("add_ring needs one sign in {-1, 0, 1} per seed")
    for seed in seeds:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"PRG seed must be {SEED_BYTES} bytes, got {len(seed)}")
    aes = _aes()
    if aes is not None:
        flat = out.reshape(-1)  # a view: out is contiguous
        aes.masked_sum(aes.as_seeds([bytes(s) for s in seeds]), signs, flat.size, 64, stream, flat)
        return out
    for seed, sign in zip(seeds, signs):
        if sign:
            (np.add if sign > 0 else np.subtract)(
                out, random_ring(seed, out.shape, stream), out=out
            )
    return out


def fresh_ring(shape: int | Sequence[int]) -> np.ndarray:
    """Uniform elements of Z_2^64 under a fresh OS-random seed."""
    return random_ring(new_seed(), shape)
