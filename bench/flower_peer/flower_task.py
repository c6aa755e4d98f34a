"""The anchor workload's client side for the Flower peer benchmark (no cipherray import).

Softmax regression, 64 features -> 10 classes (W (64, 10), b (10,), zeros init) on
scikit-learn's digits (features / 16). The digits are replicated so that client ``i`` of
``n`` holds rows ``order[i * rows:(i + 1) * rows]`` of ``order = arange(n * rows) %
len(y)``; one local epoch of minibatch SGD (batch 32, lr 0.1, unshuffled) on the mean
softmax cross-entropy, plain NumPy gradient.

This module is imported by reference inside Flower's Ray actors, so the digits are
loaded once per actor process (``_digits`` cache), not once per client call.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from flwr.client import Client, NumPyClient
from flwr.common import Context
from sklearn.datasets import load_digits

N_FEATURES, N_CLASSES = 64, 10
LR, BATCH, EPOCHS = 0.1, 32, 1


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits, features scaled by 1/16 (cached per process)."""
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float64), y.astype(np.int64)


def client_rows(partition_id: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Client ``partition_id``'s slice of the replicated digits (rows x 64, rows)."""
    X, y = _digits()
    idx = (np.arange(rows) + partition_id * rows) % len(y)
    return X[idx], y[idx]


def zeros_params() -> list[np.ndarray]:
    """The initial global model: W (64, 10) and b (10,) of zeros."""
    return [np.zeros((N_FEATURES, N_CLASSES)), np.zeros(N_CLASSES)]


def local_sgd(
    W: np.ndarray, b: np.ndarray, X: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """EPOCHS epochs of minibatch SGD on the mean softmax cross-entropy; returns copies."""
    W, b = W.astype(np.float64, copy=True), b.astype(np.float64, copy=True)
    for _ in range(EPOCHS):
        for lo in range(0, len(y), BATCH):
            xb, yb = X[lo : lo + BATCH], y[lo : lo + BATCH]
            z = xb @ W + b
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1.0
            p /= len(yb)
            W -= LR * (xb.T @ p)
            b -= LR * p.sum(axis=0)
    return W, b


def accuracy(W: np.ndarray, b: np.ndarray) -> float:
    """Accuracy of (W, b) on all 1797 digits."""
    X, y = _digits()
    return float(np.mean(np.argmax(X @ W + b, axis=1) == y))


class DigitsClient(NumPyClient):
    """One client: fit = one local epoch from the global model, returns (params, rows, {})."""

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X, self.y = X, y

    def get_parameters(self, config: dict) -> list[np.ndarray]:
        return zeros_params()

    def fit(self, parameters: list[np.ndarray], config: dict) -> tuple[list[np.ndarray], int, dict]:
        W, b = local_sgd(parameters[0], parameters[1], self.X, self.y)
        return [W, b], len(self.y), {}


class ClientFactory:
    """``client_fn`` for ``ClientApp``: builds client ``partition-id`` with ``rows`` rows.

    A top-level class (pickled by reference into the Ray actors, carrying only ``rows``).
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def __call__(self, context: Context) -> Client:
        pid = int(context.node_config["partition-id"])
        return DigitsClient(*client_rows(pid, self.rows)).to_client()
