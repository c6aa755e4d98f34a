"""Masks in Z_2^32 / Z_2^64 expanded from 32-byte seeds by the AES-CTR PRG.

``expand(seed, d, bits)`` is ``d`` uniform ring elements: the self mask PRG(b_u) and
the pairwise masks PRG(s_uv) of SecAgg. Pair masks are added by the client with the
smaller id and subtracted by the other (``pair_sign``), so they cancel in a sum that
contains both.

``expand_many`` and ``add_masks`` do the same for many seeds in one native call (the
AES-NI kernel of :mod:`cipherray.cpu_kernels.aes_ctr`, or ``cryptography`` where it
cannot run): a client with ~60 neighbours adds its masks without 60 Python-level calls.

What each party learns: nothing by itself; a masked vector x + PRG(seed) is uniform to
whoever does not hold the seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cipherray.cpu_kernels import aes_ctr
from cipherray.protocols import prg

from .quantize import ring_dtype


def expand(seed: bytes, length: int, bits: int = 32) -> np.ndarray:
    """``length`` uniform elements of Z_2^bits from ``seed``."""
    dtype = ring_dtype(bits)
    return np.frombuffer(prg.random_bytes(seed, dtype.itemsize * length), dtype="<" + dtype.char)


def expand_many(seeds: Sequence[bytes] | np.ndarray, length: int, bits: int = 32) -> np.ndarray:
    """(len(seeds), length) array: row i is ``expand(seeds[i], length, bits)``."""
    dtype = ring_dtype(bits)
    stream = aes_ctr.keystreams(aes_ctr.as_seeds(seeds), dtype.itemsize * length)
    return stream.view("<" + dtype.char)


def add_masks(
    acc: np.ndarray,
    seeds: Sequence[bytes] | np.ndarray,
    signs: Sequence[int] | np.ndarray,
    bits: int = 32,
) -> np.ndarray:
    """``acc`` += sum_i ``signs[i]`` * ``expand(seeds[i], len(acc), bits)`` in place, mod
    2^bits (sign 1 adds, -1 subtracts, 0 skips); returns ``acc``."""
    ring_dtype(bits)  # the ring check, with its message
    return aes_ctr.masked_sum(aes_ctr.as_seeds(seeds), signs, len(acc), bits, out=acc)


def pair_sign(u: int, v: int) -> int:
    """+1 when client u adds the mask it shares with v, -1 when it subtracts it."""
    return 1 if u < v else -1
