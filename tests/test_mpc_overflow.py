"""Truncation failures of products (their measured rate) and the optional domain check."""

from __future__ import annotations

import numpy as np
import pytest

from cipherray.protocols.mpc import arithmetic, binary, overflow, truncation
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import LocalEngine
from cipherray.protocols.mpc.testing import encoded, local_context, reveal, share

RNG = np.random.default_rng(2027)  # test data only
F = 16
COUNT = 500_000


def _signed(size, magnitude):
    """Values of magnitude about `magnitude` (within a factor 2), random signs."""
    return RNG.choice([-1.0, 1.0], size=size) * magnitude * RNG.uniform(0.5, 1.0, size=size)


def _ring(values):
    """The exact integers the protocol holds for fixed-point `values` (scale 2^f)."""
    return np.rint(np.asarray(values) * 2.0**F).astype(np.int64).astype(object)


def _expected_failures(ring_values_before_truncation):
    """sum |X| / 2^64: the documented failure probability, summed over the elements."""
    return float(np.sum(np.abs(ring_values_before_truncation))) / 2.0**64


def _assert_rate(failures, expected, what):
    # expected is 1,700-4,600 here: a count of independent rare failures has sd
    # <= sqrt(expected) < 70, so [0.8, 1.25] x expected is over 8 sd wide on either
    # side (it cannot flake) and still excludes a formula off by a factor 1.3
    assert expected > 1500, what
    assert 0.8 * expected <= failures <= 1.25 * expected, (what, failures, expected)


