"""Shared pieces of the PSI drivers: inputs, parallel phases, transcripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .curve import (
    POINT_DTYPE,
    BlindingKey,
    Mapper,
    _blind_chunk,
    _hash_and_blind_chunk,
    concat_points,
    split,
)
from .identifiers import PreparedIds

IdInput = Any  # PreparedIds | HashedIds | Sequence[bytes] | np.ndarray


def as_ids(x: IdInput, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, rows) from PreparedIds, HashedIds (pre-hashed points) or a plain sequence
    of distinct bytes (rows 0..n-1)."""
    if isinstance(x, PreparedIds):
        return x.ids, x.rows
    if hasattr(x, "points") and hasattr(x, "rows"):
        return x.points, x.rows
    ids = x if isinstance(x, np.ndarray) else np.array(list(x), dtype=object)
    if ids.dtype != object and ids.dtype != POINT_DTYPE:
        ids = ids.astype(object)
    if len(ids) == 0:
        raise ValueError(f"empty input at party {name}")
    if ids.dtype == object and len(pd.unique(ids)) != len(ids):
        raise ValueError(
            f"duplicate identifiers at party {name}: deduplicate first (prepare_ids does)"
        )
    return ids, np.arange(len(ids), dtype=np.int64)


@dataclass
class Transcript:
    """Bytes and messages per directed edge (``"A->B"``) of a local run."""

    bytes: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)

    def send(self, edge: str, *payload: Any) -> None:
        n = 0
        for p in payload:
            n += int(p.nbytes) if isinstance(p, np.ndarray) else len(p)
        self.bytes[edge] = self.bytes.get(edge, 0) + n
        self.messages[edge] = self.messages.get(edge, 0) + 1

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())


def hash_and_blind_many(
    jobs: list[tuple[np.ndarray, bytes, BlindingKey]], mapper: Mapper | None, chunk_size: int
) -> list[np.ndarray]:
    """Several parties' ``hash_and_blind`` in one parallel phase (the local drivers run
    all parties' work of a protocol step concurrently over ``mapper``)."""
    tasks, owner = [], []
    for j, (ids, salt, key) in enumerate(jobs):
        for c in split(ids, chunk_size):
            tasks.append((c, salt, key))
            owner.append(j)
    res = list((mapper or map)(_hash_and_blind_chunk, tasks))
    return [concat_points([r for r, o in zip(res, owner) if o == j]) for j in range(len(jobs))]


def blind_many(
    jobs: list[tuple[np.ndarray, BlindingKey]], mapper: Mapper | None, chunk_size: int
) -> list[np.ndarray]:
    """Several ``blind`` calls in one parallel phase (see ``hash_and_blind_many``)."""
    tasks, owner = [], []
    for j, (pts, key) in enumerate(jobs):
        for c in split(pts, chunk_size):
            tasks.append((c, key))
            owner.append(j)
    res = list((mapper or map)(_blind_chunk, tasks))
    return [concat_points([r for r, o in zip(res, owner) if o == j]) for j in range(len(jobs))]
