"""`hfl.train` over the runtime (inline backend): populations and silos, plaintext and
SecAgg+ aggregation, Flower-style client objects with faults, and DP-FedAvg with its
accountant."""

from __future__ import annotations

import functools

import dp_accounting
import numpy as np
import pytest
from sklearn.datasets import load_digits
from test_hfl_core import FlowerStyleClient, _BadClient

import cipherray as cr
from cipherray.protocols.dp.accountant import PrivacyBudgetExceeded
from cipherray.workloads.hfl import FedAdam, FedAvg, models, partition
from cipherray.workloads.hfl.dp import DP
from cipherray.workloads.hfl.places import places_of
from cipherray.workloads.hfl.train import SecAgg, train

X, Y = load_digits(return_X_y=True)
X = X / 16.0
MODEL = models.SoftmaxRegression(64, 10)


def chunk_data(cids: np.ndarray, n_clients: int) -> models.PaddedData:
    """Built at the worker: the rows of the IID partition that belong to `cids`."""
    parts = partition.iid(len(Y), n_clients, seed=0)
    return models.pad([X[parts[c]] for c in cids], [Y[parts[c]] for c in cids])


def central(params: list) -> dict:
    loss, acc, _ = models.evaluate_batched(MODEL, params, models.pad([X], [Y]))
    return {"loss": float(loss[0]), "accuracy": float(acc[0])}


@pytest.fixture(scope="module")
def rt():
    with cr.init(
        ["server", "h1", "h2", "h3"], backend="inline", driver_as="server",
        populations={"phones": {"clients": 60, "workers": 2}},
    ) as rt:  # fmt: skip
        yield rt


def run(rt, rounds=2, **kw):
    kw.setdefault("model", MODEL)
    kw.setdefault("client_data", functools.partial(chunk_data, n_clients=60))
    kw.setdefault("chunk_size", 16)
    clients = kw.pop("clients", None) or rt.population("phones")
    return train(rt, rt.party("server"), clients, rounds, **kw)


def params_of(rt, result) -> np.ndarray:
    return np.concatenate([p.ravel() for p in rt.get(result.parameters)])


def test_plaintext_population_learns(rt):
    r = run(rt, rounds=8, evaluate_fn=central, config={"lr": 0.5}, seed=3)
    assert [h["round"] for h in r.history] == list(range(1, 9))
    assert all(h["clients"] == 60 and h["included"] == 60 and not h["dropped"] for h in r.history)
    assert r.history[-1]["central_accuracy"] > 0.85
    assert r.history[-1]["loss"] < r.history[0]["loss"]


def test_secagg_equals_plaintext_within_the_quantisation_error(rt):
    plain = run(rt, rounds=1, seed=5, strategy=FedAvg(evaluate_every=0))
    secure = run(rt, rounds=1, seed=5, secagg=SecAgg(), strategy=FedAvg(evaluate_every=0))
    a, b = params_of(rt, plain), params_of(rt, secure)
    assert not np.array_equal(a, b)  # quantised
    np.testing.assert_allclose(a, b, atol=1e-5)
    info = secure.secagg
    assert info["clients"] == 60 and info["threshold"] >= 2 and not info["complete"]


@pytest.mark.parametrize("dropout", [0.1, 0.3])
def test_secagg_with_dropouts_includes_exactly_the_survivors(rt, dropout):
    r = run(rt, rounds=1, seed=1, secagg=SecAgg(dropout=dropout))
    h = r.history[0]
    # each place drops round(dropout * members) before the masked input
    assert h["included"] + len(h["dropped"]) == 60
    assert 0 < len(h["dropped"]) <= round(dropout * 16) * 4 + 4
    assert all("masked input" in d["reason"] for d in h["dropped"])


def test_secagg_below_the_threshold_is_a_named_error_and_no_model(rt):
    from cipherray.protocols.secagg import TooFewSurvivors

    with pytest.raises((TooFewSurvivors, cr.PartyError), match="threshold|TooFewSurvivors"):
        run(rt, rounds=1, secagg=SecAgg(dropout=0.9))


