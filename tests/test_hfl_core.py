"""Horizontal FL core (pure NumPy): partitioners, batched models, clients, strategies, loops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from cipherray.workloads.hfl import (
    MLP,
    ClientError,
    ClientSampler,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    LogisticRegression,
    ModelClient,
    NotEnoughClientsError,
    SoftmaxRegression,
    call_fit,
    evaluate_batched,
    fit_batched,
    fit_per_client,
    pad,
    partition,
    run_rounds,
    run_rounds_batched,
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def _assert_is_partition(parts, n_rows):
    rows = np.concatenate(parts)
    assert rows.size == n_rows and np.array_equal(np.sort(rows), np.arange(n_rows))


# ---- partitioners -----------------------------------------------------------------


def test_iid_is_a_balanced_partition_and_reproducible():
    parts = partition.iid(1003, 10, seed=7)
    _assert_is_partition(parts, 1003)
    assert {p.size for p in parts} == {100, 101}
    again = partition.iid(1003, 10, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = partition.iid(1003, 10, seed=8)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))


def test_dirichlet_small_alpha_skews_labels_large_alpha_does_not():
    labels = np.repeat(np.arange(10), 200)
    skewed = partition.dirichlet(labels, 20, alpha=0.05, seed=1)
    even = partition.dirichlet(labels, 20, alpha=1000.0, seed=1)
    _assert_is_partition(skewed, labels.size)
    _assert_is_partition(even, labels.size)

    def top_class_share(parts):
        return np.mean([np.bincount(labels[p]).max() / p.size for p in parts if p.size])

    assert top_class_share(skewed) > 0.6
    assert top_class_share(even) < 0.2
    at_least = partition.dirichlet(labels, 20, alpha=0.05, seed=1, min_rows=10)
    assert min(p.size for p in at_least) >= 10


def test_shards_give_each_client_k_label_blocks():
    labels = np.repeat(np.arange(10), 100)
    parts = partition.shards(labels, 50, k=2, seed=3)
    _assert_is_partition(parts, labels.size)
    assert all(p.size == 20 for p in parts)
    assert max(np.unique(labels[p]).size for p in parts) <= 2
    with pytest.raises(ValueError):
        partition.shards(labels, 600, k=2)


def test_partitions_apply_to_dataframes():
    df = pd.DataFrame({"x": np.arange(30.0), "label": np.arange(30) % 3}, index=np.arange(30) + 100)
    parts = partition.dirichlet(df["label"], 4, alpha=0.5, seed=0)
    frames = partition.split(df, parts)
    assert sum(len(f) for f in frames) == 30
    assert sorted(pd.concat(frames).index) == list(df.index)
    assert np.array_equal(
        partition.take(df, parts[0])["x"].to_numpy(), df["x"].to_numpy()[parts[0]]
    )


# ---- batched models ---------------------------------------------------------------


@pytest.mark.parametrize(
    "model, binary",
    [(LogisticRegression(64), True), (SoftmaxRegression(64, 10), False), (MLP(64, 16, 10), False)],
    ids=["logistic", "softmax", "mlp"],
)
def test_batched_training_equals_per_client_training(digits, model, binary):
    Xtr, _, ytr, _ = digits
    parts = partition.dirichlet(ytr, 12, alpha=0.5, seed=2, min_rows=3)  # unequal sizes
    Xs = [Xtr[p] for p in parts]
    ys = [(ytr[p] % 2) if binary else ytr[p] for p in parts]
    start = model.init(seed=4)
    kw = dict(epochs=2, lr=0.2, batch_size=16, mu_prox=0.05, seed=9)
    batched = fit_batched(model, start, pad(Xs, ys), **kw)
    reference = fit_per_client(model, start, Xs, ys, **kw)
    for c, ref in enumerate(reference):
        for b, r in zip(batched, ref):
            np.testing.assert_allclose(b[c], r, rtol=0, atol=1e-10)
    loss_before, _, _ = evaluate_batched(model, start, pad(Xs, ys))
    loss_after, acc, counts = evaluate_batched(model, batched, pad(Xs, ys))
    assert np.all(loss_after < loss_before)
    assert np.array_equal(counts, [len(y) for y in ys]) and np.all((acc >= 0) & (acc <= 1))


# ---- strategies and loops ---------------------------------------------------------


def _central_eval(model, X, y):
    test = pad([X], [y])

    def evaluate(params):
        loss, acc, _ = evaluate_batched(model, params, test)
        return {"loss": loss[0], "accuracy": acc[0]}

    return evaluate


def test_fedavg_on_iid_digits_matches_centralised_accuracy(digits):
    Xtr, Xte, ytr, yte = digits
    model = SoftmaxRegression(64, 10)
    evaluate = _central_eval(model, Xte, yte)
    central = fit_batched(model, model.init(), pad([Xtr], [ytr]), epochs=50, lr=0.1, batch_size=8)
    central_acc = evaluate([p[0] for p in central])["accuracy"]

    parts = partition.iid(len(ytr), 100, seed=0)
    data = pad([Xtr[p] for p in parts], [ytr[p] for p in parts])
    _, history = run_rounds_batched(
        FedAvg(evaluate_every=50),
        model,
        data,
        200,
        epochs=5,
        lr=0.5,
        batch_size=8,
        seed=3,
        evaluate_fn=evaluate,
    )
    final = history[-1]
    assert final["clients"] == 100 and final["dropped"] == []
    assert final["central_accuracy"] >= central_acc - 0.01, (final, central_acc)
    assert [h["loss"] is not None for h in history].count(True) == 4  # rounds 50..200


@pytest.mark.parametrize(
    "strategy",
    [FedProx(proximal_mu=0.1), FedAdam(), FedYogi()],
    ids=["fedprox", "fedadam", "fedyogi"],
)
def test_other_strategies_run_and_reduce_loss(digits, strategy):
    Xtr, Xte, ytr, yte = digits
    model = SoftmaxRegression(64, 10)
    parts = partition.dirichlet(ytr, 50, alpha=0.5, seed=1, min_rows=2)
    data = pad([Xtr[p] for p in parts], [ytr[p] for p in parts])
    strategy.sampler = ClientSampler(fraction=0.5, seed=0)
    _, history = run_rounds_batched(
        strategy,
        model,
        data,
        30,
        epochs=2,
        lr=0.2,
        batch_size=8,
        seed=1,
        evaluate_fn=_central_eval(model, Xte, yte),
    )
    assert all(h["clients"] == 25 for h in history)
    assert history[-1]["central_loss"] < 0.6 * history[0]["central_loss"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_client_sampler_fraction_count_poisson():
    population = list(range(1000))
    assert len(ClientSampler(fraction=0.1, seed=0).select(population, 1)) == 100
    picked = ClientSampler(count=7, seed=0).select(population, 1)
    assert len(picked) == 7 == len(set(picked))
    assert picked != ClientSampler(count=7, seed=0).select(population, 2)
    sizes = [len(ClientSampler(poisson_rate=0.2, seed=0).select(population, r)) for r in range(20)]
    assert 150 < np.mean(sizes) < 250 and len(set(sizes)) > 1
    assert ClientSampler().select(population, 1) == population
    with pytest.raises(ValueError):
        ClientSampler(fraction=0.5, count=3)


def test_min_available_raises_named_error():
    strategy = FedAvg(min_available=10)
    with pytest.raises(NotEnoughClientsError) as err:
        run_rounds(strategy, lambda cid: None, list(range(5)), 1, [np.zeros(3)])
    assert err.value.available == 5 and err.value.required == 10


class FlowerStyleClient:
    """Written the way a Flower user writes a NumPyClient (no flwr import)."""

    def __init__(self, X, y):
        self.X, self.y = X, y
        self.W, self.b = np.zeros((X.shape[1], 10)), np.zeros(10)

    def get_parameters(self, config):
        return [self.W, self.b]

    def set_parameters(self, parameters):
        self.W, self.b = parameters

    def _probs(self, X):
        z = X @ self.W + self.b
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def fit(self, parameters, config):
        self.set_parameters(parameters)
        for _ in range(5):
            g = self._probs(self.X)
            g[np.arange(len(self.y)), self.y] -= 1.0
            g /= len(self.y)
            self.W = self.W - 0.5 * self.X.T @ g
            self.b = self.b - 0.5 * g.sum(axis=0)
        return self.get_parameters(config={}), len(self.X), {}

    def evaluate(self, parameters, config):
        self.set_parameters(parameters)
        p = self._probs(self.X)
        loss = -np.log(p[np.arange(len(self.y)), self.y] + 1e-12).mean()
        accuracy = float((p.argmax(axis=1) == self.y).mean())
        return float(loss), len(self.X), {"accuracy": accuracy}


def test_flower_style_client_runs_unchanged(digits):
    Xtr, Xte, ytr, yte = digits
    parts = partition.iid(len(ytr), 20, seed=0)

    def client_fn(cid):
        return FlowerStyleClient(Xtr[parts[int(cid)]], ytr[parts[int(cid)]])

    model = SoftmaxRegression(64, 10)
    params, history = run_rounds(
        FedAvg(evaluate_every=5),
        client_fn,
        [str(i) for i in range(20)],
        20,
        [np.zeros((64, 10)), np.zeros(10)],
        evaluate_fn=_central_eval(model, Xte, yte),
    )
    assert history[-1]["central_accuracy"] > 0.9
    assert history[4]["loss"] is not None and history[0]["loss"] is None
    assert history[-1]["loss"] < history[4]["loss"]


def test_built_in_client_on_the_per_object_path(digits):
    Xtr, Xte, ytr, yte = digits
    model = SoftmaxRegression(64, 10)
    parts = partition.iid(len(ytr), 10, seed=0)
    clients = {
        i: ModelClient(model, Xtr[p], ytr[p], lr=0.3, batch_size=16) for i, p in enumerate(parts)
    }
    _, history = run_rounds(
        FedProx(proximal_mu=0.01),
        clients.__getitem__,
        list(clients),
        10,
        model.init(),
        evaluate_fn=_central_eval(model, Xte, yte),
    )
    assert history[-1]["central_accuracy"] > 0.9
    assert history[-1]["loss"] < history[0]["loss"]


class _BadClient(FlowerStyleClient):
    def __init__(self, X, y, fault):
        super().__init__(X, y)
        self.fault = fault

    def fit(self, parameters, config):
        if self.fault == "raise":
            raise RuntimeError("disk full")
        new, n, metrics = super().fit(parameters, config)
        if self.fault == "nan":
            new = [new[0] * np.nan, new[1]]
        elif self.fault == "inf":
            new = [new[0], new[1] + np.inf]
        elif self.fault == "shape":
            new = [new[0][:, :5], new[1]]
        elif self.fault == "count":
            n = -1
        return new, n, metrics


def test_failing_clients_are_dropped_and_named(digits):
    Xtr, _, ytr, _ = digits
    parts = partition.iid(len(ytr), 8, seed=0)
    faults = {"1": "raise", "3": "nan", "4": "shape", "6": "inf", "7": "count"}

    def client_fn(cid):
        p = parts[int(cid)]
        if cid in faults:
            return _BadClient(Xtr[p], ytr[p], faults[cid])
        return FlowerStyleClient(Xtr[p], ytr[p])

    params, history = run_rounds(
        FedAvg(evaluate_every=0),
        client_fn,
        [str(i) for i in range(8)],
        2,
        [np.zeros((64, 10)), np.zeros(10)],
    )
    for h in history:
        assert h["fitted"] == 3
        reasons = {d["cid"]: d["reason"] for d in h["dropped"]}
        assert set(reasons) == set(faults)
        assert "RuntimeError" in reasons["1"] and "disk full" in reasons["1"]
        assert "non-finite" in reasons["3"] and "non-finite" in reasons["6"]
        assert "shape" in reasons["4"] and "num_examples" in reasons["7"]
    assert all(np.isfinite(p).all() for p in params)

    with pytest.raises(ClientError) as err:
        call_fit(_BadClient(Xtr[:5], ytr[:5], "shape"), "c9", params, {})
    assert err.value.cid == "c9" and "shape" in err.value.reason


def test_batched_path_drops_clients_whose_model_diverges(digits):
    Xtr, _, ytr, _ = digits
    model = SoftmaxRegression(64, 10)
    parts = partition.iid(len(ytr), 6, seed=0)
    Xs = [Xtr[p].copy() for p in parts]
    Xs[2][0, 0] = np.nan  # this client's data poisons its local model
    data = pad(Xs, [ytr[p] for p in parts])
    params, history = run_rounds_batched(FedAvg(), model, data, 2, chunk_size=4, seed=0)
    assert [d["cid"] for d in history[0]["dropped"]] == [2]
    assert history[0]["fitted"] == 5
    assert all(np.isfinite(p).all() for p in params)


def test_device_check_script_dry_run_on_the_host():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "hfl_device_check.py"
    out = subprocess.run(
        [sys.executable, str(script), "--host-dry-run"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "max |cupy - numpy|" in out.stdout
