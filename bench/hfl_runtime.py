"""FedAvg rounds through the runtime: a server party and a population of virtual
clients on a 2-worker pool (`cipherray.workloads.hfl.population.run_rounds`).

    python bench/hfl_runtime.py [--rounds 5] [--out bench/results]

The anchor workload of the issue "Horizontal federated learning at scale" (softmax
regression on scikit-learn's digits / 16, the training rows replicated so that 10^3
clients hold 100 rows or 10^4 clients 20 rows; every client every round; 1 local epoch,
batch 32, lr 0.1), here with each chunk's data built once at its worker, the model sent
to the population and one example-weighted sum per chunk sent back to the server
(plaintext aggregation). Seconds per round: the median over --rounds rounds after one
warm-up round; the plain numpy per-client loop of bench/hfl_core.py in the same run.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from hfl_core import plain_numpy_round  # noqa: E402

import cipherray as cr  # noqa: E402
from cipherray.workloads.hfl import models  # noqa: E402
from cipherray.workloads.hfl import population as hfl_population  # noqa: E402

SIZES = {1000: 100, 10000: 20}  # clients -> rows per client


def replicated(n_clients: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    order = np.arange(n_clients * rows) % len(y)  # public data, in a fixed order
    return (x[order] / 16.0).reshape(n_clients, rows, -1), y[order].reshape(n_clients, rows)


def chunk_data(cids: np.ndarray, rows: int, n_clients: int) -> models.PaddedData:
    """A chunk's clients (built at the population worker that hosts them)."""
    x, y = replicated(n_clients, rows)
    return models.PaddedData(x[cids], y[cids], np.full(len(cids), rows, dtype=np.int64))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--out", default="bench/out")
    args = ap.parse_args()
    model = models.SoftmaxRegression(64, 10)
    config = {"lr": 0.1, "batch_size": 32, "local_epochs": 1}
    rows_out = []
    for n, rows in SIZES.items():
        with cr.init(
            ["server"], driver_as="server", populations={"phones": {"clients": n, "workers": 2}}
        ) as rt:
            t = time.perf_counter()
            build = functools.partial(chunk_data, rows=rows, n_clients=n)
            _, secs = hfl_population.run_rounds(
                rt, rt.party("server"), rt.population("phones"), model, build,
                args.rounds + 1, chunk_size=args.chunk, config=config, seed=0,
            )  # fmt: skip
            total = time.perf_counter() - t
            ours = statistics.median(secs[1:])
            msgs = int(rt.ledger.total_messages)
            nbytes = int(rt.ledger.total_bytes)
        x, y = replicated(n, rows)
        W, b = np.zeros((64, 10)), np.zeros(10)
        plain = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            W, b = plain_numpy_round(W, b, list(x), list(y))
            plain.append(time.perf_counter() - t0)
        row = {
            "clients": n,
            "rows_per_client": rows,
            "chunk": args.chunk,
            "runtime_round_s": ours,
            "first_round_s": secs[0],
            "plain_numpy_loop_s": statistics.median(plain),
            "ratio_to_plain": ours / statistics.median(plain),
            "messages": msgs,
            "bytes": nbytes,
            "total_s_incl_data": total,
        }
        print(row)
        rows_out.append(row)
    table = [
        {
            "clients": r["clients"],
            "rows per client": r["rows_per_client"],
            "cipherray round (runtime)": f"{r['runtime_round_s']:.3f} s",
            "plain numpy loop": f"{r['plain_numpy_loop_s']:.3f} s",
            "ratio": f"{r['ratio_to_plain']:.2f}x",
            "first round": f"{r['first_round_s']:.3f} s",
        }
        for r in rows_out
    ]
    data = {"machine": common.machine(), "command": "python bench/hfl_runtime.py", "rows": rows_out}
    common.write(args.out, "hfl_runtime", data, table, list(table[0]))


if __name__ == "__main__":
    main()
