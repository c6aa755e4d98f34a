"""Masks in Z_2^32 / Z_2^64 expanded from 32-byte seeds by the AES-CTR PRG.

``expand(seed, d, bits)`` is ``d`` uniform ring elements: the self mask PRG(b_u) and
the pairwise masks PRG(s_uv) of SecAgg. Pair masks are added by the client with the
smaller id and subtracted by the other (``pair_sign``), so they cancel in a sum that
contains both.

What each party learns: nothing by itself; a masked vector x + PRG(seed) is uniform to
whoever does not hold the seed.
"""

from __future__ import annotations

import numpy as np

from cipherray.protocols import prg

from .quantize import ring_dtype


def expand(seed: bytes, length: int, bits: int = 32) -> np.ndarray:
    """``length`` uniform elements of Z_2^bits from ``seed``."""
    dtype = ring_dtype(bits)
    return np.frombuffer(prg.random_bytes(seed, dtype.itemsize * length), dtype="<" + dtype.char)


def pair_sign(u: int, v: int) -> int:
    """+1 when client u adds the mask it shares with v, -1 when it subtracts it."""
    return 1 if u < v else -1
