"""Multi-party PSI (n >= 2 parties) by ECDH blinding around a ring, with a leader.

Threat model: semi-honest, non-colluding parties P_0..P_{n-1}; DDH on Curve25519/twist
with ``H`` a random oracle. (Collusion matters: the leader together with a party P_j
can map F_j back to P_j's identifiers and so learn which of them lie in each other
party's set; undoing a set's blinding needs every key, its origin's included.)

What each party learns:
* Every party: the intersection of *all* sets, as its own input rows, in a common order
  (ascending fully blinded value, pseudo-random), so outputs line up row by row; and the
  sizes |X_j| of the sets it blinds (all of them).
* The leader additionally holds all n fully blinded sets, so it learns the size of the
  intersection of *every subset* of parties' sets (e.g. |X_1 ∩ X_2| for two non-leader
  parties), but not which identifiers they are, nor anyone's row order (each origin
  shuffles its own set in step 1 and the ring keeps that order). Protocols that hide the
  partial intersections from the leader need OPPRF/OT machinery beyond this module.
* Every set a party sees in the ring is blinded by at least one key it does not hold
  (its origin's), so it looks pseudo-random; only the leader compares sets.

Steps (ring order P_i -> P_{i+1 mod n}; all n sets travel at the same time):

1. ``step1_blind_own`` (from ``ecdh``) at every P_i: ``S_i = shuffle(k_i * H(X_i))``,
   keep the permutation.
2. ``step2_ring_blind`` for rounds 1..n-1: each party passes the set it holds to its ring
   successor, which multiplies it by its own key in place (order kept). After n-1
   rounds P_{i-1} holds ``F_i = (prod_j k_j) * H(X_i)``.
3. P_{i-1} sends ``F_i`` to the leader (kept if it is the leader).
4. Leader: ``step3_intersect([F_0..F_{n-1}])`` -> for each origin i the positions in F_i
   of the common values, in the common order; positions_i to P_i.
5. Every P_i: ``step_rows(positions_i, perm_i, rows_i)`` (from ``ecdh``).

Cost: n * sum_i |X_i| scalar multiplications, n - 1 ring rounds + 2 flights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._common import IdInput, Transcript, as_ids, blind_many, hash_and_blind_many
from .curve import POINT_DTYPE, BlindingKey, Mapper, blind_chunked, new_salt
from .curve import random_permutation as _perm
from .ecdh import DEFAULT_CHUNK, step1_blind_own, step_rows
from .matching import _prefix64

__all__ = [
    "step1_blind_own",
    "step2_ring_blind",
    "step3_intersect",
    "step_rows",
    "run_multiparty_psi_local",
]


def step2_ring_blind(
    message: np.ndarray,
    key: BlindingKey,
    mapper: Mapper | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """Step 2 (each party, each round): the set received from the ring predecessor,
    blinded by this party's key, order kept; passed on to the successor."""
    return blind_chunked(message, key, mapper, chunk_size)


def step3_intersect(full_sets: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Step 4 (leader): for every fully blinded set, the positions of the values common
    to all sets, in ascending order of the value (the common order)."""
    if not full_sets:
        raise ValueError("no sets to intersect")
    for s in full_sets:
        if s.dtype != POINT_DTYPE:
            raise TypeError("step3_intersect expects point arrays (dtype V32)")
    common = full_sets[0].view("S32")
    for s in full_sets[1:]:
        common = np.intersect1d(common, s.view("S32"), assume_unique=True)
    out = []
    for s in full_sets:
        sv = s.view("S32")
        order = np.argsort(sv, kind="stable")
        pos = np.searchsorted(sv[order], common)
        out.append(order[pos].astype(np.int64))
    return out


@dataclass
class MultiPsiResult:
    rows: list[np.ndarray]  # per party, its input rows of the intersection (common order)
    size: int
    transcript: Transcript
    full_sets: list[np.ndarray] | None = None  # the leader's view (for leakage tests)


def run_multiparty_psi_local(
    id_sets: Sequence[IdInput],
    *,
    leader: int = 0,
    salt: bytes | None = None,
    mapper: Mapper | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> MultiPsiResult:
    """Run the steps in-process for ``len(id_sets) >= 2`` parties (named P0, P1, ...)."""
    n = len(id_sets)
    if n < 2:
        raise ValueError("multi-party PSI needs at least 2 parties")
    if not 0 <= leader < n:
        raise ValueError(f"leader must be a party index in [0, {n})")
    inputs = [as_ids(s, f"P{i}") for i, s in enumerate(id_sets)]
    salt = salt or new_salt()
    keys = [BlindingKey.generate() for _ in range(n)]
    tr = Transcript()
    # step 1 (all parties in one parallel phase)
    perms = [_perm(len(ids)) for ids, _ in inputs]
    held = hash_and_blind_many(
        [(ids[p], salt, k) for (ids, _), p, k in zip(inputs, perms, keys)], mapper, chunk_size
    )
    # held[i] is the set of origin (i - r) mod n after round r, held at P_i
    for _ in range(1, n):  # step 2: n - 1 ring rounds
        for i in range(n):
            tr.send(f"P{i}->P{(i + 1) % n}", held[i])
        held = [held[(i - 1) % n] for i in range(n)]  # P_i received from P_{i-1}
        held = blind_many([(held[i], keys[i]) for i in range(n)], mapper, chunk_size)
    # now P_i holds F_{(i - (n-1)) mod n} = F_{(i+1) mod n}
    full = [held[(o - 1) % n] for o in range(n)]
    for o in range(n):  # step 3
        holder = (o - 1) % n
        if holder != leader:
            tr.send(f"P{holder}->P{leader}", full[o])
    positions = step3_intersect(full)  # step 4
    rows = []
    for i, ((_, r), p, pos) in enumerate(zip(inputs, perms, positions)):
        if i != leader:
            tr.send(f"P{leader}->P{i}", pos)
        rows.append(step_rows(pos, p, r))  # step 5
    return MultiPsiResult(rows, len(positions[0]), tr, full)


def leader_view_subset_sizes(full_sets: Sequence[np.ndarray]) -> dict[tuple[int, ...], int]:
    """What the leader *can* compute from the fully blinded sets: the intersection size of
    every subset of >= 2 parties (used by tests to pin down the documented leakage)."""
    from itertools import combinations

    keys = [set(_prefix64(s).tolist()) for s in full_sets]
    out = {}
    for k in range(2, len(full_sets) + 1):
        for comb in combinations(range(len(full_sets)), k):
            inter = set.intersection(*(keys[c] for c in comb))
            out[comb] = len(inter)
    return out
