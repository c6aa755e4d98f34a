"""cipherray.protocols.dp: exact samplers vs their pmf, mechanisms, accountant = dp-accounting.

Distribution tests use a chi-square p-value threshold of 1e-6, so a correct sampler fails
one with probability 1e-6 per test."""

from __future__ import annotations

import math
from fractions import Fraction

import dp_accounting
import numpy as np
import pytest
from dp_accounting import pld, rdp
from scipy import stats

from cipherray.protocols.dp import accountant as acc
from cipherray.protocols.dp import mechanisms as mech
from cipherray.protocols.dp import samplers

N = 200_000
P_MIN = 1e-6


def _chi2_pvalue(samples: np.ndarray, support: np.ndarray, pmf: np.ndarray) -> float:
    """Chi-square goodness of fit; bins with expected count < 20 are pooled into the tails."""
    n = samples.size
    expected = pmf * n
    keep = expected >= 20
    lo, hi = support[keep].min(), support[keep].max()
    inner = (support >= lo) & (support <= hi)
    counts = np.array([np.sum(samples == v) for v in support[inner]], dtype=float)
    exp_in = expected[inner]
    obs = np.concatenate([counts, [np.sum(samples < lo), np.sum(samples > hi)]])
    exp = np.concatenate([exp_in, [expected[support < lo].sum(), expected[support > hi].sum()]])
    mask = exp > 0
    assert obs[~mask].sum() == 0, "samples where the pmf is zero"
    stat = ((obs[mask] - exp[mask]) ** 2 / exp[mask]).sum()
    return float(stats.chi2.sf(stat, mask.sum() - 1))


