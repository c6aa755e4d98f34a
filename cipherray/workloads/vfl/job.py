"""`cipherray run vfl`: vertical federated learning on the parties' own files.

A guest holds the labels and some features, one or more hosts hold other features of
the same customers under the same identifier column. The job:

1. checks the inputs (files exist, the guest's label column is there);
2. aligns the rows with our PSI (`workloads/psi`): every data party learns which of its
   own rows are in the intersection and writes them, in one common order, to its own
   folder; nobody else (not the arbiter, not the driver) learns the intersection;
3. each party loads its aligned rows, sorts them by identifier (the same order at every
   party, and in every run) and checks them (numeric, non-constant columns;
   the label binary for classification) — errors name the party and the file; each
   party standardises its own columns;
4. a test split by row position from a public seed (row counts are public metadata);
5. trains `hetero_lr` (Paillier, with or without an arbiter) or `secureboost`
   (encrypted gradient histograms);
6. collaborative prediction on every aligned row; the guest computes AUC, KS and
   accuracy (binary) or RMSE and R^2 (regression) on the test rows and writes
   `predictions.csv` (id, score, split), `report.json`, `report.md` and the ROC curve
   (`roc.csv`, and `roc.png` where matplotlib is installed);
7. each party writes the importance of its own features only (`importance_<party>.csv`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODELS = ("hetero_lr", "secureboost")


class VflInputError(ValueError):
    """Bad job input, naming the party and its file."""


@dataclass
class VflConfig:
    inputs: dict[str, str]  # party -> file; the guest's file has the label
    keys: list[str]
    label: str
    model: str = "hetero_lr"
    guest: str | None = None  # default: the first input
    arbiter: str | None = None  # hetero_lr: a third party that holds the key
    objective: str = "binary"  # secureboost: binary | regression
    out: str = "vfl_out"
    # hetero LR
    epochs: int = 10
    batch: int = 4096
    lr: float = 0.15
    l2: float = 0.0
    feature_bits: int = 8
    tol: float = 1e-4
    # SecureBoost
    trees: int = 10
    depth: int = 5
    bins: int = 32
    eta: float = 0.3
    lam: float = 1.0
    min_child_weight: float = 1.0
    guest_first_tree: bool = False
    # common
    key_bits: int = 2048
    insecure: bool = False  # smaller Paillier keys, tests only
    test_fraction: float = 0.2
    seed: int = 0
    workers: int = 1
    backend: str = "ray"
    address: str | None = None
    network: Any = None
    timeout_s: float = 3600.0
    progress: bool = True
    extra: dict = field(default_factory=dict)
    # cross-silo: this process runs one party (guest, host or arbiter); the others run
    # the same job with their own --party
    party: str | None = None
    addresses: dict | None = None  # {party: "host:port"} for every party
    tls: Any = None  # cr.TLS or the directory `cipherray certs` wrote


def _check(cfg: VflConfig) -> None:
    if len(cfg.inputs) < 2:
        raise VflInputError("vfl needs a guest and at least one host: --input PARTY=FILE twice")
    if cfg.model not in MODELS:
        raise VflInputError(f"--model must be one of {MODELS}, got {cfg.model!r}")
    if not cfg.keys:
        raise VflInputError("at least one --key column is required")
    if not cfg.label:
        raise VflInputError("--label COLUMN (in the guest's file) is required")
    guest = cfg.guest or next(iter(cfg.inputs))
    if guest not in cfg.inputs:
        raise VflInputError(f"guest '{guest}' is not one of the inputs {list(cfg.inputs)}")
    if cfg.arbiter is not None:
        if cfg.model != "hetero_lr":
            raise VflInputError("--arbiter is an option of --model hetero_lr")
        if cfg.arbiter in cfg.inputs:
            raise VflInputError(f"the arbiter '{cfg.arbiter}' must not hold data (it has --input)")
    if cfg.objective not in ("binary", "regression"):
        raise VflInputError(f"--objective must be binary or regression, got {cfg.objective!r}")
    if cfg.objective == "regression" and cfg.model == "hetero_lr":
        raise VflInputError("hetero_lr is a binary classifier; use --objective binary")
    if not 0.0 <= cfg.test_fraction < 1.0:
        raise VflInputError(f"--test-fraction must be in [0, 1), got {cfg.test_fraction}")
    for party, path in cfg.inputs.items():
        if not Path(path).is_file():
            raise VflInputError(f"party '{party}': input file {path} does not exist")


# -- party steps ---------------------------------------------------------------------------------
def _read(path: str) -> Any:
    import pandas as pd

    return pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)


def header_of(path: str) -> list[str]:
    """The column names of a party's file (public schema)."""
    import pandas as pd

    if str(path).endswith(".parquet"):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return list(pd.read_csv(path, nrows=0).columns)


