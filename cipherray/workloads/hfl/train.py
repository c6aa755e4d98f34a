"""Federated training over the runtime: one loop for populations and silos, plaintext or
SecAgg+ aggregation, with or without differential privacy.

    result = hfl.train(rt, server=rt.party("server"), clients=rt.population("phones"),
                       model=hfl.SoftmaxRegression(64, 10), client_data=build, rounds=20)

`clients` is a population (cross-device: its clients run in chunks on its worker pool)
or a list of ordinary parties (cross-silo: each silo is one client). Clients are either
a built-in model plus `client_data(cids) -> PaddedData` (trained as one batched array
computation per chunk), or Flower-style objects from `client_fn(cid)`.

Round r (each step's number appears in the code):

1. The server's strategy selects the round's clients; with DP the accountant first
   checks that the round fits the budget (else `PrivacyBudgetExceeded`, or the run
   stops when `dp.on_budget == "stop"`).
2. The server sends the global model to every place (one message per population or
   silo).
3. Each place trains its selected clients and forms their update vectors
   (`chunk.fit`); clients whose fit fails are dropped and named.
4. Aggregation. Plaintext: each place sends the sum of its vectors. SecAgg: the five
   steps of `secure.py` between the places and the server; the server learns only the
   total. A place that fails or does not answer within `timeout_s` drops its clients.
5. The server turns the total into the next model (`strategy.aggregate`); with central
   DP it first adds discrete Gaussian noise (`dp.py`), and the accountant records the
   round.
6. Every `strategy.evaluate_every` rounds, federated evaluation on the places' clients
   (example-weighted loss and accuracy sums per place) and `evaluate_fn` at the server.

What the server learns per round: the members, the failures, the aggregate (per place
in plaintext mode, in total under SecAgg), and the evaluation sums. What a client
learns: the global models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cipherray.runtime.errors import PartyError, WireError
from cipherray.workloads.hfl import chunk, dp, randomness, secure, updates
from cipherray.workloads.hfl.places import Place, places_of
from cipherray.workloads.hfl.strategy import FedAvg, NotEnoughClientsError, WeightedSum

PROTOCOL = {
    "model": "the global model, from the server to the clients' places",
    "fit": "a place's report: its clients that trained, their failures, and (plaintext) "
    "the sum of their update vectors",
    "evaluate": "a place's example-weighted loss and accuracy sums",
    **{f"secagg_{k}": v for k, v in secure.PROTOCOL.items()},
}


@dataclass(frozen=True)
class SecAgg:
    """Secure aggregation settings: ring bits, the simulated dropout per stage, the
    corrupt fraction the graph is sized for, and the public weight cap and coordinate
    range of FedAvg's weighted changes."""

    bits: int = 32
    dropout: float = 0.0
    corruption: float = 0.05
    max_examples: float = 1000.0
    clip_range: float = 1.0

    def __post_init__(self) -> None:
        if self.bits not in (32, 64):
            raise ValueError("SecAgg bits must be 32 or 64")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must lie in [0, 1)")


@dataclass
class TrainResult:
    parameters: Any  # the final global model, a PartyRef at the server
    history: list[dict[str, Any]]
    privacy: dict[str, Any] | None = None
    stopped: str | None = None  # why training stopped before `rounds`, if it did
    secagg: dict[str, Any] | None = None


@dataclass
class _Run:
    rt: Any
    server: Any
    places: list[Place]
    states: list[Any]
    alive: list[bool]
    dead: dict[int, str] = field(default_factory=dict)  # place index -> reason
    reported: dict[int, str] = field(default_factory=dict)  # deaths already in metrics
    timeout_s: float | None = None

    def settle(self, refs: list[Any], indices: list[int], stage: str) -> list[int]:
        """The indices whose refs finished; a place that failed is marked dead. If no
        place is left, the last failure is raised."""
        ok, last = [], None
        for i, ref in zip(indices, refs):
            try:
                self.rt.wait(ref, timeout=self.timeout_s)
                ok.append(i)
            except PartyError as e:
                self.alive[i] = False
                self.dead[i] = f"{self.places[i].name} failed at {stage}: {e.reason}"
                last = e
        if not ok and last is not None:
            raise last
        return ok