def test_flower_style_clients_with_faults_are_dropped_and_named(rt):
    parts = partition.iid(len(Y), 60, seed=0)
    faults = {3: "raise", 17: "nan", 30: "shape", 41: "inf"}

    def client_fn(cid):
        p = parts[cid]
        if cid in faults:
            return _BadClient(X[p], Y[p], faults[cid])
        return FlowerStyleClient(X[p], Y[p])

    for secagg in (None, SecAgg()):
        r = run(
            rt, rounds=2, model=None, client_data=None, client_fn=client_fn, secagg=secagg,
            initial_parameters=[np.zeros((64, 10)), np.zeros(10)], evaluate_fn=central,
        )  # fmt: skip
        for h in r.history:
            reasons = {d["cid"]: d["reason"] for d in h["dropped"]}
            assert set(reasons) == set(faults) and h["included"] == 56
            assert "disk full" in reasons[3] and "non-finite" in reasons[17]
            assert "shape" in reasons[30]
        assert r.history[-1]["central_accuracy"] > 0.5


def test_silos_with_the_same_strategies_and_secagg(rt):
    silos = [rt.party(n) for n in ("h1", "h2", "h3")]
    data = functools.partial(chunk_data, n_clients=3)
    for secagg in (None, SecAgg()):
        r = run(rt, rounds=3, clients=silos, client_data=data, secagg=secagg,
                strategy=FedAdam(eta=0.05), evaluate_fn=central, seed=2)  # fmt: skip
        assert all(h["included"] == 3 for h in r.history)
        assert r.history[-1]["central_accuracy"] > 0.5
    assert r.secagg["complete"] and r.secagg["clients"] == 3


def test_dp_central_accountant_matches_dp_accounting(rt):
    z, rounds, delta = 1.1, 3, 1e-5
    privacy = DP(mode="central", clip=0.5, noise_multiplier=z, delta=delta)
    r = run(
        rt,
        rounds=rounds,
        privacy=privacy,
        strategy=FedAvg(sampler=__import__("cipherray").workloads.hfl.ClientSampler(fraction=0.5)),
    )
    q = 30 / 60
    acct = dp_accounting.rdp.RdpAccountant()
    acct.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), rounds)
    assert r.privacy["epsilon"] == pytest.approx(acct.get_epsilon(delta), rel=1e-9)
    assert r.privacy["sampling_rate"] == q and r.privacy["noise_multiplier"] == z
    assert r.history[-1]["epsilon"] == pytest.approx(r.privacy["epsilon"])
    assert all(h["clients"] == 30 for h in r.history)


def test_dp_target_epsilon_refuses_or_stops_before_exceeding(rt):
    def eps(rounds):
        acct = dp_accounting.rdp.RdpAccountant()
        acct.compose(dp_accounting.GaussianDpEvent(0.8), rounds)
        return acct.get_epsilon(1e-5)

    budget = (eps(2) + eps(3)) / 2  # room for two rounds, not three
    with pytest.raises(PrivacyBudgetExceeded, match="exceeded"):
        run(rt, rounds=3, privacy=DP(noise_multiplier=0.8, delta=1e-5, target_epsilon=budget))
    r = run(rt, rounds=3, privacy=DP(noise_multiplier=0.8, delta=1e-5, target_epsilon=budget,
                                     on_budget="stop"))  # fmt: skip
    assert len(r.history) == 2 and "round 3" in r.stopped
    assert r.privacy["epsilon"] <= budget


def test_dp_calibrates_the_noise_for_a_target_epsilon(rt):
    r = run(rt, rounds=2, privacy=DP(target_epsilon=3.0, delta=1e-5, rounds=2))
    assert r.privacy["epsilon"] <= 3.0 and r.privacy["epsilon"] > 2.5


def test_distributed_and_local_dp(rt):
    r = run(rt, rounds=2, secagg=SecAgg(), privacy=DP(mode="distributed", noise_multiplier=1.0),
            evaluate_fn=central)  # fmt: skip
    assert r.privacy["mode"] == "distributed" and r.privacy["epsilon"] > 0
    assert np.isfinite(params_of(rt, r)).all()
    r = run(rt, rounds=2, privacy=DP(mode="local", noise_multiplier=1.0))
    assert r.privacy["mode"] == "local" and r.privacy["sampling_rate"] == 1.0
    with pytest.raises(ValueError, match="distributed DP needs secure aggregation"):
        run(rt, rounds=1, privacy=DP(mode="distributed", noise_multiplier=1.0))


def test_adaptive_clipping_moves_the_clip(rt):
    privacy = DP(clip=5.0, noise_multiplier=1.0, adaptive=True, target_quantile=0.5)
    r = run(rt, rounds=3, privacy=privacy)
    assert privacy.clip < 5.0  # updates are far smaller than 5: the clip shrinks
    assert r.history[0]["clip"] == 5.0