def load_aligned(
    path: str, party: str, source: str, keys: list[str], label: str | None, objective: str
) -> tuple:
    """Step 3 at one party: its aligned rows as (ids, features, names, label or None),
    sorted by identifier (PSI writes them in a common but random order; sorted, a run's
    split and model do not depend on that shuffle).

    Columns are checked here, at the party, so that the error names the party and the
    file: every feature column numeric (NaN allowed for SecureBoost's missing values)
    and not constant; the label present and, for classification, 0/1."""
    df = _read(path)
    where = f"party '{party}' ({source})"
    if df.shape[0] == 0:
        raise VflInputError(f"{where}: no rows in common with the other parties")
    ids = df[keys].astype(str).agg("|".join, axis=1).to_numpy() if keys else None
    y = None
    if label is not None:
        if label not in df.columns:
            raise VflInputError(f"{where}: label column '{label}' is missing")
        y = df[label].to_numpy()
        if y.dtype.kind not in "biuf":
            raise VflInputError(f"{where}: label column '{label}' must be numeric")
        y = y.astype(np.float64)
        if np.isnan(y).any():
            raise VflInputError(f"{where}: label column '{label}' has missing values")
        if objective == "binary" and not set(np.unique(y).tolist()) <= {0.0, 1.0}:
            raise VflInputError(
                f"{where}: label column '{label}' must be 0/1 for binary classification, "
                f"got values {sorted(set(np.unique(y).tolist()))[:5]}"
            )
    feats = df.drop(columns=[c for c in (*keys, label) if c is not None and c in df.columns])
    if feats.shape[1] == 0:
        raise VflInputError(f"{where}: no feature columns besides the key and label")
    bad = [c for c in feats.columns if feats[c].dtype.kind not in "biuf"]
    if bad:
        raise VflInputError(f"{where}: non-numeric feature column(s) {bad[:5]}")
    x = feats.to_numpy(dtype=np.float64)
    const = [c for c, s in zip(feats.columns, np.nanstd(x, axis=0)) if not s > 0]
    if const:
        raise VflInputError(f"{where}: constant feature column(s) {const[:5]}")
    if ids is not None:  # the identifiers' order: the same at every party, and the same
        order = np.argsort(ids, kind="stable")  # in every run (PSI's order is random)
        ids, x = ids[order], x[order]
        y = None if y is None else y[order]
    return ids, x, [str(c) for c in feats.columns], y


def standardise(x: np.ndarray) -> np.ndarray:
    """A party's own columns scaled to mean 0, std 1 (missing values kept as NaN)."""
    mu = np.nanmean(x, axis=0)
    sd = np.nanstd(x, axis=0)
    return (x - mu) / np.where(sd > 0, sd, 1.0)


