"""Vertical logistic regression on secret shares (breast-cancer data, two parties).

alice holds 15 of the 30 features of scikit-learn's breast-cancer data, bob the other
15 and the labels. Correlated randomness: with `provider="dealer"` a third party, the
dealer, only supplies Beaver triples (the trusted-third-party setting); with
`provider="ot"` the two parties make every kind themselves by oblivious transfer
(`OTProvider`, no third party). `provider="paillier"` makes only the products'
triples, so it cannot train this model (the sigmoid compares).

Steps:
1. each party loads and standardises its own columns (stays at the party);
2. both share their columns into the MPC location; bob shares the labels;
3. the features are joined on shares (column concatenation, local);
4. mini-batch gradient descent on shares (`train` below, written with SharedRef
   operators: Beaver matmuls, the piecewise-linear sigmoid, a public learning rate);
5. accuracy is computed on shares and revealed to bob (the label holder); the model
   (w, b) is released to both parties.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cipherray.workloads import silo_options


@dataclass
class VflLogregConfig:
    epochs: int = 10
    lr: float = 1.0
    batch_size: int | None = None  # None: full batch
    backend: str = "ray"
    address: str | None = None
    network: Any = None
    provider: str = "dealer"  # or "ot" (two parties, no dealer, oblivious transfer)
    timeout_s: float = 600.0
    # cross-silo: this process runs one party; the others run the same job
    party: str | None = None
    addresses: dict | None = None  # {party: "host:port"} for every party
    tls: Any = None  # cr.TLS or the directory `cipherray certs` wrote


def load_columns(part: str) -> tuple[np.ndarray, np.ndarray | None]:
    """One party's standardised columns (and bob's labels)."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    cols = x[:, :15] if part == "alice" else x[:, 15:]
    cols = (cols - cols.mean(axis=0)) / cols.std(axis=0)
    return cols, (y.astype(np.float64) if part == "bob" else None)


def _features(part: str) -> np.ndarray:
    return load_columns(part)[0]


def _labels(part: str) -> np.ndarray:
    return load_columns(part)[1]


def batches(n: int, batch_size: int | None) -> list[tuple[int, int]]:
    """Consecutive row ranges of `batch_size` rows (default: one full batch)."""
    b = n if batch_size is None else int(batch_size)
    if b <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return [(s, min(n, s + b)) for s in range(0, n, b)]


def train(x: Any, y: Any, *, epochs: int, lr: float, batch_size: int | None = None) -> tuple:
    """Logistic regression by mini-batch gradient descent on shares.

    x: shared (n, d) features, y: shared (n,) labels in {0, 1}. Returns shared (w, b).
    The model is an aggregate of the rows (each update contracts the batch's rows), so
    the members may learn it; no per-row value is revealed on the way. The update
    divides by the batch size as an integer (a public scale), so the weights' scale
    stays small and their truncation before the next product rarely fails (README:
    "Fixed point")."""
    import cipherray as cr

    mpc = x.location
    n, d = x.shape
    x1 = cr.concatenate([x, mpc.public(np.ones((n, 1)))], axis=1)  # intercept column
    wb = mpc.zeros((d + 1,))
    for _epoch in range(epochs):
        for s, e in batches(n, batch_size):
            xb, yb = x1[s:e], y[s:e]
            p = (xb @ wb).sigmoid()
            grad = xb.T @ (p - yb)
            wb = wb - (grad * lr) / (e - s)
    return wb[:-1], wb[-1:]


