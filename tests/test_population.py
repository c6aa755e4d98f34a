"""Virtual-client populations: n clients in chunks on a small worker pool, per-client
state kept in the worker that hosts the client, and the pool spread over every node
that offers the population's resource."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import party_cluster

import cipherray as cr


def init_state(cids: np.ndarray) -> dict:
    """Per-client state of a chunk (here: how many rounds each client has trained)."""
    return {int(c): 0 for c in cids}


def local_round(cids: np.ndarray, state: dict, weights: np.ndarray) -> tuple:
    """Each client of the chunk trains one round: its update is weights + cid; the
    chunk returns the sum of its clients' updates and its new state."""
    for c in cids:
        state[int(c)] += 1
    updates = weights[None, :] + cids[:, None].astype(np.float64)
    return updates.sum(axis=0), state


def rounds_done(state: dict) -> list:
    return sorted(set(state.values()))


@pytest.mark.parametrize("backend", ["inline", "ray"])
def test_chunks_of_clients_keep_state_between_rounds(backend):
    n = 1000
    with cr.init(
        ["server"], backend=backend, populations={"phones": {"clients": n, "workers": 2}},
        timeout_s=60, driver_as="server",
    ) as rt:  # fmt: skip
        phones, server = rt.population("phones"), rt.party("server")
        assert rt.parties == [server] and rt.populations == [phones]
        rt.protocol("fl", {"update": "a chunk's summed update (the test's toy protocol)"})
        chunks = phones.chunks(100)
        assert sum(len(c) for _, c in chunks) == n and len(chunks) == 10
        states = {i: phones(init_state, worker=w)(cids) for i, (w, cids) in enumerate(chunks)}
        weights = np.zeros(3)
        for _ in range(3):
            sums = []
            for i, (w, cids) in enumerate(chunks):
                total, states[i] = phones(local_round, worker=w, num_returns=2)(
                    cids, states[i], weights
                )
                sums.append(rt.send(total, to=server, tag="fl/update"))
            weights = rt.get(server(lambda *s: np.sum(s, axis=0) / n)(*sums))
        # round r adds sum(cid)/n = (n-1)/2 to every weight
        np.testing.assert_allclose(weights, 3 * (n - 1) / 2)
        done = [
            phones(rounds_done, worker=w, declare="public")(states[i])
            for i, (w, _) in enumerate(chunks)
        ]
        assert all(rt.get(d) == [3] for d in done)
        with pytest.raises(cr.ConfigError, match="not a population"):
            rt.population("server")
        with pytest.raises(cr.ConfigError, match="clients 0..999"):
            phones.chunks(10, cids=[5, 1000])


def test_population_config_errors():
    with pytest.raises(cr.ConfigError, match="clients must be"):
        cr.init(["a"], backend="inline", populations={"p": {"workers": 2}})
    with pytest.raises(cr.ConfigError, match="also a party"):
        cr.init(["a"], backend="inline", populations={"a": {"clients": 5}})


@pytest.fixture(scope="module")
def cluster():
    yield from party_cluster(("server", "phones"))


def test_a_population_spreads_over_every_node_that_offers_it(cluster):
    import ray

    c, nodes = cluster
    second = c.add_node(num_cpus=1, resources={"party:phones": 2})  # a second node for phones
    c.wait_for_nodes()
    rt = cr.init(
        ["server"], address=c.address, populations={"phones": {"clients": 40, "workers": 2}}
    )
    try:
        where = {p["node_id"] for p in rt.where("phones")}
        assert where == {nodes["phones"].node_id, second.node_id}  # one worker on each
        assert {p["node_id"] for p in rt.where("server")} == {nodes["server"].node_id}
    finally:
        rt.shutdown()
        if ray.is_initialized():
            ray.shutdown()


N_CLIENTS = 120


def digits_clients(cids: np.ndarray):
    """Client c holds every N_CLIENTS-th row of scikit-learn's digits from row c."""
    from sklearn.datasets import load_digits

    from cipherray.workloads.hfl import models

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    return models.pad([x[c::N_CLIENTS] for c in cids], [y[c::N_CLIENTS] for c in cids])


@pytest.mark.parametrize("backend", ["inline", "ray"])
def test_fedavg_rounds_over_a_population_match_the_single_process_loop(backend):
    from cipherray.workloads.hfl import models, simulate
    from cipherray.workloads.hfl.strategy import FedAvg
    from cipherray.workloads.hfl.train import train

    model = models.SoftmaxRegression(64, 10)
    config = {"lr": 0.5, "batch_size": 16, "local_epochs": 1}
    all_clients = digits_clients(np.arange(N_CLIENTS))
    with cr.init(
        ["server"], backend=backend, driver_as="server", timeout_s=120,
        populations={"phones": {"clients": N_CLIENTS, "workers": 2}},
    ) as rt:  # fmt: skip
        result = train(
            rt, rt.party("server"), rt.population("phones"), 5, model=model,
            client_data=digits_clients, strategy=FedAvg(evaluate_every=0), chunk_size=32,
            config=config, seed=1,
        )  # fmt: skip
        final = rt.get(result.parameters)
        assert len(result.history) == 5
        # one fit report per chunk per round: 4 chunks of 32 clients on 2 workers
        assert rt.ledger.by_tag().set_index("tag").loc["hfl/fit", "messages"] == 5 * 4
    _, accs, counts = models.evaluate_batched(model, final, all_clients)
    accuracy = float((accs * counts).sum() / counts.sum())
    _, history = simulate.run_rounds_batched(
        FedAvg(), model, all_clients, 5, epochs=1, lr=0.5, batch_size=16, chunk_size=32, seed=1
    )
    assert accuracy > 0.85
    assert abs(accuracy - history[-1]["accuracy"]) < 0.02  # same algorithm, other chunks
