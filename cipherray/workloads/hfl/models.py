"""Built-in NumPy models with a batched path: all clients of a chunk train as one array job.

Parameters are lists of arrays. A global model has no client axis; a chunk of C clients
holds the same arrays with a leading client axis (C, ...). Local data of clients with
different row counts is padded to the chunk's largest count (`PaddedData`), and padded
rows get zero weight, so `fit_batched` runs local minibatch SGD (with an optional
FedProx proximal term) for every client at once with batched matmuls. `fit_per_client`
is the same math one client at a time: the reference the batched path is checked
against. Every function takes an `xp` array module (numpy, or cupy on a GPU worker).

Minibatch order: each epoch, client c's rows are ordered by random keys drawn for the
whole chunk (`epoch_orders`), so a client's order depends on the seed, the epoch and its
place in the chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from cipherray.workloads.hfl import randomness
from cipherray.workloads.hfl.randomness import Seed

Params = list[Any]


@dataclass
class PaddedData:
    """Local data of C clients: X (C, M, d), y (C, M) and row counts (C,); rows past a
    client's count are padding."""

    X: Any
    y: Any
    counts: Any

    @property
    def n_clients(self) -> int:
        return int(self.counts.shape[0])

    def subset(self, clients: Any, xp: ModuleType = np) -> PaddedData:
        """The clients at positions `clients` (an index array, or a slice: views, no
        copy), padded to their own largest count."""
        idx = clients if isinstance(clients, slice) else xp.asarray(clients)
        counts = self.counts[idx]
        width = int(counts.max()) if counts.size else 0
        return PaddedData(self.X[idx, :width], self.y[idx, :width], counts)


def pad(Xs: Sequence[Any], ys: Sequence[Any], xp: ModuleType = np) -> PaddedData:
    """Stack per-client arrays into a `PaddedData` (float64 features, int64 labels)."""
    if len(Xs) != len(ys):
        raise ValueError("Xs and ys must have one entry per client")
    counts = np.array([len(y) for y in ys], dtype=np.int64)
    width = int(counts.max()) if counts.size else 0
    d = np.asarray(Xs[0]).shape[1]
    X = np.zeros((len(Xs), width, d))
    y = np.zeros((len(ys), width), dtype=np.int64)
    for c, (Xc, yc) in enumerate(zip(Xs, ys)):
        X[c, : counts[c]] = np.asarray(Xc, dtype=np.float64)
        y[c, : counts[c]] = np.asarray(yc, dtype=np.int64)
    return PaddedData(xp.asarray(X), xp.asarray(y), xp.asarray(counts))


def _softmax_cross_entropy(z: Any, y: Any, weight: Any, xp: ModuleType) -> tuple[Any, Any]:
    """Weighted loss per client (C,) and its gradient in the logits z (C, B, k)."""
    z = z - z.max(axis=-1, keepdims=True)
    e = xp.exp(z)
    total = e.sum(axis=-1, keepdims=True)
    logp_y = xp.take_along_axis(z, y[..., None], axis=-1)[..., 0] - xp.log(total[..., 0])
    loss = -(logp_y * weight).sum(axis=-1)
    onehot = y[..., None] == xp.arange(z.shape[-1])
    return loss, (e / total - onehot) * weight[..., None]


def _sigmoid_cross_entropy(z: Any, y: Any, weight: Any, xp: ModuleType) -> tuple[Any, Any]:
    """Weighted logistic loss per client (C,) and its gradient in z (C, B, 1)."""
    t = y.astype(z.dtype)
    s = z[..., 0]
    # log(1 + exp(-|s|)) + max(s, 0) - t * s, stable for large |s|
    per_row = xp.log1p(xp.exp(-xp.abs(s))) + xp.maximum(s, 0) - t * s
    loss = (per_row * weight).sum(axis=-1)
    p = 1.0 / (1.0 + xp.exp(-s))
    return loss, ((p - t) * weight)[..., None]


