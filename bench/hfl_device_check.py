"""The HFL core's CuPy path on a GPU machine, in one device call.

    python bench/hfl_device_check.py [--out $OUT]     (on the device machine)
    python bench/hfl_device_check.py --host-dry-run  (here: numpy stands in for cupy)

The device image has numpy, cupy and scikit-learn but not Ray, so `cipherray` is made
importable without running `cipherray/__init__.py` (which loads the runtime). Where
`cryptography` is missing too, `protocols.prg` is replaced by a SHAKE-256 stand-in with
the same interface: the seeded streams differ from AES-CTR's, which only changes which
rows are shuffled where, and both array modules draw the same ones.

1. `fit_batched` (softmax regression, MLP with FedProx) and `run_rounds_batched`
   (FedYogi, uneven clients) give the same parameters under cupy as under numpy (1e-10).
2. bench/hfl_core.py with --xp cupy, then with --xp numpy on the device's CPU.
3. `chunk.fit` (the population step of `hfl.train`) with device="gpu" equals device="cpu"
   for a 1000-client chunk (pending: not yet run on a GPU).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import runpy
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def importable_without_runtime() -> None:
    for name, sub in (("cipherray", ""), ("cipherray.protocols", "protocols")):
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(ROOT / "cipherray" / sub)]
            sys.modules[name] = pkg
    try:
        import cryptography  # noqa: F401
    except ImportError:
        print("cryptography missing: protocols.prg replaced by a SHAKE-256 stand-in")
        prg = types.ModuleType("cipherray.protocols.prg")
        prg.SEED_BYTES = 32
        prg.new_seed = lambda: os.urandom(32)

        def random_ring(seed, shape, stream=0):
            shape = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
            n = int(np.prod(shape, dtype=np.int64))
            h = hashlib.shake_256(seed + int(stream).to_bytes(8, "big"))
            return np.frombuffer(h.digest(8 * n), dtype="<u8").reshape(shape).copy()

        prg.random_ring = random_ring
        sys.modules["cipherray.protocols.prg"] = prg


def bare_packages() -> None:
    """Packages whose __init__ pulls in what the device lacks (dp-accounting for the DP
    package, cryptography for SecAgg's) are registered without running it: the chunk
    code needs only their numpy modules."""
    for name, sub in (("cipherray.protocols.dp", "protocols/dp"),
                      ("cipherray.protocols.secagg", "protocols/secagg")):  # fmt: skip
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(ROOT / "cipherray" / sub)]
            sys.modules[name] = pkg


def digits_chunk(cids):
    from sklearn.datasets import load_digits

    from cipherray.workloads.hfl import pad

    X, y = load_digits(return_X_y=True)
    idx = (np.asarray(cids)[:, None] * 100 + np.arange(100)[None, :]) % len(y)
    return pad(list(X[idx] / 16.0), list(y[idx]))


def check_chunk_fit(gpu: str) -> None:
    """3. One population chunk (1000 clients x 100 rows) trained through `chunk.fit` with
    device=`gpu` equals device="cpu" (the runtime's step function, without the runtime)."""
    import time

    bare_packages()
    from cipherray.workloads.hfl import SoftmaxRegression, chunk, updates

    model = SoftmaxRegression(64, 10)
    cids = np.arange(1000)
    params = model.init(seed=1)
    totals, evals = [], []
    for device in ("cpu", gpu):
        state = chunk.build(cids, chunk.BatchedClients(model, digits_chunk, device))
        t0 = time.perf_counter()
        fit, state = chunk.fit(state, params, cids, {"lr": 0.1}, b"s" * 32,
                               updates.FedAvgUpdate(), 0.0, False)  # fmt: skip
        seconds = time.perf_counter() - t0
        ev, _ = chunk.evaluate(state, params, cids, {})
        print(f"chunk.fit on {device} ({state.xp.__name__}): {seconds:.3f} s for 1000 clients")
        fit, ev = chunk.ChunkFit.from_message(fit), chunk.ChunkEval.from_message(ev)
        totals.append(fit.total)
        evals.append(ev.accuracy_sum / ev.examples)
    worst = float(np.abs(totals[0] - totals[1]).max())
    print(f"max |{gpu} - cpu| of the chunk's update sum: {worst:.3g}; accuracy {evals}")
    assert worst < 1e-8 * max(1.0, float(np.abs(totals[0]).max())), worst


def check_same_results(xp) -> None:
    from sklearn.datasets import load_digits

    from cipherray.workloads.hfl import (
        MLP,
        ClientSampler,
        FedYogi,
        SoftmaxRegression,
        fit_batched,
        pad,
        partition,
        run_rounds_batched,
    )

    def host(a):
        return a.get() if hasattr(a, "get") else np.asarray(a)

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    parts = partition.dirichlet(y, 40, alpha=0.5, seed=0, min_rows=2)
    Xs, ys = [X[p] for p in parts], [y[p] for p in parts]
    worst = 0.0
    for model, mu in ((SoftmaxRegression(64, 10), 0.0), (MLP(64, 32, 10), 0.05)):
        start = model.init(seed=1)
        kw = dict(epochs=2, lr=0.2, batch_size=16, mu_prox=mu, seed=2)
        on_cpu = fit_batched(model, start, pad(Xs, ys), **kw)
        on_xp = fit_batched(model, [xp.asarray(p) for p in start], pad(Xs, ys, xp), xp=xp, **kw)
        worst = max(worst, *(float(np.abs(host(b) - a).max()) for a, b in zip(on_cpu, on_xp)))
    results = []
    for module in (np, xp):
        strategy = FedYogi(sampler=ClientSampler(fraction=0.5, seed=3))
        params, history = run_rounds_batched(
            strategy, SoftmaxRegression(64, 10), pad(Xs, ys, module), 5, seed=4, xp=module
        )
        results.append(([host(p) for p in params], history[-1]["accuracy"]))
    worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(results[0][0], results[1][0])))
    print(f"max |cupy - numpy| over fit_batched and 5 FedYogi rounds: {worst:.3g}")
    print(f"accuracy after 5 rounds: numpy {results[0][1]:.4f}, xp {results[1][1]:.4f}")
    assert worst < 1e-10, worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/out"))
    ap.add_argument("--host-dry-run", action="store_true")
    args = ap.parse_args()
    importable_without_runtime()
    if args.host_dry_run:
        check_same_results(np)
        check_chunk_fit("cpu")
        return
    import cupy

    check_same_results(cupy)
    check_chunk_fit("gpu")
    bench = str(ROOT / "bench" / "hfl_core.py")
    for xp_name, tag in (("cupy", "h200-cupy"), ("numpy", "h200-cpu")):
        sys.argv = [bench, "--xp", xp_name, "--tag", tag, "--out", args.out]
        runpy.run_path(bench, run_name="__main__")


if __name__ == "__main__":
    main()
