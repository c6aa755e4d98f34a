"""`hfl.train` on the Ray backend: a population on a 2-worker pool with SecAgg+, a
population worker that dies mid-training (its clients are dropped and named, training
goes on), and a dead server party (PartyError)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from test_hfl_train import MODEL, central, chunk_data

import cipherray as cr
from cipherray.workloads.hfl import FedAvg
from cipherray.workloads.hfl.train import SecAgg, train


@pytest.fixture(scope="module")
def rt():
    with cr.init(
        ["server"], backend="ray", driver_as="server", timeout_s=120,
        populations={"phones": {"clients": 40, "workers": 2}},
    ) as rt:  # fmt: skip
        yield rt


def run(rt, rounds, **kw):
    return train(
        rt, rt.party("server"), rt.population("phones"), rounds, model=MODEL,
        client_data=functools.partial(chunk_data, n_clients=40), chunk_size=10, **kw,
    )  # fmt: skip


def test_secagg_population_on_ray(rt):
    r = run(rt, 2, secagg=SecAgg(dropout=0.1), evaluate_fn=central, seed=0)
    assert all(h["included"] + len(h["dropped"]) == 40 for h in r.history)
    assert r.history[-1]["central_accuracy"] > 0.5
    assert np.isfinite(np.concatenate([p.ravel() for p in rt.get(r.parameters)])).all()


def test_a_dead_population_worker_drops_its_clients_and_training_goes_on(rt):
    def kill_after_first(metrics):
        if metrics["round"] == 1:
            rt.kill_worker("phones", 1)

    r = run(rt, 3, progress=kill_after_first, strategy=FedAvg(evaluate_every=0),
            evaluate_fn=central)  # fmt: skip
    h1, h2, h3 = r.history
    assert h1["included"] == 40 and not h1["dropped"]
    lost = {d["cid"]: d["reason"] for d in h2["dropped"]}
    assert set(lost) == set(range(1, 40, 2)) and h2["included"] == 20
    assert all("phones[worker 1]" in why and "round 2" in why for why in lost.values())
    assert h3["clients"] == 20 and h3["included"] == 20 and not h3["dropped"]
    assert h3["central_accuracy"] > 0.3


def test_a_dead_server_is_a_party_error(rt):
    rt.kill_worker("server")
    with pytest.raises(cr.PartyError, match="server"):
        run(rt, 1)
