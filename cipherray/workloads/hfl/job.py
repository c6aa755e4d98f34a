"""`cipherray run hfl`: federated training of a built-in model, cross-device or cross-silo.

    cipherray run hfl --dataset digits --clients 1000 --rounds 20 --secagg --dropout 0.1
    cipherray run hfl --label outcome --silos h1=a.csv,h2=b.csv,h3=c.csv \\
                      --secagg --dp-epsilon 3 --out run1
    cipherray run hfl --populations orgA=500,orgB=500 --party orgA \\
                      --addresses server=H:P,orgA=H:P,orgB=H:P --tls pki

Cross-device: a server party and a population of `--clients` virtual clients on
`--workers` workers. The dataset (digits or breast_cancer from scikit-learn, or
`csv:PATH` with `--label`; features min-max scaled to [0, 1]) is split 75/25; the 25%
is the server's held-out test set, and the report's per-round `accuracy` and `loss`
are the global model's on it (`evaluate_fn`, at the server). The training rows are
partitioned IID, by Dirichlet(alpha) label skew or in label shards, and each
population worker loads the dataset itself and keeps only its clients' rows: no
training data is sent from the driver.

Populations per organisation (`--populations orgA=500,orgB=500`, instead of
`--clients`): one population per organisation, its clients numbered after the previous
populations' (orgA's are 0..499, orgB's 500..999) and partitioned together, so the run
is the cross-device one over all of them. In cross-silo mode (`--party`) the server and
every organisation run their own process: `--addresses` names `server` and each
population, and an organisation's process hosts its population's clients on its own
workers; only the model, the fit reports (or SecAgg+ messages) and the evaluation sums
cross, as typed messages.

Cross-silo (`--silos name=path.csv,...`): one ordinary party per silo (>= 3 with
`--secagg`). Each silo reads its own CSV inside its own steps; the rows never pass
through the driver or the server. The only things a silo publishes before training
are its CSV's schema: the numeric feature column names and the set of label values
in `--label` (so that every silo maps labels to the same class indices). Each silo
holds out 25% of its rows for evaluation and, by default, standardises its features
with its own mean and standard deviation (computed on its training rows, never
shared; silos with differently distributed features then see differently scaled
inputs). `--feature-range LO,HI` instead min-max scales every feature with these
public bounds (clipped to [0, 1]), the same map at every silo. The report's accuracy
is then the federated evaluation on the silos' held-out rows (example-weighted sums
per silo, not protected by SecAgg).

The report goes to `--out`: report.json, report.md and learning_curve.png.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cipherray.workloads import files

DATASETS = ("digits", "breast_cancer")
TEST_FRACTION = 0.25


class HflInputError(ValueError):
    """Bad `cipherray run hfl` input (an unknown dataset, a missing label column, ...)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cipherray.cli import add_runtime_arguments, positive_int

    parser.add_argument("--dataset", default="digits", help="digits, breast_cancer or csv:PATH")
    parser.add_argument("--label", default=None, help="label column (CSV data and --silos)")
    parser.add_argument(
        "--clients", type=positive_int, default=None, help="virtual clients (default 100)"
    )
    parser.add_argument(
        "--populations",
        default=None,
        help="org=N,...: a population of N clients per organisation (instead of --clients)",
    )
    parser.add_argument("--rounds", type=positive_int, default=10)
    parser.add_argument("--partition", default="iid", help="iid, dirichlet:ALPHA or shards:K")
    parser.add_argument("--strategy", default="fedavg", choices=["fedavg", "fedprox", "fedadam"])
    parser.add_argument("--fraction", type=float, default=1.0, help="clients per round")
    parser.add_argument("--model", default="softmax", choices=["softmax", "logistic", "mlp"])
    parser.add_argument("--local-epochs", type=positive_int, default=1)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--secagg", action="store_true", help="SecAgg+ aggregation")
    parser.add_argument(
        "--dropout", type=float, default=0.0, help="simulated SecAgg+ dropout, per stage"
    )
    parser.add_argument("--dp-epsilon", type=float, default=None, help="target epsilon")
    parser.add_argument("--dp-delta", type=float, default=1e-5)
    parser.add_argument(
        "--dp-mode",
        default=None,
        choices=["central", "distributed", "local"],
        help="where the DP noise is added (default central; distributed needs --secagg)",
    )
    parser.add_argument("--clip", type=float, default=0.5, help="DP clipping norm C")
    parser.add_argument("--silos", default=None, help="name=path.csv,... (cross-silo)")
    parser.add_argument(
        "--feature-range",
        default=None,
        help="silos: public LO,HI bounds for min-max scaling (default: each silo "
        "standardises its own features)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="hfl_out", help="report directory")
    add_runtime_arguments(parser, workers=2, graph=False, report=False, silo=True)


def parse_populations(spec: str) -> list[tuple[str, int]]:
    """`orgA=500,orgB=500` -> [("orgA", 500), ("orgB", 500)]."""
    out: list[tuple[str, int]] = []
    for item in spec.split(","):
        name, eq, n = item.strip().partition("=")
        if not eq or not name or not n.strip().isdigit() or int(n) < 1:
            raise HflInputError(f"--populations {spec!r}: use org=N,... with N >= 1")
        if name == "server" or name in dict(out):
            raise HflInputError(f"--populations: '{name}' is the server or listed twice")
        out.append((name, int(n)))
    return out


# -- data (cross-device) -----------------------------------------------------------------
def load(dataset: str, label: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Features (min-max scaled to [0, 1] per column) and integer labels."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        return x / 16.0, y.astype(np.int64)
    if dataset == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        x, y = load_breast_cancer(return_X_y=True)
    elif dataset.startswith("csv:"):
        import pandas as pd

        path = dataset[4:]
        if not label:
            raise HflInputError("--label names the label column of a CSV dataset")
        if not Path(path).is_file():
            raise HflInputError(f"--dataset {dataset}: no such file")
        df = pd.read_csv(path)
        if label not in df.columns:
            raise HflInputError(f"--label {label!r} is not a column of {path}")
        y = pd.factorize(df.pop(label), sort=True)[0]
        x = df.select_dtypes("number").to_numpy(dtype=np.float64)
        if x.shape[1] == 0:
            raise HflInputError(f"{path} has no numeric feature column")
    else:
        raise HflInputError(f"unknown dataset {dataset!r}: use {', '.join(DATASETS)} or csv:PATH")
    lo, hi = x.min(axis=0), x.max(axis=0)
    return (x - lo) / np.where(hi > lo, hi - lo, 1.0), np.asarray(y, dtype=np.int64)


@functools.lru_cache(maxsize=4)
def split(dataset: str, label: str | None, seed: int) -> tuple:
    """(x_train, x_test, y_train, y_test): 25% held out, stratified. Cached per process,
    so a worker loads the dataset once, not every round."""
    from sklearn.model_selection import train_test_split

    x, y = load(dataset, label)
    stratify = y if np.bincount(y).min() >= 2 else None
    return train_test_split(x, y, test_size=TEST_FRACTION, random_state=seed, stratify=stratify)


def partition_rows(spec: str, labels: np.ndarray, n_clients: int, seed: int) -> list:
    from cipherray.workloads.hfl import partition

    if spec == "iid":
        return partition.iid(len(labels), n_clients, seed=seed)
    kind, _, value = spec.partition(":")
    try:
        if kind == "dirichlet" and value:
            return partition.dirichlet(labels, n_clients, float(value), seed=seed)
        if kind == "shards" and value:
            return partition.shards(labels, n_clients, int(value), seed=seed)
    except ValueError as e:
        raise HflInputError(f"--partition {spec}: {e}") from e
    raise HflInputError(f"--partition {spec!r}: use iid, dirichlet:ALPHA or shards:K")


def population_data(cids: np.ndarray, dataset: str, label: str | None, spec: str,
                    n_clients: int, seed: int) -> Any:  # fmt: skip
    """At a population worker: the training rows of clients `cids` (the worker loads
    the dataset and partitions it with the run's seed; nothing comes from the driver)."""
    from cipherray.workloads.hfl import models

    xtr, _, ytr, _ = split(dataset, label, seed)
    parts = partition_rows(spec, ytr, n_clients, seed)
    return models.pad([xtr[parts[c]] for c in cids], [ytr[parts[c]] for c in cids])


class Evaluate:
    """At the server: loss and accuracy of the global model on the held-out test rows."""

    def __init__(self, model: Any, dataset: str, label: str | None, seed: int):
        self.model, self.dataset, self.label, self.seed = model, dataset, label, seed

    def __call__(self, params: list) -> dict:
        from cipherray.workloads.hfl import models

        _, xte, _, yte = split(self.dataset, self.label, self.seed)
        loss, acc, _ = models.evaluate_batched(self.model, params, models.pad([xte], [yte]))
        return {"loss": float(loss[0]), "accuracy": float(acc[0])}


# -- data (cross-silo) -------------------------------------------------------------------
def silo_schema(path: str, label: str) -> dict[str, Any]:
    """At a silo: the public schema of its CSV (numeric feature columns and the label
    values present, as `label_key` text), published so that every silo builds the same
    model inputs."""
    import pandas as pd

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist")
    df = pd.read_csv(path)
    if label not in df.columns:
        raise HflInputError(f"label column {label!r} is missing from {path}")
    features = [c for c in df.select_dtypes("number").columns if c != label]
    labels = sorted({label_key(v) for v in df[label].dropna()})
    return {"features": features, "labels": labels, "rows": int(len(df))}


def label_key(value: Any) -> str:
    """A label value as text, the same at every silo (1, 1.0 and "1" are one class)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    return str(value.item() if hasattr(value, "item") else value).strip()


def sorted_classes(keys: set[str]) -> list[str]:
    """Class order: numeric labels by value (so 0/1 stay 0/1), others by their text."""
    try:
        return sorted(keys, key=float)
    except ValueError:
        return sorted(keys)


def silo_data(cids: np.ndarray, paths: list[str], label: str, features: list[str],
              classes: list, bounds: tuple[float, float] | None, seed: int) -> Any:  # fmt: skip
    """At silo i (cids == [i]): its own CSV, 75% to train and 25% to evaluate; features
    standardised with the silo's own training statistics, or min-max scaled with the
    public `bounds`; labels mapped to indices of the published `classes`."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from cipherray.workloads.hfl import models

    df = pd.read_csv(paths[int(cids[0])]).dropna(subset=[label])
    index = {c: k for k, c in enumerate(classes)}
    y = np.array([index[label_key(v)] for v in df[label]], dtype=np.int64)
    x = df[features].to_numpy(dtype=np.float64)
    x = np.where(np.isfinite(x), x, np.nan)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=TEST_FRACTION, random_state=seed)
    if bounds is not None:
        lo, hi = bounds

        def scale(a: np.ndarray) -> np.ndarray:
            return np.clip((a - lo) / (hi - lo), 0.0, 1.0)

    else:
        mean = np.nanmean(xtr, axis=0)
        std = np.nanstd(xtr, axis=0)
        mean, std = np.nan_to_num(mean), np.where(np.nan_to_num(std) > 0, std, 1.0)

        def scale(a: np.ndarray) -> np.ndarray:
            return (a - mean) / std

    xtr, xte = (np.nan_to_num(scale(a)) for a in (xtr, xte))  # missing values: the mean
    return models.pad([xtr], [ytr]), models.pad([xte], [yte])


def parse_silos(spec: str) -> list[tuple[str, str]]:
    silos = []
    for item in spec.split(","):
        name, _, path = item.partition("=")
        if not name or not path:
            raise HflInputError(f"--silos entry {item!r}: use name=path.csv")
        silos.append((name.strip(), str(Path(path.strip()).expanduser().absolute())))
    names = [n for n, _ in silos]
    if len(set(names)) != len(names):
        raise HflInputError(f"--silos names a silo twice: {names}")
    if "server" in names:
        raise HflInputError("--silos: 'server' is the aggregator's name; rename the silo")
    return silos


def parse_bounds(spec: str | None) -> tuple[float, float] | None:
    if spec is None:
        return None
    try:
        lo, hi = (float(v) for v in spec.split(","))
    except ValueError:
        raise HflInputError(f"--feature-range {spec!r}: use LO,HI") from None
    if not hi > lo:
        raise HflInputError(f"--feature-range {spec!r}: HI must exceed LO")
    return lo, hi


def build_model(kind: str, n_features: int, n_classes: int) -> Any:
    from cipherray.workloads.hfl import models

    if n_classes < 2:
        raise HflInputError(f"the labels have {n_classes} class; training needs at least 2")
    if kind == "logistic":
        if n_classes != 2:
            raise HflInputError(f"--model logistic needs two classes, the data has {n_classes}")
        return models.LogisticRegression(n_features)
    if kind == "mlp":
        return models.MLP(n_features, 32, n_classes)
    return models.SoftmaxRegression(n_features, n_classes)


# -- checks ------------------------------------------------------------------------------
def check_args(args: argparse.Namespace) -> None:
    """Input errors found before anything runs (HflInputError: exit code 2)."""
    if not 0 < args.fraction <= 1:
        raise HflInputError("--fraction must lie in (0, 1]")
    if args.lr <= 0:
        raise HflInputError("--lr must be positive")
    if not 0 <= args.dropout < 1:
        raise HflInputError("--dropout must lie in [0, 1)")
    if args.dropout and not args.secagg:
        raise HflInputError("--dropout simulates SecAgg+ dropouts: it needs --secagg")
    if args.dp_epsilon is None:
        if args.dp_mode is not None:
            raise HflInputError("--dp-mode needs --dp-epsilon (the target epsilon)")
    else:
        if args.dp_epsilon <= 0:
            raise HflInputError("--dp-epsilon must be positive")
        if not 0 < args.dp_delta < 1:
            raise HflInputError("--dp-delta must lie in (0, 1)")
        if args.clip <= 0:
            raise HflInputError("--clip must be positive")
        if args.dp_mode == "distributed" and not args.secagg:
            raise HflInputError("--dp-mode distributed needs --secagg")


def check_cohort(args: argparse.Namespace, n_clients: int, silos: bool) -> str | None:
    """SecAgg+ needs enough clients per round for its graph; an error (exit 2) if the
    round's cohort cannot have one, a warning (returned) if the planned dropout would
    likely leave fewer survivors than the threshold."""
    if not args.secagg:
        return None
    from cipherray.protocols.secagg.errors import ParameterError
    from cipherray.protocols.secagg.graph import choose_parameters
    from cipherray.workloads.hfl.train import SecAgg

    cohort = min(n_clients, max(1, math.ceil(args.fraction * n_clients)))
    what = "silos" if silos else "clients"
    if cohort < 3:
        raise HflInputError(f"--secagg needs at least 3 {what} per round, this run has {cohort}")
    if silos:
        return None
    try:
        p = choose_parameters(cohort, 1 - (1 - args.dropout) ** 2, SecAgg().corruption)
    except ParameterError as e:
        raise HflInputError(
            f"--secagg: {cohort} clients per round are too few for SecAgg+ ({e}); "
            "use more --clients or a larger --fraction"
        ) from e
    if p.correctness_failure >= 0.5:
        return (
            f"warning: with --dropout {args.dropout}, {cohort} clients per round (degree "
            f"{p.degree}, threshold {p.threshold}) will likely be too few to unmask"
        )
    return None


# -- report ------------------------------------------------------------------------------
def progress_bar(total: int, enabled: bool, stream: Any = None):
    """A one-line text bar on stderr per round (redrawn in place on a terminal, one
    line per round otherwise)."""
    stream = stream or sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())

    def show(m: dict) -> None:
        if not enabled:
            return
        width = 30
        done = int(width * m["round"] / total)
        acc, loss = m.get("accuracy"), m.get("loss")
        text = (
            f"round {m['round']:>{len(str(total))}}/{total} "
            f"[{'#' * done}{'.' * (width - done)}] {m['seconds']:6.2f} s"
            + (f"  acc {acc:.4f}" if acc is not None else "")
            + (f"  loss {loss:.4f}" if loss is not None else "")
            + (f"  dropped {len(m['dropped'])}" if m.get("dropped") else "")
            + (f"  eps {m['epsilon']:.3f}" if m.get("epsilon") is not None else "")
        )
        if tty:
            stream.write("\r" + text + " " * 4 + ("\n" if m["round"] == total else ""))
        else:
            stream.write(text + "\n")
        stream.flush()

    return show