class BatchedModel:
    """A classifier whose `forward` / `backward` take parameters with a client axis."""

    n_features: int
    n_outputs: int

    def shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the global model's arrays (no client axis)."""
        raise NotImplementedError

    def init(self, seed: Seed = 0, xp: ModuleType = np) -> Params:
        """A global model: arrays of `shapes()`."""
        raise NotImplementedError

    def has_client_axis(self, params: Params) -> bool:
        """Whether `params` are per-client arrays (C, ...) rather than a global model."""
        return params[0].ndim == len(self.shapes()[0]) + 1

    def forward(self, params: Params, X: Any, xp: ModuleType) -> tuple[Any, Any]:
        """Logits (C, B, n_outputs) and what `backward` needs."""
        raise NotImplementedError

    def backward(self, params: Params, cache: Any, dz: Any, xp: ModuleType) -> Params:
        """Gradients of the parameters, given the gradient dz in the logits."""
        raise NotImplementedError

    def loss_and_grads(
        self, params: Params, X: Any, y: Any, weight: Any, xp: ModuleType = np
    ) -> tuple[Any, Params]:
        """Weighted loss per client (C,) and gradients; `weight` (C, B) sums to 1 per
        client over its real rows and is 0 on padding."""
        z, cache = self.forward(params, X, xp)
        if self.n_outputs == 1:
            loss, dz = _sigmoid_cross_entropy(z, y, weight, xp)
        else:
            loss, dz = _softmax_cross_entropy(z, y, weight, xp)
        return loss, self.backward(params, cache, dz, xp)

    def predict(self, params: Params, X: Any, xp: ModuleType = np) -> Any:
        """Predicted class labels (C, B)."""
        z, _ = self.forward(params, X, xp)
        if self.n_outputs == 1:
            return (z[..., 0] > 0).astype(np.int64)
        return z.argmax(axis=-1)


class _Linear(BatchedModel):
    def shapes(self) -> list[tuple[int, ...]]:
        return [(self.n_features, self.n_outputs), (self.n_outputs,)]

    def init(self, seed: Seed = 0, xp: ModuleType = np) -> Params:
        return [xp.zeros(s) for s in self.shapes()]

    def forward(self, params: Params, X: Any, xp: ModuleType) -> tuple[Any, Any]:
        W, b = params
        return X @ W + b[..., None, :], X

    def backward(self, params: Params, cache: Any, dz: Any, xp: ModuleType) -> Params:
        X = cache
        return [xp.swapaxes(X, -1, -2) @ dz, dz.sum(axis=-2)]


class LogisticRegression(_Linear):
    """Binary logistic regression: W (d, 1), b (1,); labels 0 / 1."""

    def __init__(self, n_features: int):
        self.n_features, self.n_outputs = n_features, 1


class SoftmaxRegression(_Linear):
    """Multinomial logistic regression: W (d, k), b (k,); labels 0..k-1."""

    def __init__(self, n_features: int, n_classes: int):
        if n_classes < 2:
            raise ValueError("softmax regression needs >= 2 classes")
        self.n_features, self.n_outputs = n_features, n_classes


class MLP(BatchedModel):
    """One hidden ReLU layer: W1 (d, h), b1 (h,), W2 (h, k), b2 (k,); k = 1 means binary."""

    def __init__(self, n_features: int, n_hidden: int, n_classes: int):
        self.n_features, self.n_hidden = n_features, n_hidden
        self.n_outputs = 1 if n_classes == 2 else n_classes

    def shapes(self) -> list[tuple[int, ...]]:
        d, h, k = self.n_features, self.n_hidden, self.n_outputs
        return [(d, h), (h,), (h, k), (k,)]

    def init(self, seed: Seed = 0, xp: ModuleType = np) -> Params:
        d, h, k = self.n_features, self.n_hidden, self.n_outputs
        W1 = randomness.normal(randomness.derive(seed, "mlp-W1"), (d, h)) * math.sqrt(2.0 / d)
        W2 = randomness.normal(randomness.derive(seed, "mlp-W2"), (h, k)) * math.sqrt(1.0 / h)
        return [xp.asarray(W1), xp.zeros(h), xp.asarray(W2), xp.zeros(k)]

    def forward(self, params: Params, X: Any, xp: ModuleType) -> tuple[Any, Any]:
        W1, b1, W2, b2 = params
        pre = X @ W1 + b1[..., None, :]
        hidden = xp.maximum(pre, 0)
        return hidden @ W2 + b2[..., None, :], (X, pre, hidden)

    def backward(self, params: Params, cache: Any, dz: Any, xp: ModuleType) -> Params:
        _, _, W2, _ = params
        X, pre, hidden = cache
        dh = (dz @ xp.swapaxes(W2, -1, -2)) * (pre > 0)
        return [
            xp.swapaxes(X, -1, -2) @ dh,
            dh.sum(axis=-2),
            xp.swapaxes(hidden, -1, -2) @ dz,
            dz.sum(axis=-2),
        ]


def broadcast(params: Params, n_clients: int, xp: ModuleType = np) -> Params:
    """Copies of a global model for `n_clients` clients: arrays with a client axis."""
    return [xp.array(xp.broadcast_to(p, (n_clients, *p.shape))) for p in params]


def epoch_orders(seed: Seed, epoch: int, counts: Any, width: int, xp: ModuleType = np) -> Any:
    """Row order (C, width) for one epoch: each client's real rows in random order,
    then its padding."""
    counts_np = np.asarray(counts.get() if hasattr(counts, "get") else counts)
    keys = randomness.uniform(randomness.derive(seed, "epoch", epoch), (counts_np.size, width))
    keys[np.arange(width)[None, :] >= counts_np[:, None]] = 2.0
    return xp.asarray(np.argsort(keys, axis=1, kind="stable"))


