"""The bucket-method multi-exponentiation (gpu_kernels.multiexp) on the host build of the kernels,
against Python's pow: every window size, signed and unsigned columns, zero columns, the int64
extremes, and several passes over the columns."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from cipherray.gpu_kernels import bigint as bi
from cipherray.gpu_kernels import multiexp

RNG = random.Random(11)  # test data only
M = (1 << 511) + 187  # odd 512-bit modulus; bases are drawn invertible


def _bases(count: int) -> list[int]:
    out = []
    while len(out) < count:
        x = RNG.randrange(2, M)
        if math.gcd(x, M) == 1:
            out.append(x)
    return out


def _want(bases: list[int], X: np.ndarray) -> tuple[list[int], list[int]]:
    pos, neg = [], []
    for j in range(X.shape[1]):
        p = n = 1
        for b, e in zip(bases, X[:, j].tolist()):
            if e > 0:
                p = p * pow(b, e, M) % M
            elif e < 0:
                n = n * pow(b, -e, M) % M
        pos.append(p)
        neg.append(n)
    return pos, neg


def _matrix(rows: int) -> np.ndarray:
    X = np.zeros((rows, 5), dtype=np.int64)
    X[:, 0] = [RNG.randrange(-(2**63), 2**63) for _ in range(rows)]  # full range, both signs
    X[:, 1] = [RNG.randrange(0, 8) for _ in range(rows)]  # 3-bit, non-negative
    X[:, 2] = 0  # a zero column
    X[:, 3] = [-RNG.randrange(1, 2**40) for _ in range(rows)]  # negative only
    X[:, 4] = [RNG.choice([0, 1, -1, 2**62]) for _ in range(rows)]  # few distinct digits
    X[0, 0], X[1, 0], X[2, 0] = -(2**63), 2**63 - 1, 0
    return X


@pytest.mark.parametrize("window", [None, 1, 2, 5, 11, 16])
def test_matches_pow(window):
    rows = 150
    bases = _bases(rows)
    X = _matrix(rows)
    ctx = bi.MontContext(M, "host")
    pos, neg = multiexp.matvec(ctx, ctx.put(bases), X, window)
    want_pos, want_neg = _want(bases, X)
    assert list(ctx.get(pos)) == want_pos
    assert list(ctx.get(neg)) == want_neg


def test_unsigned_columns_and_several_passes(monkeypatch):
    rows = 40
    bases = _bases(rows)
    X = np.abs(_matrix(rows)[:, 1:])  # no negative entries: neg is all ones
    ctx = bi.MontContext(M, "host")
    monkeypatch.setattr(multiexp, "PAIR_BUDGET", 50)  # one column per pass
    pos, neg = multiexp.matvec(ctx, ctx.put(bases), X)
    want_pos, _ = _want(bases, X)
    assert list(ctx.get(pos)) == want_pos
    assert list(ctx.get(neg)) == [1] * X.shape[1]


def test_fp64_variant_and_edge_shapes():
    bases = _bases(7)
    ctx = bi.MontContext(M, "host", variant="f64")  # another Montgomery radix
    X = _matrix(7)
    pos, neg = multiexp.matvec(ctx, ctx.put(bases), X)
    assert (list(ctx.get(pos)), list(ctx.get(neg))) == _want(bases, X)
    zero = np.zeros((7, 3), dtype=np.int64)
    pos, neg = multiexp.matvec(ctx, ctx.put(bases), zero)
    assert list(ctx.get(pos)) == [1, 1, 1] and list(ctx.get(neg)) == [1, 1, 1]
    one_row = np.array([[5, -3]], dtype=np.int64)
    pos, neg = multiexp.matvec(ctx, ctx.put(bases[:1]), one_row)
    assert list(ctx.get(pos)) == [pow(bases[0], 5, M), 1]
    assert list(ctx.get(neg)) == [1, pow(bases[0], 3, M)]
    with pytest.raises(ValueError, match="rows"):
        multiexp.matvec(ctx, ctx.put(bases), np.zeros((6, 2), dtype=np.int64))


def test_window_choice_follows_the_cost():
    # many rows per window: wide windows; a few rows: narrow ones; never beyond MAX_WINDOW
    assert multiexp.choose_window(3_000_000, 60, 64) in (10, 11, 12, 13)
    assert multiexp.choose_window(10, 2, 64) <= 3
    assert multiexp.choose_window(10**12, 1, 64) == multiexp.MAX_WINDOW


@pytest.mark.parametrize("tpi", [4, 8])
def test_cooperative_multiplications(monkeypatch, tpi):
    """With MONTMUL_COOP set, the bucket products and every other multiplication run on the
    cooperative kernel (bigint_coop.cuh): the same values as pow and as the one-thread path."""
    rows = 120
    bases = _bases(rows)
    X = _matrix(rows)
    ctx1 = bi.MontContext(M, "host")
    one_thread = [ctx1.get(v) for v in multiexp.matvec(ctx1, ctx1.put(bases), X, 5)]
    monkeypatch.setitem(bi.MONTMUL_COOP, 16, tpi)
    ctx = bi.MontContext(M, "host")
    assert ctx.montmul_coop == tpi
    pos, neg = multiexp.matvec(ctx, ctx.put(bases), X, 5)
    want_pos, want_neg = _want(bases, X)
    assert list(ctx.get(pos)) == want_pos == list(one_thread[0])
    assert list(ctx.get(neg)) == want_neg == list(one_thread[1])
