"""DP mechanisms on a fixed-point grid, clipping, and randomized response.

Guarantees
----------
- `gaussian_mechanism` / `laplace_mechanism` round the values to the grid
  `granularity·Z` (round half to even), add exact discrete Gaussian / Laplace noise
  in integer units (`samplers`), and only then multiply by the granularity. The noise
  is added to integers, so the output carries no floating-point side channel; the
  final product is post-processing. Rounding moves each coordinate by at most
  granularity/2, so a query of L2 (L1) sensitivity Δ in d coordinates has sensitivity
  at most Δ/granularity + √d (Δ/granularity + d) grid units: `grid_l2_sensitivity` /
  `grid_l1_sensitivity` give the bound to account with. With the sensitivity in grid units Δ_g, the
  Gaussian output is (Δ_g²/(2σ_g²))-zCDP, σ_g = sigma / granularity (Canonne,
  Kamath & Steinke 2020), and the Laplace output is (Δ_g / b_g)-DP.
- `clip_l2` scales each row to L2 norm at most `clip` (DP-FedAvg's per-client clip).
- `AdaptiveClipper` follows a target quantile of the update norms (Andrew et al.,
  "Differentially Private Learning with Adaptive Clipping", NeurIPS 2021,
  geometric update). The clipped-count it uses is itself released with discrete
  Gaussian noise: with centred bits its add/remove sensitivity is 1/2, and
  `update_noise_multiplier` splits a total noise multiplier between the update and the
  count so that the pair is exactly as private as one Gaussian with the total multiplier.
- `randomized_response` is ε-local-DP k-ary randomized response. Its keep probability
  is a rational rounded *down* from e^ε/(e^ε + k - 1) (with a margin for the rounding of
  exp), so the ratio of any two output probabilities is at most e^ε.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from cipherray.protocols.dp import samplers
from cipherray.protocols.dp.samplers import CsprngSource

__all__ = [
    "AdaptiveClipper",
    "clip_l2",
    "gaussian_mechanism",
    "grid_l1_sensitivity",
    "grid_l2_sensitivity",
    "laplace_mechanism",
    "randomized_response",
    "rr_estimate_frequencies",
    "to_grid",
    "update_noise_multiplier",
]


def to_grid(x: np.ndarray, granularity: float) -> np.ndarray:
    """Integers round(x / granularity) (int64); refuses values beyond 2^53 grid units."""
    if granularity <= 0:
        raise ValueError("granularity must be positive")
    g = np.rint(np.asarray(x, dtype=np.float64) / granularity)
    if g.size and not np.all(np.abs(g) < 2.0**53):
        raise ValueError("value too large for the grid (|x|/granularity >= 2^53) or not finite")
    return g.astype(np.int64)


def grid_l2_sensitivity(l2: float, granularity: float, dim: int) -> float:
    """L2 sensitivity, in grid units, of `to_grid` of a query of L2 sensitivity `l2`
    in `dim` coordinates (rounding adds at most 1/2 unit per coordinate per input)."""
    return l2 / granularity + math.sqrt(dim)


def grid_l1_sensitivity(l1: float, granularity: float, dim: int) -> float:
    """L1 sensitivity, in grid units, of `to_grid` of a query of L1 sensitivity `l1`."""
    return l1 / granularity + dim


def gaussian_mechanism(
    x: np.ndarray, sigma: float, granularity: float, source: CsprngSource | None = None
) -> np.ndarray:
    """x rounded to the grid plus discrete Gaussian noise of scale `sigma` (in the units
    of x, i.e. sigma/granularity grid units), returned as float64."""
    q = to_grid(x, granularity)
    noise = samplers.discrete_gaussian(
        samplers.as_rational(sigma / granularity) ** 2, q.shape, source
    )
    return (q + noise).astype(np.float64) * granularity


def laplace_mechanism(
    x: np.ndarray, scale: float, granularity: float, source: CsprngSource | None = None
) -> np.ndarray:
    """x rounded to the grid plus discrete Laplace noise of scale `scale` (units of x)."""
    q = to_grid(x, granularity)
    noise = samplers.discrete_laplace(samplers.as_rational(scale / granularity), q.shape, source)
    return (q + noise).astype(np.float64) * granularity


def clip_l2(updates: np.ndarray, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `updates` (clients × dims) scaled to L2 norm <= clip; returns
    (clipped, norms before clipping)."""
    if clip <= 0:
        raise ValueError("clip must be positive")
    u = np.asarray(updates, dtype=np.float64)
    norms = np.linalg.norm(u.reshape(u.shape[0], -1), axis=1)
    factor = np.minimum(1.0, clip / np.maximum(norms, np.finfo(np.float64).tiny))
    return u * factor.reshape((-1,) + (1,) * (u.ndim - 1)), norms


