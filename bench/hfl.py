"""Horizontal FL at scale: `hfl.train` over a runtime population, side by side with the
plain numpy loop and (when its venv exists) Flower 1.42 in its own interpreter.

    python bench/hfl.py [--parts plain,objects,secagg,accuracy,dp,scaling,flower]
                        [--rounds 3] [--out bench/results]

Workload (the issue's anchor): softmax regression on scikit-learn's digits / 16, the
rows replicated so that each client holds 100 rows (10^3 clients) or 20 rows (10^4
clients and the scaling curve); every client every round; 1 local epoch of minibatch
SGD (batch 32, lr 0.1); a server party and a population on a 2-worker pool (Ray
backend, embedded). Seconds per round: the median over --rounds rounds after one
warm-up round, wall clock at the driver, including evaluation-free metrics.

Parts:
- plain: the built-in model on the vectorised path (one batched job per chunk);
- objects: Flower-style client objects (`client_fn(cid)`, one Python object per
  client, built once per worker and kept);
- secagg: SecAgg+ with 10% dropout at each of the two stages; graph degree and
  threshold from `choose_parameters` (sigma = 40, eta = 30, 5% corrupt clients); bytes
  per client from the runtime ledger (all hfl/secagg_* messages plus the model) against
  the plaintext update;
- accuracy: FedAvg on IID digits (100 clients, 75/25 split, 200 rounds of 5 local
  epochs) against centralised training of the same model (minibatch SGD, 50 epochs);
- dp: DP-FedAvg (central, fixed clip) accuracy against epsilon in {1, 3, 8, inf} at 10^3
  clients, Poisson-free fraction sampling q = 0.1, 30 rounds, delta = 1e-5 (plot);
- scaling: 10^2 -> 10^5 clients (20 rows each), seconds per round and peak resident
  memory of the driver plus all Ray worker processes (plot);
- flower: bench/flower_peer/flower_bench.py in the venv of bench/flower_peer/setup.sh (see its
  README), plaintext at 10^3 and 10^4 and SecAgg+ at 10^3, each with the actor count
  that was best in bench/flower_peer's own sweep (2, 1 and 2 actors).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this checkout's cipherray
import common  # noqa: E402
from hfl_core import plain_numpy_round  # noqa: E402

import cipherray as cr  # noqa: E402
from cipherray.workloads.hfl import ClientSampler, FedAvg, models, partition  # noqa: E402
from cipherray.workloads.hfl.dp import DP  # noqa: E402
from cipherray.workloads.hfl.train import SecAgg, train  # noqa: E402

HERE = Path(__file__).resolve().parent
MODEL = models.SoftmaxRegression(64, 10)
CONFIG = {"lr": 0.1, "batch_size": 32, "local_epochs": 1}


def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x / 16.0, y


def replicated_rows(cids: np.ndarray, rows: int) -> np.ndarray:
    """Row indices of clients `cids` when the digits are replicated in a fixed order."""
    return (cids[:, None] * rows + np.arange(rows)[None, :]) % 1797


def chunk_data(cids: np.ndarray, rows: int) -> models.PaddedData:
    """Built at the worker: only this chunk's rows."""
    x, y = digits()
    idx = replicated_rows(np.asarray(cids), rows)
    return models.PaddedData(x[idx], y[idx], np.full(len(cids), rows, dtype=np.int64))


class DigitsClient:
    """A Flower-style NumPyClient (no flwr import): softmax regression, 1 epoch of
    minibatch SGD (batch 32, lr 0.1), plain numpy."""

    def __init__(self, cid: int, rows: int):
        x, y = digits()
        idx = replicated_rows(np.array([cid]), rows)[0]
        self.X, self.y = x[idx], y[idx]

    def get_parameters(self, config):
        return [np.zeros((64, 10)), np.zeros(10)]

    def fit(self, parameters, config):
        W, b = (np.array(p) for p in parameters)
        for lo in range(0, len(self.y), 32):
            xb, yb = self.X[lo : lo + 32], self.y[lo : lo + 32]
            z = xb @ W + b
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1.0
            p /= len(yb)
            W -= 0.1 * xb.T @ p
            b -= 0.1 * p.sum(axis=0)
        return [W, b], len(self.y), {}

    def evaluate(self, parameters, config):
        W, b = parameters
        acc = float(((self.X @ W + b).argmax(axis=1) == self.y).mean())
        return 0.0, len(self.y), {"accuracy": acc}


