"""Secure aggregation for horizontal federated learning (SecAgg+, Bell et al. 2020).

Modules: ``quantize`` (clip, stochastic rounding, Z_2^32 / Z_2^64 encoding),
``shamir`` (t-of-k sharing of 32-byte secrets), ``graph`` (the sparse communication
graph, its degree and threshold), ``keys`` (X25519 agreement, key derivation, the
authenticated channel), ``masking`` (PRG masks), ``protocol`` (the clients' and the
server's steps) and ``simulation`` (a whole round in one process). The server learns
only the sum of the included clients' quantised updates; see ``protocol``.
"""

from .errors import (
    InsufficientShares,
    ParameterError,
    ProtocolViolation,
    QuantizationOverflow,
    SecAggError,
    TooFewSurvivors,
)
from .graph import GraphParameters, choose_parameters, complete_parameters
from .quantize import Quantizer
from .simulation import RoundResult, simulate_round

__all__ = [
    "GraphParameters",
    "InsufficientShares",
    "ParameterError",
    "ProtocolViolation",
    "QuantizationOverflow",
    "Quantizer",
    "RoundResult",
    "SecAggError",
    "TooFewSurvivors",
    "choose_parameters",
    "complete_parameters",
    "simulate_round",
]
