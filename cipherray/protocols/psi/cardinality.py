"""PSI-cardinality: the receiver A learns only |X ∩ Y| (ECDH on X25519).

Threat model: semi-honest A and B; DDH on Curve25519/twist, ``H`` a random oracle.

What each party learns: A learns |X ∩ Y| and |Y|; B learns |X|. Nothing else: B returns
A's doubly blinded set *shuffled* (step 2), so A cannot tell which of its own elements
matched, only how many did. (B's step-1 message is shuffled too, though without A's
per-element matching it would leak nothing anyway.)

Steps:

1. ``step1_blind_own`` (from ``ecdh``) at A and B: ``M_A = shuffle(k_A * H(X))`` to B,
   ``M_B = shuffle(k_B * H(Y))`` to A.
2. B: ``step2_double_blind_shuffled(M_A, k_B)`` -> ``D_A = shuffle'(k_B * M_A)`` to A
   (fresh permutation, discarded). A: ``D_B = step2_double_blind(M_B, k_A)`` locally.
3. A: ``step3_count(D_A, D_B)`` = number of equal values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import IdInput, Transcript, as_ids, blind_many, hash_and_blind_many
from .curve import BlindingKey, Mapper, blind_chunked, new_salt
from .curve import random_permutation as _perm
from .ecdh import DEFAULT_CHUNK, step1_blind_own, step2_double_blind
from .matching import count_matches

__all__ = [
    "step1_blind_own",
    "step2_double_blind",
    "step2_double_blind_shuffled",
    "step3_count",
    "run_psi_cardinality_local",
]


def step2_double_blind_shuffled(
    peer_message: np.ndarray,
    key: BlindingKey,
    mapper: Mapper | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """Step 2 (B): ``key * M`` in a fresh random order, so positions reveal nothing."""
    out = blind_chunked(peer_message, key, mapper, chunk_size)
    return out[_perm(len(out))]


def step3_count(own_double: np.ndarray, peer_double: np.ndarray) -> int:
    """Step 3 (A): the intersection size."""
    return count_matches(own_double, peer_double)


@dataclass
class CardinalityResult:
    size: int
    transcript: Transcript


def run_psi_cardinality_local(
    ids_a: IdInput,
    ids_b: IdInput,
    *,
    salt: bytes | None = None,
    mapper: Mapper | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> CardinalityResult:
    """Run the steps in-process; returns what A learns (the size) and the transcript."""
    xa, _ = as_ids(ids_a, "A")
    xb, _ = as_ids(ids_b, "B")
    salt = salt or new_salt()
    key_a, key_b = BlindingKey.generate(), BlindingKey.generate()
    tr = Transcript()
    m_a, m_b = hash_and_blind_many(
        [(xa[_perm(len(xa))], salt, key_a), (xb[_perm(len(xb))], salt, key_b)],
        mapper,
        chunk_size,
    )
    tr.send("A->B", m_a)
    tr.send("B->A", m_b)
    d_a, d_b = blind_many([(m_a, key_b), (m_b, key_a)], mapper, chunk_size)
    d_a = d_a[_perm(len(d_a))]  # B's shuffle before returning (step 2)
    tr.send("B->A", d_a)
    return CardinalityResult(step3_count(d_a, d_b), tr)