def run(cfg: VflLogregConfig | None = None, rt: Any = None) -> dict:
    import cipherray as cr

    cfg = cfg or VflLogregConfig()
    own = rt is None
    t0 = time.perf_counter()
    if own:
        parties = ["alice", "bob"] + (["dealer"] if cfg.provider == "dealer" else [])
        rt = cr.init(
            parties,
            address=cfg.address,
            backend=cfg.backend,
            network=cfg.network,
            timeout_s=cfg.timeout_s,
            **silo_options(cfg),
        )
    try:
        alice, bob = rt.party("alice"), rt.party("bob")
        if cfg.provider == "dealer":
            mpc = rt.mpc(alice, bob, dealer="dealer")
        else:
            mpc = rt.mpc(alice, bob, provider=cfg.provider)
        # 1-2. load at each party, share
        xa = alice(_features)("alice").to(mpc)
        xb = bob(_features)("bob").to(mpc)
        y = bob(_labels)("bob").to(mpc)
        # 3. join the columns on shares
        x = cr.concatenate([xa, xb], axis=1)
        n, d = x.shape
        t_setup = time.perf_counter() - t0
        # 4. train
        t1 = time.perf_counter()
        with rt.scope("train"):
            w, b = train(x, y, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size)
        # 5. accuracy on shares, revealed to the label holder; model to both
        with rt.scope("evaluate"):
            correct = ((x @ w + b) > 0) == y
            acc = correct.mean().reveal_to(bob)
            accuracy = float(rt.get(acc)) if rt.is_local(bob) else None
        t_train = time.perf_counter() - t1
        w_at, b_at = w.reveal_to(alice), b.reveal_to(alice)
        # cross-silo: each process reads what was revealed to its own party
        w_alice = rt.get(w_at) if rt.is_local(alice) else None
        b_alice = rt.get(b_at) if rt.is_local(alice) else None
        ledger = rt.ledger
        return {
            "accuracy": accuracy,
            "w": w_alice,
            "b": None if b_alice is None else float(b_alice[0]),
            "samples": n,
            "features": d,
            "epochs": cfg.epochs,
            "seconds_setup": t_setup,
            "seconds_train": t_train,
            "seconds_per_epoch": t_train / max(cfg.epochs, 1),
            "bytes": ledger.total_bytes,
            "rounds": ledger.critical_rounds,
            "network_s": ledger.network_s,
            "ledger_text": ledger.report(),
        }
    finally:
        if own:
            rt.shutdown()


def plaintext_reference(cfg: VflLogregConfig | None = None) -> dict:
    """The same training in float64 numpy with the same sigmoid approximation."""
    from cipherray.protocols.mpc import logreg

    cfg = cfg or VflLogregConfig()
    xa, _ = load_columns("alice")
    xb, y = load_columns("bob")
    x = np.concatenate([xa, xb], axis=1)
    t = time.perf_counter()
    w, b = logreg.train_logreg_plaintext(
        x, y, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size
    )
    secs = time.perf_counter() - t
    acc = float((((x @ w + b) > 0) == (y > 0.5)).mean())
    return {"accuracy": acc, "w": w, "b": float(b), "seconds": secs}


# -- `cipherray run mpc-logreg` -----------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cipherray.cli import add_runtime_arguments, positive_int

    parser.add_argument("--epochs", type=positive_int, default=10, help="epochs (10)")
    parser.add_argument("--lr", type=float, default=1.0, help="learning rate (1.0)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="(full batch)")
    parser.add_argument(
        "--provider",
        default="dealer",
        choices=["dealer", "ot"],
        help="correlated randomness: a dealer party, or oblivious transfer between the two",
    )
    add_runtime_arguments(parser, workers=1, graph=False, silo=True)


def main(args: argparse.Namespace) -> int:
    from cipherray.cli import runtime_options, write_json

    options = runtime_options(args)
    options.pop("workers")
    options.pop("progress")
    cfg = VflLogregConfig(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, provider=args.provider,
        **options,
    )  # fmt: skip
    r = run(cfg)
    print(
        f"logistic regression on shares ({r['samples']} rows, {r['features']} features, "
        f"{r['epochs']} epochs, provider {cfg.provider})"
    )
    if r["accuracy"] is not None:
        print(f"accuracy (revealed to bob): {r['accuracy']:.4f}")
    if r["w"] is not None:
        print(f"model (revealed to alice): w = {np.round(r['w'], 4).tolist()}, b = {r['b']:.4f}")
    print(f"time per epoch: {r['seconds_per_epoch']:.3f} s")
    print("\nLedger (what crossed between parties):")
    print(r["ledger_text"])
    if args.json:
        keep = ("accuracy", "w", "b", "samples", "features", "epochs", "seconds_per_epoch")
        write_json(args.json, {k: r[k] for k in keep} | {"bytes": r["bytes"]})
    return 0
