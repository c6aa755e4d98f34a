"""`cipherray run hfl`: federated training of a built-in model, cross-device or cross-silo.

    cipherray run hfl --dataset digits --clients 1000 --rounds 20 --secagg --dropout 0.1
    cipherray run hfl --dataset csv:patients.csv --label outcome \\
                      --silos h1=a.csv,h2=b.csv,h3=c.csv --secagg --dp-epsilon 3 --out run1

Cross-device: a server party and a population of `--clients` virtual clients on
`--workers` workers; the training rows (75% of the dataset; the other 25% is the
server's held-out test set, for the report's accuracy) are partitioned IID, by
Dirichlet(alpha) label skew or in label shards, and each population worker loads the
dataset and takes only its clients' rows. Cross-silo (`--silos`): one party per silo;
each reads its own CSV inside its own step (the rows never pass through the driver),
holds out 25% of its rows for evaluation and scales its features to [0, 1] with the
public bounds `--feature-range` (default 0..16 for digits-style data; pass the real
bounds of your columns). The report goes to `--out`: report.json, report.md and
learning_curve.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = ("digits", "breast_cancer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cipherray.cli import add_runtime_arguments, positive_int

    parser.add_argument("--dataset", default="digits", help="digits, breast_cancer or csv:PATH")
    parser.add_argument("--label", default=None, help="label column (CSV data)")
    parser.add_argument("--clients", type=positive_int, default=100)
    parser.add_argument("--rounds", type=positive_int, default=10)
    parser.add_argument("--partition", default="iid", help="iid, dirichlet:ALPHA or shards:K")
    parser.add_argument("--strategy", default="fedavg", choices=["fedavg", "fedprox", "fedadam"])
    parser.add_argument("--fraction", type=float, default=1.0, help="clients per round")
    parser.add_argument("--model", default="softmax", choices=["softmax", "logistic", "mlp"])
    parser.add_argument("--local-epochs", type=positive_int, default=1)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--secagg", action="store_true", help="SecAgg+ aggregation")
    parser.add_argument("--dropout", type=float, default=0.0, help="simulated, per stage")
    parser.add_argument("--dp-epsilon", type=float, default=None, help="target epsilon")
    parser.add_argument("--dp-delta", type=float, default=1e-5)
    parser.add_argument("--dp-mode", default="central", choices=["central", "distributed", "local"])
    parser.add_argument("--clip", type=float, default=0.5, help="DP clipping norm")
    parser.add_argument("--silos", default=None, help="name=path.csv,... (cross-silo)")
    parser.add_argument("--feature-range", default="0,16", help="silos: public lo,hi")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="hfl_out", help="report directory")
    add_runtime_arguments(parser, workers=2, graph=False, report=False)


# -- data ------------------------------------------------------------------------------
def load(dataset: str, label: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Features (scaled to [0, 1] per column) and integer labels."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        return x / 16.0, y.astype(np.int64)
    if dataset == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        x, y = load_breast_cancer(return_X_y=True)
    elif dataset.startswith("csv:"):
        import pandas as pd

        if not label:
            raise ValueError("--label names the label column of a CSV dataset")
        df = pd.read_csv(dataset[4:])
        if label not in df.columns:
            raise ValueError(f"--label {label!r} is not a column of {dataset[4:]}")
        y = pd.factorize(df.pop(label), sort=True)[0]
        x = df.select_dtypes("number").to_numpy(dtype=np.float64)
    else:
        raise ValueError(f"unknown dataset {dataset!r}: use {', '.join(DATASETS)} or csv:PATH")
    lo, hi = x.min(axis=0), x.max(axis=0)
    return (x - lo) / np.where(hi > lo, hi - lo, 1.0), np.asarray(y, dtype=np.int64)


def split(dataset: str, label: str | None, seed: int) -> tuple:
    from sklearn.model_selection import train_test_split

    x, y = load(dataset, label)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def partition_rows(spec: str, labels: np.ndarray, n_clients: int, seed: int) -> list:
    from cipherray.workloads.hfl import partition

    if spec == "iid":
        return partition.iid(len(labels), n_clients, seed=seed)
    kind, _, value = spec.partition(":")
    if kind == "dirichlet" and value:
        return partition.dirichlet(labels, n_clients, float(value), seed=seed)
    if kind == "shards" and value:
        return partition.shards(labels, n_clients, int(value), seed=seed)
    raise ValueError(f"--partition {spec!r}: use iid, dirichlet:ALPHA or shards:K")


def population_data(cids: np.ndarray, dataset: str, label: str | None, spec: str,
                    n_clients: int, seed: int) -> Any:  # fmt: skip
    """At a population worker: the training rows of clients `cids`."""
    from cipherray.workloads.hfl import models

    xtr, _, ytr, _ = split(dataset, label, seed)
    parts = partition_rows(spec, ytr, n_clients, seed)
    return models.pad([xtr[parts[c]] for c in cids], [ytr[parts[c]] for c in cids])


def silo_data(cids: np.ndarray, paths: list[str], label: str, bounds: tuple, seed: int) -> Any:
    """At silo i: its own CSV, 75% to train and 25% to evaluate, scaled by public bounds."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from cipherray.workloads.hfl import models

    df = pd.read_csv(paths[int(cids[0])])
    if label not in df.columns:
        raise ValueError(f"label column {label!r} is missing from this silo's CSV")
    y = df.pop(label).to_numpy(dtype=np.int64)
    x = np.clip((df.to_numpy(dtype=np.float64) - bounds[0]) / (bounds[1] - bounds[0]), 0, 1)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed)
    return models.pad([xtr], [ytr]), models.pad([xte], [yte])


