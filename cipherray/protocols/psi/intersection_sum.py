"""Private intersection-sum with cardinality (ECDH + Paillier), the pattern of Google's
private-join-and-compute (Ion et al., "On Deploying Secure Computing: Private
Intersection-Sum-with-Cardinality", EuroS&P 2020).

Parties: A holds identifiers X; B holds pairs (y_j, t_j) with numeric values t_j.
Threat model: semi-honest, non-colluding; DDH on Curve25519/twist (``H`` a random
oracle) and Paillier's DCR assumption.

Roles (as in the paper): B, the value holder, generates the Paillier key pair and
encrypts its own values; A, the party that finds the matches, only ever sees
ciphertexts under B's key, adds up the ones of matched rows and re-randomises. The
party that holds the secret key must not be the one that sees the per-row
ciphertexts, so A cannot hold it. Who learns the sum is a parameter:

* ``receiver="A"`` (default, the workload's usual need): A masks the encrypted sum with a
  random r (``r`` uniform below 2^(|n|-3), statistically hiding any sum of < 2^(|n|-43)),
  B decrypts ``S + r`` and returns it, A removes r. A learns S and |X ∩ Y|; B learns
  |X| and nothing about S.
* ``receiver="B"`` (the paper's original): no mask; B decrypts S. A learns |X ∩ Y|,
  B learns S and |X|.

Neither learns which rows matched (both blinded sets reach A shuffled: A sees its own
doubly blinded set in a random order and B's values only encrypted). Both learn the
other's set size. Values: integers are summed exactly; floats are converted by B to
fixed point ``round(t * 2^scale_bits)`` (default 32 bits, error <= 2^-33 per value) and
the sum is scaled back.

Steps:

0. B: ``step0_keygen`` -> (pk, sk); pk to A.
1. A: ``step1_blind_own`` (from ``ecdh``) -> ``M_A = shuffle(k_A * H(X))`` to B.
2. B: ``step2_double_blind_and_encrypt`` -> ``D_A = shuffle(k_B * M_A)`` and, under one
   joint shuffle, ``M_B = k_B * H(y_j)`` with ``E_B = Enc_pk(t_j)``; all to A.
3. A: ``step3_match_and_sum``: ``D_B = k_A * M_B``, J = positions where D_B meets D_A,
   ``C = sum(E_B[J]) (+ Enc(r))``, re-randomised; C to B. A keeps |J| (and r).
4. B: ``step4_decrypt``: Dec(C) -> S (receiver B) or S + r, sent to A (receiver A).
5. A: ``step5_unmask``: S = (S + r) - r, scaled back for floats.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._common import IdInput, Transcript, as_ids, blind_many, hash_and_blind_many
from .curve import BlindingKey, Mapper, blind_chunked, hash_and_blind_chunked, new_salt
from .curve import random_permutation as _perm
from .ecdh import DEFAULT_CHUNK, step1_blind_own
from .identifiers import PreparedIds
from .matching import match_points

__all__ = [
    "step0_keygen",
    "step1_blind_own",
    "step2_double_blind_and_encrypt",
    "step3_match_and_sum",
    "step4_decrypt",
    "step5_unmask",
    "encode_values",
    "run_intersection_sum_local",
]

DEFAULT_SCALE_BITS = 32


def step0_keygen(bits: int = 2048, insecure: bool = False) -> tuple[Any, Any]:
    """Step 0 (B): a Paillier key pair; the public key goes to A."""
    from cipherray.protocols.paillier import keygen

    return keygen(bits=bits, insecure=insecure)


def encode_values(values: Any, scale_bits: int | None = None) -> tuple[np.ndarray, int]:
    """B's values as exact integers (int64 or object) and the scale used: integers as
    they are (scale 0 unless given), floats ``round(t * 2^scale_bits)``."""
    v = np.asarray(values)
    if v.ndim != 1:
        raise ValueError("values must be 1-D (one per identifier)")
    if v.dtype.kind in "biu":
        s = 0 if scale_bits is None else int(scale_bits)
        return (v.astype(np.int64) << np.int64(s)) if s else v.astype(np.int64), s
    if v.dtype.kind == "f":
        if not np.all(np.isfinite(v)):
            raise ValueError("values contain NaN or infinity")
        s = DEFAULT_SCALE_BITS if scale_bits is None else int(scale_bits)
        scaled = np.rint(np.ldexp(v.astype(np.float64), s))
        if scaled.size and np.max(np.abs(scaled)) >= 2.0**62:
            out = np.empty(len(v), dtype=object)
            out[:] = [int(x) for x in scaled.tolist()]
            return out, s
        return scaled.astype(np.int64), s
    raise TypeError(f"values must be numeric, got dtype {v.dtype}")


def step2_double_blind_and_encrypt(
    peer_message: np.ndarray,
    ids: np.ndarray,
    values_int: np.ndarray,
    salt: bytes,
    key: BlindingKey,
    pk: Any,
    mapper: Mapper | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Step 2 (B): ``(D_A, M_B, E_B)`` — A's message blinded by B and shuffled, and B's
    own blinded identifiers with their encrypted values under one joint shuffle."""
    if len(ids) != len(values_int):
        raise ValueError(f"{len(ids)} identifiers but {len(values_int)} values at party B")
    d_a = blind_chunked(peer_message, key, mapper, chunk_size)
    d_a = d_a[_perm(len(d_a))]
    perm = _perm(len(ids))
    m_b = hash_and_blind_chunked(ids[perm], salt, key, mapper, chunk_size)
    e_b = pk.encrypt(values_int[perm])
    return d_a, m_b, e_b


