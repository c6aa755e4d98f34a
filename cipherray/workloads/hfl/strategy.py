"""Server strategies: which clients train each round, and how their models are combined.

`ClientSampler` picks a round's clients by fraction, count or Poisson sampling, from
the project's CSPRNG (a fresh OS seed unless the experiment gives one). `WeightedSum`
is the example-weighted sum of client models: chunks of clients each produce one and
they add up, so aggregation never needs all client models at once. FedAvg divides by
the total example count; FedProx also asks clients for the proximal term mu; FedAdam
and FedYogi (Reddi et al. 2021, "Adaptive Federated Optimization") treat the change of
the averaged model as a pseudo-gradient for a server-side adaptive optimiser.

What the server learns: the sum of example-weighted client models and the total
example count per round (and, without secure aggregation, each client's model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cipherray.workloads.hfl import randomness
from cipherray.workloads.hfl.randomness import Seed

Params = list[Any]


class NotEnoughClientsError(RuntimeError):
    """Fewer clients are available than the strategy's `min_available`."""

    def __init__(self, available: int, required: int):
        super().__init__(f"{available} clients available, the strategy needs {required}")
        self.available, self.required = available, required


@dataclass
class ClientSampler:
    """Per-round client selection: set at most one of `fraction`, `count`, `poisson_rate`
    (none: every client). Poisson sampling includes each client independently."""

    fraction: float | None = None
    count: int | None = None
    poisson_rate: float | None = None
    seed: Seed = None

    def __post_init__(self) -> None:
        given = [x for x in (self.fraction, self.count, self.poisson_rate) if x is not None]
        if len(given) > 1:
            raise ValueError("set at most one of fraction, count, poisson_rate")
        for name in ("fraction", "poisson_rate"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.count is not None and self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        self._seed = randomness.seed_bytes(self.seed)

    def select(self, population: Sequence[Any], round_number: int) -> list[Any]:
        """The clients of `population` that take part in round `round_number`."""
        n = len(population)
        s = randomness.derive(self._seed, "select", round_number)
        if self.poisson_rate is not None:
            keep = np.flatnonzero(randomness.uniform(s, n) < self.poisson_rate)
            return [population[i] for i in keep]
        if self.count is not None:
            k = min(self.count, n)
        elif self.fraction is not None:
            k = min(n, max(1, math.ceil(self.fraction * n))) if n else 0
        else:
            return list(population)
        chosen = np.sort(randomness.permutation(s, n)[:k])
        return [population[i] for i in chosen]


@dataclass
class WeightedSum:
    """Sum over clients of num_examples * parameters, with the total weight and count."""

    sums: Params
    weight: float
    clients: int

    @staticmethod
    def of_stacked(stacked: Params, num_examples: Any, xp: Any = np) -> WeightedSum:
        """From per-client arrays (C, ...) and example counts (C,)."""
        w = xp.asarray(num_examples, dtype=np.float64)
        sums = [xp.tensordot(w, p, axes=(0, 0)) for p in stacked]
        return WeightedSum(sums, float(w.sum()), int(w.shape[0]))

    @staticmethod
    def of_results(parameters: Sequence[Params], num_examples: Sequence[int]) -> WeightedSum:
        """From one parameter list per client."""
        stacked = [np.stack(arrays) for arrays in zip(*parameters)]
        return WeightedSum.of_stacked(stacked, np.asarray(num_examples))

    @staticmethod
    def of_finite(stacked: Params, num_examples: Any, xp: Any = np) -> tuple[WeightedSum, Any]:
        """From per-client arrays (C, ...), leaving out every client whose model is not
        finite (NaN or inf); also returns the host boolean mask of the clients kept."""
        n = int(num_examples.shape[0])
        finite = xp.ones(n, dtype=bool)
        for p in stacked:
            finite &= xp.isfinite(p.reshape(n, -1)).all(axis=1)
        ok = np.asarray(finite.get() if hasattr(finite, "get") else finite)
        if ok.all():
            return WeightedSum.of_stacked(stacked, num_examples, xp), ok
        keep = xp.asarray(np.flatnonzero(ok))
        return WeightedSum.of_stacked([p[keep] for p in stacked], num_examples[keep], xp), ok

    def __add__(self, other: WeightedSum) -> WeightedSum:
        return WeightedSum(
            [a + b for a, b in zip(self.sums, other.sums)],
            self.weight + other.weight,
            self.clients + other.clients,
        )


@dataclass
class FedAvg:
    """Example-weighted federated averaging (McMahan et al. 2017).

    `min_available`: a round needs at least this many clients in the population.
    `evaluate_every`: federated evaluation every k rounds (0: never).
    """

    sampler: ClientSampler = field(default_factory=ClientSampler)
    evaluate_sampler: ClientSampler = field(default_factory=ClientSampler)
    min_available: int = 1
    evaluate_every: int = 1

    def select_fit(self, population: Sequence[Any], round_number: int) -> list[Any]:
        """The round's training clients; NotEnoughClientsError below `min_available`."""
        if len(population) < self.min_available:
            raise NotEnoughClientsError(len(population), self.min_available)
        return self.sampler.select(population, round_number)

    def select_evaluate(self, population: Sequence[Any], round_number: int) -> list[Any]:
        """The round's evaluation clients (none on rounds without evaluation)."""
        if not self.evaluate_every or round_number % self.evaluate_every:
            return []
        return self.evaluate_sampler.select(population, round_number)

    def fit_config(self, round_number: int) -> dict[str, Any]:
        """The config every training client gets this round."""
        return {"round": round_number}

    def average(self, total: WeightedSum) -> Params | None:
        """The example-weighted mean, or None when no example was aggregated."""
        if total.weight <= 0:
            return None
        return [s / total.weight for s in total.sums]

    def aggregate(self, round_number: int, current: Params, total: WeightedSum) -> Params:
        """The next global model; the current one when no client succeeded."""
        mean = self.average(total)
        return current if mean is None else mean


@dataclass
class FedProx(FedAvg):
    """FedAvg whose clients add mu / 2 * ||w - w_global||^2 to their local loss
    (Li et al. 2020); the server side is FedAvg, mu travels in the fit config."""

    proximal_mu: float = 0.01

    def fit_config(self, round_number: int) -> dict[str, Any]:
        return {**super().fit_config(round_number), "proximal_mu": self.proximal_mu}


@dataclass
class FedAdam(FedAvg):
    """Server Adam on the pseudo-gradient (mean client model - global model), with
    Reddi et al.'s choices: no bias correction, beta_1 = 0.9, beta_2 = 0.99, tau = 1e-3."""

    eta: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 1e-3

    def __post_init__(self) -> None:
        self._m: Params | None = None
        self._v: Params | None = None

    def _second_moment(self, v: Any, delta: Any) -> Any:
        return self.beta_2 * v + (1.0 - self.beta_2) * delta**2

    def aggregate(self, round_number: int, current: Params, total: WeightedSum) -> Params:
        mean = self.average(total)
        if mean is None:
            return current
        delta = [a - x for a, x in zip(mean, current)]
        if self._m is None:
            self._m = [0.0 * d for d in delta]
            self._v = [0.0 * d + self.tau**2 for d in delta]
        self._m = [self.beta_1 * m + (1.0 - self.beta_1) * d for m, d in zip(self._m, delta)]
        self._v = [self._second_moment(v, d) for v, d in zip(self._v, delta)]
        return [
            x + self.eta * m / ((v**0.5) + self.tau) for x, m, v in zip(current, self._m, self._v)
        ]


@dataclass
class FedYogi(FedAdam):
    """FedAdam with Yogi's additive second moment: v - (1 - beta_2) d^2 sign(v - d^2)."""

    eta: float = 0.01

    def _second_moment(self, v: Any, delta: Any) -> Any:
        d2 = delta**2
        return v - (1.0 - self.beta_2) * d2 * np.sign(v - d2)
