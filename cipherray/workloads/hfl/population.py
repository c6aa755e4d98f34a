"""FedAvg rounds of a built-in model over a runtime population (plaintext aggregation).

The clients of a population live on its worker pool in chunks (`Party.chunks`); a
chunk's data is built once at its worker (`client_data(cids)`, the population's
`client_fn` for a whole chunk) and stays there across rounds. Each round:

1. the server sends the global model to the population (one protocol message);
2. every chunk trains its clients as one batched job (`models.fit_batched`) and
   reduces them to one example-weighted sum (`strategy.WeightedSum`);
3. each chunk sends its sum to the server (one message per chunk);
4. the server averages (`strategy.aggregate`) into the next global model.

What the server learns: the global models and, per chunk, the example-weighted sum of
that chunk's client models and its example count (no secure aggregation here: with
SecAgg+ the server will learn only the round's total). What a client learns: the
global models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cipherray.workloads.hfl import models, randomness
from cipherray.workloads.hfl.strategy import FedAvg, WeightedSum

PROTOCOL = {
    "model": "the global model, from the server to the population",
    "update": "one chunk's example-weighted sum of client models and its example count",
}


def fit_chunk(
    data: models.PaddedData,
    params: list,
    model: models.BatchedModel,
    config: dict,
    seed: bytes,
) -> WeightedSum:
    """Step 2 at a population worker: local training of the chunk's clients, reduced
    to their example-weighted sum (clients whose model is not finite are left out)."""
    trained = models.fit_batched(
        model,
        params,
        data,
        epochs=int(config.get("local_epochs", 1)),
        lr=float(config.get("lr", 0.1)),
        batch_size=int(config.get("batch_size", 32)),
        mu_prox=float(config.get("proximal_mu", 0.0)),
        seed=seed,
    )
    return WeightedSum.of_finite(trained, data.counts)[0]


def aggregate(strategy: FedAvg, rnd: int, params: list, *sums: WeightedSum) -> list:
    """Step 4 at the server: the next global model."""
    total = sums[0]
    for s in sums[1:]:
        total = total + s
    return strategy.aggregate(rnd, params, total) if total.clients else params


def run_rounds(
    rt: Any,
    server: Any,
    population: Any,
    model: models.BatchedModel,
    client_data: Callable[[np.ndarray], models.PaddedData],
    rounds: int,
    *,
    strategy: FedAvg | None = None,
    chunk_size: int = 256,
    config: dict | None = None,
    seed: randomness.Seed = None,
) -> tuple[Any, list[float]]:
    """`rounds` FedAvg rounds with every client of `population`; returns the server's
    model (a PartyRef at `server`) and the seconds of each round."""
    import time

    strategy = strategy or FedAvg()
    config = dict(config or {})
    seed = randomness.seed_bytes(seed)
    rt.protocol("hfl", PROTOCOL)
    chunks = population.chunks(chunk_size)
    data = [population(client_data, worker=w)(cids) for w, cids in chunks]
    params = server(model.init)(randomness.derive(seed, "init"))
    seconds = []
    for rnd in range(1, rounds + 1):
        t0 = time.perf_counter()
        at_pool = rt.send(params, to=population, tag="hfl/model")  # 1.
        sums = [
            population(fit_chunk, worker=w)(  # 2.
                d, at_pool, model, config, randomness.derive(seed, "fit", rnd, k)
            )
            for k, ((w, _), d) in enumerate(zip(chunks, data))
        ]
        at_server = [rt.send(s, to=server, tag="hfl/update") for s in sums]  # 3.
        params = server(aggregate)(strategy, rnd, params, *at_server)  # 4.
        rt.wait(params)
        seconds.append(time.perf_counter() - t0)
    return params, seconds
