"""Two-party ECDH-PSI on X25519 (Meadows / Huberman-Franklin-Hogg DH-PSI).

Threat model: semi-honest (honest-but-curious) parties A and B that do not deviate
from the protocol; security rests on DDH in the prime-order subgroups of Curve25519 and
its twist, with ``H`` a random oracle (see ``curve``). Not secure against a malicious
peer (it could, e.g., send chosen points or, in ``receiver="both"`` mode, report a wrong
intersection to B).

Roles: the *receiver* R computes the match; the *sender* S does not. With
``receiver="both"`` R = A and A forwards B's matched positions in step 4; with
``receiver="B"`` the roles of A and B are swapped.

What each party learns:
* R: the intersection, as its own input rows, and |Y| (the size of S's set after dedup).
* S: |X| only (and, with ``receiver="both"``, the intersection as its own rows).
* Order: each party shuffles its own blinded set (step 1) before sending, so positions
  of matched elements reveal nothing about the other's row order; step 2 keeps the
  order of the peer's message (R must map results back, and S cannot link the values
  to anything since it lacks R's key). The common output order is ascending in the
  doubly blinded value: pseudo-random, known to R, and fed to S as its order in step 4.
* Neither learns the other's non-matching identifiers (they stay blinded under a key it
  lacks). Duplicate identifiers never leave a party (``prepare_ids`` dedups first).

Steps (``k_A``, ``k_B`` fresh scalars, ``salt`` a per-run public random value both use):

1. ``step1_blind_own`` at A and at B: ``M_A = shuffle(k_A * H(x) for x in X)``,
   ``M_B = shuffle(k_B * H(y) for y in Y)``; A sends ``M_A`` to B, B sends ``M_B`` to A.
   (32 bytes per item each way.)
2. ``step2_double_blind``: S blinds R's message in place, ``D_R = k_S * M_R``, and sends
   it to R (32 bytes per item); R computes ``D_S = k_R * M_S`` locally.
3. ``step3_match`` at R: positions ``(i, j)`` with ``D_R[i] == D_S[j]``, in the common
   order; ``step_rows`` turns R's positions into R's input rows.
4. (``receiver="both"`` only) R sends the positions ``j`` (int64, in the common order) to
   S; S maps them with ``step_rows`` to its own rows. Both outputs then line up row by
   row: ``rows_A[t]`` and ``rows_B[t]`` carry the same identifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import IdInput, Transcript, as_ids, blind_many, hash_and_blind_many
from .curve import BlindingKey, Mapper, blind_chunked, hash_and_blind_chunked, new_salt
from .curve import random_permutation as _perm
from .matching import match_points

DEFAULT_CHUNK = 16384


def step1_blind_own(
    ids: np.ndarray,
    salt: bytes,
    key: BlindingKey,
    mapper: Mapper | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """Step 1 (each party, on its own ids): hash, blind and shuffle.

    Returns ``(message, perm)``: the point array to send to the peer and the secret
    permutation to keep (``message[i]`` is the blinded ``ids[perm[i]]``)."""
    perm = _perm(len(ids))
    return hash_and_blind_chunked(ids[perm], salt, key, mapper, chunk_size), perm


def step2_double_blind(
    peer_message: np.ndarray,
    key: BlindingKey,
    mapper: Mapper | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """Step 2 (each party, on the peer's step-1 message): ``key * M`` in the same order."""
    return blind_chunked(peer_message, key, mapper, chunk_size)


def step3_match(own_double: np.ndarray, peer_double: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 3 (receiver): ``(own_positions, peer_positions)`` of equal doubly blinded
    values in the common order. ``own_double`` is the receiver's own message blinded by
    the sender (received in step 2), ``peer_double`` the sender's message blinded by the
    receiver."""
    return match_points(own_double, peer_double)


def step_rows(positions: np.ndarray, perm: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Steps 3/4 (each learning party): message positions -> its own input rows."""
    positions = np.asarray(positions, dtype=np.int64)
    if len(positions) and (positions.min() < 0 or positions.max() >= len(perm)):
        raise ValueError("match positions out of range for this party's message")
    return rows[perm[positions]]


@dataclass
class PsiResult:
    """Output of a local run: each learning party's rows in the common order (``None``
    for a party that learns nothing), the intersection size, and the transcript."""

    rows_a: np.ndarray | None
    rows_b: np.ndarray | None
    size: int
    transcript: Transcript


def run_ecdh_psi_local(
    ids_a: IdInput,
    ids_b: IdInput,
    *,
    receiver: str = "both",
    salt: bytes | None = None,
    mapper: Mapper | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> PsiResult:
    """Run the steps above in-process (tests, benchmark). ``mapper`` spreads the blinding
    chunks (e.g. ``ProcessPoolExecutor.map``); both parties' work of one step runs in
    the same parallel phase, as it would on two parties' workers."""
    if receiver not in ("both", "A", "B"):
        raise ValueError("receiver must be 'both', 'A' or 'B'")
    xa, rows_a = as_ids(ids_a, "A")
    xb, rows_b = as_ids(ids_b, "B")
    if receiver == "B":
        res = run_ecdh_psi_local(
            ids_b, ids_a, receiver="A", salt=salt, mapper=mapper, chunk_size=chunk_size
        )
        t = Transcript(
            {_swap(k): v for k, v in res.transcript.bytes.items()},
            {_swap(k): v for k, v in res.transcript.messages.items()},
        )
        return PsiResult(None, res.rows_a, res.size, t)
    salt = salt or new_salt()
    key_a, key_b = BlindingKey.generate(), BlindingKey.generate()
    tr = Transcript()

    # step 1 at A and B (one parallel phase); shuffles are each party's own
    perm_a, perm_b = _perm(len(xa)), _perm(len(xb))
    m_a, m_b = hash_and_blind_many(
        [(xa[perm_a], salt, key_a), (xb[perm_b], salt, key_b)], mapper, chunk_size
    )
    tr.send("A->B", m_a)
    tr.send("B->A", m_b)
    # step 2: B double-blinds A's message and returns it; A double-blinds B's
    d_a, d_b = blind_many([(m_a, key_b), (m_b, key_a)], mapper, chunk_size)
    tr.send("B->A", d_a)
    # step 3 at A
    pos_a, pos_b = step3_match(d_a, d_b)
    out_a = step_rows(pos_a, perm_a, rows_a)
    out_b = None
    if receiver == "both":  # step 4
        tr.send("A->B", pos_b)
        out_b = step_rows(pos_b, perm_b, rows_b)
    return PsiResult(out_a, out_b, len(pos_a), tr)


def _swap(edge: str) -> str:
    a, b = edge.split("->")
    return f"{_sw(a)}->{_sw(b)}"


def _sw(p: str) -> str:
    return {"A": "B", "B": "A"}.get(p, p)
