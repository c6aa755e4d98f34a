"""Joint blacklist: how many of m holders list a key, without learning which holders.

Parties: m >= 2 holders, each with a list L_j of keys (no labels), one querier with k keys;
all semi-honest, and no holder colludes with the querier.

Keys: a joint OPRF key S = s_1 + ... + s_m (mod l); holder j knows only its share s_j
(CSPRNG). F_S(x) = H2(x, u(S * H1(x))) as in :mod:`.oprf`. No party can evaluate F_S
alone. A slot key K = BLAKE2b(k_1 || ... || k_m) that only the holders know (k_j: 16 CSPRNG
bytes from holder j). For each key x the holders' indices are permuted by a permutation
sigma_x that depends on K and F_S(x) (the ranks of AES_K(F_S(x)[:15] || i), i < m), and
holder j's entry for x carries the slot tag tag(x, sigma_x(j)) = BLAKE2b(F_S(x) || slot)[:T]:
the m holders that may list x use m different slots, so their entries for x look
unrelated to anyone who does not know F_S(x), and the slot a holder uses is random
to anyone who does not know K.

Offline:
1. holder j blinds its keys (fresh r per key, as a querier of :mod:`.oprf` does) and sends
   the blinded points to every other holder, with its slot-key share k_j;
2. holder i returns s_i * B for each point (each checked in the prime-order group);
3. holder j adds the m evaluations (its own included), unblinds: S * H1(y), hence F_S(y)
   and its slot tag tag(y, sigma_y(j)) for each y in L_j;
4. the querier draws a fresh X25519 key pair (q, Q = X25519(q, 9)) and sends every holder Q;
5. holder j seals each tag to Q (ECIES on X25519, a fresh ephemeral scalar per entry):
   R = X25519(e, 9), tag XOR BLAKE2b(R, X25519(e, Q))[:T], and sends its sealed entries to
   the combiner;
6. the combiner concatenates the m bags, shuffles them (CSPRNG permutation) and sends the
   result to the querier;
7. the querier opens every entry with q: a set of slot tags.
Online (per batch of k keys, one round with each holder):
8. the querier blinds its keys, sends the same points to every holder;
9. holder j returns s_j * B;
10. the querier adds the m replies, unblinds, derives the m slot tags tag(x, 0..m-1) of
    each key and counts those in its set (0 if none); listed = count >= t.

What each learns:
- holder j: the sizes |L_i| of the others' lists (from steps 1-2), and nothing about their
  keys or the querier's (every point it sees is uniform; sealed entries cannot be opened
  without q, which only the querier has). Queries are unlinkable, as in :mod:`.table`.
- combiner: in addition, nothing (it shuffles entries it cannot open).
- querier: for each of its keys the number of holders that list it (the threshold flag is
  computed from it), and the total sum of |L_j|. The entries it opens are pseudorandom
  slot tags: without F_S(y) it cannot tell which entries belong to the same key (so not
  how many keys several holders share), nor, without K, which holder uses which slot
  (so not which holders list a key it queried), nor which holder's bag an entry came
  from (the combiner shuffled them).
- collusions: the querier with any holder (who knows K), or with the combiner, learns
  which holders list each queried key; the querier with m - 1 holders is a querier of
  the remaining holder's list alone.
Hiding the count itself (only "count >= t") needs the equality tests inside MPC (circuit
PSI); not provided here.
Costs: offline m * |L_j| scalar multiplications at each holder (Edwards, libsodium),
m AES blocks per entry for the slot and two X25519 per entry to seal (one for the querier
to open; the batched IFMA kernel where the CPU has it), 32 + T bytes per sealed entry;
online m replies of 32 bytes per key and m tag lookups per key at the querier.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cipherray.cpu_kernels import x25519 as _x25519

from . import oprf, table

_SEAL = b"cipherray/qry/se"
_SLOT_TAG = b"cipherray/qry/sl"
_SLOT_KEY = b"cipherray/qry/sk"
SLOT_SHARE_BYTES = 16
_BASE = (9).to_bytes(32, "little")


def _x25519_pairs(scalars: np.ndarray, points: np.ndarray) -> np.ndarray:
    """X25519(scalars[i], points[i]) for (n, 32) uint8 rows."""
    if len(scalars) >= _x25519.MIN_BATCH and _x25519.available():
        out, zeros = _x25519.x25519_many(scalars, points)
    else:
        ex = [
            X25519PrivateKey.from_private_bytes(bytes(k)).exchange(
                X25519PublicKey.from_public_bytes(bytes(u))
            )
            for k, u in zip(scalars, points, strict=True)
        ]
        out = np.frombuffer(b"".join(ex), np.uint8).reshape(-1, 32) if ex else scalars[:0]
        zeros = 0
    if zeros:
        raise ValueError(f"{zeros} sealed entries use a small-order point")
    return out


def _seal_pads(ephemeral: np.ndarray, shared: np.ndarray, tag_bytes: int) -> np.ndarray:
    blob = b"".join(
        hashlib.blake2b(bytes(r) + bytes(z), digest_size=tag_bytes, person=_SEAL).digest()
        for r, z in zip(ephemeral, shared, strict=True)
    )
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(ephemeral), tag_bytes)


def slot_key(shares: Sequence[bytes]) -> bytes:
    """K: the AES-128 key of the slot permutations, from every holder's share in order."""
    if len(shares) < 2 or any(
        not isinstance(k, bytes) or len(k) != SLOT_SHARE_BYTES for k in shares
    ):
        raise ValueError(f"the slot key needs m >= 2 shares of {SLOT_SHARE_BYTES} bytes")
    return hashlib.blake2b(b"".join(shares), digest_size=16, person=_SLOT_KEY).digest()