def _to_places(run: _Run, ref: Any, tag: str) -> dict[tuple[str, int | None], Any]:
    """`ref` sent to every worker that hosts a live place (one message per worker, so a
    dead worker takes no other worker's copy with it)."""
    out: dict[tuple[str, int | None], Any] = {}
    for i, p in enumerate(run.places):
        key = (p.party.name, p.worker)
        if run.alive[i] and key not in out:
            out[key] = run.rt.send(ref, to=p.party, tag=tag, worker=p.worker)
    return out


def _key(place: Place) -> tuple[str, int | None]:
    return (place.party.name, place.worker)


def _server_fn(run: _Run, fn: Callable, num_returns: int = 1, declare: str | None = None):
    kw: dict[str, Any] = {"num_returns": num_returns}
    if declare:
        kw["declare"] = declare
    return run.server(fn, **kw)


def _rule(secagg: SecAgg | None, privacy: dp.DP | None, clip: float) -> Any:
    if privacy is None:
        return updates.FedAvgUpdate(
            cap=secagg.max_examples if secagg else None,
            clip_range=secagg.clip_range if secagg else 1.0,
        )
    return privacy.rule()


def _quantizer_of(rule: Any, clip: float) -> Callable | None:
    if isinstance(rule, updates.DistributedNoiseUpdate):
        return None
    if isinstance(rule, updates.FedAvgUpdate):
        return rule.quantizer
    return lambda n, bits: rule.quantizer(n, bits, clip)


def _sum_totals(*msgs: dict) -> tuple[np.ndarray | None, int]:
    fits = [chunk.ChunkFit.from_message(m) for m in msgs]
    totals = [f.total for f in fits if f.total is not None and f.cids.size]
    count = sum(int(f.cids.size) for f in fits)
    return (np.sum(totals, axis=0) if totals else None), count


def _members(hosted: list[tuple[str, np.ndarray]], *msgs: dict) -> np.ndarray:
    """SecAgg+'s members: the clients that trained; a place may report only clients it
    hosts (`hosted`: each live place's name and client ids, public), once each."""
    ids = []
    for (name, cids), m in zip(hosted, msgs):
        got = chunk.ChunkFit.from_message(m).cids
        if not np.isin(got, cids).all() or np.unique(got).size != got.size:
            raise WireError(
                name, "hfl/fit", "the fit report names clients this place does not host"
            )
        ids.append(got)
    return np.sort(np.concatenate(ids)) if ids else np.zeros(0, np.int64)


def _failures(*msgs: dict) -> list[tuple[int, str]]:
    return [x for m in msgs for x in chunk.ChunkFit.from_message(m).failed]


def _next_model(
    strategy: FedAvg,
    rnd: int,
    params: list,
    total: np.ndarray | None,
    included: int,
    rule: Any,
    privacy: dp.DP | None,
    expected: float,
    clip: float,
) -> tuple[list, dict]:
    """Step 5 at the server: noise (central DP), mean change, strategy update."""
    info: dict[str, Any] = {"included": included}
    if total is None or included == 0:
        return params, info
    if privacy is not None:
        total, noise_info = privacy.server_noise(total, clip)
        info.update(noise_info)
    mean, extra = rule.mean(total, expected)
    info.update(extra)
    if mean is None:
        return params, info
    shapes = [np.shape(p) for p in params]
    flat = updates.flatten(params)
    new = updates.unflatten(flat + mean, shapes)
    weight = float(extra.get("weight", 1.0)) if isinstance(rule, updates.FedAvgUpdate) else 1.0
    ws = WeightedSum([p * weight for p in new], weight, included)
    return strategy.aggregate(rnd, params, ws), info


def _evaluate_sums(*msgs: dict) -> dict[str, Any]:
    evals = [chunk.ChunkEval.from_message(m) for m in msgs]
    n = sum(e.examples for e in evals)
    failed = [x for e in evals for x in e.failed]
    if n == 0:
        return {"loss": None, "accuracy": None, "eval_failed": failed}
    return {
        "loss": sum(e.loss_sum for e in evals) / n,
        "accuracy": sum(e.accuracy_sum for e in evals) / n,
        "eval_failed": failed,
    }


def _central(evaluate_fn: Callable | None, params: list) -> dict[str, Any]:
    if evaluate_fn is None:
        return {}
    return {f"central_{k}": float(v) for k, v in evaluate_fn(params).items()}


