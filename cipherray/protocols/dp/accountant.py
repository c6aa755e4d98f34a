"""Privacy accounting with Google's dp-accounting, and budgets that refuse to overspend.

`PrivacyAccountant` composes DP events with dp-accounting's RDP accountant
(`dp_accounting.rdp.RdpAccountant`) or its privacy-loss-distribution accountant
(`dp_accounting.pld.PLDAccountant`) and reports ε at a stated δ, so its ε *is*
dp-accounting's for the same events. Neighbouring datasets differ by adding or removing
one record (one client, in federated learning), the relation Poisson subsampling is
analysed under.

With a `target_epsilon`, `spend` first composes the event on a copy and raises
`PrivacyBudgetExceeded` — leaving the accountant unchanged — if the total would go
above the target: a run stops *before* a release that would exceed its budget.

Events (`gaussian_event`, `subsampled_gaussian_event`, `laplace_event`) are
dp-accounting `DpEvent`s parameterised by noise / sensitivity. The discrete Gaussian of
`samplers` has the same Rényi-DP / zCDP bound as the continuous Gaussian of the same σ
(Canonne, Kamath & Steinke 2020), and the discrete Laplace is ε-DP with the continuous
Laplace's ε, so accounting them as their continuous counterparts is sound for
un-subsampled releases; for Poisson-subsampled rounds the accountant uses the
subsampled-Gaussian analysis, as DP-FedAvg implementations do (Kairouz et al. 2021).
"""

from __future__ import annotations

import copy
from typing import Literal

import dp_accounting
from dp_accounting import pld, rdp

__all__ = [
    "PrivacyAccountant",
    "PrivacyBudgetExceeded",
    "dp_fedavg_epsilon",
    "gaussian_event",
    "laplace_event",
    "noise_multiplier_for",
    "subsampled_gaussian_event",
]

Method = Literal["rdp", "pld"]


class PrivacyBudgetExceeded(RuntimeError):
    """A release would take a budget's ε above its target; nothing was spent."""

    def __init__(self, name: str, budget: float, spent: float, requested: float, delta: float):
        self.name, self.budget, self.spent = name, budget, spent
        self.requested, self.delta = requested, delta
        super().__init__(
            f"privacy budget {name!r} exceeded: ε budget {budget:g} at δ={delta:g}, "
            f"ε spent {spent:.6g}, this release would bring it to {requested:.6g}; refused"
        )


def gaussian_event(noise_multiplier: float) -> dp_accounting.DpEvent:
    """Gaussian mechanism with noise std = noise_multiplier × L2 sensitivity."""
    return dp_accounting.GaussianDpEvent(noise_multiplier)


def subsampled_gaussian_event(
    noise_multiplier: float, sampling_rate: float
) -> dp_accounting.DpEvent:
    """One DP-FedAvg round: each client is included independently with probability
    `sampling_rate`, and the sum of clipped updates gets Gaussian noise of std
    noise_multiplier × clip."""
    if not 0.0 < sampling_rate <= 1.0:
        raise ValueError("sampling_rate must lie in (0, 1]")
    event = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling_rate == 1.0:
        return event
    return dp_accounting.PoissonSampledDpEvent(sampling_rate, event)


def laplace_event(scale_over_sensitivity: float) -> dp_accounting.DpEvent:
    """Laplace mechanism with scale = scale_over_sensitivity × L1 sensitivity
    (pure ε = 1 / scale_over_sensitivity)."""
    return dp_accounting.LaplaceDpEvent(scale_over_sensitivity)


def _fresh(method: Method, pld_discretization: float) -> dp_accounting.PrivacyAccountant:
    if method == "rdp":
        return rdp.RdpAccountant()
    if method == "pld":
        return pld.PLDAccountant(value_discretization_interval=pld_discretization)
    raise ValueError(f"method must be 'rdp' or 'pld', got {method!r}")


