"""Differential privacy for federated training: DP-FedAvg (central or distributed noise)
and local DP, with a privacy accountant over Google's dp-accounting.

Guarantee (user-level, add/remove one client's whole data): each round clips every
participating client's model change to L2 norm C and releases the sum of the clipped
changes plus Gaussian noise of std z * C, with the clients sampled at rate q; the
accountant composes `PoissonSampledDpEvent(q, GaussianDpEvent(z))` over the rounds (RDP
or PLD) and reports epsilon at the given delta. With a target epsilon the noise
multiplier z is calibrated so the planned rounds fit, and a round that would take
epsilon past the target is refused before it runs (`PrivacyBudgetExceeded`) or, with
`on_budget="stop"`, training stops there.

Noise: exact discrete Gaussian samples (Canonne-Kamath-Steinke) from the AES-CTR
CSPRNG (`protocols/dp/samplers.py`), added to values on a grid of granularity g; the
grid rounding is charged to the sensitivity (C/g + sqrt(d) grid units), and the noise
is scaled so that the accounted multiplier is exactly z. Never numpy.random and never
floating-point Gaussian noise (whose low bits leak, Mironov 2012).

Modes:
- "central": the server adds the noise to the aggregate (plaintext or SecAgg sum);
  adaptive clipping (Andrew et al. 2021) tracks a quantile of the update norms from a
  noised count of clipped clients, and the noise is split between the update and the
  count so the pair is as private as one Gaussian with multiplier z.
- "distributed" (needs SecAgg): each client adds discrete Gaussian noise of variance
  sigma^2 / (n_expected (1 - dropout)) in grid units before masking, so the server only
  ever sees a sum that carries noise of variance >= sigma^2 when no more than the
  planned fraction drops out (Kairouz et al. 2021; the sum of discrete Gaussians is
  accounted as a Gaussian with the realised variance: their Theorem shows the
  difference is negligible at these scales). Rounds are accounted with the realised
  multiplier.
- "local": each client clips and adds noise of std z * 2C (the L2 diameter of its
  possible changes) itself; its epsilon is the composition of its own Gaussian rounds
  (no amplification by sampling: a client knows when it takes part).

Sampling: q is the Poisson rate when the strategy samples by Poisson, else the
fraction of clients selected (the usual approximation for fixed-size sampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from cipherray.protocols.dp import accountant as acc
from cipherray.protocols.dp import mechanisms, samplers
from cipherray.workloads.hfl import updates

Mode = Literal["central", "distributed", "local"]


@dataclass
class DP:
    """DP settings and the run's accountant (lives at the driver: accounting uses only
    public quantities)."""

    mode: Mode = "central"
    clip: float = 1.0
    noise_multiplier: float | None = None
    target_epsilon: float | None = None
    delta: float = 1e-5
    rounds: int | None = None  # planned rounds (for calibration from target_epsilon)
    sampling_rate: float | None = None  # planned q (for calibration); default: measured
    adaptive: bool = False
    target_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    count_sigma: float | None = None  # adaptive: std of the noised clipped count
    planned_dropout: float = 0.0  # distributed: fraction of clients that may drop
    method: acc.Method = "rdp"
    on_budget: Literal["raise", "stop"] = "raise"
    dim: int = 0  # model size, set by `train`
    _accountant: acc.PrivacyAccountant | None = field(default=None, repr=False)
    _q: float | None = field(default=None, repr=False)
    _per_round: list[dict[str, float]] = field(default_factory=list, repr=False)
    _expected_for_rule: float = field(default=1.0, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("central", "distributed", "local"):
            raise ValueError(f"DP mode must be central, distributed or local, not {self.mode!r}")
        if self.clip <= 0:
            raise ValueError("clip must be positive")
        if self.noise_multiplier is None and self.target_epsilon is None:
            raise ValueError("give noise_multiplier= or target_epsilon=")
        if self.noise_multiplier is not None and self.noise_multiplier <= 0:
            raise ValueError("noise_multiplier must be positive")
        if self.adaptive and self.mode != "central":
            raise ValueError("adaptive clipping is implemented for central DP only")
        if self.adaptive and self.count_sigma is None:
            self.count_sigma = 0.05 * 1000  # replaced in before_round: ~ n_expected / 20
        self._accountant = acc.PrivacyAccountant(
            self.delta, self.target_epsilon, self.method, name=f"DP-FedAvg ({self.mode})"
        )

    # -- set-up ------------------------------------------------------------------------
    def check(self, secure: bool) -> None:
        if self.mode == "distributed" and not secure:
            raise ValueError("distributed DP needs secure aggregation (secagg=...)")

    def _sampling(self, selected: int, population: int) -> float:
        return self.sampling_rate or max(selected, 1) / max(population, 1)

    def plan(self, sampler: Any, population: int, secagg_dropout: float) -> None:
        """Fix the sampling rate from the strategy's sampler (Poisson rate, fraction, or
        count / population; every client: 1) and, for distributed DP, plan for at least
        the SecAgg+ dropout of both stages."""
        if self.sampling_rate is None:
            if sampler.poisson_rate is not None:
                self.sampling_rate = sampler.poisson_rate
            elif sampler.fraction is not None:
                self.sampling_rate = sampler.fraction
            elif sampler.count is not None:
                self.sampling_rate = min(1.0, sampler.count / max(population, 1))
            else:
                self.sampling_rate = 1.0
        if self.mode == "distributed":
            total = 1.0 - (1.0 - secagg_dropout) ** 2
            self.planned_dropout = max(self.planned_dropout, total)

    def _calibrate(self, q: float) -> None:
        if self.noise_multiplier is not None:
            return
        if self.rounds is None:
            raise ValueError("target_epsilon= needs rounds= to calibrate the noise multiplier")
        rate = 1.0 if self.mode == "local" else q
        self.noise_multiplier = acc.noise_multiplier_for(
            self.target_epsilon, self.delta, self.rounds, rate, self.method
        )

    @property
    def granularity(self) -> float:
        return self.clip / max(1024.0, 32.0 * math.sqrt(max(self.dim, 1)))

    def _sensitivity_units(self, l2: float) -> float:
        return mechanisms.grid_l2_sensitivity(l2, self.granularity, max(self.dim, 1))

    def _event(self, z: float) -> Any:
        if self.mode == "local":
            return acc.gaussian_event(z)
        return acc.subsampled_gaussian_event(z, self._q)

    # -- per round, at the driver --------------------------------------------------------
    def before_round(self, rnd: int, selected: int, population: int) -> str | None:
        """Refuses (or stops) a round that would exceed the target epsilon."""
        self._q = self._sampling(selected, population)
        self._calibrate(self._q)
        self._expected_for_rule = self.expected_clients(selected, population)
        if self.adaptive and rnd == 1:
            self.count_sigma = max(1.0, self.expected_clients(selected, population) / 20.0)
        event = self._event(self.noise_multiplier)
        if self._accountant.can_spend(event):
            return None
        if self.on_budget == "stop":
            return (
                f"stopped before round {rnd}: it would take epsilon past "
                f"{self.target_epsilon} at delta={self.delta}"
            )
        self._accountant.spend(event)  # raises PrivacyBudgetExceeded
        return None

    def expected_clients(self, selected: int, population: int) -> float:
        q = self._q if self._q is not None else self._sampling(selected, population)
        return max(q * population, 1.0)

    def rule(self) -> Any:
        if self.mode == "central":
            return updates.ClippedUpdate()
        if self.mode == "local":
            sigma_units = self.noise_multiplier * self._sensitivity_units(2.0 * self.clip)
            return updates.LocalNoiseUpdate(sigma_units * self.granularity, self.granularity)
        expected = self._expected_for_rule
        sigma_units = self.noise_multiplier * self._sensitivity_units(self.clip)
        return updates.DistributedNoiseUpdate(
            self.granularity, sigma_units, expected * (1.0 - self.planned_dropout)
        )

    def after_round(self, included: int) -> dict[str, Any]:
        """Accounts the round that ran; returns its privacy metrics."""
        z = self.noise_multiplier
        if self.mode == "distributed":
            planned = self._expected_for_rule * (1.0 - self.planned_dropout)
            z = z * math.sqrt(min(1.0, included / max(planned, 1.0)))
        event = self._event(z)
        round_eps = self._accountant.epsilon_of(event)
        total = self._accountant.spend(event, force=True)  # it was released: record it
        self._per_round.append({"epsilon_round": round_eps, "noise_multiplier": z})
        out = {"epsilon": total, "epsilon_round": round_eps, "noise_multiplier": z}
        if self.target_epsilon is not None and total > self.target_epsilon:
            out["exceeded_target"] = True
        return out

    def adapt_clip(self, noisy_bits: float, expected: float) -> None:
        if not self.adaptive:
            return
        fraction = noisy_bits / expected + 0.5
        self.clip *= math.exp(-self.clip_learning_rate * (fraction - self.target_quantile))

    # -- at the server -----------------------------------------------------------------
    def server_noise(self, total: np.ndarray, clip: float) -> tuple[np.ndarray, dict]:
        """Central DP: discrete Gaussian noise on the sum (update part and, for adaptive
        clipping, the clipped count); other modes: nothing to add."""
        if self.mode != "central":
            return total, {}
        z = self.noise_multiplier
        if self.adaptive:
            z = mechanisms.update_noise_multiplier(z, self.count_sigma)
        g = self.granularity
        sigma = z * self._sensitivity_units(clip) * g
        out = np.array(total, dtype=np.float64)
        out[:-1] = mechanisms.gaussian_mechanism(out[:-1], sigma, g)
        info: dict[str, Any] = {"noise_std": sigma, "clip": clip}
        if self.adaptive:
            twice = int(round(2.0 * out[-1]))
            s2 = samplers.as_rational(2.0 * self.count_sigma) ** 2
            twice += int(samplers.discrete_gaussian(s2, ()))
            out[-1] = twice / 2.0
            info["clipped_bits"] = out[-1]
        else:
            out[-1] = 0.0  # not released
        return out, info

    def report(self, population: int) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "epsilon": self._accountant.epsilon() if self._per_round else 0.0,
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "sampling_rate": self._q,
            "clipping_norm": self.clip,
            "adaptive_clipping": self.adaptive,
            "accountant": self.method,
            "rounds_accounted": len(self._per_round),
            "target_epsilon": self.target_epsilon,
        }