def _round_metrics(
    rnd: int,
    seconds: float,
    selected: int,
    info: dict,
    failed: list,
    dropped: list,
    lost: list,
    evaluation: dict,
    central: dict,
) -> dict[str, Any]:
    """At the server: the round's public metrics."""
    metrics = {
        "round": rnd,
        "clients": selected,
        "included": info.get("included", 0),
        "dropped": [{"cid": c, "reason": r} for c, r in failed + list(dropped) + lost],
        "seconds": seconds,
        **central,
    }
    fed = {k: v for k, v in evaluation.items() if k != "eval_failed"}
    if central:  # loss / accuracy: always the server's evaluation when there is one
        metrics["loss"] = central.get("central_loss")
        metrics["accuracy"] = central.get("central_accuracy")
        metrics.update({f"federated_{k}": v for k, v in fed.items()})
    else:  # else the federated evaluation (None on rounds without one)
        metrics["loss"], metrics["accuracy"] = fed.get("loss"), fed.get("accuracy")
    if evaluation.get("eval_failed"):
        metrics["eval_dropped"] = [{"cid": c, "reason": r} for c, r in evaluation["eval_failed"]]
    for k in ("noise_std", "clip", "clipped_bits"):
        if k in info:
            metrics[k] = info[k]
    return metrics


