"""SecAgg+ round benchmark (issue: horizontal federated learning at scale), one run.

    python bench/secagg.py [--clients 1000 10000] [--dropout 0.1] [--out bench/results]

For each number of clients n: softmax regression on scikit-learn's digits (d = 64 * 10
+ 10 = 650 parameters). Every client holds 32 examples drawn from the data set and
computes its update with 5 full-batch gradient steps from the global model.

* plaintext round: the clients' local training plus the server's float sum of the
  updates (all clients one after another in this process);
* SecAgg+ round: ``simulate_round`` on the same updates (clipped to 1.0 per
  coordinate, quantised into Z_2^32), ``--dropout`` of the clients vanishing before
  their masked input and again before unmasking; graph degree and threshold from
  ``choose_parameters(n, 1 - (1 - dropout)^2)`` (sigma = 40, eta = 30, 5% corrupt).

Reported: the serial total (every client's and the server's work in one process,
including local training), the median and slowest client's protocol time and the
server's time
(a deployment runs the clients in parallel, so the round's compute critical path is
about training + slowest client + server), the bytes per stage, and the error of the
dequantised sum against the float sum of the included clients' clipped updates.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from cipherray.protocols.secagg import Quantizer, choose_parameters, simulate_round  # noqa: E402
from cipherray.protocols.secagg.quantize import clip  # noqa: E402

EXAMPLES_PER_CLIENT = 32
LOCAL_STEPS = 5
LEARNING_RATE = 0.5
CLIP = 1.0


def client_shards(n_clients: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Synthetic partition (benchmark data, not secret): 32 digits per client."""
    digits = load_digits()
    x = digits.data / 16.0
    y = digits.target
    pick = np.random.default_rng(0).integers(0, len(y), size=(n_clients, EXAMPLES_PER_CLIENT))
    return [(x[p], y[p]) for p in pick]


def local_update(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The change of (W, b) after LOCAL_STEPS gradient steps of softmax regression."""
    w0, b0 = w, b
    onehot = np.eye(10)[y]
    for _ in range(LOCAL_STEPS):
        logits = x @ w + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(y)
        w = w - LEARNING_RATE * (x.T @ g)
        b = b - LEARNING_RATE * g.sum(axis=0)
    return np.concatenate([(w - w0).ravel(), b - b0])


def run(n: int, dropout: float) -> dict:
    shards = client_shards(n)
    w, b = np.zeros((64, 10)), np.zeros(10)

    start = time.perf_counter()
    updates = np.stack([local_update(w, b, x, y) for x, y in shards])
    training = time.perf_counter() - start
    start = time.perf_counter()
    plain_sum = updates.sum(axis=0)
    plain_server = time.perf_counter() - start
    plaintext_round = training + plain_server

    total_dropout = 1 - (1 - dropout) ** 2
    params = choose_parameters(n, total_dropout)
    q = Quantizer.for_clients(n, clip_range=CLIP)
    start = time.perf_counter()
    r = simulate_round(
        updates,
        params,
        quantizer=q,
        dropout_before_input=dropout,
        dropout_before_unmask=dropout,
    )
    secagg = time.perf_counter() - start
    exact = clip(updates[r.included], CLIP).sum(axis=0)
    max_error, variance = q.error_bound(len(r.included))
    assert plain_sum.shape == exact.shape
    server = sum(r.server_seconds.values())
    return {
        "clients": n,
        "d": updates.shape[1],
        "dropout_per_stage": dropout,
        "degree_k": params.degree,
        "threshold_t": params.threshold,
        "security_failure": params.security_failure,
        "correctness_failure": params.correctness_failure,
        "included": int(len(r.included)),
        "plaintext_round_s": round(plaintext_round, 3),
        "secagg_protocol_serial_s": round(secagg, 3),
        "secure_round_serial_s": round(training + secagg, 3),
        "ratio_serial": round((training + secagg) / plaintext_round, 2),
        "client_seconds_by_stage": {k: round(v, 3) for k, v in r.client_seconds.items()},
        "slowest_client_s": round(r.client_max_seconds, 4),
        "median_client_s": round(r.client_median_seconds, 4),
        "server_seconds_by_stage": {k: round(v, 3) for k, v in r.server_seconds.items()},
        "server_s": round(server, 3),
        "critical_path_s": round(training / n + r.client_max_seconds + server, 3),
        "bytes_up": r.bytes_up,
        "bytes_down": r.bytes_down,
        "bytes_up_per_client": round(sum(r.bytes_up.values()) / n),
        "max_abs_error": float(np.abs(r.value - exact).max()),
        "stated_max_error": max_error,
        "stated_error_sd": float(np.sqrt(variance)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, nargs="+", default=[1000, 10_000])
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    run(20, args.dropout)  # warm-up: loads the X25519 kernel and the data set
    rows = [run(n, args.dropout) for n in args.clients]
    columns = [
        "clients",
        "degree_k",
        "threshold_t",
        "included",
        "plaintext_round_s",
        "secure_round_serial_s",
        "ratio_serial",
        "median_client_s",
        "slowest_client_s",
        "server_s",
        "critical_path_s",
        "bytes_up_per_client",
        "max_abs_error",
        "stated_max_error",
    ]
    common.write(args.out, "secagg", {"machine": common.machine(), "rows": rows}, rows, columns)


if __name__ == "__main__":
    main()
