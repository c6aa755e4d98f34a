"""Hidden query (keyword lookup with labels): the holder's encrypted table, the querier's
local copy, updates.

Protocol (one holder with N rows key -> label of W bytes, one querier with k keys; both
semi-honest; the OPRF F_s is :mod:`.oprf`'s 2HashDH on edwards25519):

Offline (once per table, then per update):
1. holder: draws its OPRF key s (CSPRNG); for each row (x, label) computes the seed
   z = F_s(x) and from it tag(x) = BLAKE2b(z)[:T] (T = 12 bytes by default) and a pad
   SHAKE-256(z, generation)[:W]; the entry is (tag, label XOR pad). Entries are sent
   sorted by tag (a pseudo-random order: nothing of the file's order remains).
2. querier: keeps the entries (setup bytes = N * (T + W)), indexed by tag.
Online (each query, k keys, one round):
3. querier: blinds its keys (fresh r per key): k points of 32 bytes;
4. holder: returns s * B for each (32 bytes per key);
5. querier: unblinds, derives tag and pad, looks each tag up in its copy: found -> label.
Updates: the holder sends only the new or changed rows (re-encrypted under the next
generation number, so a changed label never reuses a pad) and the tags of deleted rows;
the querier replaces/removes by tag. Nothing else is recomputed.

What each learns:
- holder: k per query (the querier may pad its batches to hide it) and nothing else: the
  blinded points are uniform and fresh each time, so repeated queries of the same key are
  unlinkable, and matching happens at the querier, so the holder does not learn whether
  anything matched.
- querier: N, W, T, the label of each of its keys that is present, and nothing about the
  other rows: their tags and pads are outputs of F_s at keys it did not query (pseudo-random
  under one-more-gap-DH with H1, H2 random oracles). From updates it learns how many rows
  changed and, for keys it queries again, whether their label changed.
- false positives: a key not in the table matches some tag with probability about
  N / 2^(8T) (T = 12: below 2^-70 for N = 10^7); duplicate tags are refused at setup.
Why this protocol rather than an FHE-based labeled PSI (APSI): the online cost is one
round and O(k) group operations for either side, independent of N, and the holder's
preprocessing is one X25519 per row; the price is the one-off download of the encrypted
table, N * (T + W) bytes, which APSI avoids (its per-query messages grow with N instead).
Where the download is too large, PIR over the same entries would replace step 2.
Costs: holder setup ~ N * (hash-to-curve + one X25519 + 3 hashes); per query, querier
k * (hash-to-curve + 2 scalar mult.), holder k * (1 scalar mult.), 64 bytes per key.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import oprf

TAG_BYTES = 12
_TAG = b"cipherray/qry/tg"
_PAD = b"cipherray/query/pad/v1"


class DuplicateKeyError(ValueError):
    """Two of the holder's rows have the same key (or, with odds ~ N^2 / 2^(8T+1), tag)."""


class LabelWidthError(ValueError):
    """A label does not fit the declared width."""


def tags_of(seeds: np.ndarray, tag_bytes: int = TAG_BYTES) -> np.ndarray:
    """(n, T) uint8 tags of (n, 32) seeds."""
    blob = b"".join(
        hashlib.blake2b(bytes(z), digest_size=tag_bytes, person=_TAG).digest() for z in seeds
    )
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(seeds), tag_bytes).copy()


def pads_of(seeds: np.ndarray, generations: Any, width: int) -> np.ndarray:
    """(n, W) uint8 label pads of (n, 32) seeds at their generation numbers."""
    gens = np.broadcast_to(np.asarray(generations, dtype=np.uint32), (len(seeds),))
    if width == 0:
        return np.zeros((len(seeds), 0), dtype=np.uint8)
    blob = b"".join(
        hashlib.shake_256(_PAD + bytes(z) + struct.pack("<I", int(g))).digest(width)
        for z, g in zip(seeds, gens.tolist(), strict=True)
    )
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(seeds), width).copy()


def _tag_keys(tags: np.ndarray) -> np.ndarray:
    """A sort key per tag: its first 8 bytes as a big-endian uint64 (ties: rare, handled)."""
    head = np.zeros((len(tags), 8), dtype=np.uint8)
    head[:, : min(8, tags.shape[1])] = tags[:, :8]
    return head.view(">u8").reshape(-1).astype(np.uint64)


def _sort_by_tag(tags: np.ndarray, *cols: np.ndarray) -> tuple:
    order = np.lexsort(tags.T[::-1])
    return (tags[order], *(c[order] for c in cols))