def _dgauss_pmf(sigma2: float, width: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(-width, width + 1)
    w = np.exp(-(x.astype(float) ** 2) / (2 * sigma2))
    return x, w / w.sum()


def _dlap_pmf(scale: float, width: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(-width, width + 1)
    w = np.exp(-np.abs(x) / scale)
    return x, w / w.sum()


# --- samplers -------------------------------------------------------------------------


def test_uniform_below_has_no_modulo_bias():
    x = samplers.uniform_below(3, N)
    assert x.dtype == np.int64 and x.min() >= 0 and x.max() <= 2
    assert _chi2_pvalue(x, np.arange(3), np.full(3, 1 / 3)) > P_MIN
    bounds = np.array([1, 2, 7, 1 << 40] * 1000)
    y = samplers.uniform_below(bounds)
    assert np.all((y >= 0) & (y < bounds)) and np.all(y[bounds == 1] == 0)


def test_uniform_below_big_bound_is_exact_python_ints():
    bound = 3 << 70
    x = samplers.uniform_below(bound, 20_000)
    assert x.dtype == object and all(0 <= v < bound for v in x)
    # the top third [2<<70, 3<<70) must get a third of the mass (no truncation bias)
    frac = np.mean([v >= (2 << 70) for v in x])
    assert abs(frac - 1 / 3) < 0.02


def test_source_is_deterministic_per_seed_and_never_reuses_words():
    seed = bytes(range(32))
    a, b = samplers.CsprngSource(seed), samplers.CsprngSource(seed)
    assert np.array_equal(a.words(8), b.words(8))
    assert not np.array_equal(a.words(8), samplers.CsprngSource(seed).words(8))
    assert np.array_equal(
        samplers.discrete_gaussian(4, 100, samplers.CsprngSource(seed)),
        samplers.discrete_gaussian(4, 100, samplers.CsprngSource(seed)),
    )


def test_as_rational_rounds_floats_up_and_keeps_exact_values():
    assert samplers.as_rational(3) == 3
    assert samplers.as_rational(Fraction(1, 3)) == Fraction(1, 3)
    r = samplers.as_rational(0.1)
    assert r >= Fraction(0.1) and r - Fraction(0.1) < Fraction(1, 1 << 16)
    with pytest.raises(ValueError):
        samplers.as_rational(0)


@pytest.mark.parametrize(
    "num,den", [(0, 1), (1, 2), (1, 1), (5, 2), (7, 3), ((1 << 70) // 3, 1 << 70)]
)
def test_bernoulli_exp_frequency(num, den):
    x = samplers.bernoulli_exp(np.full(N, num, dtype=object if num > 2**62 else np.int64), den)
    p = math.exp(-Fraction(num, den))
    # 6 standard deviations (plus a hair for p in {0, 1})
    assert abs(x.mean() - p) < 6 * math.sqrt(p * (1 - p) / N) + 1e-9


def test_bernoulli_exp_per_entry_parameters():
    nums = np.tile(np.array([0, 1, 2, 4]), N // 4)
    x = samplers.bernoulli_exp(nums, 2)
    for g in (0, 1, 2, 4):
        p = math.exp(-g / 2)
        assert abs(x[nums == g].mean() - p) < 6 * math.sqrt(p * (1 - p) / (N / 4)) + 1e-9


@pytest.mark.parametrize("scale", [1, 3, Fraction(1, 3), Fraction(7, 2)])
def test_discrete_laplace_matches_pmf(scale):
    x = samplers.discrete_laplace(scale, N)
    assert x.dtype == np.int64 and x.shape == (N,)
    support, pmf = _dlap_pmf(float(scale), int(60 * float(scale)) + 20)
    assert _chi2_pvalue(x, support, pmf) > P_MIN
    var = float((support.astype(float) ** 2 * pmf).sum())
    assert abs(x.mean()) < 6 * math.sqrt(var / N)
    assert abs(x.var() / var - 1) < 0.05


@pytest.mark.parametrize("sigma2", [1, 2.25, 100, Fraction(1, 4), 10**6])
def test_discrete_gaussian_matches_pmf(sigma2):
    x = samplers.discrete_gaussian(sigma2, (N // 2, 2))
    assert x.shape == (N // 2, 2) and x.dtype == np.int64
    s2 = float(samplers.as_rational(sigma2))
    support, pmf = _dgauss_pmf(s2, int(12 * math.sqrt(s2)) + 10)
    x = x.reshape(-1)
    if s2 <= 400:  # chi-square on the lattice; for wide ones the moment checks below
        assert _chi2_pvalue(x, support, pmf) > P_MIN
    var = float((support.astype(float) ** 2 * pmf).sum())
    assert abs(x.mean()) < 6 * math.sqrt(var / N)
    assert abs(x.var() / var - 1) < 0.03


def test_discrete_gaussian_large_sigma_uses_exact_big_ints():
    x = samplers.discrete_gaussian(10**10, 50_000)  # γ's numerator overflows int64
    assert abs(x.var() / 1e10 - 1) < 0.05 and abs(x.mean()) < 6 * math.sqrt(1e10 / 50_000)


# --- mechanisms -----------------------------------------------------------------------


def test_gaussian_mechanism_on_grid():
    x = np.full(N, 1.25)
    g = 1 / 64
    y = mech.gaussian_mechanism(x, sigma=0.5, granularity=g)
    assert np.allclose(y / g, np.rint(y / g))  # outputs on the grid
    assert abs(y.mean() - 1.25) < 6 * 0.5 / math.sqrt(N)
    assert abs(y.std() / 0.5 - 1) < 0.02
    assert mech.grid_l2_sensitivity(1.0, g, 16) == 64 + 4


def test_laplace_mechanism_on_grid():
    x = np.zeros(N)
    y = mech.laplace_mechanism(x, scale=2.0, granularity=0.25)
    assert np.allclose(y * 4, np.rint(y * 4))
    assert abs(y.var() / 8.0 - 1) < 0.05  # continuous Laplace(2) variance 8, grid 1/4
    with pytest.raises(ValueError):
        mech.to_grid(np.array([np.inf]), 1.0)


def test_clip_l2():
    u = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    c, norms = mech.clip_l2(u, 1.0)
    np.testing.assert_allclose(norms, [5.0, 0.5, 0.0])
    np.testing.assert_allclose(c, [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]])
    assert np.all(np.linalg.norm(c, axis=1) <= 1.0 + 1e-12)


@pytest.mark.parametrize("q,count_sigma", [(0.5, 0.0), (0.8, 0.0), (0.5, 5.0)])
def test_adaptive_clipping_tracks_quantile(q, count_sigma):
    norms = np.linspace(0.0, 10.0, 1001)  # the q-quantile is 10·q
    clipper = mech.AdaptiveClipper(
        clip=0.1, target_quantile=q, learning_rate=0.2, count_sigma=count_sigma
    )
    for _ in range(300):
        clipper.update(norms)
    assert abs(clipper.clip - 10 * q) < 0.5


def test_update_noise_multiplier_matches_andrew_et_al():
    z = mech.update_noise_multiplier(1.0, 10.0)
    assert z == pytest.approx((1.0 - 1 / 400) ** -0.5)
    assert (z**-2 + (2 * 10.0) ** -2) ** -0.5 == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mech.update_noise_multiplier(1.0, 0.4)


@pytest.mark.parametrize("k,eps", [(2, 1.0), (5, 2.0)])
def test_randomized_response(k, eps):
    p = mech._keep_probability(eps, k)
    assert p / ((1 - p) / (k - 1)) <= Fraction(math.exp(eps))  # ratio at most e^ε
    assert float(p) == pytest.approx(math.exp(eps) / (math.exp(eps) + k - 1), abs=1e-9)
    truth = np.repeat(np.arange(k), N // k)
    rep = mech.randomized_response(truth, k, eps)
    assert rep.min() >= 0 and rep.max() < k
    kept = np.mean(rep == truth)
    assert abs(kept - float(p)) < 6 * math.sqrt(float(p) * (1 - float(p)) / truth.size)
    est = mech.rr_estimate_frequencies(rep, k, eps)
    np.testing.assert_allclose(est, np.full(k, 1 / k), atol=0.02)


# --- accountant -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["rdp", "pld"])
def test_epsilon_equals_dp_accounting(method):
    z, q, delta = 1.1, 0.02, 1e-5
    rounds = 50 if method == "rdp" else 10  # PLD round-by-round composition is slower
    ref = rdp.RdpAccountant() if method == "rdp" else pld.PLDAccountant()
    ref.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), rounds)
    per_round, total = acc.dp_fedavg_epsilon(z, q, rounds, delta, method)
    assert total == ref.get_epsilon(delta)
    one = rdp.RdpAccountant() if method == "rdp" else pld.PLDAccountant()
    one.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)))
    assert per_round == one.get_epsilon(delta)
    # spending round by round composes to the same total
    a = acc.PrivacyAccountant(delta, method=method)
    event = acc.subsampled_gaussian_event(z, q)
    for _ in range(rounds):
        a.spend(event)
    assert a.epsilon() == pytest.approx(total, rel=1e-6 if method == "rdp" else 1e-3)


def test_refuses_before_exceeding_the_target():
    a = acc.PrivacyAccountant(1e-5, target_epsilon=2.0, name="hfl-run")
    event = acc.subsampled_gaussian_event(1.0, 0.05)
    spent = 0
    with pytest.raises(acc.PrivacyBudgetExceeded) as info:
        for _ in range(10_000):
            a.spend(event)
            spent += 1
    assert 0 < spent < 10_000
    err = info.value
    assert err.name == "hfl-run" and err.budget == 2.0
    assert err.spent == a.epsilon() <= 2.0 < err.requested
    assert "hfl-run" in str(err) and "refused" in str(err)
    assert len(a.history) == spent  # the refused round was not recorded
    assert not a.can_spend(event)
    assert a.epsilon() == pytest.approx(a.epsilon_of(event, spent), rel=1e-9)


def test_table_budget_with_laplace_releases():
    delta = 1e-6
    a = acc.PrivacyAccountant(delta, target_epsilon=1.0, method="pld", name="table:patients")
    release = acc.laplace_event(4.0)  # pure ε = 1/4 per release
    for _ in range(4):
        a.spend(release)
    ref = pld.PLDAccountant()
    ref.compose(dp_accounting.LaplaceDpEvent(4.0), 4)
    assert a.epsilon() == pytest.approx(ref.get_epsilon(delta), rel=1e-9)
    assert a.epsilon() <= 1.0 + 1e-9
    with pytest.raises(acc.PrivacyBudgetExceeded):
        a.spend(release)


def test_noise_multiplier_for_target():
    z = acc.noise_multiplier_for(2.0, 1e-5, rounds=200, sampling_rate=0.01)
    _, total = acc.dp_fedavg_epsilon(z, 0.01, 200, 1e-5)
    assert total <= 2.0 and total > 1.98
    _, looser = acc.dp_fedavg_epsilon(z * 0.98, 0.01, 200, 1e-5)
    assert looser > 2.0


def test_accountant_validates():
    with pytest.raises(ValueError):
        acc.PrivacyAccountant(0.0)
    with pytest.raises(ValueError):
        acc.subsampled_gaussian_event(1.0, 0.0)
    assert isinstance(acc.subsampled_gaussian_event(1.0, 1.0), dp_accounting.GaussianDpEvent)
