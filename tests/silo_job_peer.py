"""One party of the cross-silo runtime tests, in its own process:

    python tests/silo_job_peer.py WORKLOAD '{"party": ..., "addresses": {...}, "tls": DIR, ...}'

It runs WORKLOAD's job (the same script every party runs) as that party on the inline
backend and prints one JSON line: what this party learned and its ledger, or the error
(class, party, step) that ended it.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def stats(cfg: dict) -> dict:
    from cipherray.workloads import stats as job

    c = job.StatsConfig(
        hospitals=cfg["parties"], backend=cfg.get("backend", "inline"), progress=False, timeout_s=cfg["timeout"],
        party=cfg["party"], addresses=cfg["addresses"], tls=cfg["tls"],
    )  # fmt: skip
    report = job.run(c)
    result = report["result"]
    return {
        "result": None if result is None else result.to_dict(orient="list"),
        "ledger": _ledger(report["ledger"]),
    }


def psi(cfg: dict) -> dict:
    from cipherray.workloads.psi import job

    c = job.PsiConfig(
        inputs=cfg["inputs"], keys=["id"], out=cfg["out"], backend=cfg.get("backend", "inline"), progress=False,
        workers=1, timeout_s=cfg["timeout"], party=cfg["party"], addresses=cfg["addresses"],
        tls=cfg["tls"],
    )  # fmt: skip
    report = job.run(c)
    return {
        "size": report["size"],
        "files": report["files"],
        "stats": report["stats"],
        "ledger": _ledger(report["ledger"]),
    }


def logreg(cfg: dict) -> dict:
    from cipherray.workloads.vfl import ss_logreg

    c = ss_logreg.VflLogregConfig(
        epochs=cfg.get("epochs", 2), backend=cfg.get("backend", "inline"), provider=cfg.get("provider", "ot"), timeout_s=cfg["timeout"],
        party=cfg["party"], addresses=cfg["addresses"], tls=cfg["tls"],
    )  # fmt: skip
    r = ss_logreg.run(c)
    return {"accuracy": r["accuracy"], "w": r["w"], "b": r["b"], "bytes": r["bytes"]}


def idle(cfg: dict) -> dict:
    """Join the job, then do nothing (the test kills this process)."""
    import cipherray as cr

    rt = cr.init(party=cfg["party"], addresses=cfg["addresses"], tls=cfg["tls"], backend="inline")
    print("joined", flush=True)
    time.sleep(cfg.get("sleep", 120))
    rt.shutdown()
    return {}


def _ledger(df) -> list:
    return [] if df is None or len(df) == 0 else json.loads(df.to_json(orient="records"))


def _plain(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


JOBS = {"stats": stats, "psi": psi, "logreg": logreg, "idle": idle}


def main() -> int:
    from cipherray.runtime.errors import CipherrayError

    name, cfg = sys.argv[1], json.loads(sys.argv[2])
    t0 = time.monotonic()
    try:
        out = JOBS[name](cfg)
    except CipherrayError as e:
        out = {"error": type(e).__name__, "party": getattr(e, "party", None),
               "step": getattr(e, "step", None), "message": str(e)}  # fmt: skip
    out["seconds"] = time.monotonic() - t0
    print(json.dumps(_plain(out)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