def client_fn(cid: int, rows: int) -> DigitsClient:
    return DigitsClient(cid, rows)


class PeakMemory:
    """Peak summed RSS of this process and every Ray worker process, sampled at 20 Hz."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss() -> int:
        total = 0
        me = str(os.getpid())
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
                if pid != me and b"ray::" not in cmd and b"raylet" not in cmd:
                    continue
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.05)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed_rounds(
    n: int, rows: int, rounds: int, *, objects: bool = False, secagg=None, chunk: int = 512
) -> dict:
    """Seconds per round (median after one warm-up), bytes, peak memory."""
    with cr.init(
        ["server"], driver_as="server", populations={"phones": {"clients": n, "workers": 2}}
    ) as rt, PeakMemory() as mem:  # fmt: skip
        kw = (
            {"client_fn": functools.partial(client_fn, rows=rows),
             "initial_parameters": [np.zeros((64, 10)), np.zeros(10)]}
            if objects
            else {"model": MODEL, "client_data": functools.partial(chunk_data, rows=rows)}
        )  # fmt: skip
        t = time.perf_counter()
        r = train(
            rt, rt.party("server"), rt.population("phones"), rounds + 1, config=CONFIG,
            strategy=FedAvg(evaluate_every=0), secagg=secagg, chunk_size=chunk, seed=0, **kw,
        )  # fmt: skip
        total = time.perf_counter() - t
        secs = [h["seconds"] for h in r.history]
        by_tag = rt.ledger.by_tag()
        secure_bytes = int(by_tag[by_tag.tag.str.contains("secagg")].bytes.sum())
        fit_bytes = int(by_tag[by_tag.tag.str.endswith("hfl/fit")].bytes.sum())
        return {
            "clients": n,
            "rows_per_client": rows,
            "path": "objects" if objects else "vectorised",
            "secagg": secagg is not None,
            "round_s": statistics.median(secs[1:]),
            "first_round_s": secs[0],
            "all_round_s": secs,
            "included": r.history[-1]["included"],
            "dropped": len(r.history[-1]["dropped"]),
            "graph": r.secagg,
            "secagg_bytes_per_client_round": secure_bytes / (n * (rounds + 1)),
            "fit_report_bytes_per_round": fit_bytes / (rounds + 1),
            "plaintext_update_bytes": 650 * 8,
            "peak_rss_bytes": mem.peak,
            "total_s": total,
        }


def plain_loop(n: int, rows: int, rounds: int) -> float:
    x, y = digits()
    idx = replicated_rows(np.arange(n), rows)
    xs, ys = list(x[idx]), list(y[idx])
    W, b = np.zeros((64, 10)), np.zeros(10)
    secs = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        W, b = plain_numpy_round(W, b, xs, ys)
        secs.append(time.perf_counter() - t0)
    return statistics.median(secs)


def central_eval(x: np.ndarray, y: np.ndarray):
    def evaluate(params: list) -> dict:
        loss, acc, _ = models.evaluate_batched(MODEL, params, models.pad([x], [y]))
        return {"loss": float(loss[0]), "accuracy": float(acc[0])}

    return evaluate


def split() -> tuple:
    from sklearn.model_selection import train_test_split

    x, y = digits()
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def iid_data(cids: np.ndarray, n_clients: int) -> models.PaddedData:
    xtr, _, ytr, _ = split()
    parts = partition.iid(len(ytr), n_clients, seed=0)
    return models.pad([xtr[parts[c]] for c in cids], [ytr[parts[c]] for c in cids])


def accuracy_part(rounds: int = 200) -> dict:
    """FedAvg (100 IID clients, 5 local epochs, lr 0.5, batch 8) against centralised
    minibatch SGD on all training rows (50 epochs, lr 0.1, batch 8)."""
    xtr, xte, ytr, yte = split()
    with cr.init(
        ["server"], driver_as="server", populations={"phones": {"clients": 100, "workers": 2}}
    ) as rt:  # fmt: skip
        r = train(
            rt, rt.party("server"), rt.population("phones"), rounds, model=MODEL,
            client_data=functools.partial(iid_data, n_clients=100),
            config={"lr": 0.5, "batch_size": 8, "local_epochs": 5},
            strategy=FedAvg(evaluate_every=0), evaluate_fn=central_eval(xte, yte), seed=3,
        )  # fmt: skip
    fed = r.history[-1]["central_accuracy"]
    trained = models.fit_batched(
        MODEL, MODEL.init(0), models.pad([xtr], [ytr]), epochs=50, lr=0.1, batch_size=8
    )
    central = central_eval(xte, yte)([p[0] for p in trained])["accuracy"]
    return {"clients": 100, "rounds": rounds, "fedavg_accuracy": fed,
            "centralised_accuracy": central, "gap_points": 100 * (central - fed)}  # fmt: skip


def dp_part(epsilons=(1.0, 3.0, 8.0, None), rounds: int = 30, n: int = 1000) -> list[dict]:
    xtr, xte, ytr, yte = split()
    out = []
    with cr.init(
        ["server"], driver_as="server", populations={"phones": {"clients": n, "workers": 2}}
    ) as rt:  # fmt: skip
        for eps in epsilons:
            privacy = (
                DP(mode="central", clip=0.5, target_epsilon=eps, delta=1e-5, rounds=rounds)
                if eps is not None
                else None
            )
            t = time.perf_counter()
            r = train(
                rt, rt.party("server"), rt.population("phones"), rounds, model=MODEL,
                client_data=functools.partial(iid_data, n_clients=n),
                config={"lr": 0.5, "batch_size": 32, "local_epochs": 1},
                strategy=FedAvg(sampler=ClientSampler(fraction=0.1, seed=0), evaluate_every=0),
                evaluate_fn=central_eval(xte, yte), privacy=privacy, seed=0, chunk_size=512,
            )  # fmt: skip
            row = {"target_epsilon": eps, "accuracy": r.history[-1]["central_accuracy"],
                   "seconds": time.perf_counter() - t, "rounds": len(r.history)}  # fmt: skip
            if r.privacy:
                row.update({k: r.privacy[k] for k in ("epsilon", "delta", "noise_multiplier",
                                                      "sampling_rate", "clipping_norm")})  # fmt: skip
            print(row, flush=True)
            out.append(row)
    return out


def flower_part(rounds: int) -> list[dict]:
    venv = os.environ.get("CIPHERRAY_FLOWER_VENV", "~/.cache/cipherray/flower-venv")
    py = Path(venv).expanduser() / "bin" / "python"
    script = HERE / "flower_peer" / "flower_bench.py"
    if not py.exists() or not script.exists():
        print(f"flower: {py} missing (run bench/flower_peer/setup.sh)")
        return []
    out = []
    # the best actor counts of bench/flower_peer's sweeps (results/flower_peer.json)
    for args in (["--clients", "1000", "--actors", "2"],
                 ["--clients", "10000", "--rounds", "2", "--actors", "1"],
                 ["--clients", "1000", "--secagg", "--actors", "2"]):  # fmt: skip
        target = Path("/tmp") / f"flower_{'_'.join(args).replace('-', '')}.json"
        cmd = [str(py), str(script), "--rounds", str(rounds), *args, "--out", str(target)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0 or not target.exists():
            print("flower failed:", proc.stderr[-2000:])
            continue
        row = json.loads(target.read_text())
        row["wall_s"] = time.perf_counter() - t
        print(row, flush=True)
        out.append(row)
    return out


def plot(path: Path, xs, ys_list, labels, xlabel, ylabel, logx=False, logy=False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for ys, label in zip(ys_list, labels):
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table(columns: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def markdown(result: dict) -> str:
    """The results as markdown tables (what bench/results/hfl.md holds)."""
    out = [f"Command: `{result['command']}`", ""]
    flower = {(r["clients"], bool(r.get("secagg"))): r for r in result.get("flower", [])}
    for part in ("plain", "objects", "secagg"):
        if part not in result:
            continue
        out += [f"### {part}", ""]
        rows = []
        for r in result[part]:
            fl = flower.get((r["clients"], part == "secagg"))
            fl_s = fl["seconds_per_round"] if fl else None
            extra = ""
            if r.get("graph"):
                g = r["graph"]
                extra = (
                    f"k={g['degree']}, t={g['threshold']}, "
                    f"{r['secagg_bytes_per_client_round']:.0f} B/client vs "
                    f"{r['plaintext_update_bytes']} B update"
                )
            rows.append([
                r["clients"], r["rows_per_client"], f"{r['round_s']:.3f}",
                f"{r['plain_loop_s']:.3f}", f"{r['round_s'] / r['plain_loop_s']:.1f}x",
                f"{fl_s:.2f}" if fl_s else "-",
                f"{fl_s / r['round_s']:.0f}x" if fl_s else "-", extra,
            ])  # fmt: skip
        out += _table(["clients", "rows", "cipherray s/round", "numpy loop s", "vs numpy",
                       "Flower s/round", "Flower / ours", "notes"], rows) + [""]  # fmt: skip
    if "accuracy" in result:
        a = result["accuracy"]
        out += ["### accuracy (IID digits)", ""] + _table(
            ["clients", "rounds", "FedAvg", "centralised", "gap (points)"],
            [[a["clients"], a["rounds"], f"{a['fedavg_accuracy']:.4f}",
              f"{a['centralised_accuracy']:.4f}", f"{a['gap_points']:.2f}"]],
        ) + [""]  # fmt: skip
    if "dp" in result:
        out += ["### DP-FedAvg accuracy against epsilon (hfl_dp.png)", ""] + _table(
            ["target epsilon", "epsilon spent", "noise multiplier", "q", "clip", "accuracy"],
            [[r["target_epsilon"] or "inf (no DP)", f"{r.get('epsilon', 0):.3f}",
              f"{r.get('noise_multiplier', 0):.3f}", r.get("sampling_rate", "-"),
              r.get("clipping_norm", "-"), f"{r['accuracy']:.4f}"] for r in result["dp"]],
        ) + [""]  # fmt: skip
    if "scaling" in result:
        out += ["### scaling (hfl_scaling.png)", ""] + _table(
            ["clients", "s/round", "first round s", "peak RSS GiB"],
            [[r["clients"], f"{r['round_s']:.3f}", f"{r['first_round_s']:.2f}",
              f"{r['peak_rss_bytes'] / 2**30:.2f}"] for r in result["scaling"]],
        ) + [""]  # fmt: skip
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="plain,objects,secagg,accuracy,dp,scaling,flower")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="bench/out")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": common.machine(), "command": "python bench/hfl.py " + " ".join(
        sys.argv[1:])}  # fmt: skip
    sizes = {1000: 100, 10000: 20}
    if "plain" in parts or "objects" in parts or "secagg" in parts:
        result["floor"] = {n: plain_loop(n, rows, args.rounds) for n, rows in sizes.items()}
        print("plain numpy loop", result["floor"], flush=True)
    for part, kw in (("plain", {}), ("objects", {"objects": True}),
                     ("secagg", {"secagg": SecAgg(dropout=0.1)})):  # fmt: skip
        if part in parts:
            result[part] = []
            for n, rows in sizes.items():
                rounds = args.rounds if not (part == "secagg" and n == 10000) else 2
                row = timed_rounds(n, rows, rounds, **kw)
                row["plain_loop_s"] = result["floor"][n]
                print(part, row, flush=True)
                result[part].append(row)
    if "accuracy" in parts:
        result["accuracy"] = accuracy_part()
        print(result["accuracy"], flush=True)
    if "dp" in parts:
        result["dp"] = dp_part()
        xs = [r["target_epsilon"] or 20.0 for r in result["dp"]]
        plot(out / "hfl_dp.png", xs, [[r["accuracy"] for r in result["dp"]]],
             ["DP-FedAvg (central), 10^3 clients, q=0.1, 30 rounds"],
             "target epsilon (delta=1e-5; rightmost: no DP)", "test accuracy", logx=True)  # fmt: skip
    if "scaling" in parts:
        result["scaling"] = []
        for n in (100, 1000, 10000, 100000):
            row = timed_rounds(n, 20, args.rounds, chunk=2048 if n >= 10**5 else 512)
            print("scaling", row, flush=True)
            result["scaling"].append(row)
        xs = [r["clients"] for r in result["scaling"]]
        plot(out / "hfl_scaling.png", xs,
             [[r["round_s"] for r in result["scaling"]],
              [r["peak_rss_bytes"] / 2**30 for r in result["scaling"]]],
             ["seconds per round", "peak RSS (GiB), driver + Ray workers"],
             "clients (20 rows each)", "", logx=True, logy=True)  # fmt: skip
    if "flower" in parts:
        result["flower"] = flower_part(args.rounds)
    (out / "hfl.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "hfl.md").write_text(markdown(result))
    print(markdown(result))
    print("wrote", out / "hfl.json")


if __name__ == "__main__":
    main()