def _products(n):
    """(name, errors, expected failures) for every kind of product: |x y| ~ 2^25 (f = 16:
    failure probability |x y| 2^(2f-64) ~ 2^-7 per element)."""
    ctx = local_context(n)
    e = ctx.engine
    x, y = _signed(COUNT, 2.0**13), _signed(COUNT, 2.0**13)
    ex, ey = encoded(x), encoded(y)
    xs, ys = share(e, x), share(e, y)
    rows, w = _signed((COUNT // 2, 4), 2.0**12), _signed((4, 2), 2.0**12)
    c = _signed(COUNT, 2.0**13)
    cases = {
        "mul": (arithmetic.mul(ctx, xs, ys), ex * ey, _ring(x) * _ring(y)),
        "square": (arithmetic.square(ctx, xs), ex**2, _ring(x) ** 2),
        "matmul": (
            arithmetic.matmul(ctx, share(e, rows), share(e, w)),
            encoded(rows) @ encoded(w),
            _ring(rows) @ _ring(w),
        ),
        "matmul_public": (
            arithmetic.matmul_public(ctx, share(e, rows), w),
            encoded(rows) @ encoded(w),
            _ring(rows) @ _ring(w),
        ),
        "mul_public": (arithmetic.mul_public(ctx, xs, c), ex * encoded(c), _ring(x) * _ring(c)),
    }
    for name, (z, want, ring) in cases.items():
        yield name, reveal(e, z) - want, _expected_failures(ring)


@pytest.mark.parametrize("n", [2, 3])
def test_product_failure_rate_is_abs_product_times_2_to_2f_minus_64(n):
    """A product fails (off by 2^(64-2f)) w.p. |x y| 2^(2f-64) per element, for the
    2-member local truncation and the 3-member dealer truncation alike; matmul and
    public products count the entry's magnitude."""
    for name, err, expected in _products(n):
        failed = np.abs(err) > 1.0
        _assert_rate(int(failed.sum()), expected, name)
        assert np.abs(np.abs(err[failed]) - 2.0 ** (64 - 2 * F)).max() < 1.0, name


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("k", [7, 2**10])
def test_public_division_failure_rate(n, k):
    """Dividing ring value X by a public k (a rescale) fails w.p. |X| / 2^64."""
    ctx = local_context(n)
    x = RNG.integers(2**56, 2**57, size=COUNT) * RNG.choice([-1, 1], size=COUNT)
    z = truncation.divide_public(ctx, ctx.engine.share(x.view(np.uint64)), k)
    err = ctx.engine.reconstruct(z).view(np.int64) - x / k
    failures = int(np.sum(np.abs(err) > 2**20))
    _assert_rate(failures, _expected_failures(x.astype(object)), f"divide by {k}")


def test_beyond_the_domain_wraps_silently_without_the_check():
    ctx = local_context(2)
    big = share(ctx, np.array([2.0**20]))
    assert reveal(ctx, arithmetic.mul(ctx, big, big))[0] == 0.0


@pytest.mark.parametrize("n", [2, 3])
def test_check_counts_out_of_domain_products_and_names_the_tag(n):
    x = np.array([2.0**20, 3.0, -(2.0**16), 2.0**10, -1.5, 2.0**14])
    y = np.array([2.0**20, 4.0, 2.0**16, 2.0**10, 2.5, -(2.0**17)])  # 3 beyond 2^30
    ctx = local_context(n)
    with pytest.raises(OverflowError, match=r"3 element\(s\) of 'mul'.*2\^30"):
        arithmetic.mul(ctx, share(ctx, x), share(ctx, y), check_overflow=True)
    named = MPCContext(ctx.engine, ctx.provider, tag="epoch3/fwd")
    with pytest.raises(OverflowError, match="'epoch3/fwd'"):
        arithmetic.matmul(named, share(ctx, x[None, :]), share(ctx, y), check_overflow=True)
    with pytest.raises(OverflowError, match=r"1 element\(s\) of 'square'"):
        arithmetic.square(ctx, share(ctx, x[:2]), check_overflow=True)


@pytest.mark.parametrize("n", [2, 3])
def test_checked_product_in_domain_costs_the_documented_rounds(n):
    ctx = local_context(n)
    e = ctx.engine
    x, y = RNG.normal(size=(30, 4)) * 100, RNG.normal(size=(4, 3)) * 100
    plain = arithmetic.matmul(ctx.scoped("plain"), share(e, x), share(e, y))
    checked = arithmetic.matmul(ctx, share(e, x), share(e, y), check_overflow=True)
    assert np.abs(reveal(e, checked) - reveal(e, plain)).max() <= 4 * 2.0**-F
    assert e.rounds("plain/") == arithmetic.rounds(n)
    assert e.rounds("matmul") == overflow.rounds(n) == {2: 10, 3: 12}[n]
    steps = e.by_step()
    # only the count is opened beyond the product's own masked operands
    assert steps["matmul/overflow/count"] == {
        "messages": n * (n - 1),
        "bytes": 8 * n * (n - 1),
        "rounds": 1,
    }
    cmp_bytes = sum(v["bytes"] for k, v in steps.items() if k.startswith("matmul/overflow/cmp/"))
    assert cmp_bytes == n * (n - 1) * 2 * 90 * binary.ltz_bytes(n)


def test_check_needs_comparisons_and_a_fixed_point_product():
    e = LocalEngine(2)
    x = share(e, np.ones(3))
    with pytest.raises(ValueError, match="AND triples"):
        arithmetic.mul(MPCContext(e, None), x, x, check_overflow=True)
    with pytest.raises(ValueError, match="truncate=True"):
        arithmetic.mul(local_context(2), x, x, truncate=False, check_overflow=True)


def test_domain_bound_follows_frac_bits():
    assert overflow.domain_bound(16) == 2**30
    assert overflow.domain_bound(8) == 2**46
    ctx = local_context(2, frac_bits=8)
    x = share(ctx, np.array([2.0**20]), frac_bits=8)
    y = share(ctx, np.array([2.0**20]), frac_bits=8)  # 2^40: beyond 2^30, inside 2^46
    arithmetic.mul(ctx, x, y, check_overflow=True)
    with pytest.raises(OverflowError, match="2\\^46"):
        arithmetic.mul(ctx, x, share(ctx, np.array([2.0**27]), frac_bits=8), check_overflow=True)