def _fmt(x: Any, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


def write_report(out: Path, report: dict) -> None:
    """report.json, report.md (settings, privacy, SecAgg+ graph, per-round table) and
    learning_curve.png (test accuracy and loss per round)."""
    out.mkdir(parents=True, exist_ok=True)
    files.write_text(out / "report.json", json.dumps(report, indent=1, default=_plain))
    s = report["settings"]
    title = "cross-silo" if s.get("silos") else f"{s['dataset']}, {s['clients']} clients"
    lines = [f"# Federated training: {title}", ""]
    shown = {k: v for k, v in s.items() if v is not None and k not in _NOT_SHOWN}
    lines += ["| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in shown.items()] + [""]
    lines += [f"**Final accuracy: {_fmt(report['final_accuracy'])}** "
              f"on {report['accuracy_on']}", ""]  # fmt: skip
    if report.get("stopped"):
        lines += [f"Stopped early: {report['stopped']}", ""]
    if report.get("epsilon") is not None:
        lines += [
            f"DP ({report['dp_mode']}): ε = {report['epsilon']:.3f} at δ = "
            f"{report['delta']:g} (noise multiplier {_fmt(report['noise_multiplier'], '.3f')}, "
            f"sampling rate {_fmt(report['sampling_rate'], '.3f')}, clipping norm "
            f"{report['clipping_norm']:.3f})",
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
        "| round | loss | accuracy | seconds | clients | included | dropped |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rounds"]:
        lines.append(
            f"| {r['round']} | {_fmt(r['loss'])} | {_fmt(r['accuracy'])} | "
            f"{r['seconds']:.3f} | {r['clients']} | {r['included']} | {len(r['dropped'])} |"
        )
    files.write_text(out / "report.md", "\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rounds = [r["round"] for r in report["rounds"]]
    nan = float("nan")
    fig, ax = plt.subplots(figsize=(6, 4))
    acc = [nan if r["accuracy"] is None else r["accuracy"] for r in report["rounds"]]
    loss = [nan if r["loss"] is None else r["loss"] for r in report["rounds"]]
    (a,) = ax.plot(rounds, acc, marker="o", label="test accuracy")
    ax2 = ax.twinx()
    (b,) = ax2.plot(rounds, loss, color="tab:red", marker=".", label="test loss")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax2.set_ylabel("test loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    ax.legend(handles=[a, b], loc="center right")
    fig.tight_layout()
    with files.atomic_output(out / "learning_curve.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


_NOT_SHOWN = ("workload", "no_progress", "out", "timeout")


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else str(x)


# -- run ---------------------------------------------------------------------------------
def main(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [m for m in ("sklearn", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"cipherray run hfl needs {', '.join(missing)}: pip install -e '.[hfl]'",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        check_args(args)
        silos = parse_silos(args.silos) if args.silos else []
        pops = parse_populations(args.populations) if args.populations else []
        if silos and pops:
            raise HflInputError("give --silos or --populations, not both")
        if pops:
            total = sum(n for _, n in pops)
            if args.clients is not None and args.clients != total:
                raise HflInputError(f"--clients {args.clients} != the populations' {total}")
            args.clients = total
        elif args.clients is None:
            args.clients = 100
        if getattr(args, "party", None) and not (silos or pops):
            raise HflInputError(
                "cross-silo mode (--party) runs --silos (a process per silo) or "
                "--populations (a process per organisation)"
            )
        if silos and not args.label:
            raise HflInputError("--silos needs --label (the label column of the CSVs)")
        bounds = parse_bounds(args.feature_range)
        if bounds is not None and not silos:
            raise HflInputError("--feature-range applies to --silos only")
        if args.dataset.startswith("csv:"):  # workers may run elsewhere: an absolute path
            args.dataset = "csv:" + str(Path(args.dataset[4:]).expanduser().absolute())
        warning = check_cohort(args, len(silos) or args.clients, bool(silos))
        if not silos:
            # the driver runs as the server, which holds the test set: its shapes are public
            _, xte, ytr, yte = split(args.dataset, args.label, args.seed)
            n_features, n_classes = xte.shape[1], int(max(ytr.max(), yte.max()) + 1)
            partition_rows(args.partition, ytr, args.clients, args.seed)  # checks the spec
            build_model(args.model, n_features, n_classes)
    except HflInputError as e:
        print(f"cipherray run hfl: {e}", file=sys.stderr)
        return 2
    if warning:
        print(warning, file=sys.stderr)
    _quiet_accounting_logs()
    from cipherray.protocols.dp.accountant import PrivacyBudgetExceeded
    from cipherray.protocols.secagg.errors import SecAggError
    from cipherray.workloads.hfl.strategy import NotEnoughClientsError

    try:
        report = run(args, silos, bounds, pops)
    except (SecAggError, PrivacyBudgetExceeded, NotEnoughClientsError) as e:
        # named protocol errors raised at the driver (the runtime's own errors, e.g. a
        # failed step, reach `cipherray.cli`, which prints them the same way)
        print(f"cipherray hfl: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if report is None:
        return 2
    out = Path(args.out)
    write_report(out, report)
    print(f"final accuracy {_fmt(report['final_accuracy'])} after {len(report['rounds'])} "
          f"rounds; report: {out / 'report.json'}, {out / 'report.md'}, "
          f"{out / 'learning_curve.png'}")  # fmt: skip
    return 0


def _quiet_accounting_logs() -> None:
    """dp-accounting's RDP search logs a warning for every order it skips."""
    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)


def run(
    args: argparse.Namespace, silos: list[tuple[str, str]], bounds: Any,
    pops: list[tuple[str, int]] | None = None,
) -> dict | None:  # fmt: skip
    """The training run and its report (None after a silo's input error, printed).
    `pops`: the populations per organisation (else one population, `--clients`)."""
    import cipherray as cr
    from cipherray.runtime.errors import PartyError
    from cipherray.workloads.hfl import ClientSampler, FedAdam, FedAvg, FedProx
    from cipherray.workloads.hfl.dp import DP
    from cipherray.workloads.hfl.train import SecAgg, train

    sampler = ClientSampler(fraction=args.fraction if args.fraction < 1 else None, seed=args.seed)
    strategies = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}
    # cross-device: the accuracy is the server's test set (evaluate_fn), no federated
    # evaluation; cross-silo: federated evaluation on the silos' held-out rows
    strategy = strategies[args.strategy](sampler=sampler, evaluate_every=1 if silos else 0)
    privacy = None
    if args.dp_epsilon is not None:
        # distributed noise: each client adds its share for the clients expected to
        # send their masked input; the simulated dropout (per stage, as SecAgg+ plans
        # for) is planned for, so the realised noise keeps the calibrated multiplier
        planned = 1 - (1 - args.dropout) ** 2 if args.secagg else 0.0
        privacy = DP(mode=args.dp_mode or "central", clip=args.clip,
                     target_epsilon=args.dp_epsilon, delta=args.dp_delta,
                     rounds=args.rounds, planned_dropout=planned)  # fmt: skip
    secagg = SecAgg(dropout=args.dropout) if args.secagg else None
    config = {"lr": args.lr, "batch_size": args.batch_size, "local_epochs": args.local_epochs}
    names = [n for n, _ in silos]
    pops = pops or ([] if silos else [("clients", args.clients)])
    populations = {n: {"clients": k, "workers": args.workers} for n, k in pops} or None
    t0 = time.perf_counter()
    from cipherray.cli import silo_options

    # cross-silo: this process runs the server, one silo or one organisation's population
    silo = silo_options(args)
    with cr.init(["server", *names], backend=args.backend, address=args.address,
                 network=_network(args.network), driver_as=None if silo else "server",
                 timeout_s=args.timeout, populations=populations, **silo) as rt:  # fmt: skip
        if silos:
            clients = [rt.party(n) for n in names]
            try:
                schemas = _silo_schemas(rt, clients, [p for _, p in silos], args.label)
            except (HflInputError, PartyError) as e:
                print(f"cipherray run hfl: {e}", file=sys.stderr)
                return None
            features, classes = schemas
            model = build_model(args.model, len(features), len(classes))
            data = functools.partial(
                silo_data, paths=[p for _, p in silos], label=args.label, features=features,
                classes=classes, bounds=bounds, seed=args.seed,
            )  # fmt: skip
            evaluate_fn = None
        else:
            clients = [rt.population(n) for n, _ in pops]
            _, xte, ytr, yte = split(args.dataset, args.label, args.seed)
            model = build_model(args.model, xte.shape[1], int(max(ytr.max(), yte.max()) + 1))
            data = functools.partial(population_data, dataset=args.dataset, label=args.label,
                                     spec=args.partition, n_clients=args.clients, seed=args.seed)  # fmt: skip
            evaluate_fn = Evaluate(model, args.dataset, args.label, args.seed)
        result = train(
            rt, rt.party("server"), clients, args.rounds, model=model, client_data=data,
            strategy=strategy, config=config, secagg=secagg, privacy=privacy,
            evaluate_fn=evaluate_fn, seed=args.seed, timeout_s=args.timeout,
            progress=progress_bar(args.rounds, not args.no_progress),
        )  # fmt: skip
    rounds = [
        {"round": h["round"], "loss": h.get("loss"), "accuracy": h.get("accuracy"),
         "seconds": h["seconds"], "clients": h["clients"], "included": h["included"],
         "dropped": h["dropped"],
         **{k: h[k] for k in ("epsilon", "epsilon_round", "noise_multiplier") if k in h}}
        for h in result.history
    ]  # fmt: skip
    settings = {k: v for k, v in vars(args).items() if k not in ("command", "workload_name")}
    if args.dp_epsilon is not None:
        settings["dp_mode"] = args.dp_mode or "central"
    report: dict[str, Any] = {
        "settings": settings,
        "rounds": rounds,
        "final_accuracy": rounds[-1]["accuracy"] if rounds else None,
        "accuracy_on": "the silos' held-out rows (federated evaluation)"
        if silos
        else f"the server's held-out test set ({TEST_FRACTION:.0%} of the rows)",
        "seconds_total": time.perf_counter() - t0,
        "secagg": result.secagg,
        "stopped": result.stopped,
    }
    if silos:
        report["silos"] = {"features": len(features), "classes": classes}
    if result.privacy:
        report.update({k: result.privacy[k] for k in ("epsilon", "delta", "noise_multiplier",
                                                      "sampling_rate", "clipping_norm")})  # fmt: skip
        report["dp_mode"] = result.privacy["mode"]
        report["target_epsilon"] = result.privacy["target_epsilon"]
        report["accountant"] = result.privacy["accountant"]
    return report


def _network(value: str | None) -> Any:
    from cipherray.cli import network

    return network(value)


def _silo_schemas(rt: Any, silos: list, paths: list[str], label: str) -> tuple[list, list]:
    """Each silo publishes its CSV's schema; they must agree on the feature columns. The
    classes are the union of the silos' label values."""
    refs = [s(silo_schema, declare="public")(path, label) for s, path in zip(silos, paths)]
    schemas = [rt.get(r) for r in refs]
    features = schemas[0]["features"]
    for s, sch in zip(silos[1:], schemas[1:]):
        if sch["features"] != features:
            raise HflInputError(
                f"silo {s.name}'s feature columns differ from silo {silos[0].name}'s: "
                f"{sch['features']} vs {features}"
            )
    if not features:
        raise HflInputError(f"silo {silos[0].name}'s CSV has no numeric feature column")
    return features, sorted_classes({v for sch in schemas for v in sch["labels"]})
