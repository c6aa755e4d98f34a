"""One party of the cross-silo workload tests, in its own process:

    python tests/silo_workload_peer.py WORKLOAD '{"party": ..., "addresses": {...}, "tls": DIR, ...}'

It runs WORKLOAD's job (the same job every party runs, Paillier values crossing as typed
messages) as that party on the inline backend and prints one JSON line: what this party
learned and its ledger, or the error (class, party, step) that ended it.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def _silo(cfg: dict) -> dict:
    return {
        "backend": "inline", "progress": False, "timeout_s": cfg["timeout"],
        "party": cfg["party"], "addresses": cfg["addresses"], "tls": cfg["tls"],
    }  # fmt: skip


def psi_sum(cfg: dict) -> dict:
    from cipherray.workloads.psi import job

    c = job.PsiConfig(
        inputs=cfg["inputs"], keys=["id"], out=cfg["out"], mode="sum", value="v", workers=1,
        insecure=True, paillier_bits=1024, **_silo(cfg),
    )  # fmt: skip
    r = job.run(c)
    return {"sum": r["sum"], "size": r["size"], "stats": r["stats"], "ledger": _ledger(r["ledger"])}


def vfl(cfg: dict) -> dict:
    from cipherray.workloads.vfl import job

    c = job.VflConfig(**cfg["vfl"], **_silo(cfg))
    r = job.run(c)
    keep = ("metrics", "history", "files", "model", "rows")
    return {**{k: r.get(k) for k in keep}, "ledger": _ledger(r.get("ledger"))}


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


JOBS = {"psi_sum": psi_sum, "vfl": vfl}


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
    print(json.dumps(_plain(out), default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
