"""Clipping, stochastic rounding and encoding of model updates into Z_2^32 or Z_2^64.

Each client clips its update ``x`` (to L2 norm ``clip_norm`` when given, then every
coordinate to ``[-clip_range, clip_range]``), scales it by ``scale`` and rounds every
coordinate stochastically: ``z = floor(x * scale) + [u < frac(x * scale)]`` with ``u``
uniform in [0, 1) from the AES-CTR PRG under a fresh seed (never NumPy's generators).
``z`` is stored mod 2^bits (two's complement). The server decodes the *sum* of the
included clients' values by reading it as a signed integer and dividing by ``scale``.

Error (per coordinate, per client, after clipping): ``E[z / scale] = x`` (unbiased),
``Var = frac * (1 - frac) / scale^2 <= 1 / (4 scale^2)`` and ``|z / scale - x| < 1 /
scale``. For a sum over ``m`` clients the error is unbiased with variance at most ``m /
(4 scale^2)`` and never exceeds ``m / scale``. Clipping itself is a deterministic bias
that the caller chooses.

No wrap-around: each ``|z| <= level = ceil(clip_range * scale)``; the sum of ``m``
clients decodes exactly when ``m * level <= 2^(bits-1) - 1``. ``Quantizer.check``
raises ``QuantizationOverflow`` otherwise; ``Quantizer.for_clients`` picks the largest
``scale`` that satisfies it for a given number of clients.

What each party learns: nothing here is sent; the client keeps its rounding seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cipherray.protocols import prg

from .errors import QuantizationOverflow

RING_DTYPES = {32: np.dtype(np.uint32), 64: np.dtype(np.uint64)}
_SIGNED = {32: np.dtype(np.int32), 64: np.dtype(np.int64)}


def ring_dtype(bits: int) -> np.dtype:
    """The unsigned dtype holding Z_2^bits (bits is 32 or 64)."""
    if bits not in RING_DTYPES:
        raise ValueError(f"the ring is Z_2^32 or Z_2^64, not Z_2^{bits}")
    return RING_DTYPES[bits]


def clip(updates: np.ndarray, clip_range: float, clip_norm: float | None = None) -> np.ndarray:
    """Rows of ``updates`` scaled down to L2 norm ``clip_norm`` (when given), then every
    coordinate clipped to ``[-clip_range, clip_range]``."""
    x = np.asarray(updates, dtype=np.float64)
    if clip_norm is not None:
        norms = np.linalg.norm(x, axis=-1, keepdims=True)
        x = x * np.minimum(1.0, clip_norm / np.maximum(norms, np.finfo(np.float64).tiny))
    return np.clip(x, -clip_range, clip_range)


def uniform_unit(shape: tuple[int, ...], seed: bytes | None = None) -> np.ndarray:
    """Uniform floats in [0, 1) with 53 random bits each, from the AES-CTR PRG."""
    words = prg.random_ring(seed if seed is not None else prg.new_seed(), shape)
    return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53


def stochastic_round(values: np.ndarray, seed: bytes | None = None) -> np.ndarray:
    """Unbiased rounding of ``values`` to int64: floor plus a Bernoulli(frac) from the PRG."""
    v = np.asarray(values, dtype=np.float64)
    low = np.floor(v)
    up = uniform_unit(v.shape, seed) < (v - low)
    return low.astype(np.int64) + up


@dataclass(frozen=True)
class Quantizer:
    """How a client's real update becomes a vector of Z_2^bits (see the module docstring)."""

    clip_range: float
    scale: float
    bits: int = 32
    clip_norm: float | None = None

    def __post_init__(self) -> None:
        ring_dtype(self.bits)
        if not (self.clip_range > 0 and self.scale > 0):
            raise ValueError("clip_range and scale must be positive")

    @classmethod
    def for_clients(
        cls, n_clients: int, clip_range: float, bits: int = 32, clip_norm: float | None = None
    ) -> Quantizer:
        """The finest scale at which the sum of ``n_clients`` updates cannot wrap."""
        # at most 2^52 so that scaled values and their fractions are exact in float64
        level = min((2 ** (bits - 1) - 1) // max(1, n_clients), 2**52)
        if level < 1:
            raise QuantizationOverflow(f"{n_clients} clients do not fit in Z_2^{bits}")
        # ceil(clip_range * scale) <= level, with margin for float rounding
        scale = (level - 1) / clip_range if level > 1 else 1.0 / clip_range
        return cls(clip_range, scale, bits, clip_norm)

    @property
    def level(self) -> int:
        """Largest |z| a client can send."""
        return math.ceil(self.clip_range * self.scale)

    def check(self, n_clients: int) -> None:
        """Raise ``QuantizationOverflow`` unless a sum of ``n_clients`` decodes exactly."""
        if n_clients * self.level > 2 ** (self.bits - 1) - 1:
            raise QuantizationOverflow(
                f"{n_clients} clients x level {self.level} exceed 2^{self.bits - 1} - 1: "
                f"the sum could wrap around Z_2^{self.bits}; lower the scale"
            )

    def error_bound(self, n_clients: int) -> tuple[float, float]:
        """(max absolute error, variance bound) per coordinate of a sum of ``n_clients``."""
        return n_clients / self.scale, n_clients / (4.0 * self.scale**2)

    def quantize(self, update: np.ndarray, seed: bytes | None = None) -> np.ndarray:
        """Clip, scale, round stochastically and encode into Z_2^bits (one or more rows)."""
        clipped = clip(update, self.clip_range, self.clip_norm)
        rounded = stochastic_round(clipped * self.scale, seed)
        return rounded.astype(_SIGNED[self.bits]).view(ring_dtype(self.bits))

    def decode_sum(self, total: np.ndarray, n_clients: int) -> np.ndarray:
        """Real-valued sum of ``n_clients`` quantised updates from their sum in the ring."""
        self.check(n_clients)
        signed = np.asarray(total, dtype=ring_dtype(self.bits)).view(_SIGNED[self.bits])
        return signed.astype(np.float64) / self.scale