def test_bad_arguments(rt):
    with pytest.raises(ValueError, match="exactly one"):
        train(rt, rt.party("server"), rt.population("phones"), 1, model=MODEL)
    with pytest.raises(ValueError, match="population"):
        train(rt, rt.party("server"), "phones", 1, model=MODEL, client_data=chunk_data)


def test_device_auto_falls_back_to_numpy_and_gpu_says_why():
    from cipherray.workloads.hfl import chunk

    try:
        import cupy

        has_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        has_gpu = False
    if has_gpu:
        pytest.skip("a GPU is visible here: the GPU path runs in bench/hfl_device_check.py")
    assert chunk.array_module("auto") is np and chunk.array_module("cpu") is np
    with pytest.raises(RuntimeError, match="device='gpu'"):
        chunk.array_module("gpu")
    with pytest.raises(ValueError, match="cpu, gpu or auto"):
        chunk.array_module("tpu")


def test_poisson_sampling_is_accounted_at_its_rate(rt):
    from cipherray.workloads.hfl import ClientSampler

    privacy = DP(noise_multiplier=1.0, delta=1e-5)
    r = run(rt, rounds=3, privacy=privacy,
            strategy=FedAvg(sampler=ClientSampler(poisson_rate=0.2, seed=4)))  # fmt: skip
    acct = dp_accounting.rdp.RdpAccountant()
    acct.compose(dp_accounting.PoissonSampledDpEvent(0.2, dp_accounting.GaussianDpEvent(1.0)), 3)
    assert r.privacy["sampling_rate"] == 0.2
    assert r.privacy["epsilon"] == pytest.approx(acct.get_epsilon(1e-5), rel=1e-9)


def test_distributed_dp_records_a_round_with_less_noise_than_planned(rt):
    """The SecAgg+ dropout is planned for (full noise); when more clients drop than
    planned, the round's weaker noise is accounted as released (never refused after
    the fact) and flagged, which makes `train` stop."""
    privacy = DP(mode="distributed", noise_multiplier=1.0, delta=1e-5, target_epsilon=1e9)
    r = run(rt, rounds=1, secagg=SecAgg(dropout=0.1), privacy=privacy)
    assert r.history[0]["noise_multiplier"] == pytest.approx(1.0)
    assert privacy.planned_dropout == pytest.approx(0.19)
    eps_full = r.privacy["epsilon"]

    from cipherray.workloads.hfl import ClientSampler

    tight = DP(mode="distributed", noise_multiplier=1.0, delta=1e-5, target_epsilon=eps_full)
    tight.plan(ClientSampler(), 100, 0.0)
    tight.before_round(1, 100, 100)
    out = tight.after_round(included=50)  # half the planned clients added noise
    assert out["noise_multiplier"] == pytest.approx(2**-0.5)
    assert out["exceeded_target"] and out["epsilon"] > eps_full
    assert tight.report(100)["epsilon"] == pytest.approx(out["epsilon"])


def test_populations_of_several_organisations_train_as_one_federation():
    """Two populations (as two organisations host them, cross-silo): their clients are
    numbered one after the other (a: 0..29, b: 30..59), every client trains, and SecAgg+
    runs over one graph of all 60."""
    with cr.init(
        ["server"], backend="inline", driver_as="server",
        populations={"a": {"clients": 30, "workers": 2}, "b": {"clients": 30, "workers": 1}},
    ) as rt:  # fmt: skip
        pops = [rt.population("a"), rt.population("b")]
        places, is_population = places_of(pops, 16)
        assert is_population and [p.party.name for p in places] == ["a", "a", "b", "b"]
        assert np.array_equal(np.sort(np.concatenate([p.cids for p in places])), np.arange(60))
        assert set(places[2].cids) | set(places[3].cids) == set(range(30, 60))
        with pytest.raises(ValueError, match="not both"):
            places_of([pops[0], rt.party("server")], 16)
        plain = run(rt, rounds=1, clients=pops, seed=5, strategy=FedAvg(evaluate_every=0))
        secure = run(rt, rounds=1, clients=pops, seed=5, secagg=SecAgg(),
                     strategy=FedAvg(evaluate_every=0))  # fmt: skip
        assert plain.history[0]["included"] == secure.history[0]["included"] == 60
        np.testing.assert_allclose(params_of(rt, plain), params_of(rt, secure), atol=1e-5)
        assert secure.secagg["clients"] == 60
