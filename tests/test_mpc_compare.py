"""A2B sign extraction, B2A, comparisons, ReLU, select, max/min vs plaintext."""

from __future__ import annotations

import numpy as np
import pytest

from cipherray.protocols.mpc import binary, compare
from cipherray.protocols.mpc.testing import ULP, encoded, local_context, reveal, share

RNG = np.random.default_rng(11)  # test data only


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_ltz_bit_full_ring(n):
    ctx = local_context(n)
    e = ctx.engine
    v = RNG.integers(-(2**63), 2**63 - 1, size=4000, dtype=np.int64)
    v[:6] = [0, -1, 1, -(2**63), 2**63 - 1, -(2**62)]
    b = binary.ltz_bit(ctx, e.share(v.view(np.uint64)))
    assert np.array_equal(e.reconstruct(b), (v < 0).astype(np.uint64))
    assert e.rounds("ltz") == binary.ltz_rounds(n) == {2: 8, 3: 9, 4: 10, 5: 11}[n]
    assert e.bytes("ltz") == n * (n - 1) * 4000 * binary.ltz_bytes(n)
    assert binary.ltz_bytes(2) == 200 and binary.ltz_bytes(3) == 216


@pytest.mark.parametrize("n", [2, 3])
def test_comparisons_against_shared_and_public(n):
    ctx = local_context(n)
    e = ctx.engine
    x = np.round(RNG.normal(size=500) * 10, 1)
    y = np.round(RNG.normal(size=500) * 10, 1)
    y[:50] = x[:50]  # ties
    xs, ys = share(e, x), share(e, y)
    ex, ey = encoded(x), encoded(y)
    cases = {
        "lt": ex < ey,
        "gt": ex > ey,
        "le": ex <= ey,
        "ge": ex >= ey,
        "eq": ex == ey,
    }
    for name, want in cases.items():
        got = reveal(e, getattr(compare, name)(ctx, xs, ys))
        assert np.array_equal(got, want.astype(float)), name
        assert e.rounds(name) == binary.ltz_rounds(n), name
        scoped = ctx.scoped(f"again/{name}")
        again = reveal(e, compare.relation(scoped, name, xs, ys))
        assert np.array_equal(again, want.astype(float)), name
        assert e.rounds(f"again/{name}/") == binary.ltz_rounds(n), name
    # public comparand, broadcast
    got = reveal(e, compare.lt(ctx, xs, 0.5))
    assert np.array_equal(got, (ex < 0.5).astype(float))
    got = reveal(e, compare.ge(ctx, xs, y))
    assert np.array_equal(got, (ex >= ey).astype(float))
    got = reveal(e, compare.ltz(ctx, xs))
    assert np.array_equal(got, (ex < 0).astype(float))


@pytest.mark.parametrize("n", [2, 3])
def test_relu_max_min_where(n):
    ctx = local_context(n)
    e = ctx.engine
    x, y = RNG.normal(size=(20, 30)) * 100, RNG.normal(size=(20, 30)) * 100
    x[0, :5] = 0.0
    xs, ys = share(e, x), share(e, y)
    ex, ey = encoded(x), encoded(y)
    assert np.array_equal(reveal(e, compare.relu(ctx, xs)), np.maximum(ex, 0))
    assert e.rounds("relu") == binary.ltz_rounds(n) + 1
    assert np.array_equal(reveal(e, compare.maximum(ctx, xs, ys)), np.maximum(ex, ey))
    assert np.array_equal(reveal(e, compare.minimum(ctx, xs, ys)), np.minimum(ex, ey))
    assert np.array_equal(reveal(e, compare.maximum(ctx, xs, -1.5)), np.maximum(ex, -1.5))
    cond = compare.gt(ctx, xs, ys)
    got = reveal(e, compare.where(ctx, cond, xs, ys))
    tol = 0 if n == 2 else 2 * ULP
    assert np.abs(got - np.where(ex > ey, ex, ey)).max() <= tol


def test_opaque_engine_with_shapes():
    ctx = local_context(2, opaque=True)
    x = np.array([-2.0, 0.0, 3.0])
    out = compare.relu(ctx, share(ctx, x), shape=(3,))
    assert np.array_equal(reveal(ctx, out), np.maximum(x, 0))


def test_compare_bad_inputs():
    ctx = local_context(2)
    xs = share(ctx, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4,\)"):
        compare.lt(ctx, xs, share(ctx, np.ones(4)))
    with pytest.raises(ValueError, match="NaN"):
        compare.lt(ctx, xs, np.nan)
    with pytest.raises(TypeError, match="numeric"):
        compare.lt(ctx, xs, "zero")
    with pytest.raises(OverflowError):
        compare.lt(ctx, xs, 1e30)
    with pytest.raises(ValueError, match="unknown relation"):
        compare.relation(ctx, "ne", xs, 0.0)
