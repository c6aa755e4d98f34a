"""Single-process federated training loops: the plain-NumPy floor for the runtime's version.

`run_rounds` drives NumPyClient-style objects one at a time (`client_fn(cid)` builds
each); `run_rounds_batched` trains a built-in model for all selected clients in chunks
of array computations. Both return the final global model and one metrics dict per
round: round, clients (selected), fitted, dropped (cid and reason of each client whose
fit failed), loss and accuracy (federated evaluation, example-weighted; None on rounds
without evaluation), seconds, plus `central_*` entries from an optional `evaluate_fn`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from cipherray.workloads.hfl import models, randomness
from cipherray.workloads.hfl.client import ClientError, call_evaluate, call_fit
from cipherray.workloads.hfl.randomness import Seed
from cipherray.workloads.hfl.strategy import FedAvg, WeightedSum

Params = list[Any]
EvaluateFn = Callable[[Params], dict[str, float]]


def _central(evaluate_fn: EvaluateFn | None, params: Params) -> dict[str, float]:
    if evaluate_fn is None:
        return {}
    return {f"central_{k}": float(v) for k, v in evaluate_fn(params).items()}


def _build(client_fn: Callable[[Any], Any], cid: Any) -> Any:
    try:
        return client_fn(cid)
    except Exception as e:  # building the client is the client's failure too
        raise ClientError(cid, f"client_fn raised {type(e).__name__}: {e}") from e


def run_rounds(
    strategy: FedAvg,
    client_fn: Callable[[Any], Any],
    client_ids: Sequence[Any],
    rounds: int,
    initial_parameters: Params,
    *,
    evaluate_fn: EvaluateFn | None = None,
) -> tuple[Params, list[dict[str, Any]]]:
    """Federated training over client objects, one client call at a time."""
    params = [np.asarray(p, dtype=np.float64) for p in initial_parameters]
    shapes = [p.shape for p in params]
    history = []
    for rnd in range(1, rounds + 1):
        t0 = time.perf_counter()
        selected = strategy.select_fit(client_ids, rnd)
        config = strategy.fit_config(rnd)
        fitted, counts, dropped = [], [], []
        for cid in selected:
            try:
                result = call_fit(_build(client_fn, cid), cid, params, config, shapes)
            except ClientError as e:
                dropped.append({"cid": e.cid, "reason": e.reason})
                continue
            fitted.append(result.parameters)
            counts.append(result.num_examples)
        if fitted:
            params = strategy.aggregate(rnd, params, WeightedSum.of_results(fitted, counts))
        fit_seconds = time.perf_counter() - t0

        loss = accuracy = None
        evaluated = strategy.select_evaluate(client_ids, rnd)
        eval_dropped = []
        if evaluated:
            losses, accs, weights = [], [], []
            for cid in evaluated:
                try:
                    r = call_evaluate(_build(client_fn, cid), cid, params, {"round": rnd})
                except ClientError as e:
                    eval_dropped.append({"cid": e.cid, "reason": e.reason})
                    continue
                losses.append(r.loss)
                accs.append(r.metrics.get("accuracy", np.nan))
                weights.append(r.num_examples)
            if weights and sum(weights) > 0:
                w = np.asarray(weights, dtype=np.float64) / sum(weights)
                loss, accuracy = float(w @ np.asarray(losses)), float(w @ np.asarray(accs))
        history.append(
            {
                "round": rnd,
                "clients": len(selected),
                "fitted": len(fitted),
                "dropped": dropped,
                "evaluate_dropped": eval_dropped,
                "loss": loss,
                "accuracy": accuracy,
                "fit_seconds": fit_seconds,
                "seconds": time.perf_counter() - t0,
                **_central(evaluate_fn, params),
            }
        )
    return params, history


# CPU chunk size: a minibatch gathered for the whole chunk stays near this many floats,
# small enough for the CPU caches (larger chunks are slower per client on a CPU)
CPU_CHUNK_FLOATS = 1 << 18
ACCELERATOR_CHUNK_CLIENTS = 1 << 16


def auto_chunk_size(data: models.PaddedData, batch_size: int, xp: ModuleType = np) -> int:
    """Clients per batched job: cache-sized on the CPU, large on an accelerator."""
    if xp is not np:
        return ACCELERATOR_CHUNK_CLIENTS
    rows = max(1, min(batch_size, int(data.y.shape[1])))
    return max(16, CPU_CHUNK_FLOATS // (rows * int(data.X.shape[2])))


def _chunks(items: Sequence[int], size: int) -> list[Sequence[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _positions(chunk: Sequence[int]) -> slice | np.ndarray:
    """A slice when the chunk is a run of consecutive positions (views instead of copies)."""
    positions = np.asarray(chunk, dtype=np.int64)
    if positions.size and (np.diff(positions) == 1).all():
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def run_rounds_batched(
    strategy: FedAvg,
    model: models.BatchedModel,
    data: models.PaddedData,
    rounds: int,
    *,
    initial_parameters: Params | None = None,
    epochs: int = 1,
    lr: float = 0.1,
    batch_size: int = 32,
    chunk_size: int | None = None,
    seed: Seed = None,
    evaluate_data: models.PaddedData | None = None,
    evaluate_fn: EvaluateFn | None = None,
    xp: ModuleType = np,
) -> tuple[Params, list[dict[str, Any]]]:
    """Federated training of a built-in model, clients of a chunk as one batched job.

    Clients are the positions 0..C-1 of `data`; `evaluate_data` (default `data`) holds
    each client's evaluation rows. A client whose trained model is not finite is dropped.
    `chunk_size` (clients per batched job) defaults to `auto_chunk_size`.
    """
    seed = randomness.seed_bytes(seed)
    params = model.init(seed, xp) if initial_parameters is None else list(initial_parameters)
    params = [xp.asarray(p, dtype=np.float64) for p in params]
    eval_data = data if evaluate_data is None else evaluate_data
    population = list(range(data.n_clients))
    if chunk_size is None:
        chunk_size = auto_chunk_size(data, batch_size, xp)
    history = []
    for rnd in range(1, rounds + 1):
        t0 = time.perf_counter()
        selected = strategy.select_fit(population, rnd)
        config = strategy.fit_config(rnd)
        total: WeightedSum | None = None
        dropped = []
        for k, chunk in enumerate(_chunks(selected, chunk_size)):
            part = data.subset(_positions(chunk), xp)
            trained = models.fit_batched(
                model,
                params,
                part,
                epochs=int(config.get("local_epochs", epochs)),
                lr=float(config.get("lr", lr)),
                batch_size=int(config.get("batch_size", batch_size)),
                mu_prox=float(config.get("proximal_mu", 0.0)),
                seed=randomness.derive(seed, "fit", rnd, k),
                xp=xp,
            )
            partial, ok = WeightedSum.of_finite(trained, part.counts, xp)
            dropped += [
                {"cid": chunk[i], "reason": "fit returned non-finite values (NaN or inf)"}
                for i in np.flatnonzero(~ok)
            ]
            total = partial if total is None else total + partial
        if total is not None and total.clients:
            params = strategy.aggregate(rnd, params, total)
        fit_seconds = time.perf_counter() - t0

        loss = accuracy = None
        evaluated = strategy.select_evaluate(population, rnd)
        if evaluated:
            loss_sum = acc_sum = weight = 0.0
            for chunk in _chunks(evaluated, chunk_size):
                part = eval_data.subset(_positions(chunk), xp)
                losses, accs, counts = models.evaluate_batched(model, params, part, xp)
                loss_sum += float((losses * counts).sum())
                acc_sum += float((accs * counts).sum())
                weight += float(counts.sum())
            if weight > 0:
                loss, accuracy = loss_sum / weight, acc_sum / weight
        history.append(
            {
                "round": rnd,
                "clients": len(selected),
                "fitted": len(selected) - len(dropped),
                "dropped": dropped,
                "loss": loss,
                "accuracy": accuracy,
                "fit_seconds": fit_seconds,
                "seconds": time.perf_counter() - t0,
                **_central(evaluate_fn, params),
            }
        )
    return params, history