def train(
    rt: Any,
    server: Any,
    clients: Any,
    rounds: int,
    *,
    model: Any = None,
    client_data: Callable[[np.ndarray], Any] | None = None,
    client_fn: Callable[[Any], Any] | None = None,
    initial_parameters: list | None = None,
    strategy: FedAvg | None = None,
    config: dict | None = None,
    secagg: SecAgg | bool | None = None,
    privacy: dp.DP | None = None,
    evaluate_fn: Callable[[list], dict] | None = None,
    chunk_size: int = 256,
    device: str = "cpu",
    timeout_s: float | None = None,
    seed: randomness.Seed = None,
    progress: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Federated training (see the module docstring); returns the final model (at the
    server) and one metrics dict per round. `device="gpu"` (or "auto") trains the
    built-in model with CuPy in workers that have a GPU."""
    if (client_data is None) == (client_fn is None):
        raise ValueError("give exactly one of client_data= (built-in model) or client_fn=")
    if client_data is not None and model is None:
        raise ValueError("client_data= needs model= (a built-in batched model)")
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    secagg = SecAgg() if secagg is True else (secagg or None)
    if privacy is not None:
        privacy.check(secure=secagg is not None)
    strategy = strategy or FedAvg()
    config = dict(config or {})
    seed = randomness.seed_bytes(seed)
    rt.protocol("hfl", PROTOCOL)

    places, is_population = places_of(clients, chunk_size)
    source = (
        chunk.BatchedClients(model, client_data, device)
        if client_data is not None
        else chunk.ObjectClients(client_fn)
    )
    states = [p.step(chunk.build)(p.cids, source) for p in places]
    run = _Run(rt, server, places, states, [True] * len(places), timeout_s=timeout_s)
    run.settle(states, list(range(len(places))), "building its clients")
    all_ids = np.sort(np.concatenate([p.cids for p in places]))

    if initial_parameters is not None:
        params = server(lambda p: [np.asarray(x, np.float64) for x in p])(initial_parameters)
    elif model is not None:
        params = server(model.init)(randomness.derive(seed, "init"))
    else:
        raise ValueError("client_fn= needs initial_parameters= (or model= for its shapes)")

    if privacy is not None:
        privacy.plan(strategy.sampler, int(all_ids.size), secagg.dropout if secagg else 0.0)
        privacy.dim = int(
            sum(int(np.prod(s)) for s in rt.get(_server_fn(run, _shapes, declare="public")(params)))
        )
    history: list[dict[str, Any]] = []
    stopped = None
    secagg_info: dict[str, Any] | None = None
    for rnd in range(1, rounds + 1):
        t0 = time.perf_counter()
        available = np.concatenate(
            [p.cids for i, p in enumerate(places) if run.alive[i]] or [np.zeros(0, np.int64)]
        )
        if available.size < strategy.min_available:  # 1.
            raise NotEnoughClientsError(int(available.size), strategy.min_available)
        selected = np.asarray(strategy.select_fit(list(available), rnd), dtype=np.int64)
        if privacy is not None:
            stopped = privacy.before_round(rnd, int(selected.size), int(all_ids.size))
            if stopped:
                break
        clip = privacy.clip if privacy is not None else 0.0
        rule = _rule(secagg, privacy, clip)
        if isinstance(rule, updates.DistributedNoiseUpdate):
            rule.check(int(selected.size), clip, secagg.bits)
        expected = privacy.expected_clients(selected.size, all_ids.size) if privacy else 0.0
        fit_config = {**config, **strategy.fit_config(rnd)}
        at = _to_places(run, params, "hfl/model")  # 2.
        live = [i for i in range(len(places)) if run.alive[i]]
        fits = {}
        for i in live:  # 3.
            fits[i], run.states[i] = places[i].step(chunk.fit, num_returns=2)(
                run.states[i], at[_key(places[i])], selected, fit_config,
                chunk.seed_for(seed, rnd, i), rule, clip, secagg is not None,
            )  # fmt: skip
        live = run.settle([fits[i] for i in live], live, f"round {rnd} fit")
        lost = [
            (int(c), run.dead[i])
            for i, p in enumerate(places)
            if i in run.dead and i not in run.reported
            for c in np.intersect1d(p.cids, selected)
        ]
        run.reported.update(run.dead)
        fit_msgs = [rt.send(fits[i], to=server, tag="hfl/fit") for i in live]
        if secagg is None:  # 4. plaintext
            total, included = _server_fn(run, _sum_totals, 2)(*fit_msgs)
            secure_dropped: Any = []
        else:  # 4. SecAgg+
            total, included, secure_dropped, secagg_info = _secure(
                run, rnd, live, fit_msgs, rule, clip, secagg, is_population, params
            )
        failed = _server_fn(run, _failures)(*fit_msgs)
        params, info = _server_fn(run, _next_model, 2)(  # 5.
            strategy, rnd, params, total, included, rule, privacy, expected, clip
        )
        evaluation: Any = {}
        ev_sel = np.asarray(strategy.select_evaluate(list(available), rnd), np.int64)
        if ev_sel.size:  # 6.
            evaluation = _evaluate(run, params, ev_sel, rnd)
        central = _server_fn(run, _central)(evaluate_fn, params) if evaluate_fn else {}
        rt.wait(params)
        seconds = time.perf_counter() - t0
        metrics = rt.get(
            _server_fn(run, _round_metrics, declare="public")(
                rnd, seconds, int(selected.size), info, failed, secure_dropped, lost,
                evaluation, central,
            )
        )  # fmt: skip
        if privacy is not None:
            metrics.update(privacy.after_round(int(metrics["included"])))
            if "clipped_bits" in metrics:
                privacy.adapt_clip(float(metrics["clipped_bits"]), expected)
        history.append(metrics)
        if progress is not None:
            progress(metrics)
        if privacy is not None and metrics.get("exceeded_target"):
            stopped = (
                f"stopped after round {rnd}: fewer clients than planned added noise, and the "
                f"round took epsilon to {metrics['epsilon']:.4g}, past {privacy.target_epsilon}"
            )
            break
    privacy_report = privacy.report(int(all_ids.size)) if privacy is not None else None
    return TrainResult(params, history, privacy_report, stopped, secagg_info)


def _shapes(params: list) -> list[tuple[int, ...]]:
    return [tuple(np.shape(p)) for p in params]


def _evaluate(run: _Run, params: Any, selected: np.ndarray, rnd: int) -> Any:
    """Step 6: federated evaluation on the places' selected clients."""
    rt, places = run.rt, run.places
    at = _to_places(run, params, "hfl/model")
    live = [i for i in range(len(places)) if run.alive[i]]
    evals = {}
    for i in live:
        evals[i], run.states[i] = places[i].step(chunk.evaluate, num_returns=2)(
            run.states[i], at[_key(places[i])], selected, {"round": rnd}
        )
    live = run.settle([evals[i] for i in live], live, f"round {rnd} evaluate")
    msgs = [rt.send(evals[i], to=run.server, tag="hfl/evaluate") for i in live]
    return _server_fn(run, _evaluate_sums)(*msgs)


def _secure(
    run: _Run,
    rnd: int,
    live: list[int],
    fit_msgs: list,
    rule: Any,
    clip: float,
    settings: SecAgg,
    is_population: bool,
    params: Any,
) -> tuple[Any, Any, Any, dict]:
    """Step 4 under SecAgg+: the five steps of `secure.py`; returns refs at the server
    (decoded total, included count, dropped list) and the graph parameters."""
    rt, server = run.rt, run.server
    me = server.name
    rules = secure.PlanRules(settings.bits, settings.dropout, not is_population,
                             settings.corruption, _quantizer_of(rule, clip))  # fmt: skip
    hosted = [(run.places[i].name, run.places[i].cids) for i in live]
    members = _server_fn(run, _members)(hosted, *fit_msgs)
    length = _server_fn(run, _vector_length)(params, rule)
    plan = _server_fn(run, secure.plan, declare="public")(members, length, rules)
    plan_at = _to_places(run, plan, "hfl/secagg_plan")

    def to_place(ref: Any, i: int, tag: str) -> Any:  # to the worker that hosts place i
        return rt.send(ref, to=run.places[i].party, tag=tag, worker=run.places[i].worker)

    def at_place(i: int, fn: Callable, *args: Any) -> Any:
        out, st = run.places[i].step(fn, num_returns=2)(run.states[i], *args)
        run.states[i] = st
        return out

    adverts = {
        i: at_place(i, secure.advertise, plan_at[_key(run.places[i])], rules, me) for i in live
    }
    live = run.settle([adverts[i] for i in live], live, f"round {rnd} secagg keys")
    advertised = list(live)  # the server's cohorts, in this order
    names = [run.places[i].name for i in advertised]
    sent = [rt.send(adverts[i], to=server, tag="hfl/secagg_keys") for i in live]
    out = _server_fn(run, secure.keys, 1 + len(live))(plan, rules, me, names, *sent)
    srv, nks = out[0], dict(zip(live, out[1:]))
    sealed = {
        i: at_place(i, secure.share, to_place(nks[i], i, "hfl/secagg_keys"), me) for i in live
    }
    live = run.settle([sealed[i] for i in live], live, f"round {rnd} secagg shares")
    sent = [rt.send(sealed[i], to=server, tag="hfl/secagg_shares") for i in live]
    positions = [advertised.index(i) for i in live]
    out = _server_fn(run, secure.route, 1 + len(live))(srv, positions, *sent)
    srv, inboxes = out[0], dict(zip(live, out[1:]))
    masked = {
        i: at_place(i, secure.masked_input, to_place(inboxes[i], i, "hfl/secagg_shares"), rule, me)
        for i in live
    }
    live = run.settle([masked[i] for i in live], live, f"round {rnd} secagg masked input")
    sent = [rt.send(masked[i], to=server, tag="hfl/secagg_masked") for i in live]
    positions = [advertised.index(i) for i in live]
    out = _server_fn(run, secure.requests, 1 + len(live))(srv, positions, *sent)
    srv, reqs = out[0], dict(zip(live, out[1:]))
    shares = {
        i: at_place(i, secure.unmask, to_place(reqs[i], i, "hfl/secagg_unmask"), me) for i in live
    }
    live = run.settle([shares[i] for i in live], live, f"round {rnd} secagg unmasking")
    sent = [rt.send(shares[i], to=server, tag="hfl/secagg_unmask") for i in live]
    positions = [advertised.index(i) for i in live]
    result = _server_fn(run, secure.aggregate)(srv, rule, positions, *sent)
    total, included, dropped = _server_fn(run, _unpack_secure, 3)(result)
    graph = rt.get(_server_fn(run, _graph_info, declare="public")(srv))
    return total, included, dropped, graph


def _vector_length(params: list, rule: Any) -> int:
    return int(updates.flatten(params).size + rule.extra)


def _unpack_secure(result: secure.SecureTotal) -> tuple:
    return result.total, int(result.included.size), result.dropped


def _graph_info(srv: secure.ServerRound) -> dict[str, Any]:
    plan = srv.plan
    p = plan.params
    return {
        "clients": p.n_clients,
        "degree": p.degree,
        "threshold": p.threshold,
        "complete": p.complete,
        "corruption": p.corruption,
        "dropout_per_stage": plan.dropout,
        "security_failure": p.security_failure,
        "correctness_failure": p.correctness_failure,
        "bits": plan.config.bits,
    }
