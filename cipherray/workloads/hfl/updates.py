"""What a client sends for its update, and how the server turns the sum into a model.

Every aggregation in `train` sends, per client k, one vector v_k built from its model
change delta_k = w_k - w_global (flattened, d values) and only ever reveals the sum
over the round's included clients (per chunk in plaintext mode, the round's total
under secure aggregation). The rules:

- `FedAvgUpdate`: v_k = [c_k delta_k, c_k] with c_k the example count (plaintext), or
  c_k = min(n_k, cap) / cap under SecAgg (a public cap keeps the weighted values in the
  quantiser's range); the server's mean change is sum(c_k delta_k) / sum(c_k).
- `ClippedUpdate` (DP-FedAvg, McMahan et al. 2018): v_k = [clip_C(delta_k), b_k - 1/2]
  with b_k = 1[||delta_k|| <= C] for adaptive clipping; the server adds the noise
  (central DP) and divides by the expected number of clients.
- `LocalNoiseUpdate` (local DP): the client clips and adds its own discrete Gaussian
  noise on a grid before anything leaves it; the server averages what it gets.
- `DistributedNoiseUpdate` (distributed DP under SecAgg, Kairouz et al. 2021): the
  client clips, scales to an integer grid with stochastic rounding, and adds discrete
  Gaussian noise of variance sigma^2 / n_expected, so the securely aggregated sum
  carries noise of variance sigma^2 (fewer clients: less, and the accountant is told).

Float vectors enter SecAgg through `Quantizer` (clip to a range, stochastic rounding,
Z_2^bits); the integer vectors of the distributed rule enter it directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cipherray.protocols.dp import mechanisms, samplers
from cipherray.protocols.secagg.errors import QuantizationOverflow
from cipherray.protocols.secagg.quantize import Quantizer, ring_dtype, stochastic_round

_SIGNED = {32: np.int32, 64: np.int64}


def flatten(params: list, n: int | None = None) -> np.ndarray:
    """Parameters as one flat vector (or (n, d) for per-client arrays with a client axis)."""
    if n is None:
        return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in params])
    return np.concatenate([np.asarray(p, dtype=np.float64).reshape(n, -1) for p in params], 1)


def unflatten(flat: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    out, at = [], 0
    for s in shapes:
        size = int(np.prod(s, dtype=np.int64))
        out.append(np.asarray(flat[at : at + size]).reshape(s))
        at += size
    return out


@dataclass(frozen=True)
class FedAvgUpdate:
    """Example-weighted FedAvg; `cap` is None in plaintext mode (exact counts)."""

    cap: float | None = None
    clip_range: float = 1.0  # SecAgg: each coordinate of c_k delta_k is clipped to this

    extra = 1

    def client(self, deltas: np.ndarray, counts: np.ndarray, clip: float) -> np.ndarray:
        c = counts.astype(np.float64)
        if self.cap is not None:
            c = np.minimum(c, self.cap) / self.cap
        return np.concatenate([deltas * c[:, None], c[:, None]], axis=1)

    def quantizer(self, n: int, bits: int) -> Quantizer:
        return Quantizer.for_clients(n, max(self.clip_range, 1.0), bits)

    def mean(self, total: np.ndarray, expected: float) -> tuple[np.ndarray | None, dict]:
        weight = float(total[-1])
        if weight <= 0:
            return None, {"weight": weight}
        return total[:-1] / weight, {"weight": weight}


@dataclass(frozen=True)
class ClippedUpdate:
    """DP-FedAvg: clipped changes; the mean divides by the expected client count."""

    extra = 1

    def client(self, deltas: np.ndarray, counts: np.ndarray, clip: float) -> np.ndarray:
        clipped, norms = mechanisms.clip_l2(deltas, clip)
        bits = (norms <= clip).astype(np.float64) - 0.5
        return np.concatenate([clipped, bits[:, None]], axis=1)

    def quantizer(self, n: int, bits: int, clip: float = 1.0) -> Quantizer:
        return Quantizer.for_clients(n, max(clip, 0.5), bits)

    def mean(self, total: np.ndarray, expected: float) -> tuple[np.ndarray | None, dict]:
        return total[:-1] / max(expected, 1.0), {"clipped_bits": float(total[-1])}


@dataclass(frozen=True)
class LocalNoiseUpdate:
    """Local DP: each client releases clip_C(delta_k) + N_Z(0, sigma^2) on a grid."""

    sigma: float
    granularity: float

    extra = 0

    def client(self, deltas: np.ndarray, counts: np.ndarray, clip: float) -> np.ndarray:
        clipped, _ = mechanisms.clip_l2(deltas, clip)
        return mechanisms.gaussian_mechanism(clipped, self.sigma, self.granularity)

    def quantizer(self, n: int, bits: int, clip: float = 1.0) -> Quantizer:
        return Quantizer.for_clients(n, clip + 6.0 * self.sigma, bits)

    def mean(self, total: np.ndarray, expected: float) -> tuple[np.ndarray | None, dict]:
        return total / max(expected, 1.0), {}


@dataclass(frozen=True)
class DistributedNoiseUpdate:
    """Distributed DP: integer grid values plus each client's share of the noise.

    `sigma_units` is the total noise std in grid units; each of the `expected` clients
    adds variance sigma_units^2 / expected."""

    granularity: float
    sigma_units: float
    expected: float

    extra = 0

    def client(self, deltas: np.ndarray, counts: np.ndarray, clip: float) -> np.ndarray:
        return self.integers(deltas, clip)

    def integers(self, deltas: np.ndarray, clip: float) -> np.ndarray:
        clipped, _ = mechanisms.clip_l2(deltas, clip)
        q = stochastic_round(clipped / self.granularity)
        var = samplers.as_rational(self.sigma_units**2 / self.expected)
        return q + samplers.discrete_gaussian(var, q.shape)

    def check(self, n: int, clip: float, bits: int) -> None:
        per = clip / self.granularity + 1 + 12.0 * self.sigma_units / math.sqrt(self.expected)
        if n * per > 2 ** (bits - 1) - 1:
            raise QuantizationOverflow(
                f"{n} clients x {per:.0f} grid units could wrap Z_2^{bits}; use bits=64"
            )

    def to_ring(self, q: np.ndarray, bits: int) -> np.ndarray:
        return q.astype(_SIGNED[bits]).view(ring_dtype(bits))

    def from_ring(self, total: np.ndarray, bits: int) -> np.ndarray:
        signed = np.asarray(total, dtype=ring_dtype(bits)).view(_SIGNED[bits])
        return signed.astype(np.float64) * self.granularity

    def mean(self, total: np.ndarray, expected: float) -> tuple[np.ndarray | None, dict]:
        return total / max(expected, 1.0), {}