def split_positions(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row positions of the aligned table from a public seed (every party
    computes the same split itself; row positions are not sensitive after alignment)."""
    from cipherray.protocols.prg import public_permutation

    perm = public_permutation(f"vfl/split/{seed}", n)
    k = int(round(n * test_fraction))
    return np.sort(perm[k:]), np.sort(perm[:k])


def _rows(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return x[pos]


def _count(x: Any) -> int:
    return int(len(x))


def _x_of(loaded: tuple) -> np.ndarray:
    return loaded[1]


def _y_of(loaded: tuple) -> np.ndarray:
    return loaded[3]


def _names_of(loaded: tuple) -> list[str]:
    return loaded[2]


def auc_score(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve by ranks (ties get their average rank)."""
    y = np.asarray(y, dtype=bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    ss = np.asarray(s)[order]
    i = 0
    while i < len(ss):  # average ranks over ties (runs of equal scores)
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def roc_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold."""
    y = np.asarray(y, dtype=bool)
    order = np.argsort(-np.asarray(s), kind="mergesort")
    ys, ss = y[order], np.asarray(s)[order]
    last = np.r_[np.nonzero(np.diff(ss))[0], len(ss) - 1]
    tp = np.cumsum(ys)[last]
    fp = np.cumsum(~ys)[last]
    tpr = np.r_[0.0, tp / max(1, y.sum())]
    fpr = np.r_[0.0, fp / max(1, (~y).sum())]
    return fpr, tpr


def guest_metrics(scores: np.ndarray, y: np.ndarray, test: np.ndarray, objective: str) -> dict:
    """Step 6 at the guest: metrics on the test rows (all rows when there is no split)."""
    pos = test if len(test) else np.arange(len(y))
    s, t = np.asarray(scores)[pos], y[pos]
    if objective == "regression":
        err = s - t
        var = float(np.var(t))
        return {
            "rmse": float(np.sqrt(np.mean(err**2))),
            "r2": float(1.0 - np.mean(err**2) / var) if var > 0 else float("nan"),
            "rows_scored": int(len(pos)),
        }
    fpr, tpr = roc_points(t, s)
    return {
        "auc": auc_score(t, s),
        "ks": float(np.max(tpr - fpr)),
        "accuracy": float(np.mean((s >= 0.5) == (t >= 0.5))),
        "rows_scored": int(len(pos)),
    }


def write_guest_outputs(
    out: str, ids: np.ndarray, scores: np.ndarray, y: np.ndarray, test: np.ndarray,
    objective: str, report: dict,
) -> dict:  # fmt: skip
    """Step 6 at the guest: predictions.csv, report.json, report.md, roc.csv/roc.png."""
    import pandas as pd

    from cipherray.workloads import files

    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    split = np.full(len(ids), "train", dtype=object)
    split[test] = "test"
    with files.atomic_output(d / "predictions.csv") as tmp:
        pd.DataFrame({"id": ids, "score": scores, "split": split}).to_csv(tmp, index=False)
    written = ["predictions.csv", "report.json", "report.md"]
    if objective == "binary":
        pos = test if len(test) else np.arange(len(y))
        fpr, tpr = roc_points(y[pos], np.asarray(scores)[pos])
        with files.atomic_output(d / "roc.csv") as tmp:
            pd.DataFrame({"fpr": fpr, "tpr": tpr}).to_csv(tmp, index=False)
        written.append("roc.csv")
        if _plot_roc(d / "roc.png", fpr, tpr, report):
            written.append("roc.png")
    report = {**report, "files": written}
    files.write_text(d / "report.json", json.dumps(report, indent=1, default=_plain))
    files.write_text(d / "report.md", render_markdown(report))
    return {"files": [str(d / w) for w in written]}


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else str(x)


def _plot_roc(path: Path, fpr: np.ndarray, tpr: np.ndarray, report: dict) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cipherray.workloads import files

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"{report['model']} (AUC {report['metrics']['auc']:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, test rows")
    ax.legend(loc="lower right")
    fig.tight_layout()
    with files.atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return True


def render_markdown(report: dict) -> str:
    m = report["metrics"]
    lines = [
        f"# Vertical FL: {report['model']}",
        "",
        f"- guest: {report['guest']} (labels, {report['features'][report['guest']]} features)",
        *(
            f"- host: {h} ({report['features'][h]} features, own importance in importance_{h}.csv)"
            for h in report["hosts"]
        ),
        *(
            [f"- arbiter: {report['arbiter']} (holds the Paillier key)"]
            if report["arbiter"]
            else []
        ),
        f"- aligned rows (PSI): {report['rows']:,}; train {report['train_rows']:,}, "
        f"test {report['test_rows']:,}",
        f"- Paillier key: {report['key_bits']} bits",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in m.items()),
        "",
        "| timing | seconds |",
        "|---|---|",
        f"| PSI alignment | {report['seconds_psi']:.2f} |",
        f"| training | {report['seconds_train']:.2f} |",
        f"| per {report['unit']} (mean) | {report['seconds_per_' + report['unit']]:.2f} |",
        f"| prediction | {report['seconds_predict']:.2f} |",
        "",
        f"Bytes between parties: {report['bytes']:,} (training {report['bytes_train']:,}).",
        "",
    ]
    return "\n".join(lines)


def write_importance(out: str, party: str, names: list[str], importance: Any) -> str:
    """Step 7 at one party: the importance of its own features (never sent anywhere)."""
    import pandas as pd

    from cipherray.workloads import files

    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(importance, pd.DataFrame):
        df = importance.copy()
        if "feature" in df.columns and np.issubdtype(df["feature"].dtype, np.integer):
            df["feature"] = [names[i] for i in df["feature"]]
        elif "feature" not in df.columns:
            df.insert(0, "feature", [names[i] for i in range(len(df))])
    elif isinstance(importance, dict):
        df = pd.DataFrame(
            {
                "feature": [names[int(k)] for k in importance],
                "importance": list(importance.values()),
            }
        )
    else:  # hetero LR: the party's own weights
        w = np.asarray(importance, dtype=np.float64).ravel()[: len(names)]
        df = pd.DataFrame({"feature": names, "weight": w, "importance": np.abs(w)})
    sort_col = "gain" if "gain" in df.columns else "importance"
    if sort_col in df.columns:
        df = df.sort_values(sort_col, ascending=False)
    path = d / f"importance_{party}.csv"
    with files.atomic_output(path) as tmp:
        df.to_csv(tmp, index=False)
    return str(path)


# -- the job ------------------------------------------------------------------------------------
def run(cfg: VflConfig, rt: Any = None) -> dict:
    """Run the job (steps in the module docstring); returns the report."""
    import cipherray as cr
    from cipherray.workloads import silo_options
    from cipherray.workloads.psi import job as psi

    _check(cfg)
    guest_name = cfg.guest or next(iter(cfg.inputs))
    host_names = [p for p in cfg.inputs if p != guest_name]
    t0 = time.perf_counter()
    own = rt is None
    if own:
        parties = {p: {"workers": cfg.workers} for p in cfg.inputs}
        if cfg.arbiter:
            parties[cfg.arbiter] = {"workers": 1}
        rt = cr.init(
            parties, address=cfg.address, backend=cfg.backend, network=cfg.network,
            timeout_s=cfg.timeout_s, **silo_options(cfg),
        )  # fmt: skip
    try:
        # 1. the label column must be in the guest's file (its header is public schema)
        guest = rt.party(guest_name)
        header = rt.get(guest(header_of, declare="public")(cfg.inputs[guest_name]))
        if cfg.label not in header:
            raise VflInputError(
                f"party '{guest_name}' ({cfg.inputs[guest_name]}): label column "
                f"'{cfg.label}' is missing"
            )
        # 2. PSI alignment: each data party writes its own intersecting rows
        aligned_dir = str(Path(cfg.out) / ".aligned")
        pcfg = psi.PsiConfig(
            inputs=dict(cfg.inputs), keys=list(cfg.keys), out=aligned_dir,
            workers=cfg.workers, timeout_s=cfg.timeout_s, progress=cfg.progress,
            paillier_bits=cfg.key_bits, insecure=cfg.insecure,
        )  # fmt: skip
        try:
            aligned = psi.run(pcfg, rt=rt)
        except psi.PsiInputError as e:
            raise VflInputError(str(e)) from e
        if aligned["size"] == 0:
            raise VflInputError(
                f"no rows in common: host(s) {host_names} share no '{'/'.join(cfg.keys)}' "
                f"value with guest '{guest_name}' ({cfg.inputs[guest_name]})"
            )
        t_psi = time.perf_counter() - t0
        bytes_psi = rt.ledger.total_bytes
        # 3. load and check the aligned rows at each party
        loaded = {}
        for p in cfg.inputs:
            party = rt.party(p)
            loaded[p] = party(load_aligned)(
                aligned["files"][p], p, cfg.inputs[p], list(cfg.keys),
                cfg.label if p == guest_name else None, cfg.objective,
            )  # fmt: skip
        x = {p: rt.party(p)(_x_of)(loaded[p]) for p in cfg.inputs}
        if cfg.model == "hetero_lr":
            x = {p: rt.party(p)(standardise)(x[p]) for p in cfg.inputs}
        y = guest(_y_of)(loaded[guest_name])
        n = int(aligned["size"])
        widths = {p: rt.get(rt.party(p)(_width, declare="public")(x[p])) for p in cfg.inputs}
        # 4. the split, computed by each party from the public seed
        train_pos, test_pos = split_positions(n, cfg.test_fraction, cfg.seed)
        xs_train = {p: rt.party(p)(_rows)(x[p], train_pos) for p in cfg.inputs}
        y_train = guest(_rows)(y, train_pos)
        hosts = [rt.party(h) for h in host_names]
        # 5. train
        t1 = time.perf_counter()
        b0 = rt.ledger.total_bytes
        model, unit, per_unit = _train(rt, cfg, guest, hosts, xs_train, y_train, host_names)
        t_train = time.perf_counter() - t1
        bytes_train = rt.ledger.total_bytes - b0
        # 6. prediction on every aligned row, metrics and outputs at the guest
        t2 = time.perf_counter()
        scores = model.predict(rt, x[guest_name], [x[h] for h in host_names])
        t_pred = time.perf_counter() - t2
        # the guest's results: the simulation driver reads them as published; cross-silo
        # the guest's process reads them as its own, no other process receives them
        result = "public" if rt.here is None else None
        at_guest = rt.is_local(guest)
        metrics = guest(guest_metrics, declare=result)(scores, y, test_pos, cfg.objective)
        metrics = rt.get(metrics) if at_guest else {}
        report = {
            "model": cfg.model,
            "objective": cfg.objective,
            "guest": guest_name,
            "hosts": host_names,
            "arbiter": cfg.arbiter,
            "rows": n,
            "train_rows": int(len(train_pos)),
            "test_rows": int(len(test_pos)),
            "features": widths,
            "key_bits": cfg.key_bits,
            "metrics": metrics,
            **metrics,
            "unit": unit,
            f"seconds_per_{unit}": float(np.mean(per_unit)) if per_unit else float("nan"),
            f"seconds_per_{unit}_all": [float(s) for s in per_unit],
            "seconds_psi": t_psi,
            "seconds_train": t_train,
            "seconds_predict": t_pred,
            "bytes": rt.ledger.total_bytes,
            "bytes_psi": bytes_psi,
            "bytes_train": bytes_train,
            "params": _params(cfg),
        }
        report["seconds"] = time.perf_counter() - t0
        ids = guest(_ids_of)(loaded[guest_name])
        done = guest(write_guest_outputs, declare=result)(
            cfg.out, ids, scores, y, test_pos, cfg.objective, report
        )
        report["files"] = rt.get(done)["files"] if at_guest else []
        # 7. importance of each party's own features, written by that party
        for p in cfg.inputs:
            party = rt.party(p)
            imp = model.importance_ref(rt, party)
            path = party(write_importance, declare=result)(
                cfg.out, p, party(_names_of)(loaded[p]), imp
            )
            if rt.is_local(party):
                report["files"].append(rt.get(path))
        report["party"] = rt.here
        report["ledger"] = rt.ledger.summary()
        report["ledger_text"] = rt.ledger.report()
        return report
    finally:
        if own:
            rt.shutdown()


def _width(x: np.ndarray) -> int:
    return int(x.shape[1])


def _ids_of(loaded: tuple) -> np.ndarray:
    return loaded[0]


def _params(cfg: VflConfig) -> dict:
    if cfg.model == "hetero_lr":
        keys = ("epochs", "batch", "lr", "l2", "feature_bits", "tol", "arbiter")
    else:
        keys = ("trees", "depth", "bins", "eta", "lam", "min_child_weight", "guest_first_tree")
    return {k: getattr(cfg, k) for k in (*keys, "key_bits", "test_fraction", "seed")}


class _Trained:
    """The trained model with a uniform face for the job: predict, importance per party."""

    def __init__(self, model: Any, kind: str):
        self.model, self.kind = model, kind

    def predict(self, rt: Any, xg: Any, xh: list) -> Any:
        return self.model.predict(rt, xg, xh)

    def importance_ref(self, rt: Any, party: Any) -> Any:
        if self.kind == "hetero_lr":
            return self.model.weights_at(party)
        return self.model.importance_at(party)


def _train(
    rt: Any, cfg: VflConfig, guest: Any, hosts: list, xs: dict, y: Any, host_names: list[str]
) -> tuple[_Trained, str, list[float]]:
    xg, xh = xs[guest.name], [xs[h] for h in host_names]
    if cfg.model == "hetero_lr":
        from cipherray.workloads.vfl import hetero_lr

        arbiter = rt.party(cfg.arbiter) if cfg.arbiter else None
        model = hetero_lr.train(
            rt, guest, hosts, xg, y, xh, arbiter=arbiter, epochs=cfg.epochs,
            batch_size=cfg.batch, lr=cfg.lr, l2=cfg.l2, key_bits=cfg.key_bits,
            insecure=cfg.insecure, feature_bits=cfg.feature_bits, tol=cfg.tol, seed=cfg.seed,
            progress=cfg.progress,
        )  # fmt: skip
        return _Trained(model, "hetero_lr"), "epoch", list(model.seconds_per_epoch)
    from cipherray.workloads.vfl import secureboost

    model = secureboost.train(
        rt, guest, hosts, xg, y, xh, trees=cfg.trees, depth=cfg.depth, lr=cfg.eta,
        lam=cfg.lam, min_child_weight=cfg.min_child_weight, bins=cfg.bins,
        objective=cfg.objective, guest_first_tree=cfg.guest_first_tree, key_bits=cfg.key_bits,
        insecure=cfg.insecure, progress=cfg.progress,
    )  # fmt: skip
    return _Trained(model, "secureboost"), "tree", list(model.seconds_per_tree)


# -- `cipherray run vfl` --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cipherray.cli import add_runtime_arguments

    parser.add_argument("--input", action="append", help="PARTY=FILE (CSV or Parquet), repeat")
    parser.add_argument("--key", action="append", help="identifier column, repeat for composite")
    parser.add_argument("--label", default=None, help="label column in the guest's file")
    parser.add_argument("--model", default="hetero_lr", choices=list(MODELS))
    parser.add_argument("--guest", default=None, help="the party with the labels (first input)")
    parser.add_argument("--arbiter", default=None, help="hetero_lr: a third party holds the key")
    parser.add_argument("--objective", default="binary", choices=["binary", "regression"])
    parser.add_argument("--out", default="vfl_out", help="output folder")
    parser.add_argument(
        "--demo", action="store_true", help="write demo bank/insurer files under OUT/demo, use them"
    )
    g = parser.add_argument_group("hetero_lr")
    g.add_argument("--epochs", type=int, default=10)
    g.add_argument("--batch", type=int, default=4096)
    g.add_argument("--lr", type=float, default=0.15)
    g.add_argument("--l2", type=float, default=0.0)
    g.add_argument("--feature-bits", type=int, default=8)
    g.add_argument("--tol", type=float, default=1e-4)
    s = parser.add_argument_group("secureboost")
    s.add_argument("--trees", type=int, default=10)
    s.add_argument("--depth", type=int, default=5)
    s.add_argument("--bins", type=int, default=32)
    s.add_argument("--eta", type=float, default=0.3, help="learning rate (shrinkage)")
    s.add_argument("--lam", type=float, default=1.0, help="L2 on leaf weights (lambda)")
    s.add_argument("--min-child-weight", type=float, default=1.0)
    s.add_argument("--guest-first-tree", action="store_true")
    c = parser.add_argument_group("common")
    c.add_argument("--key-bits", type=int, default=2048, help="Paillier modulus bits")
    c.add_argument("--insecure", action="store_true", help="allow small keys (tests only)")
    c.add_argument("--test-fraction", type=float, default=0.2)
    c.add_argument("--seed", type=int, default=0)
    add_runtime_arguments(parser, workers=1, graph=False, silo=True)


def main(args: argparse.Namespace) -> int:
    from cipherray.cli import runtime_options, write_json
    from cipherray.workloads.psi.job import PsiInputError, parse_inputs

    try:
        if args.demo and not args.input:
            from cipherray.workloads.vfl.demo import write_demo

            paths = write_demo(str(Path(args.out) / "demo"))
            inputs, keys, label = paths, ["id"], "default"
        else:
            inputs, keys, label = parse_inputs(args.input or []), args.key or [], args.label
        cfg = VflConfig(
            inputs=inputs, keys=keys, label=label, model=args.model, guest=args.guest,
            arbiter=args.arbiter, objective=args.objective, out=args.out, epochs=args.epochs,
            batch=args.batch, lr=args.lr, l2=args.l2, feature_bits=args.feature_bits,
            tol=args.tol, trees=args.trees, depth=args.depth, bins=args.bins, eta=args.eta,
            lam=args.lam, min_child_weight=args.min_child_weight,
            guest_first_tree=args.guest_first_tree, key_bits=args.key_bits,
            insecure=args.insecure, test_fraction=args.test_fraction, seed=args.seed,
            **runtime_options(args),
        )  # fmt: skip
        report = run(cfg)
    except (VflInputError, PsiInputError) as e:
        print(f"cipherray vfl: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # bad hyper-parameters, raised by the training protocols
        print(f"cipherray vfl: {e}", file=sys.stderr)
        return 2
    m = report["metrics"]
    unit = report["unit"]
    print(
        f"{report['model']}: {report['rows']:,} aligned rows (guest {report['guest']}, "
        f"hosts {', '.join(report['hosts'])}); test rows {report['test_rows']:,}"
    )
    print("  " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
    print(
        f"  {report['seconds_per_' + unit]:.2f} s per {unit}; training {report['seconds_train']:.1f} s;"
        f" {report['bytes']:,} bytes between parties"
    )
    for f in report["files"]:
        print(f"  -> {f}")
    if args.json:
        keep = {k: v for k, v in report.items() if k not in ("ledger_text", "ledger")}
        keep["ledger"] = report["ledger"].to_dict(orient="records")
        write_json(args.json, keep)
    return 0