def update_noise_multiplier(total: float, count_sigma: float) -> float:
    """Noise multiplier for the clipped updates so that (updates, noisy clipped count)
    together match one Gaussian with multiplier `total` (Andrew et al. 2021, Thm 1):
    z_Δ = (total^-2 - (2·count_sigma)^-2)^(-1/2)."""
    rest = total**-2 - (2.0 * count_sigma) ** -2
    if rest <= 0:
        raise ValueError("count_sigma too small for this total noise multiplier")
    return rest**-0.5


@dataclass
class AdaptiveClipper:
    """Clip norm that tracks the `target_quantile` of client update norms.

    Each round: b_i = 1[norm_i <= clip]; the server gets the sum of the centred bits
    (b_i - 1/2) plus discrete Gaussian noise with std `count_sigma`, estimates the
    fraction b̃ = noisy / expected_clients + 1/2, and sets
    clip ← clip · exp(-learning_rate · (b̃ - target_quantile))."""

    clip: float
    target_quantile: float = 0.5
    learning_rate: float = 0.2
    count_sigma: float = 0.0
    source: CsprngSource | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.target_quantile <= 1.0:
            raise ValueError("target_quantile must lie in [0, 1]")
        if self.clip <= 0:
            raise ValueError("clip must be positive")

    def noisy_fraction(self, norms: np.ndarray, expected_clients: float | None = None) -> float:
        """The noised fraction of norms at or below the current clip."""
        norms = np.asarray(norms, dtype=np.float64)
        n = float(expected_clients if expected_clients is not None else norms.size)
        twice = int(np.sum(np.where(norms <= self.clip, 1, -1)))  # 2·Σ(b_i - 1/2)
        if self.count_sigma > 0:  # std count_sigma on Σ(b_i - 1/2) is 2·count_sigma on twice it
            s2 = samplers.as_rational(2.0 * self.count_sigma) ** 2
            twice += int(samplers.discrete_gaussian(s2, (), self.source))
        return twice / (2.0 * n) + 0.5

    def update(self, norms: np.ndarray, expected_clients: float | None = None) -> float:
        """Apply one round's geometric update from the clients' update norms; returns the
        new clip norm."""
        b = self.noisy_fraction(norms, expected_clients)
        self.clip *= math.exp(-self.learning_rate * (b - self.target_quantile))
        return self.clip


def _keep_probability(epsilon: float, k: int) -> Fraction:
    """A rational p <= e^ε/(e^ε + k - 1), within 2^-40 of it."""
    lower_exp = Fraction(math.exp(epsilon)) * (1 - Fraction(1, 1 << 45))  # below e^ε
    p = lower_exp / (lower_exp + (k - 1))
    den = 1 << 48
    return Fraction(math.floor(p * den), den)


def randomized_response(
    values: np.ndarray, k: int, epsilon: float, source: CsprngSource | None = None
) -> np.ndarray:
    """ε-LDP k-ary randomized response of categories in [0, k): each value is kept with
    probability p ≈ e^ε/(e^ε + k - 1) (rounded down), else replaced by one of the other
    k - 1 categories uniformly. For k = 2 this is Warner's randomized response."""
    if k < 2:
        raise ValueError("k must be >= 2")
    if epsilon <= 0:
        raise ValueError("epsilon must be positive")
    v = np.asarray(values, dtype=np.int64)
    if v.size and (v.min() < 0 or v.max() >= k):
        raise ValueError("values must lie in [0, k)")
    p = _keep_probability(epsilon, k)
    flat = v.reshape(-1)
    src = samplers._source(source)
    keep = samplers.uniform_below(p.denominator, flat.size, src) < p.numerator
    other = samplers.uniform_below(k - 1, flat.size, src)
    other = other + (other >= flat)  # uniform over the k - 1 other categories
    return np.where(keep, flat, other).reshape(v.shape)


def rr_estimate_frequencies(reports: np.ndarray, k: int, epsilon: float) -> np.ndarray:
    """Unbiased estimate of the true category frequencies from randomized-response
    reports (post-processing; may fall outside [0, 1])."""
    p = float(_keep_probability(epsilon, k))
    q = (1.0 - p) / (k - 1)
    observed = np.bincount(np.asarray(reports).reshape(-1), minlength=k) / max(1, np.size(reports))
    return (observed - q) / (p - q)