def _check_labels(labels: Any, n: int, width: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype == object or arr.ndim == 1:  # a sequence of bytes
        items = list(labels)
        if len(items) != n:
            raise ValueError(f"{len(items)} labels for {n} keys")
        out = np.zeros((n, width), dtype=np.uint8)
        for i, b in enumerate(items):
            b = bytes(b)
            if len(b) > width:
                raise LabelWidthError(f"row {i}: label of {len(b)} bytes exceeds the width {width}")
            out[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
        return out
    if arr.dtype != np.uint8 or arr.shape != (n, width):
        if arr.ndim == 2 and arr.shape[1] > width:
            raise LabelWidthError(f"labels are {arr.shape[1]} bytes wide, declared {width}")
        raise ValueError(f"labels must be ({n}, {width}) uint8, got {arr.shape} {arr.dtype}")
    return arr


@dataclass
class TableMessage:
    """Holder -> querier: entries (tag, encrypted label) sorted by tag, plus deleted tags.
    A setup is the message of generation 0 (no deletions)."""

    generation: int
    width: int
    tag_bytes: int
    tags: np.ndarray  # (n, T) uint8
    labels: np.ndarray  # (n, W) uint8, label XOR pad
    deleted: np.ndarray = field(default_factory=lambda: np.empty((0, TAG_BYTES), np.uint8))

    @property
    def nbytes(self) -> int:
        return int(self.tags.nbytes + self.labels.nbytes + self.deleted.nbytes + 16)

    def __len__(self) -> int:
        return len(self.tags)


def _material(item: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(tags, pads) of a chunk of the holder's keys (runs in a worker process)."""
    keys, key, gen, width, tag_bytes = item
    z = oprf.evaluate_own(keys, key)
    return tags_of(z, tag_bytes), pads_of(z, gen, width)


class HolderTable:
    """The holder's side: its OPRF key and the table's generation number. The plaintext
    rows are not kept here: an update names its rows again."""

    def __init__(
        self, width: int, tag_bytes: int = TAG_BYTES, key: oprf.OprfKey | None = None
    ) -> None:
        if width < 0 or not 8 <= tag_bytes <= 32:
            raise ValueError("width must be >= 0 and tag_bytes in 8..32")
        self.width = int(width)
        self.tag_bytes = int(tag_bytes)
        self.key = key or oprf.OprfKey.generate()
        self.generation = -1

    def __repr__(self) -> str:
        return f"<HolderTable width={self.width} generation={self.generation} (secret key)>"

    def _entries(self, keys: Sequence[Any], labels: Any, mapper: Any, chunk: int) -> tuple:
        keys = oprf._as_bytes(keys)
        labels = _check_labels(labels, len(keys), self.width)
        gen = self.generation + 1
        args = (self.key, gen, self.width, self.tag_bytes)
        parts = [(keys[i : i + chunk], *args) for i in range(0, len(keys), chunk)]
        outs = list((mapper or map)(_material, parts))
        if not outs:
            none = np.empty((0, self.tag_bytes), np.uint8)
            return self._seal(none, np.empty((0, self.width), np.uint8), labels, gen)
        tags = np.concatenate([o[0] for o in outs])
        pads = np.concatenate([o[1] for o in outs])
        return self._seal(tags, pads, labels, gen)

    def _encrypt(self, z: np.ndarray, labels: Any) -> tuple:
        labels = _check_labels(labels, len(z), self.width)
        gen = self.generation + 1
        return self._seal(tags_of(z, self.tag_bytes), pads_of(z, gen, self.width), labels, gen)

    def _seal(self, tags: np.ndarray, pads: np.ndarray, labels: np.ndarray, gen: int) -> tuple:
        tags, enc = _sort_by_tag(tags, labels ^ pads)
        if len(tags) > 1 and np.any(np.all(tags[1:] == tags[:-1], axis=1)):
            raise DuplicateKeyError("two rows have the same key (deduplicate before setup)")
        self.generation = gen
        return tags, enc

    def setup(
        self, keys: Sequence[Any], labels: Any, mapper: Any = None, chunk: int = 65536
    ) -> TableMessage:
        """Step 1: the whole table, encrypted. ``mapper`` (e.g. ``ProcessPoolExecutor.map``)
        spreads the OPRF, tags and pads over processes, ``chunk`` rows at a time."""
        if self.generation >= 0:
            raise ValueError("setup was already done; use update()")
        tags, enc = self._entries(keys, labels, mapper, chunk)
        return TableMessage(self.generation, self.width, self.tag_bytes, tags, enc)

    def setup_from_seeds(self, seeds: np.ndarray, labels: Any) -> TableMessage:
        """Step 1 from F_s seeds computed elsewhere (``oprf.evaluate_own`` on chunks of the
        keys, e.g. on several workers), in the order of ``labels``."""
        if self.generation >= 0:
            raise ValueError("setup was already done; use update()")
        tags, enc = self._encrypt(seeds, labels)
        return TableMessage(self.generation, self.width, self.tag_bytes, tags, enc)

    def update(
        self,
        upserts: Sequence[Any] = (),
        labels: Any = None,
        deletes: Sequence[Any] = (),
        mapper: Any = None,
        chunk: int = 65536,
    ) -> TableMessage:
        """New or changed rows (``upserts`` with ``labels``) and deleted keys: a message of
        size ~ (changes) * (T + W), under a fresh generation number."""
        if self.generation < 0:
            raise ValueError("update() before setup()")
        if labels is None:
            labels = np.zeros((len(upserts), self.width), dtype=np.uint8)
        tags, enc = self._entries(upserts, labels, mapper, chunk)
        dz = oprf.evaluate_own_chunked(oprf._as_bytes(deletes), self.key, mapper, chunk)
        return TableMessage(
            self.generation, self.width, self.tag_bytes, tags, enc, tags_of(dz, self.tag_bytes)
        )

    def answer(self, blinded: object) -> bytes:
        """Step 4: the OPRF evaluated at the querier's blinded points."""
        return oprf.evaluate(blinded, self.key)


class QuerierTable:
    """The querier's copy of the encrypted table, sorted by tag."""

    def __init__(self, setup: TableMessage) -> None:
        if setup.generation != 0 or len(setup.deleted):
            raise ValueError("the first table message must be a setup (generation 0)")
        self.width = setup.width
        self.tag_bytes = setup.tag_bytes
        self.generation = 0
        self.tags = setup.tags
        self.labels = setup.labels
        self.gens = np.zeros(len(setup.tags), dtype=np.uint32)
        self._index()

    def __len__(self) -> int:
        return len(self.tags)

    def _index(self) -> None:
        self._heads = _tag_keys(self.tags)  # sorted, as the tags are

    def _find(self, tags: np.ndarray) -> np.ndarray:
        """Row of each tag in the copy, or -1."""
        heads = _tag_keys(tags)
        lo = np.searchsorted(self._heads, heads, side="left")
        hi = np.searchsorted(self._heads, heads, side="right")
        rows = np.full(len(tags), -1, dtype=np.int64)
        for i in np.flatnonzero(hi > lo):  # candidates: compare the whole tag
            for j in range(lo[i], hi[i]):
                if np.array_equal(self.tags[j], tags[i]):
                    rows[i] = j
                    break
        return rows

    def apply(self, msg: TableMessage) -> None:
        """An update: drop deleted and replaced tags, add the new entries."""
        if msg.generation != self.generation + 1:
            raise ValueError(f"update {msg.generation} after {self.generation}: one is missing")
        gone = np.concatenate([msg.deleted, msg.tags]) if len(msg.deleted) else msg.tags
        drop = self._find(gone)
        keep = np.ones(len(self.tags), dtype=bool)
        keep[drop[drop >= 0]] = False
        tags = np.concatenate([self.tags[keep], msg.tags])
        labels = np.concatenate([self.labels[keep], msg.labels])
        gens = np.concatenate([self.gens[keep], np.full(len(msg), msg.generation, np.uint32)])
        self.tags, self.labels, self.gens = _sort_by_tag(tags, labels, gens)
        self.generation = msg.generation
        self._index()

    def lookup(self, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Step 5: (found (k,) bool, labels (k, W) uint8, zeros where not found)."""
        rows = self._find(tags_of(seeds, self.tag_bytes))
        found = rows >= 0
        out = np.zeros((len(seeds), self.width), dtype=np.uint8)
        if found.any():
            r = rows[found]
            out[found] = self.labels[r] ^ pads_of(seeds[found], self.gens[r], self.width)
        return found, out


class Querier:
    """The querier's side of the online phase around its table copy."""

    def __init__(self, table: QuerierTable) -> None:
        self.table = table

    @staticmethod
    def blind(keys: Sequence[Any]) -> tuple[oprf.Blinded, bytes]:
        """Step 3: (secret state, k * 32-byte message)."""
        return oprf.blind(keys)

    def finish(self, state: oprf.Blinded, answer: object) -> tuple[np.ndarray, np.ndarray]:
        """Step 5: found flags and labels of the blinded keys, in order."""
        return self.table.lookup(oprf.finalize(state, answer))
