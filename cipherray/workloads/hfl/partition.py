"""Split a data set's rows among virtual clients: IID, Dirichlet label skew, label shards.

Each partitioner returns one sorted int64 index array per client; the arrays are
disjoint and together cover the rows they were given. `take` applies a partition to a
NumPy array or a pandas DataFrame / Series. Randomness comes from seeded PRG streams
(`randomness`), so an experiment's split is reproducible from its seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.workloads.hfl import randomness
from cipherray.workloads.hfl.randomness import Seed

Partition = list[np.ndarray]


def _check_clients(n_clients: int) -> None:
    if n_clients < 1:
        raise ValueError(f"n_clients must be >= 1, got {n_clients}")


def _group(owner: np.ndarray, n_clients: int) -> Partition:
    """Row indices per client, ascending, from each row's owning client."""
    by_owner = np.lexsort((np.arange(owner.size), owner)).astype(np.int64)
    sizes = np.bincount(owner, minlength=n_clients)
    return np.split(by_owner, np.cumsum(sizes)[:-1])


def _piece_of(n: int, cuts: np.ndarray) -> np.ndarray:
    """For positions 0..n-1, which piece of `np.split(range(n), cuts)` holds them."""
    return np.searchsorted(cuts, np.arange(n), side="right")


def _even_cuts(n: int, pieces: int) -> np.ndarray:
    """The cuts of `np.array_split(range(n), pieces)`."""
    q, r = divmod(n, pieces)
    sizes = np.full(pieces, q, dtype=np.int64)
    sizes[:r] += 1
    return np.cumsum(sizes)[:-1]


def iid(n_rows: int, n_clients: int, seed: Seed = 0) -> Partition:
    """Shuffle the rows and deal them into `n_clients` parts whose sizes differ by <= 1."""
    _check_clients(n_clients)
    order = randomness.permutation(randomness.derive(seed, "iid"), n_rows)
    owner = np.empty(n_rows, dtype=np.int64)
    owner[order] = _piece_of(n_rows, _even_cuts(n_rows, n_clients))
    return _group(owner, n_clients)


def dirichlet(
    labels: Any, n_clients: int, alpha: float, seed: Seed = 0, min_rows: int = 0
) -> Partition:
    """Label skew: each class's rows are split among clients in Dirichlet(alpha) proportions.

    Small `alpha` gives each client few classes; large `alpha` approaches IID. With
    `min_rows > 0`, draws again (from a new derived stream) until every client has at
    least that many rows, up to 1000 attempts.
    """
    _check_clients(n_clients)
    y = np.asarray(labels)
    classes, y_codes = np.unique(y, return_inverse=True)
    owner = np.empty(y.size, dtype=np.int64)
    for attempt in range(1000):
        s = randomness.derive(seed, "dirichlet", attempt)
        proportions = randomness.dirichlet(
            randomness.derive(s, "p"), alpha, n_clients, len(classes)
        )
        for k in range(len(classes)):
            rows = np.flatnonzero(y_codes == k)
            rows = rows[randomness.permutation(randomness.derive(s, "class", k), rows.size)]
            cuts = np.round(np.cumsum(proportions[k])[:-1] * rows.size).astype(np.int64)
            owner[rows] = _piece_of(rows.size, cuts)
        if np.bincount(owner, minlength=n_clients).min() >= min_rows:
            return _group(owner, n_clients)
    raise ValueError(f"no Dirichlet({alpha}) split gave every client >= {min_rows} rows")


def shards(labels: Any, n_clients: int, k: int, seed: Seed = 0) -> Partition:
    """Pathological non-IID split: sort rows by label, cut into `n_clients * k` equal
    shards and give each client `k` shards at random (McMahan et al. 2017)."""
    _check_clients(n_clients)
    y = np.asarray(labels)
    n_shards = n_clients * k
    if k < 1 or n_shards > y.size:
        raise ValueError(f"cannot cut {y.size} rows into {n_clients} x {k} shards")
    shuffled = randomness.permutation(randomness.derive(seed, "shards-rows"), y.size)
    by_label = shuffled[np.argsort(y[shuffled], kind="stable")]
    shard_of_position = _piece_of(y.size, _even_cuts(y.size, n_shards))
    shard_order = randomness.permutation(randomness.derive(seed, "shards-owner"), n_shards)
    client_of_shard = np.empty(n_shards, dtype=np.int64)
    client_of_shard[shard_order] = np.arange(n_shards) // k  # client c gets k shards
    owner = np.empty(y.size, dtype=np.int64)
    owner[by_label] = client_of_shard[shard_of_position]
    return _group(owner, n_clients)


def take(data: Any, part: np.ndarray) -> Any:
    """The rows `part` of an array, a pandas DataFrame or Series (by position)."""
    if hasattr(data, "iloc"):
        return data.iloc[part]
    return np.asarray(data)[part]


def split(data: Any, parts: Partition) -> list[Any]:
    """`take(data, part)` for every client's part."""
    return [take(data, p) for p in parts]