def fit_batched(
    model: BatchedModel,
    params: Params,
    data: PaddedData,
    *,
    epochs: int = 1,
    lr: float = 0.1,
    batch_size: int = 32,
    mu_prox: float = 0.0,
    seed: Seed = 0,
    xp: ModuleType = np,
) -> Params:
    """Local minibatch SGD for all C clients of `data` at once.

    `params` is a global model (broadcast to every client) or per-client arrays
    (C, ...). With `mu_prox > 0` each step adds the FedProx term mu * (w - w_start).
    Returns the per-client parameters (C, ...).
    """
    C, width = data.y.shape
    if not model.has_client_axis(params):
        params = broadcast(params, C, xp)
    else:
        params = [xp.array(p) for p in params]
    start = [p.copy() for p in params] if mu_prox else None
    counts = data.counts
    # gather minibatches as rows of the (C * width, d) matrix: one contiguous copy per row
    X_rows, y_rows = data.X.reshape(C * width, -1), data.y.reshape(C * width)
    first_row = xp.arange(C)[:, None] * width
    for epoch in range(epochs):
        order = epoch_orders(seed, epoch, counts, width, xp) + first_row
        for lo in range(0, width, batch_size):
            rows = order[:, lo : lo + batch_size]
            valid = (xp.arange(lo, lo + rows.shape[1])[None, :] < counts[:, None]).astype(
                data.X.dtype
            )
            n = valid.sum(axis=1)
            weight = valid / xp.maximum(n, 1.0)[:, None]
            active = (n > 0).astype(data.X.dtype)
            Xb = xp.take(X_rows, rows, axis=0)
            yb = y_rows[rows]
            _, grads = model.loss_and_grads(params, Xb, yb, weight, xp)
            for i, (p, g) in enumerate(zip(params, grads)):
                if mu_prox:
                    g = g + mu_prox * (p - start[i])
                step = lr * active.reshape((C,) + (1,) * (p.ndim - 1))
                p -= step * g
    return params


def fit_per_client(
    model: BatchedModel,
    params: Params,
    Xs: Sequence[Any],
    ys: Sequence[Any],
    *,
    epochs: int = 1,
    lr: float = 0.1,
    batch_size: int = 32,
    mu_prox: float = 0.0,
    seed: Seed = 0,
) -> list[Params]:
    """Reference for `fit_batched`: the same SGD, one client and one minibatch at a time,
    on unpadded data, with the same row orders. Returns one parameter list per client."""
    counts = np.array([len(y) for y in ys], dtype=np.int64)
    width = int(counts.max())
    orders = [epoch_orders(seed, e, counts, width) for e in range(epochs)]
    results = []
    for c, (Xc, yc) in enumerate(zip(Xs, ys)):
        Xc, yc = np.asarray(Xc, dtype=np.float64), np.asarray(yc, dtype=np.int64)
        w = [np.array(p)[None] for p in params]
        start = [p.copy() for p in w]
        for e in range(epochs):
            rows_c = orders[e][c, : counts[c]]
            for lo in range(0, counts[c], batch_size):
                rows = rows_c[lo : lo + batch_size]
                weight = np.full((1, rows.size), 1.0 / rows.size)
                _, grads = model.loss_and_grads(w, Xc[rows][None], yc[rows][None], weight, np)
                for i, g in enumerate(grads):
                    if mu_prox:
                        g = g + mu_prox * (w[i] - start[i])
                    w[i] = w[i] - lr * g
        results.append([p[0] for p in w])
    return results


def evaluate_batched(
    model: BatchedModel, params: Params, data: PaddedData, xp: ModuleType = np
) -> tuple[Any, Any, Any]:
    """Mean loss (C,), accuracy (C,) and row counts (C,) of each client's model on its data.

    `params` is a global model (broadcast) or per-client arrays (C, ...)."""
    C, width = data.y.shape
    if not model.has_client_axis(params):
        params = [p[None] for p in params]  # broadcasting in the matmuls covers C
    valid = (xp.arange(width)[None, :] < data.counts[:, None]).astype(data.X.dtype)
    n = xp.maximum(valid.sum(axis=1), 1.0)
    weight = valid / n[:, None]
    z, _ = model.forward(params, data.X, xp)
    if model.n_outputs == 1:
        loss, _ = _sigmoid_cross_entropy(z, data.y, weight, xp)
        pred = (z[..., 0] > 0).astype(data.y.dtype)
    else:
        loss, _ = _softmax_cross_entropy(z, data.y, weight, xp)
        pred = z.argmax(axis=-1)
    accuracy = ((pred == data.y) * weight).sum(axis=1)
    return loss, accuracy, data.counts