def _masked_sum(e_b: Any, positions: np.ndarray, pk: Any, mask: bool) -> tuple[Any, int]:
    if len(positions):
        c = e_b[positions].sum()
    else:
        c = pk.encrypt(np.zeros(1, dtype=np.int64)).sum()
    r = secrets.randbits(int(pk.bits) - 3) if mask else 0
    if mask:
        c = c + np.array(r, dtype=object)
    return c.rerandomize(), r


def step3_match_and_sum(
    own_double: np.ndarray,
    peer_message: np.ndarray,
    peer_ciphertexts: Any,
    key: BlindingKey,
    pk: Any,
    mask: bool = True,
    mapper: Mapper | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[Any, int, int]:
    """Step 3 (A): ``(C, size, r)``: the re-randomised encrypted sum over the
    intersection (masked with ``r`` when ``mask``; r = 0 otherwise), to send to B; the
    intersection size and r stay at A."""
    d_b = blind_chunked(peer_message, key, mapper, chunk_size)
    _, pos_b = match_points(own_double, d_b)
    c, r = _masked_sum(peer_ciphertexts, pos_b, pk, mask)
    return c, len(pos_b), r


def step4_decrypt(c: Any, sk: Any) -> int:
    """Step 4 (B): the decrypted (masked) sum as a Python int."""
    return int(np.asarray(sk.decrypt(c)).reshape(-1)[0])


def step5_unmask(masked: int, r: int, scale_bits: int) -> int | float:
    """Step 5 (A): remove the mask and the fixed-point scale."""
    s = int(masked) - int(r)
    return s if scale_bits == 0 else s / 2.0**scale_bits


@dataclass
class IntersectionSumResult:
    sum: int | float  # what the sum receiver learns
    size: int  # |X ∩ Y|, learned by A
    transcript: Transcript


def run_intersection_sum_local(
    ids_a: IdInput,
    ids_b: IdInput,
    values_b: Any,
    *,
    receiver: str = "A",
    paillier_keys: tuple[Any, Any] | None = None,
    paillier_bits: int = 2048,
    insecure: bool = False,
    scale_bits: int | None = None,
    salt: bytes | None = None,
    mapper: Mapper | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> IntersectionSumResult:
    """Run the steps in-process. ``values_b`` is aligned with ``ids_b.ids`` (or, for
    ``PreparedIds`` of a whole frame, it may be the frame's full value column, which is
    then indexed by ``ids_b.rows``). ``paillier_keys`` skips step 0 (tests)."""
    if receiver not in ("A", "B"):
        raise ValueError("receiver must be 'A' or 'B'")
    xa, _ = as_ids(ids_a, "A")
    xb, rows_b = as_ids(ids_b, "B")
    vals = np.asarray(values_b)
    if isinstance(ids_b, PreparedIds) and len(vals) == ids_b.n_input != len(xb):
        vals = vals[rows_b]  # the full value column of B's input frame (row_offset 0)
    if len(vals) != len(xb):
        raise ValueError(f"party B: {len(xb)} identifiers but {len(vals)} values")
    vint, sbits = encode_values(vals, scale_bits)
    pk, sk = paillier_keys or step0_keygen(paillier_bits, insecure)
    salt = salt or new_salt()
    key_a, key_b = BlindingKey.generate(), BlindingKey.generate()
    tr = Transcript()
    tr.send("B->A", int(pk.n).to_bytes((int(pk.bits) + 7) // 8, "big"))  # step 0

    # steps 1-2; A's and B's hash+blind run in one parallel phase, then the two blinds
    perm_b = _perm(len(xb))
    m_a, m_b = hash_and_blind_many(
        [(xa[_perm(len(xa))], salt, key_a), (xb[perm_b], salt, key_b)], mapper, chunk_size
    )
    tr.send("A->B", m_a)
    d_a, d_b = blind_many([(m_a, key_b), (m_b, key_a)], mapper, chunk_size)
    d_a = d_a[_perm(len(d_a))]
    e_b = pk.encrypt(vint[perm_b])
    tr.send("B->A", d_a, m_b, e_b.to_bytes())
    # step 3 at A (D_B was computed in the parallel phase above)
    _, pos_b = match_points(d_a, d_b)
    c, r = _masked_sum(e_b, pos_b, pk, mask=receiver == "A")
    tr.send("A->B", c.to_bytes())
    # step 4 at B (and 5 at A)
    dec = step4_decrypt(c, sk)
    if receiver == "A":
        tr.send("B->A", int(dec).to_bytes((int(pk.bits) + 7) // 8 + 1, "big", signed=True))
    total = step5_unmask(dec, r, sbits)
    return IntersectionSumResult(total, len(pos_b), tr)