def build_model(kind: str, n_features: int, n_classes: int) -> Any:
    from cipherray.workloads.hfl import models

    if kind == "logistic":
        if n_classes != 2:
            raise ValueError("--model logistic needs two classes")
        return models.LogisticRegression(n_features)
    if kind == "mlp":
        return models.MLP(n_features, 32, n_classes)
    return models.SoftmaxRegression(n_features, n_classes)


class Evaluate:
    """At the server: loss and accuracy of a model on the held-out test rows."""

    def __init__(self, model: Any, dataset: str, label: str | None, seed: int):
        self.model, self.dataset, self.label, self.seed = model, dataset, label, seed

    def __call__(self, params: list) -> dict:
        from cipherray.workloads.hfl import models

        _, xte, _, yte = split(self.dataset, self.label, self.seed)
        loss, acc, _ = models.evaluate_batched(self.model, params, models.pad([xte], [yte]))
        return {"loss": float(loss[0]), "accuracy": float(acc[0])}


# -- report ----------------------------------------------------------------------------
def progress_bar(total: int, enabled: bool):
    def show(m: dict) -> None:
        if not enabled:
            return
        width = 30
        done = int(width * m["round"] / total)
        acc = m.get("accuracy")
        acc_s = f"acc {acc:.4f}" if acc is not None else ""
        sys.stderr.write(
            f"\rround {m['round']:>4}/{total} [{'#' * done}{'.' * (width - done)}] "
            f"{m['seconds']:.2f} s  {acc_s}  dropped {len(m['dropped'])}  "
        )
        if m["round"] == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def write_report(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    lines = [f"# Federated training: {report['settings']['dataset']}", ""]
    s = report["settings"]
    lines += [f"- {k}: {v}" for k, v in s.items()] + [""]
    lines += [f"**Final accuracy: {report['final_accuracy']:.4f}**", ""]
    if report.get("epsilon") is not None:
        lines += [
            f"DP: ε = {report['epsilon']:.3f} at δ = {report['delta']:g} (noise multiplier "
            f"{report['noise_multiplier']:.3f}, sampling rate {report['sampling_rate']:.3f}, "
            f"clipping norm {report['clipping_norm']:.3f})",
            "",
        ]
    if report.get("secagg"):
        g = report["secagg"]
        lines += [
            f"SecAgg+: {g['clients']} clients, degree {g['degree']}, threshold "
            f"{g['threshold']}, {'complete' if g['complete'] else 'sparse'} graph, "
            f"Z_2^{g['bits']}",
            "",
        ]
    lines += [
        "| round | loss | accuracy | seconds | clients | dropped |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rounds"]:
        loss = "-" if r["loss"] is None else f"{r['loss']:.4f}"
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        lines.append(
            f"| {r['round']} | {loss} | {acc} | {r['seconds']:.3f} | {r['clients']} | "
            f"{len(r['dropped'])} |"
        )
    (out / "report.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r["round"] for r in report["rounds"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rounds, [r["accuracy"] for r in report["rounds"]], marker="o", label="accuracy")
    ax2 = ax.twinx()
    ax2.plot(rounds, [r["loss"] for r in report["rounds"]], color="tab:red", label="loss")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax2.set_ylabel("test loss")
    ax.grid(True, alpha=0.3)
    fig.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=110)
    plt.close(fig)


# -- run -------------------------------------------------------------------------------
def main(args: argparse.Namespace) -> int:
    import functools
    import importlib.util

    missing = [m for m in ("sklearn", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"cipherray run hfl needs {', '.join(missing)}: pip install -e '.[hfl]'",
              file=sys.stderr)  # fmt: skip
        return 2

    import cipherray as cr
    from cipherray.workloads.hfl import ClientSampler, FedAdam, FedAvg, FedProx
    from cipherray.workloads.hfl.dp import DP
    from cipherray.workloads.hfl.train import SecAgg, train

    try:
        if not 0 < args.fraction <= 1:
            raise ValueError("--fraction must lie in (0, 1]")
        if args.dp_mode == "distributed" and args.dp_epsilon is not None and not args.secagg:
            raise ValueError("--dp-mode distributed needs --secagg")
        if args.dropout and not args.secagg:
            raise ValueError("--dropout simulates SecAgg+ dropouts: it needs --secagg")
        silos = []
        if args.silos:
            if not args.label:
                raise ValueError("--silos needs --label (the label column of the CSVs)")
            for item in args.silos.split(","):
                name, _, path = item.partition("=")
                if not name or not path:
                    raise ValueError(f"--silos entry {item!r}: use name=path.csv")
                if not Path(path).exists():
                    raise ValueError(f"--silos: {path} does not exist")
                silos.append((name, str(Path(path).resolve())))
            lo, hi = (float(v) for v in args.feature_range.split(","))
            import pandas as pd

            head = pd.read_csv(silos[0][1], nrows=200)  # public schema: columns and labels
            n_features = head.shape[1] - 1
            n_classes = int(max(2, head[args.label].max() + 1))
            test = None
        else:
            xtr, xte, ytr, yte = split(args.dataset, args.label, args.seed)
            n_features, n_classes = xtr.shape[1], int(max(ytr.max(), yte.max()) + 1)
            partition_rows(args.partition, ytr, args.clients, args.seed)  # checks the spec
            test = Evaluate(None, args.dataset, args.label, args.seed)
    except ValueError as e:
        print(f"cipherray run hfl: {e}", file=sys.stderr)
        return 2

    model = build_model(args.model, n_features, n_classes)
    sampler = ClientSampler(fraction=args.fraction if args.fraction < 1 else None, seed=args.seed)
    strategies = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}
    strategy = strategies[args.strategy](sampler=sampler, evaluate_every=1)
    privacy = None
    if args.dp_epsilon is not None:
        privacy = DP(mode=args.dp_mode, clip=args.clip, target_epsilon=args.dp_epsilon,
                     delta=args.dp_delta, rounds=args.rounds)  # fmt: skip
    secagg = SecAgg(dropout=args.dropout) if args.secagg else None
    config = {"lr": args.lr, "batch_size": args.batch_size, "local_epochs": args.local_epochs}
    names = [n for n, _ in silos]
    parties = ["server", *names]
    populations = {} if silos else {"clients": {"clients": args.clients, "workers": args.workers}}
    t0 = time.perf_counter()
    with cr.init(parties, backend=args.backend, address=args.address, driver_as="server",
                 timeout_s=args.timeout, populations=populations or None) as rt:  # fmt: skip
        if silos:
            clients = [rt.party(n) for n in names]
            data = functools.partial(silo_data, paths=[p for _, p in silos], label=args.label,
                                     bounds=(lo, hi), seed=args.seed)  # fmt: skip
            evaluate_fn = None
            strategy.evaluate_every = 1
        else:
            clients = rt.population("clients")
            data = functools.partial(population_data, dataset=args.dataset, label=args.label,
                                     spec=args.partition, n_clients=args.clients, seed=args.seed)  # fmt: skip
            test.model = model
            evaluate_fn = test
            strategy.evaluate_every = 0  # the report's accuracy: the server's test rows
        result = train(
            rt, rt.party("server"), clients, args.rounds, model=model, client_data=data,
            strategy=strategy, config=config, secagg=secagg, privacy=privacy,
            evaluate_fn=evaluate_fn, seed=args.seed, timeout_s=args.timeout,
            progress=progress_bar(args.rounds, not args.no_progress),
        )  # fmt: skip
    rounds = [
        {"round": h["round"], "loss": h.get("loss"), "accuracy": h.get("accuracy"),
         "seconds": h["seconds"], "clients": h["clients"], "dropped": h["dropped"],
         "included": h["included"], **({"epsilon": h["epsilon"]} if "epsilon" in h else {})}
        for h in result.history
    ]  # fmt: skip
    report: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "rounds": rounds,
        "final_accuracy": rounds[-1]["accuracy"] if rounds else None,
        "seconds_total": time.perf_counter() - t0,
        "secagg": result.secagg,
        "stopped": result.stopped,
    }
    if result.privacy:
        report.update({k: result.privacy[k] for k in ("epsilon", "delta", "noise_multiplier",
                                                      "sampling_rate", "clipping_norm")})  # fmt: skip
        report["dp_mode"] = result.privacy["mode"]
    out = Path(args.out)
    write_report(out, report)
    print(f"final accuracy {report['final_accuracy']:.4f} after {len(rounds)} rounds; "
          f"report: {out / 'report.json'}, {out / 'report.md'}, {out / 'learning_curve.png'}")  # fmt: skip
    return 0
