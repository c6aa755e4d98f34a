"""A place's clients: built once in the worker that hosts them, trained there each round.

Functions here run as steps at a place (a population worker or a silo). A `ChunkState`
holds the clients of the place: for a built-in model, their data as one padded batch
(`client_data(cids)`, trained together by `models.fit_batched`); for Flower-style
client objects, the objects `client_fn(cid)` built (kept between rounds, so a client
can keep its own state). Each round, `fit` trains the selected clients, drops every
client whose fit fails (raises, NaN/inf, wrong shapes: `client.call_fit`'s checks) and
names it, and turns the others' model changes into update vectors (`updates.py`); in
plaintext mode the place sends only their sum, under SecAgg the vectors stay here and
enter the protocol (`secure.py`).

What leaves a place: in plaintext mode the sum of its clients' update vectors, their
count and the failures; under SecAgg, masked vectors only; in either, the failures
(client id and reason) and, on evaluation rounds, the example-weighted sums of loss and
accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from cipherray.workloads.hfl import models, randomness
from cipherray.workloads.hfl.client import ClientError, call_evaluate, call_fit
from cipherray.workloads.hfl.updates import flatten


@dataclass
class BatchedClients:
    """Built-in model path: `client_data(cids)` returns PaddedData (or (train, test)).
    `device`: "cpu" (NumPy), "gpu" (CuPy, the worker must have a GPU) or "auto" (CuPy
    when it imports and sees a GPU in the worker, else NumPy)."""

    model: models.BatchedModel
    client_data: Callable[[np.ndarray], Any]
    device: str = "cpu"


def array_module(device: str) -> ModuleType:
    """NumPy, or CuPy for a GPU worker (see `BatchedClients.device`)."""
    if device == "cpu":
        return np
    if device not in ("gpu", "auto"):
        raise ValueError(f"device must be cpu, gpu or auto, not {device!r}")
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
        reason = "no GPU is visible"
    except Exception as e:  # no CuPy, or no CUDA driver
        reason = f"CuPy is unavailable ({type(e).__name__}: {e})"
    if device == "gpu":
        raise RuntimeError(f"device='gpu' but {reason} in this worker")
    return np


def _to(xp: ModuleType, data: models.PaddedData) -> models.PaddedData:
    return models.PaddedData(xp.asarray(data.X), xp.asarray(data.y), xp.asarray(data.counts))


def _host(a: Any) -> np.ndarray:
    return np.asarray(a.get() if hasattr(a, "get") else a)


@dataclass
class ObjectClients:
    """NumPyClient path: `client_fn(cid)` returns an object with get_parameters / fit /
    evaluate (Flower's contract, by duck typing)."""

    client_fn: Callable[[Any], Any]


@dataclass
class ChunkState:
    cids: np.ndarray
    source: BatchedClients | ObjectClients
    train: models.PaddedData | None = None
    test: models.PaddedData | None = None
    xp: ModuleType = np
    objects: dict[int, Any] = field(default_factory=dict)
    broken: dict[int, str] = field(default_factory=dict)  # client_fn failures
    vectors: np.ndarray | None = None  # this round's update vectors (SecAgg)
    fitted: np.ndarray | None = None  # their client ids
    cohort: Any = None  # this round's SecAgg cohort (its clients' secrets)
    plan: Any = None  # this round's SecAgg plan, as read from the server's message


@dataclass
class ChunkFit:
    """What a place reports after local training. It travels as `message()`, plain
    data (cross-silo, a message is arrays, numbers and strings, never an object), and
    the server reads it back with `from_message`, which checks it."""

    cids: np.ndarray  # the clients that trained successfully
    total: np.ndarray | None  # plaintext mode: sum of their update vectors
    failed: list[tuple[int, str]]

    def message(self) -> dict:
        return {"cids": np.asarray(self.cids, dtype=np.int64), "total": self.total,
                "failed": [(int(c), str(r)) for c, r in self.failed]}  # fmt: skip

    @classmethod
    def from_message(cls, m: Any) -> ChunkFit:
        if not (
            type(m) is dict and set(m) == {"cids", "total", "failed"}
            and isinstance(m["cids"], np.ndarray) and m["cids"].dtype == np.int64
            and m["cids"].ndim == 1
            and (m["total"] is None or (isinstance(m["total"], np.ndarray)
                                        and m["total"].dtype.kind in "fiu"))
        ):  # fmt: skip
            raise ValueError("a malformed fit message")
        return cls(m["cids"], m["total"], _failed(m["failed"]))


@dataclass
class ChunkEval:
    loss_sum: float
    accuracy_sum: float
    examples: int
    failed: list[tuple[int, str]]

    def message(self) -> dict:
        return {"loss_sum": float(self.loss_sum), "accuracy_sum": float(self.accuracy_sum),
                "examples": int(self.examples),
                "failed": [(int(c), str(r)) for c, r in self.failed]}  # fmt: skip

    @classmethod
    def from_message(cls, m: Any) -> ChunkEval:
        if not (
            type(m) is dict and set(m) == {"loss_sum", "accuracy_sum", "examples", "failed"}
            and type(m["loss_sum"]) is float and type(m["accuracy_sum"]) is float
            and type(m["examples"]) is int and m["examples"] >= 0
        ):  # fmt: skip
            raise ValueError("a malformed evaluation message")
        return cls(m["loss_sum"], m["accuracy_sum"], m["examples"], _failed(m["failed"]))


def _failed(v: Any) -> list[tuple[int, str]]:
    """The (client id, reason) pairs of a message, checked."""
    if type(v) is not list or not all(
        type(x) in (tuple, list) and len(x) == 2 and type(x[0]) is int and type(x[1]) is str
        for x in v
    ):
        raise ValueError("a malformed list of failed clients")
    return [(x[0], x[1]) for x in v]


def build(cids: np.ndarray, source: BatchedClients | ObjectClients) -> ChunkState:
    """Step 0 at a place: its clients' data (or client objects, built lazily)."""
    state = ChunkState(np.asarray(cids, dtype=np.int64), source)
    if isinstance(source, BatchedClients):
        data = source.client_data(state.cids)
        train, test = data if isinstance(data, tuple) else (data, data)
        state.xp = array_module(source.device)
        state.train, state.test = _to(state.xp, train), _to(state.xp, test)
        if state.train.n_clients != state.cids.size:
            raise ValueError(
                f"client_data returned {state.train.n_clients} clients for {state.cids.size} ids"
            )
    return state


def _client(state: ChunkState, cid: int) -> Any:
    if cid in state.broken:
        raise ClientError(cid, state.broken[cid])
    if cid not in state.objects:
        assert isinstance(state.source, ObjectClients)
        try:
            state.objects[cid] = state.source.client_fn(cid)
        except Exception as e:  # the client's own failure
            state.broken[cid] = f"client_fn raised {type(e).__name__}: {e}"
            raise ClientError(cid, state.broken[cid]) from e
    return state.objects[cid]


def _fit_objects(
    state: ChunkState, params: list, selected: np.ndarray, config: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    shapes = [np.shape(p) for p in params]
    ok, counts, flats, failed = [], [], [], []
    for cid in selected:
        try:
            r = call_fit(_client(state, int(cid)), int(cid), params, config, shapes)
        except ClientError as e:
            failed.append((int(cid), e.reason))
            continue
        ok.append(int(cid))
        counts.append(r.num_examples)
        flats.append(flatten(r.parameters))
    d = sum(int(np.prod(s)) for s in shapes)
    stacked = np.stack(flats) if flats else np.zeros((0, d))
    return np.array(ok, dtype=np.int64), np.array(counts, dtype=np.int64), stacked, failed


def _fit_batched(
    state: ChunkState, params: list, selected: np.ndarray, config: dict, seed: bytes
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    assert isinstance(state.source, BatchedClients) and state.train is not None
    xp = state.xp
    rows = np.searchsorted(state.cids, selected)
    data = state.train.subset(rows, xp)
    trained = models.fit_batched(
        state.source.model,
        [xp.asarray(p) for p in params],
        data,
        epochs=int(config.get("local_epochs", 1)),
        lr=float(config.get("lr", 0.1)),
        batch_size=int(config.get("batch_size", 32)),
        mu_prox=float(config.get("proximal_mu", 0.0)),
        seed=seed,
        xp=xp,
    )
    flat = flatten([_host(p) for p in trained], len(selected))
    finite = np.isfinite(flat).all(axis=1)
    failed = [(int(c), "the trained model is not finite (NaN or inf)") for c in selected[~finite]]
    counts = _host(data.counts)[finite]
    return selected[finite], counts, flat[finite], failed


def fit(
    state: ChunkState,
    params: list,
    selected: np.ndarray,
    config: dict,
    seed: bytes,
    rule: Any,
    clip: float,
    secure: bool,
) -> tuple[dict, ChunkState]:
    """Local training of this place's `selected` clients; update vectors by `rule`."""
    selected = np.intersect1d(np.asarray(selected, dtype=np.int64), state.cids)
    if isinstance(state.source, BatchedClients):
        ok, counts, flat, failed = _fit_batched(state, params, selected, config, seed)
    else:
        cfg = {**config, "seed": seed}
        ok, counts, flat, failed = _fit_objects(state, params, selected, cfg)
    deltas = flat - flatten(params)[None, :]
    vectors = rule.client(deltas, counts, clip)
    if secure:
        state.vectors, state.fitted = vectors, ok
        return ChunkFit(ok, None, failed).message(), state
    return ChunkFit(ok, vectors.sum(axis=0), failed).message(), state


def evaluate(
    state: ChunkState, params: list, selected: np.ndarray, config: dict
) -> tuple[dict, ChunkState]:
    """Example-weighted loss and accuracy sums of the selected clients on their data."""
    selected = np.intersect1d(np.asarray(selected, dtype=np.int64), state.cids)
    if isinstance(state.source, BatchedClients):
        assert state.test is not None
        xp = state.xp
        data = state.test.subset(np.searchsorted(state.cids, selected), xp)
        loss, acc, n = models.evaluate_batched(
            state.source.model, [xp.asarray(p) for p in params], data, xp
        )
        loss, acc, n = _host(loss), _host(acc), _host(n)
        ok = np.isfinite(loss)
        failed = [(int(c), "the evaluation loss is not finite") for c in selected[~ok]]
        n = np.asarray(n, dtype=np.float64)[ok]
        return ChunkEval(
            float((loss[ok] * n).sum()), float((acc[ok] * n).sum()), int(n.sum()), failed
        ).message(), state
    loss_sum = acc_sum = 0.0
    examples, failed = 0, []
    for cid in selected:
        try:
            r = call_evaluate(_client(state, int(cid)), int(cid), params, dict(config))
        except ClientError as e:
            failed.append((int(cid), e.reason))
            continue
        loss_sum += r.loss * r.num_examples
        acc_sum += float(r.metrics.get("accuracy", float("nan"))) * r.num_examples
        examples += r.num_examples
    return ChunkEval(loss_sum, acc_sum, examples, failed).message(), state


def seed_for(seed: bytes, rnd: int, place: int) -> bytes:
    return randomness.derive(seed, "fit", rnd, place)
