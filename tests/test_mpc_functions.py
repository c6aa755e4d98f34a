"""Non-linear functions: the documented domain and max error, checked by a sweep."""

from __future__ import annotations

import numpy as np
import pytest

from cipherray.protocols.mpc import functions as F
from cipherray.protocols.mpc.testing import encoded, local_context, reveal, share


def _run(n, fn, xs, **kw):
    ctx = local_context(n)
    out = fn(ctx, share(ctx, xs), **kw)
    return reveal(ctx, out), encoded(xs), ctx.engine


# name, function, sweep, reference, bound(x) (from the docstring table), rounds n=2, n=3
CASES = [
    ("sigmoid", F.sigmoid, np.linspace(-12, 12, 12001), lambda x: 1 / (1 + np.exp(-x)),
     lambda x: 1e-3, 9, 11),
    ("tanh", F.tanh, np.linspace(-8, 8, 8001), np.tanh, lambda x: 2e-3, 9, 11),
    ("exp", F.exp, np.linspace(-16, 4, 8001), np.exp,
     lambda x: 2e-3 * np.maximum(1, np.exp(x)), 6, 13),
    ("reciprocal", F.reciprocal,
     np.concatenate([np.linspace(0.05, 2, 4000), np.geomspace(2, 1000, 4000)]),
     lambda x: 1 / x, lambda x: 1e-3 * np.maximum(1, 1 / x), 14, 21),
    ("inv_sqrt", F.inv_sqrt,
     np.concatenate([np.linspace(0.05, 2, 4000), np.geomspace(2, 1000, 4000)]),
     lambda x: 1 / np.sqrt(x), lambda x: 1e-3 * np.maximum(1, 1 / np.sqrt(x)), 17, 27),
    ("sqrt", F.sqrt,
     np.concatenate([np.linspace(0, 0.05, 2000), np.linspace(0.05, 2, 4000),
                     np.geomspace(2, 1000, 4000)]),
     np.sqrt, lambda x: np.where(x >= 0.05, 2e-4, 5e-3), 20, 33),
]  # fmt: skip


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_function_error_within_documented_bound(n, case):
    name, fn, xs, ref, bound, r2, r3 = case
    got, x, e = _run(n, fn, xs)
    err = np.abs(got - ref(x))
    assert np.all(err <= bound(x)), f"{name}: worst {err.max():.3g} at x={x[np.argmax(err)]}"
    assert e.rounds(name) == (r2 if n == 2 else r3)


def test_sigmoid_saturates_far_outside_and_matches_plaintext_twin():
    xs = np.array([-1e6, -50.0, -8.0, 0.0, 8.0, 50.0, 1e6])
    got, x, _ = _run(2, F.sigmoid, xs)
    assert np.abs(got - F.sigmoid_plaintext(x)).max() <= 1e-4
    assert got[0] == 0.0 and got[-1] == 1.0


def test_exp_clamp_and_div_public():
    xs = np.array([-100.0, -16.0, 0.0, 2.0])
    got, x, _ = _run(2, F.exp, xs, clamp=True)
    assert np.abs(got - np.exp(np.maximum(x, -16))).max() <= 2e-3 * np.exp(2)
    for n in (2, 3):
        ctx = local_context(n)
        v = np.linspace(-1000, 1000, 501)
        got = reveal(ctx, F.div_public(ctx, share(ctx, v), 7))
        assert np.abs(got - encoded(v) / 7).max() <= 3 * 2.0**-16
        got = reveal(ctx, F.div_public(ctx, share(ctx, v), 0.25))
        assert np.abs(got - encoded(v) * 4).max() <= 2 * 2.0**-16
        with pytest.raises(ZeroDivisionError):
            F.div_public(ctx, share(ctx, v), 0)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.filterwarnings("error")
def test_scalar_and_empty_shapes(n):
    from cipherray.protocols.mpc import arithmetic, compare

    ctx = local_context(n)
    e = ctx.engine
    s = share(e, np.array(2.5))
    assert abs(reveal(e, arithmetic.mul(ctx, s, s)) - 6.25) <= 2 * 2.0**-16
    assert reveal(e, compare.ltz(ctx, s)) == 0.0
    assert abs(reveal(e, F.reciprocal(ctx, s)) - 0.4) < 1e-3
    assert abs(reveal(e, F.sqrt(ctx, s)) - np.sqrt(2.5)) < 2e-4
    empty = share(e, np.zeros((0, 3)))
    assert reveal(e, F.sigmoid(ctx, empty)).shape == (0, 3)
    assert reveal(e, arithmetic.matmul(ctx, empty, share(e, np.ones((3, 2))))).shape == (0, 2)


@pytest.mark.parametrize("n", [2, 3])
def test_everything_runs_on_an_opaque_pickling_engine(n):
    """Only the Engine API, every step pickled, shapes passed explicitly at the top: no
    protocol reads a handle in the driver or passes a non-module-level step."""
    from cipherray.protocols.mpc import arithmetic, compare, logreg

    ctx = local_context(n, opaque=True)
    v = np.array([[0.5, 2.0, 3.0], [1.5, 0.25, 4.0]])
    x, s = share(ctx, v), v.shape
    checks = [
        (F.sigmoid(ctx, x, shape=s), 1 / (1 + np.exp(-v)), 1e-3),
        (F.exp(ctx, x, shape=s, clamp=True), np.exp(v), 2e-3 * np.exp(4)),
        (F.reciprocal(ctx, x, shape=s), 1 / v, 1e-3 * 4),
        (F.sqrt(ctx, x, shape=s), np.sqrt(v), 2e-4),
        (F.tanh(ctx, x, shape=s), np.tanh(v), 2e-3),
        (F.div_public(ctx, x, 3, shape=s), v / 3, 1e-4),
        (compare.eq(ctx, x, 2.0, x_shape=s), (v == 2.0) * 1.0, 0),
        (compare.minimum(ctx, x, x, x_shape=s, y_shape=s), v, 0),
        (compare.where(ctx, share(ctx, np.ones(s)), x, x, shape=s), v, 1e-4),
        (arithmetic.square(ctx, x, shape=s), v**2, 1e-4),
        (arithmetic.mul_public(ctx, x, 0.5, x_shape=s), v * 0.5, 1e-4),
        (arithmetic.matmul_public(ctx, x, np.ones((3, 1)), x_shape=s), v @ np.ones((3, 1)), 1e-4),
        (arithmetic.mul(ctx, x, x, x_shape=s, y_shape=s, check_overflow=True), v**2, 1e-4),
    ]
    for k, (got, want, tol) in enumerate(checks):
        assert np.abs(reveal(ctx, got) - want).max() <= tol, k
    y = share(ctx, np.array([0.0, 1.0]))
    w, b = logreg.train_logreg(ctx, x, y, epochs=1, lr=0.1, x_shape=s)
    assert reveal(ctx, w).shape == (3,) and reveal(ctx, b).shape == (1,)
