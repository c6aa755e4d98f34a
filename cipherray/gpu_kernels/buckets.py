"""Bucket products mod m on the backend: the histograms of SecureBoost and hetero-LR's
``X_q^T [[d]]`` (:func:`cipherray.protocols.paillier.histogram.bucket_products`, whose
gmpy2 reference fixes the layout).

For every taken row i (slot s_i) and column j the pair (key, row) with key
``(s_i d + j) nbuckets + keys[j, row_i]`` is formed on the backend and the pairs are sorted
by key, so each bucket's rows are one contiguous run. Then segmented products with the
``bucket_prod`` kernel of ``bigint.cu`` (one thread, or one cooperative group, per segment,
the existing Montgomery multiplication): runs are cut into segments of at most ``CHUNK``
rows so that long buckets still give the GPU many independent threads, and the segment
products of each bucket are multiplied the same way, level by level, until one product per
bucket is left. The dense table of buckets starts at R mod m (Montgomery one, so an empty
bucket comes out as 1). The weighted form ``prod_b B_b^b`` is ``multiexp``'s running
products from the top bucket down. Everything runs in Montgomery form on the device; the
host build runs the same kernels (NumPy instead of CuPy).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from . import bigint as bi
from .multiexp import PAIR_BUDGET, _running_products

CHUNK = 64  # rows per segment of the first level


@lru_cache(maxsize=8)
def _context(m: int, backend: str) -> bi.MontContext:
    return bi.MontContext(m, backend)


def _segment_products(ctx: bi.MontContext, base, gkeys, grows):
    """(key of each bucket, product of its rows), for pairs sorted by key: gkeys (int64)
    and grows (int32 columns of base, Montgomery form)."""
    xp = ctx.backend.xp
    while True:
        n = int(gkeys.shape[0])
        first = xp.ones(n, dtype=bool)
        first[1:] = gkeys[1:] != gkeys[:-1]
        bstart = xp.flatnonzero(first)
        bucket = xp.cumsum(first) - 1
        pos = xp.arange(n, dtype=np.int64) - bstart[bucket]
        sstart = xp.flatnonzero(pos % CHUNK == 0)
        lens = xp.diff(xp.concatenate([sstart, xp.asarray([n], dtype=sstart.dtype)]))
        prods = ctx.empty(int(sstart.shape[0]))
        ctx.bucket_prod(
            prods,
            base,
            xp.ascontiguousarray(grows, dtype=np.int32),
            xp.ascontiguousarray(sstart, dtype=np.int64),
            xp.ascontiguousarray(lens, dtype=np.int32),
        )
        skeys = gkeys[sstart]
        if sstart.shape[0] == bstart.shape[0]:  # one segment per bucket: done
            return skeys, prods
        base, gkeys = prods, skeys
        grows = xp.arange(int(sstart.shape[0]), dtype=np.int32)


def bucket_products(
    m: int,
    values: Sequence,
    keys: np.ndarray,
    nbuckets: int,
    rows: np.ndarray,
    slots: np.ndarray,
    nslots: int,
    weighted: bool,
    backend: str = "auto",
) -> list:
    """``out[(s * d + j) * nbuckets + b]`` (``weighted``: ``out[s * d + j]``) as gmpy2 mpz:
    the products mod m of the taken rows' values with slot s and key b in column j. The
    caller has checked the layout (keys in range, rows and slots valid)."""
    ctx = _context(int(m), backend)
    xp = ctx.backend.xp
    keys = np.asarray(keys)
    d = keys.shape[0]
    rows = np.asarray(rows, dtype=np.int64)
    slots = np.asarray(slots, dtype=np.int64)
    R = rows.size
    G = nslots * d  # (slot, column) groups
    if G == 0:
        return []
    one_m = ctx.consts[ctx.words : 2 * ctx.words].reshape(-1, 1)
    table = xp.empty((ctx.words, G * nbuckets), dtype=np.uint64)
    table[:] = one_m
    if R and d:
        mz = int(m)
        taken = [values[i] for i in rows.tolist()]
        base = ctx.to_mont(ctx.put([v if 0 <= v < mz else v % mz for v in taken]))
        step = max(1, min(d, PAIR_BUDGET // R))  # columns per pass: bounded pair arrays
        srow = xp.asarray(slots * d)
        for j0 in range(0, d, step):
            j1 = min(d, j0 + step)
            kj = xp.asarray(np.ascontiguousarray(keys[j0:j1][:, rows], dtype=np.int64))
            cols = xp.arange(j0, j1, dtype=np.int64)[:, None]
            gkeys = ((srow[None, :] + cols) * nbuckets + kj).ravel()
            grows = xp.broadcast_to(xp.arange(R, dtype=np.int32)[None, :], (j1 - j0, R)).ravel()
            order = xp.argsort(gkeys)
            bkeys, prods = _segment_products(ctx, base, gkeys[order], grows[order])
            table[:, bkeys] = prods
    if weighted:
        # block b of nbuckets blocks holds bucket b of every group
        blocks = xp.ascontiguousarray(
            table.reshape(ctx.words, G, nbuckets).transpose(0, 2, 1).reshape(ctx.words, -1)
        )
        _, table = _running_products(ctx, blocks, nbuckets, G, one_m)
    return list(ctx.get(ctx.from_mont(table), as_mpz=True))
