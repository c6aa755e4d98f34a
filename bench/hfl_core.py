"""Horizontal FL core (pure NumPy, no runtime): seconds per FedAvg round, one process.

    python bench/hfl_core.py [--rounds 5] [--out bench/results]

The anchor workload of the issue "Horizontal federated learning at scale": softmax
regression on scikit-learn's digits (features / 16), the training split replicated so
that 10^3 clients hold 100 rows each, or 10^4 clients 20 rows each; every client trains
every round, 1 local epoch of minibatch SGD (batch 32, lr 0.1). Per population size:

- vectorised: `run_rounds_batched` (clients in chunks as batched arrays; --chunk, else
  `auto_chunk_size`);
- plain numpy loop: a minimal hand-written per-client SGD loop and weighted average
  (what "a plain numpy FedAvg loop" means in the issue);
- reference: `fit_per_client` (the library's per-client reference math) + FedAvg;
- per-object: `run_rounds` over `ModelClient` objects (the NumPyClient path).

Seconds per round are the median over --rounds rounds after one warm-up round. The
accuracy is of the vectorised path's global model on the held-out 25% of digits after
the timed rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this checkout's cipherray
import common  # noqa: E402

from cipherray.workloads.hfl import (  # noqa: E402
    FedAvg,
    ModelClient,
    SoftmaxRegression,
    WeightedSum,
    evaluate_batched,
    fit_per_client,
    pad,
    run_rounds,
    run_rounds_batched,
)

LR, BATCH, EPOCHS = 0.1, 32, 1


def population(X, y, n_clients: int, rows: int):
    """The training rows replicated and shuffled, cut into n_clients x rows."""
    order = np.random.default_rng(0).permutation(n_clients * rows) % len(y)  # public data
    Xr, yr = X[order].reshape(n_clients, rows, -1), y[order].reshape(n_clients, rows)
    return list(Xr), list(yr)


def plain_numpy_round(W, b, Xs, ys):
    """One FedAvg round written the plain way: per-client SGD, then a weighted mean."""
    sum_W, sum_b, total = np.zeros_like(W), np.zeros_like(b), 0
    for X, y in zip(Xs, ys):
        w, c = W.copy(), b.copy()
        for lo in range(0, len(y), BATCH):
            xb, yb = X[lo : lo + BATCH], y[lo : lo + BATCH]
            z = xb @ w + c
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1.0
            p /= len(yb)
            w -= LR * xb.T @ p
            c -= LR * p.sum(axis=0)
        sum_W += len(y) * w
        sum_b += len(y) * c
        total += len(y)
    return sum_W / total, sum_b / total


def timed(fn, rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=None, help="clients per batched job (auto)")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--xp", default="numpy", choices=["numpy", "cupy"])
    ap.add_argument("--tag", default="", help="suffix of the result files' name")
    args = ap.parse_args()
    xp = np
    if args.xp == "cupy":
        import cupy as xp  # noqa: F811 - optional GPU array module

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    model = SoftmaxRegression(64, 10)
    test = pad([Xte], [yte])
    W, b = np.zeros((64, 10)), np.zeros(10)
    rows_out = []
    for n_clients, rows in [(1_000, 100), (10_000, 20)]:
        Xs, ys = population(Xtr, ytr, n_clients, rows)
        data = pad(Xs, ys, xp)
        strategy = FedAvg(evaluate_every=0)
        state = {"params": model.init(xp=xp)}

        def vectorised(data=data, strategy=strategy, state=state):
            state["params"], h = run_rounds_batched(
                strategy, model, data, 1, initial_parameters=state["params"],
                epochs=EPOCHS, lr=LR, batch_size=BATCH, chunk_size=args.chunk, seed=0, xp=xp,
            )  # fmt: skip
            if xp is not np:
                xp.cuda.Device().synchronize()

        t_vec = timed(vectorised, args.rounds)
        t_plain = timed(lambda Xs=Xs, ys=ys: plain_numpy_round(W, b, Xs, ys), args.rounds)

        def reference(Xs=Xs, ys=ys):
            out = fit_per_client(model, [W, b], Xs, ys, epochs=EPOCHS, lr=LR, batch_size=BATCH)
            FedAvg().aggregate(1, [W, b], WeightedSum.of_results(out, [len(v) for v in ys]))

        t_ref = timed(reference, 1)
        clients = [ModelClient(model, Xc, yc, lr=LR, batch_size=BATCH) for Xc, yc in zip(Xs, ys)]
        t0 = time.perf_counter()
        run_rounds(FedAvg(evaluate_every=0), clients.__getitem__, range(n_clients), 1, [W, b])
        t_obj = time.perf_counter() - t0

        params = [p.get() if hasattr(p, "get") else p for p in state["params"]]
        _, acc, _ = evaluate_batched(model, params, test)
        rows_out.append(
            {
                "clients": n_clients,
                "rows_per_client": rows,
                "array_module": args.xp,
                "vectorised_s": round(t_vec, 4),
                "plain_numpy_loop_s": round(t_plain, 4),
                "reference_per_client_s": round(t_ref, 4),
                "per_object_clients_s": round(t_obj, 4),
                "vectorised_vs_plain": round(t_vec / t_plain, 3),
                "accuracy_after": round(float(acc[0]), 4),
                "rounds_trained": args.rounds + 1,
            }
        )
        print(rows_out[-1], flush=True)
    name = f"hfl_core-{args.tag}" if args.tag else "hfl_core"
    common.write(
        args.out,
        name,
        {"machine": common.machine(), "args": vars(args), "rows": rows_out},
        rows_out,
        list(rows_out[0]),
    )


if __name__ == "__main__":
    main()
