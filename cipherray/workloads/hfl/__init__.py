"""Horizontal federated learning: partitioners, built-in batched models, NumPyClient-style
clients, server strategies and single-process training loops (pure NumPy; no Ray)."""

from cipherray.workloads.hfl.client import ClientError, ModelClient, call_evaluate, call_fit
from cipherray.workloads.hfl.models import (
    MLP,
    LogisticRegression,
    PaddedData,
    SoftmaxRegression,
    evaluate_batched,
    fit_batched,
    fit_per_client,
    pad,
)
from cipherray.workloads.hfl.simulate import run_rounds, run_rounds_batched
from cipherray.workloads.hfl.strategy import (
    ClientSampler,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    NotEnoughClientsError,
    WeightedSum,
)

__all__ = [
    "MLP",
    "ClientError",
    "ClientSampler",
    "FedAdam",
    "FedAvg",
    "FedProx",
    "FedYogi",
    "LogisticRegression",
    "ModelClient",
    "NotEnoughClientsError",
    "PaddedData",
    "SoftmaxRegression",
    "WeightedSum",
    "call_evaluate",
    "call_fit",
    "evaluate_batched",
    "fit_batched",
    "fit_per_client",
    "pad",
    "run_rounds",
    "run_rounds_batched",
]
