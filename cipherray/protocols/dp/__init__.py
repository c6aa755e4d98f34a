"""Differential privacy: exact samplers over a CSPRNG, mechanisms, and accounting.

- `samplers`: exact Bernoulli(exp(-γ)), discrete Laplace and discrete Gaussian on
  AES-256-CTR keystream (no floating-point noise, no NumPy generators).
- `mechanisms`: Gaussian / Laplace mechanisms on a fixed-point grid, per-client L2
  clipping, adaptive quantile clipping, randomized response (local DP).
- `accountant`: dp-accounting (RDP / PLD) budgets that refuse a release before it
  would exceed the target ε (`PrivacyBudgetExceeded`).

Pure protocol code: NumPy and dp-accounting, no Ray.
"""

from cipherray.protocols.dp.accountant import (
    PrivacyAccountant,
    PrivacyBudgetExceeded,
    dp_fedavg_epsilon,
    gaussian_event,
    laplace_event,
    noise_multiplier_for,
    subsampled_gaussian_event,
)
from cipherray.protocols.dp.samplers import (
    CsprngSource,
    bernoulli_exp,
    discrete_gaussian,
    discrete_laplace,
)

__all__ = [
    "CsprngSource",
    "PrivacyAccountant",
    "PrivacyBudgetExceeded",
    "bernoulli_exp",
    "discrete_gaussian",
    "discrete_laplace",
    "dp_fedavg_epsilon",
    "gaussian_event",
    "laplace_event",
    "noise_multiplier_for",
    "subsampled_gaussian_event",
]
