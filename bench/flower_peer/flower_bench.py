"""Flower peer of the horizontal-FL benchmark: seconds per FedAvg round in Flower 1.42.

    ~/.cache/cipherray/flower-venv/bin/python bench/flower_peer/flower_bench.py \
        --clients 1000 --rounds 3 [--actors 1 2] [--secagg] --out FILE.json

Runs inside its own venv (``setup.sh``: flwr[simulation]==1.42.0, which pins Ray 2.55)
and never imports cipherray. The workload is the anchor of the issue "Horizontal
federated learning at scale": softmax regression (W (64, 10), b (10,), zeros init) on
scikit-learn's digits (X / 16), replicated so that each of 10^3 clients holds 100 rows
(10^4 clients: 20 rows); every client trains in every round (fraction_fit=1.0, min
clients = N), one local epoch of minibatch SGD (batch 32, lr 0.1), NumPyClient returning
(params, num_rows, {}); FedAvg, no evaluation (fraction_evaluate=0). See flower_task.py.

It runs on Flower's Simulation Engine with its Ray backend (``flwr.simulation.
run_simulation``: a ``ServerApp`` whose ``main`` drives ``DefaultWorkflow`` over a
``LegacyContext``, and a ``ClientApp``). With ``--secagg`` the fit workflow is
``SecAggPlusWorkflow`` and the ClientApp carries ``secaggplus_mod``.

Round time: a FedAvg subclass stamps ``time.perf_counter()`` when the workflow calls
``configure_fit`` (round start) and when ``aggregate_fit`` returns (round end), in the
server thread of this process. ``seconds_per_round`` is the median over rounds 2..R (the
first round is a warm-up); with one timed round it is that round. For each value of
``--actors`` (1 or 2 Ray actors on the machine: client_resources num_cpus = cores /
actors) a fresh simulation runs; the best (lowest median) is reported at top level and
every try is kept under ``tries``. Accuracy is of the final global model on all digits.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # no network calls from Flower

import flwr  # noqa: E402
import numpy as np  # noqa: E402
import ray  # noqa: E402
from flwr.client import ClientApp  # noqa: E402
from flwr.client.mod import secaggplus_mod  # noqa: E402
from flwr.common import (  # noqa: E402
    Context,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig  # noqa: E402
from flwr.server.client_proxy import ClientProxy  # noqa: E402
from flwr.server.strategy import FedAvg  # noqa: E402
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flower_task import ClientFactory, accuracy, zeros_params  # noqa: E402

# SecAgg+ parameters. num_shares / reconstruction_threshold have no defaults in
# SecAggPlusWorkflow; 3 / 2 are the values of Flower's own secure-aggregation example.
# The quantisation parameters are the workflow's defaults.
SECAGG = {
    "num_shares": 3,
    "reconstruction_threshold": 2,
    "max_weight": 1000.0,
    "clipping_range": 8.0,
    "quantization_range": 2**22,
    "modulus_range": 2**32,
    "timeout": None,
}


class TimedFedAvg(FedAvg):
    """FedAvg that stamps each round's start (configure_fit) and end (aggregate_fit)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start: dict[int, float] = {}
        self.end: dict[int, float] = {}
        self.results: dict[int, int] = {}
        self.failures: dict[int, int] = {}
        self.final: Parameters | None = None

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: Any
    ) -> list[tuple[ClientProxy, Any]]:
        self.start[server_round] = time.perf_counter()
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[Any],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        out = super().aggregate_fit(server_round, results, failures)
        self.end[server_round] = time.perf_counter()
        self.results[server_round] = len(results)
        self.failures[server_round] = len(failures)
        if out[0] is not None:
            self.final = out[0]
        return out

    def round_seconds(self) -> list[float]:
        return [self.end[r] - self.start[r] for r in sorted(self.end)]


def make_server_app(strategy: TimedFedAvg, rounds: int, secagg: bool) -> ServerApp:
    """ServerApp whose main runs DefaultWorkflow (SecAgg+ fit workflow if secagg)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy
        )
        fit = SecAggPlusWorkflow(**SECAGG) if secagg else None
        DefaultWorkflow(fit_workflow=fit)(grid, legacy)

    return app


def run_once(clients: int, rows: int, rounds: int, actors: int, secagg: bool) -> dict:
    """One fresh simulation (own Ray instance) with ``actors`` client actors."""
    cores = os.cpu_count() or 1
    strategy = TimedFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=clients,
        min_evaluate_clients=0,
        min_available_clients=clients,
        initial_parameters=ndarrays_to_parameters(zeros_params()),
    )
    client_app = ClientApp(client_fn=ClientFactory(rows), mods=[secaggplus_mod] if secagg else None)
    backend_config = {
        "client_resources": {"num_cpus": cores / actors, "num_gpus": 0.0},
        "init_args": {"num_cpus": cores, "log_to_driver": False},
    }
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    run_simulation(
        server_app=make_server_app(strategy, rounds, secagg),
        client_app=client_app,
        num_supernodes=clients,
        backend_config=backend_config,
    )
    wall = time.perf_counter() - t0
    if ray.is_initialized():
        ray.shutdown()
    secs = strategy.round_seconds()
    if len(secs) != rounds or strategy.final is None:
        raise RuntimeError(f"only {len(secs)} of {rounds} rounds completed")
    timed = secs[1:] if len(secs) > 1 else secs
    W, b = parameters_to_ndarrays(strategy.final)
    return {
        "actors": actors,
        "client_num_cpus": cores / actors,
        "seconds_per_round": statistics.median(timed),
        "all_round_seconds": [round(s, 4) for s in secs],
        "results_per_round": [strategy.results[r] for r in sorted(strategy.results)],
        "failures_per_round": [strategy.failures[r] for r in sorted(strategy.failures)],
        "simulation_wall_s": round(wall, 2),
        # 1/5/15-minute load averages: other work on the machine shows up here
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "accuracy": accuracy(np.asarray(W), np.asarray(b)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=None, help="default 100 (<=1000), else 20")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--secagg", action="store_true", help="SecAggPlusWorkflow + mod")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = args.rows or (100 if args.clients <= 1000 else 20)

    tries: list[dict] = []
    for actors in args.actors:
        res = run_once(args.clients, rows, args.rounds, actors, args.secagg)
        print(json.dumps(res), flush=True)
        tries.append(res)
        write_report(args, rows, tries)  # after every try, so a cut-short run keeps its data


def write_report(args: argparse.Namespace, rows: int, tries: list[dict]) -> None:
    """Write the JSON report: the best try (lowest median round) at top level, all tries."""
    best = min(tries, key=lambda r: r["seconds_per_round"])
    out = {
        "flwr_version": flwr.__version__,
        "ray_version": ray.__version__,
        "mode": "secagg+" if args.secagg else "plaintext",
        "clients": args.clients,
        "rows": rows,
        "rounds": args.rounds,
        "cores": os.cpu_count(),
        "seconds_per_round": best["seconds_per_round"],
        "all_round_seconds": best["all_round_seconds"],
        "actors": best["actors"],
        "actors_tried": [t["actors"] for t in tries],
        "accuracy": best["accuracy"],
        "tries": tries,
    }
    if args.secagg:
        out["secagg"] = dict(SECAGG)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "tries"}), flush=True)


if __name__ == "__main__":
    main()