def slots(key: bytes, seeds: np.ndarray, holders: int, index: int) -> np.ndarray:
    """(n,) sigma_y(index) for each seed F_S(y): the rank of AES_K(F_S(y)[:15] || index)
    among the m blocks AES_K(F_S(y)[:15] || i), i < m (a permutation of 0..m-1 per y)."""
    if not 0 <= index < holders <= 255:
        raise ValueError(f"holder index {index} out of range for {holders} holders")
    n = len(seeds)
    blocks = np.empty((n, holders, 16), dtype=np.uint8)
    blocks[:, :, :15] = seeds[:, None, :15]
    blocks[:, :, 15] = np.arange(holders, dtype=np.uint8)[None, :]
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    out = np.frombuffer(enc.update(blocks.tobytes()) + enc.finalize(), dtype=np.uint8)
    prf = out.reshape(n, holders, 16)[:, :, :8].copy().view("<u8")[:, :, 0]
    mine = prf[:, index : index + 1]
    ties = (prf[:, :index] == mine).sum(axis=1)  # 2^-64 per pair; broken by index
    return (prf < mine).sum(axis=1) + ties


def slot_tags(seeds: np.ndarray, slot: Any, tag_bytes: int) -> np.ndarray:
    """(n, T) tag(y, slot) = BLAKE2b(F_S(y) || slot)[:T] (slot: one int or one per seed)."""
    sl = np.broadcast_to(np.asarray(slot, dtype=np.int64), (len(seeds),))
    blob = b"".join(
        hashlib.blake2b(
            bytes(z) + bytes([int(j)]), digest_size=tag_bytes, person=_SLOT_TAG
        ).digest()
        for z, j in zip(seeds, sl.tolist(), strict=True)
    )
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(seeds), tag_bytes).copy()


def _check_public(pk: object) -> np.ndarray:
    if not isinstance(pk, bytes) or len(pk) != 32:
        raise ValueError("the querier's public key is 32 bytes")
    return np.frombuffer(pk, dtype=np.uint8)


