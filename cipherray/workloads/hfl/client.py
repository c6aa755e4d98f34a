"""Clients in Flower's NumPyClient style, by duck typing, and their checked calls.

A client is any object with `get_parameters(config)`, `fit(parameters, config) ->
(parameters, num_examples, metrics)` and `evaluate(parameters, config) -> (loss,
num_examples, metrics)`; a class written for Flower runs unchanged (flwr is not
imported). `call_fit` / `call_evaluate` turn anything a client does wrong (raising,
returning the wrong number of arrays, wrong shapes, NaN or inf, a bad example count)
into a `ClientError` naming the client, so a round can drop it.

What the server learns from a client: its updated parameters, its example count and
the metrics it chooses to return; its data stays in the client.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from cipherray.workloads.hfl import models, randomness
from cipherray.workloads.hfl.randomness import Seed


class NumPyClientLike(Protocol):
    """Flower's NumPyClient contract."""

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]: ...

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[list[np.ndarray], int, dict[str, Any]]: ...

    def evaluate(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]: ...


class ClientError(Exception):
    """A client's call failed or returned something unusable; `cid` says which client."""

    def __init__(self, cid: Any, reason: str):
        super().__init__(f"client {cid!r}: {reason}")
        self.cid, self.reason = cid, reason


@dataclass
class FitResult:
    cid: Any
    parameters: list[np.ndarray]
    num_examples: int
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluateResult:
    cid: Any
    loss: float
    num_examples: int
    metrics: dict[str, Any] = field(default_factory=dict)


def check_parameters(
    cid: Any, parameters: Any, shapes: Sequence[tuple[int, ...]]
) -> list[np.ndarray]:
    """`parameters` as float arrays if they match `shapes` and are finite, else ClientError."""
    if not isinstance(parameters, list | tuple):
        raise ClientError(cid, f"parameters must be a list of arrays, got {type(parameters)}")
    if len(parameters) != len(shapes):
        raise ClientError(cid, f"returned {len(parameters)} arrays, expected {len(shapes)}")
    arrays = []
    for i, (p, shape) in enumerate(zip(parameters, shapes)):
        try:
            a = np.asarray(p, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ClientError(cid, f"array {i} is not numeric: {e}") from e
        if a.shape != tuple(shape):
            raise ClientError(cid, f"array {i} has shape {a.shape}, expected {tuple(shape)}")
        if not np.isfinite(a).all():
            raise ClientError(cid, f"array {i} has non-finite values (NaN or inf)")
        arrays.append(a)
    return arrays


def _check_count(cid: Any, num_examples: Any) -> int:
    if isinstance(num_examples, bool) or not isinstance(num_examples, int | np.integer):
        raise ClientError(cid, f"num_examples must be an int, got {num_examples!r}")
    if num_examples < 0:
        raise ClientError(cid, f"num_examples must be >= 0, got {num_examples}")
    return int(num_examples)


def _check_metrics(cid: Any, metrics: Any) -> dict[str, Any]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise ClientError(cid, f"metrics must be a dict, got {type(metrics).__name__}")
    return dict(metrics)


def _unpack(cid: Any, result: Any, what: str) -> tuple[Any, Any, Any]:
    if not isinstance(result, tuple | list) or len(result) != 3:
        raise ClientError(cid, f"{what} must return a 3-tuple, got {type(result).__name__}")
    return result[0], result[1], result[2]


def call_fit(
    client: Any,
    cid: Any,
    parameters: list[np.ndarray],
    config: dict[str, Any],
    shapes: Sequence[tuple[int, ...]] | None = None,
) -> FitResult:
    """`client.fit(parameters, config)`, checked against `shapes` (default: those of
    `parameters`); any failure is raised as a ClientError naming `cid`."""
    shapes = [np.shape(p) for p in parameters] if shapes is None else shapes
    try:
        result = client.fit([np.array(p) for p in parameters], dict(config))
    except Exception as e:  # a client's own failure, whatever it is
        raise ClientError(cid, f"fit raised {type(e).__name__}: {e}") from e
    new, num_examples, metrics = _unpack(cid, result, "fit")
    return FitResult(
        cid,
        check_parameters(cid, new, shapes),
        _check_count(cid, num_examples),
        _check_metrics(cid, metrics),
    )


def call_evaluate(
    client: Any, cid: Any, parameters: list[np.ndarray], config: dict[str, Any]
) -> EvaluateResult:
    """`client.evaluate(parameters, config)`, checked; failures raise ClientError."""
    try:
        result = client.evaluate([np.array(p) for p in parameters], dict(config))
    except Exception as e:  # a client's own failure, whatever it is
        raise ClientError(cid, f"evaluate raised {type(e).__name__}: {e}") from e
    loss, num_examples, metrics = _unpack(cid, result, "evaluate")
    try:
        loss = float(loss)
    except (TypeError, ValueError) as e:
        raise ClientError(cid, f"loss must be a number, got {loss!r}") from e
    if not math.isfinite(loss):
        raise ClientError(cid, f"loss is not finite: {loss}")
    return EvaluateResult(cid, loss, _check_count(cid, num_examples), _check_metrics(cid, metrics))


class ModelClient:
    """A NumPyClient-style client that trains a built-in model on its own rows.

    `fit` reads `local_epochs`, `lr`, `batch_size`, `proximal_mu` and `seed` from the
    config (defaults from the constructor; the minibatch order is drawn per round from
    the client's seed) and runs the same SGD as the batched path for one client.
    """

    def __init__(
        self,
        model: models.BatchedModel,
        X: Any,
        y: Any,
        *,
        X_test: Any = None,
        y_test: Any = None,
        epochs: int = 1,
        lr: float = 0.1,
        batch_size: int = 32,
        seed: Seed = 0,
    ):
        self.model = model
        self.X, self.y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)
        self.X_test = self.X if X_test is None else np.asarray(X_test, dtype=np.float64)
        self.y_test = self.y if y_test is None else np.asarray(y_test, dtype=np.int64)
        self.epochs, self.lr, self.batch_size, self.seed = epochs, lr, batch_size, seed
        self.parameters = model.init(seed)

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return [np.array(p) for p in self.parameters]

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        (new,) = models.fit_per_client(
            self.model,
            parameters,
            [self.X],
            [self.y],
            epochs=int(config.get("local_epochs", self.epochs)),
            lr=float(config.get("lr", self.lr)),
            batch_size=int(config.get("batch_size", self.batch_size)),
            mu_prox=float(config.get("proximal_mu", 0.0)),
            seed=config.get("seed", randomness.derive(self.seed, "round", config.get("round", 0))),
        )
        self.parameters = new
        return new, len(self.y), {}

    def evaluate(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        data = models.pad([self.X_test], [self.y_test])
        loss, accuracy, _ = models.evaluate_batched(self.model, list(parameters), data)
        return float(loss[0]), len(self.y_test), {"accuracy": float(accuracy[0])}