class PrivacyAccountant:
    """ε spent so far at a fixed δ, optionally against a target ε (the budget)."""

    def __init__(
        self,
        delta: float,
        target_epsilon: float | None = None,
        method: Method = "rdp",
        name: str = "budget",
        pld_discretization: float = 1e-4,
    ):
        if not 0.0 < delta < 1.0:
            raise ValueError("delta must lie in (0, 1)")
        if target_epsilon is not None and target_epsilon <= 0:
            raise ValueError("target_epsilon must be positive")
        self.delta, self.target_epsilon, self.method, self.name = (
            delta,
            target_epsilon,
            method,
            name,
        )
        self._pld_discretization = pld_discretization
        self._acct = _fresh(method, pld_discretization)
        self.history: list[tuple[dp_accounting.DpEvent, int]] = []

    def _check(self, event: dp_accounting.DpEvent) -> None:
        if not self._acct.supports(event):
            raise ValueError(f"{self.method} accountant does not support {event!r}")

    def epsilon(self, delta: float | None = None) -> float:
        """Total ε spent so far, at `delta` (default: the accountant's δ)."""
        return float(self._acct.get_epsilon(self.delta if delta is None else delta))

    def epsilon_of(
        self, event: dp_accounting.DpEvent, count: int = 1, delta: float | None = None
    ) -> float:
        """ε of `count` repetitions of `event` alone (e.g. one round's ε)."""
        self._check(event)
        acct = _fresh(self.method, self._pld_discretization)
        acct.compose(event, count)
        return float(acct.get_epsilon(self.delta if delta is None else delta))

    def would_spend(self, event: dp_accounting.DpEvent, count: int = 1) -> float:
        """Total ε if `count` repetitions of `event` were spent now (nothing is spent)."""
        self._check(event)
        trial = copy.deepcopy(self._acct)
        trial.compose(event, count)
        return float(trial.get_epsilon(self.delta))

    def can_spend(self, event: dp_accounting.DpEvent, count: int = 1) -> bool:
        return self.target_epsilon is None or self.would_spend(event, count) <= self.target_epsilon

    def spend(self, event: dp_accounting.DpEvent, count: int = 1, force: bool = False) -> float:
        """Compose `count` repetitions of `event` and return the new total ε; raises
        `PrivacyBudgetExceeded` (and spends nothing) if that total would exceed the
        target, unless `force` (for a release that already happened: it is recorded
        and the caller sees the total above the target)."""
        self._check(event)
        trial = copy.deepcopy(self._acct)
        trial.compose(event, count)
        total = float(trial.get_epsilon(self.delta))
        if not force and self.target_epsilon is not None and total > self.target_epsilon:
            raise PrivacyBudgetExceeded(
                self.name, self.target_epsilon, self.epsilon(), total, self.delta
            )
        self._acct = trial
        self.history.append((event, count))
        return total


def dp_fedavg_epsilon(
    noise_multiplier: float,
    sampling_rate: float,
    rounds: int,
    delta: float,
    method: Method = "rdp",
) -> tuple[float, float]:
    """(ε of one round, ε of `rounds` rounds) of DP-FedAvg at `delta`."""
    acct = PrivacyAccountant(delta, method=method)
    event = subsampled_gaussian_event(noise_multiplier, sampling_rate)
    return acct.epsilon_of(event), acct.epsilon_of(event, rounds)


def noise_multiplier_for(
    target_epsilon: float,
    delta: float,
    rounds: int,
    sampling_rate: float,
    method: Method = "rdp",
    tol: float | None = None,
) -> float:
    """Smallest noise multiplier (to dp-accounting's calibration tolerance, on the side
    of more noise) for which `rounds` Poisson-subsampled Gaussian rounds stay within
    (target_epsilon, delta)."""

    def make_event(z: float) -> dp_accounting.DpEvent:
        return dp_accounting.SelfComposedDpEvent(
            subsampled_gaussian_event(z, sampling_rate), rounds
        )

    def calibrate(m: Method, bracket: dp_accounting.mechanism_calibration.BracketInterval) -> float:
        return float(
            dp_accounting.calibrate_dp_mechanism(
                lambda: _fresh(m, 1e-4), make_event, target_epsilon, delta, bracket, tol=tol
            )
        )

    z_rdp = calibrate("rdp", dp_accounting.LowerEndpointAndGuess(0.01, 1.0))
    if method == "rdp":
        return z_rdp
    # PLD is tighter than RDP, so its multiplier is at most z_rdp; searching above
    # z_rdp / 2 keeps small (slow, memory-hungry) multipliers out of the bisection, and a
    # result at that floor still meets the target.
    if tol is None:
        tol = 1e-3 * z_rdp
    return calibrate(method, dp_accounting.LowerEndpointAndGuess(z_rdp / 2, z_rdp))