class JointHolder:
    """Holder j: its list (deduplicated), its key share, its tags once computed."""

    def __init__(self, keys: Sequence[Any], tag_bytes: int = table.TAG_BYTES) -> None:
        if not 8 <= tag_bytes <= 32:
            raise ValueError("tag_bytes must be in 8..32")
        raw = oprf._as_bytes(keys)
        uniq = list(dict.fromkeys(raw))
        self.duplicates = len(raw) - len(uniq)
        self.keys = uniq
        self.tag_bytes = tag_bytes
        self._share = oprf.random_scalar()
        self._slot_share = os.urandom(SLOT_SHARE_BYTES)
        self._state: oprf.Blinded | None = None
        self._own_msg: bytes | None = None
        self._tags: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"<JointHolder: {len(self.keys)} keys (secret)>"

    def blind_own(self) -> bytes:
        """Step 1: the message to the other holders."""
        self._state, self._own_msg = oprf.blind(self.keys)
        return self._own_msg

    def evaluate(self, blinded: object) -> bytes:
        """Steps 2 and 9: s_j * B for each point (another holder's, or the querier's)."""
        return oprf.evaluate_share(blinded, self._share)

    def slot_share(self) -> bytes:
        """Step 1 (with the blinded points): this holder's share k_j of the slot key."""
        return self._slot_share

    def finish_own(self, *replies: bytes, index: int, slot_shares: Sequence[bytes]) -> int:
        """Step 3: the other holders' replies to step 1 and every holder's slot-key share
        (in holder order; this holder's at `index`) -> this holder's slot tags."""
        if self._state is None:
            raise ValueError("finish_own() before blind_own()")
        m = len(slot_shares)
        if len(replies) != m - 1:
            raise ValueError(f"{len(replies)} replies for {m} holders (expected {m - 1})")
        if not 0 <= index < m or slot_shares[index] != self._slot_share:
            raise ValueError(f"slot share {index} is not this holder's")
        own = self.evaluate(self._own_msg)
        total = oprf.add_points(own, *replies)
        u = oprf.edwards_to_u(oprf.unblind_points(self._state, total))
        seeds = oprf.seeds(self._state.keys, u)
        slot = slots(slot_key(slot_shares), seeds, m, index)
        self._tags = slot_tags(seeds, slot, self.tag_bytes)
        self._state = self._own_msg = None
        return len(self._tags)

    def seal(self, querier_pk: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Step 5: (ephemeral points R (n, 32), sealed tags (n, T)) for the combiner."""
        if self._tags is None:
            raise ValueError("seal() before the tags are computed")
        pk = _check_public(querier_pk)
        n = len(self._tags)
        eph = np.frombuffer(os.urandom(32 * n), dtype=np.uint8).reshape(n, 32)
        r = _x25519_pairs(eph, np.broadcast_to(np.frombuffer(_BASE, np.uint8), (n, 32)))
        shared = _x25519_pairs(eph, np.broadcast_to(pk, (n, 32)))
        return r, self._tags ^ _seal_pads(r, shared, self.tag_bytes)


def combine(*bags: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Step 6 at the combiner: all bags in one, shuffled."""
    nonces = np.concatenate([b[0] for b in bags])
    sealed = np.concatenate([b[1] for b in bags])
    keys = np.frombuffer(os.urandom(8 * len(nonces)), dtype="<u8")
    perm = np.argsort(keys, kind="stable")
    return nonces[perm], sealed[perm]


class JointQuerier:
    """The querier: its sealing key pair, then the count per tag."""

    def __init__(self, holders: int) -> None:
        if holders < 2:
            raise ValueError("a joint blacklist needs at least two holders")
        self.holders = holders
        self._sk = os.urandom(32)
        self.public_key = (
            X25519PrivateKey.from_private_bytes(self._sk).public_key().public_bytes_raw()
        )
        self._tags: np.ndarray | None = None

    def __repr__(self) -> str:
        return "<JointQuerier (secret key)>"

    def open(self, bag: tuple[np.ndarray, np.ndarray]) -> int:
        """Step 7: the shuffled bag -> the set of slot tags; returns the bag's size."""
        eph, sealed = bag
        eph = np.ascontiguousarray(eph, dtype=np.uint8)
        n = len(eph)
        shared = _x25519_pairs(np.broadcast_to(np.frombuffer(self._sk, np.uint8), (n, 32)), eph)
        tags = sealed ^ _seal_pads(eph, shared, sealed.shape[1])
        self._tags = np.unique(tags, axis=0)  # sorted; distinct slot tags
        self._heads = table._tag_keys(self._tags)
        return len(tags)

    @staticmethod
    def blind(keys: Sequence[Any]) -> tuple[oprf.Blinded, bytes]:
        """Step 8."""
        return oprf.blind(keys)

    def counts(self, state: oprf.Blinded, *replies: bytes) -> np.ndarray:
        """Step 10: the number of holders listing each key, in order."""
        if self._tags is None:
            raise ValueError("counts() before open()")
        if len(replies) != self.holders:
            raise ValueError(f"{len(replies)} replies from {self.holders} holders")
        total = oprf.add_points(*replies)
        u = oprf.edwards_to_u(oprf.unblind_points(state, total))
        seeds = oprf.seeds(state.keys, u)
        out = np.zeros(len(seeds), dtype=np.int64)
        for slot in range(self.holders):
            out += self._present(slot_tags(seeds, slot, self._tags.shape[1]))
        return out

    def _present(self, tags: np.ndarray) -> np.ndarray:
        """(n,) 0/1: whether each tag is in the opened set."""
        heads = table._tag_keys(tags)
        lo = np.searchsorted(self._heads, heads, side="left")
        hi = np.searchsorted(self._heads, heads, side="right")
        out = np.zeros(len(tags), dtype=np.int64)
        for i in np.flatnonzero(hi > lo):
            for j in range(lo[i], hi[i]):
                if np.array_equal(self._tags[j], tags[i]):
                    out[i] = 1
                    break
        return out
