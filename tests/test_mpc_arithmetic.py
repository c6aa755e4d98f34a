"""Beaver multiplication, matmul, public products and truncation vs plaintext NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cipherray.protocols import fixedpoint as fp
from cipherray.protocols.mpc import arithmetic, truncation
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import LocalEngine
from cipherray.protocols.mpc.providers import DealerProvider
from cipherray.protocols.mpc.testing import ULP, encoded, local_context, reveal, share

RNG = np.random.default_rng(7)  # test data only


def _bound(n: int) -> float:
    """Truncation error bound in ulp: 1 for 2 members (local), ceil(n/2) for wrap."""
    return (1 if n == 2 else math.ceil(n / 2)) * ULP * 1.0001


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("sx,sy", [((200,), (200,)), ((30, 4), (4,)), ((5, 1), (1, 6)), ((), (7,))])
def test_mul_matches_numpy(n, sx, sy):
    ctx = local_context(n)
    e = ctx.engine
    x, y = RNG.normal(size=sx) * 5, RNG.normal(size=sy) * 5
    z = arithmetic.mul(ctx, share(e, x), share(e, y))
    want = encoded(x) * encoded(y)
    assert reveal(e, z).shape == want.shape
    assert np.abs(reveal(e, z) - want).max() <= _bound(n)


@pytest.mark.parametrize("n", [2, 3])
def test_square_and_public_products(n):
    ctx = local_context(n)
    e = ctx.engine
    x = RNG.normal(size=(40, 5)) * 5
    xs = share(e, x)
    assert np.abs(reveal(e, arithmetic.square(ctx, xs)) - encoded(x) ** 2).max() <= _bound(n)
    # integer public: exact, no messages
    before = len(e.messages)
    z = arithmetic.mul_public(MPCContext(e, None), xs, np.arange(5))
    assert len(e.messages) == before
    assert np.array_equal(reveal(e, z), encoded(x) * np.arange(5))
    # real public: encoded with f bits, then truncated
    c = RNG.normal(size=5)
    z = arithmetic.mul_public(ctx, xs, c)
    assert np.abs(reveal(e, z) - encoded(x) * encoded(c)).max() <= _bound(n)
    z = arithmetic.mul_public(ctx, xs, 1e-3, significant_bits=20)
    assert np.abs(reveal(e, z) - encoded(x) * 1e-3).max() <= 1e-6 * np.abs(x).max() + 2 * ULP


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize(
    "sx,sy", [((20, 30), (30, 10)), ((30,), (30, 4)), ((6, 30), (30,)), ((300, 1100), (1100, 3))]
)
def test_matmul_matches_numpy(n, sx, sy):
    ctx = local_context(n)
    e = ctx.engine
    x, y = RNG.normal(size=sx), RNG.normal(size=sy)
    z = arithmetic.matmul(ctx, share(e, x), share(e, y))
    want = encoded(x) @ encoded(y)
    assert reveal(e, z).shape == want.shape
    assert np.abs(reveal(e, z) - want).max() <= _bound(n)


@pytest.mark.parametrize("n", [2, 3])
def test_matmul_public_both_sides(n):
    ctx = local_context(n)
    e = ctx.engine
    x, w = RNG.normal(size=(8, 5)), RNG.normal(size=(5, 3))
    xs = share(e, x)
    z = arithmetic.matmul_public(ctx, xs, w)
    assert np.abs(reveal(e, z) - encoded(x) @ encoded(w)).max() <= _bound(n)
    w2 = RNG.normal(size=(4, 8))
    z = arithmetic.matmul_public(ctx, xs, w2, side="left")
    assert np.abs(reveal(e, z) - encoded(w2) @ encoded(x)).max() <= _bound(n)
    z = arithmetic.matmul_public(MPCContext(e, None), xs, np.ones((5, 2), dtype=np.int64))
    assert np.array_equal(reveal(e, z), encoded(x) @ np.ones((5, 2)))


@pytest.mark.parametrize("n", [2, 3, 4])
def test_mul_rounds_and_bytes_with_preprocessed_pool(n):
    ctx = local_context(n)
    e = ctx.engine
    ctx.provider.preprocess(e, [("mul", ((100,), (100,))), ("wrap", ((100,),))])
    x, y = share(e, np.ones(100)), share(e, np.ones(100))
    arithmetic.mul(ctx, x, y)
    assert e.rounds("mul/open") == 1
    assert e.rounds("mul") == arithmetic.rounds(n) == (1 if n == 2 else 2)
    assert e.bytes("mul/open") == n * (n - 1) * 8 * 200
    assert e.by_step()["mul/open"]["messages"] == n * (n - 1)
    if n > 2:  # truncation: every other member sends 8 bytes per element to member 0
        assert e.by_step()["mul/trunc/reveal"] == {
            "messages": n - 1,
            "bytes": (n - 1) * 800,
            "rounds": 1,
        }


def test_matmul_rounds_and_bytes():
    ctx = local_context(2)
    e = ctx.engine
    arithmetic.matmul(ctx, share(e, np.ones((4, 6))), share(e, np.ones((6, 3))))
    assert e.rounds("matmul") == 1
    assert e.bytes("matmul") == 2 * 8 * (24 + 18)


def test_opaque_pickling_engine_needs_shapes():
    ctx = local_context(3, opaque=True)
    x, y = share(ctx, np.arange(6.0).reshape(2, 3)), share(ctx, np.ones((3, 2)))
    z = arithmetic.matmul(ctx, x, y, x_shape=(2, 3), y_shape=(3, 2))
    assert np.abs(reveal(ctx, z) - np.arange(6.0).reshape(2, 3) @ np.ones((3, 2))).max() <= 2 * ULP
    with pytest.raises(ValueError, match="shape"):
        arithmetic.mul(ctx, x, x)


def test_bad_inputs():
    ctx = local_context(2)
    e = ctx.engine
    x, y = share(e, np.ones((2, 3))), share(e, np.ones((4,)))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4,\)"):
        arithmetic.mul(ctx, x, y)
    with pytest.raises(ValueError, match=r"\(2, 3\) @ \(4,\)"):
        arithmetic.matmul(ctx, x, y)
    with pytest.raises(TypeError, match="numeric"):
        arithmetic.mul_public(ctx, x, np.array(["a", "b", "c"]))
    with pytest.raises(OverflowError, match="range"):
        arithmetic.mul_public(ctx, x, 1e20)
    with pytest.raises(ValueError, match="NaN"):
        arithmetic.mul_public(ctx, x, np.nan)
    with pytest.raises(ValueError, match="frac_bits"):
        MPCContext(e, ctx.provider, frac_bits=40)
    with pytest.raises(ValueError, match="3 members"):
        arithmetic.mul(local_context(3), x, x)
    with pytest.raises(TypeError, match="PerParty"):
        arithmetic.mul(ctx, np.ones(3), x)


# ----------------------------------------------------------------- truncation


def test_local_truncation_failure_rate_and_one_ulp_bound():
    """Failure (huge error) w.p. |x| / 2^64 <= 2^(l-64) for |x| < 2^l; else within 1 ulp."""
    e = LocalEngine(2)
    ctx = MPCContext(e, None)
    lb, d, count = 56, 16, 200_000
    x = RNG.integers(-(2**lb), 2**lb, size=count).astype(np.int64)
    z = truncation.truncate(ctx, e.share(x.view(np.uint64)), d)
    err = e.reconstruct(z).view(np.int64) - (x >> d)
    failed = np.abs(err) > 1
    rate = failed.mean()
    assert 0 < rate <= 2.0 ** (lb - 64) * 1.15
    assert set(np.unique(err[~failed])) <= {0, 1}
    # small values: no failure in 200k samples at l = 32 (p <= 2^-31 each)
    x = RNG.integers(-(2**32), 2**32, size=count).astype(np.int64)
    z = truncation.truncate(ctx, e.share(x.view(np.uint64)), d)
    assert np.abs(e.reconstruct(z).view(np.int64) - (x >> d)).max() <= 1
    # exact multiples of 2^d are truncated exactly
    x = RNG.integers(-(2**20), 2**20, size=count).astype(np.int64)
    z = truncation.truncate(ctx, e.share((x << 16).view(np.uint64)), d)
    assert np.array_equal(e.reconstruct(z).view(np.int64), x)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_wrap_truncation_within_ceil_half_n(n):
    ctx = local_context(n)
    e = ctx.engine
    x = RNG.integers(-(2**32), 2**32, size=50_000).astype(np.int64)
    z = truncation.truncate(ctx, e.share(x.view(np.uint64)), 16, method="wrap")
    err = e.reconstruct(z).view(np.int64) - x / 2.0**16
    assert np.abs(err).max() <= math.ceil(n / 2)
    assert e.rounds("trunc") == 1
    assert e.by_step()["trunc/reveal"]["messages"] == n - 1


def test_wrap_truncation_eta_failure_rate():
    """eta != 0 (x + r overflows as signed) w.p. |x| / 2^64 <= 2^(l-64)."""
    ctx = local_context(3)
    e = ctx.engine
    lb, count = 58, 100_000
    x = RNG.integers(-(2**lb), 2**lb, size=count).astype(np.int64)
    z = truncation.truncate(ctx, e.share(x.view(np.uint64)), 16)
    err = e.reconstruct(z).view(np.int64) - (x >> 16)
    failed = np.abs(err) > 2
    assert 0 < failed.mean() <= 2.0 ** (lb - 64) * 1.15


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("k", [3, 7, 1000, 2**20 + 1])
def test_divide_public(n, k):
    ctx = local_context(n)
    e = ctx.engine
    x = RNG.integers(-(2**32), 2**32, size=20_000).astype(np.int64)
    z = truncation.divide_public(ctx, e.share(x.view(np.uint64)), k)
    err = e.reconstruct(z).view(np.int64) - x / k
    bound = 1 if n == 2 else math.ceil(n / 2) + n / 2
    assert np.abs(err).max() <= bound


def test_truncation_rounds_and_errors():
    e2 = LocalEngine(2)
    truncation.truncate(MPCContext(e2, None), e2.share(np.ones(4, np.uint64)), 16)
    assert e2.messages == [] and truncation.rounds(2) == 0 and truncation.rounds(3) == 1
    e3 = LocalEngine(3)
    x3 = e3.share(np.ones(4, np.uint64))
    bare, dealt = MPCContext(e3, None), MPCContext(e3, DealerProvider())
    with pytest.raises(ValueError, match="only correct for 2"):
        truncation.truncate(bare, x3, 16, method="local")
    with pytest.raises(ValueError, match="wrap pairs"):
        truncation.truncate(bare, x3, 16)
    with pytest.raises(ValueError, match="bits"):
        truncation.truncate(dealt, x3, 64)
    with pytest.raises(TypeError, match="integer"):
        truncation.divide_public(dealt, x3, 2.5)
    assert fp.decode(e3.reconstruct(truncation.divide_public(bare, x3, 1)), 1)[0] == 1
