"""One party of the cross-silo tests, in its own process:

    python tests/silo_peer.py ROLE '{"party": ..., "addresses": {...}, "tls": DIR, ...}'

It starts its `Transport`, prints ``ready``, plays ROLE and prints one JSON line: the
role's result, or the error (class, party, step) that ended it.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from cipherray.runtime.errors import CipherrayError
from cipherray.runtime.silo import TLS
from cipherray.runtime.silo.transport import Transport


def echo(t: Transport, cfg: dict) -> dict:
    """Receive m/i from `src` and send it back as r/i, `n` times."""
    for i in range(cfg["n"]):
        v = t.recv(cfg["src"], f"m/{i}")
        t.send(cfg["src"], f"r/{i}", v)
    return {"echoed": cfg["n"]}


def ring(t: Transport, cfg: dict) -> dict:
    """Send this party's vector to the next party, receive the previous one's."""
    order = sorted(t.addresses)
    i = order.index(t.party)
    nxt, prev = order[(i + 1) % len(order)], order[i - 1]
    mine = np.arange(cfg["size"], dtype=np.int64) * (i + 1)
    fut = t.send_async(nxt, "ring", mine)
    got = t.recv(prev, "ring")
    fut.result()
    return {"from": prev, "sum": int(got.sum())}


def wait(t: Transport, cfg: dict) -> dict:
    """Wait for a message that never comes (a failure broadcast ends it)."""
    t0 = time.monotonic()
    try:
        t.recv(cfg["src"], "never")
    except CipherrayError as e:
        return {"error": type(e).__name__, "party": e.party, "after_s": time.monotonic() - t0}
    return {}


def idle(t: Transport, cfg: dict) -> dict:
    time.sleep(cfg.get("sleep", 60))
    return {}


ROLES = {"echo": echo, "ring": ring, "wait": wait, "idle": idle}


def main() -> int:
    role, cfg = sys.argv[1], json.loads(sys.argv[2])
    t = Transport(
        cfg["party"],
        cfg["addresses"],
        TLS.from_dir(cfg["tls"], cfg["party"]),
        job=cfg.get("job", "test"),
        timeout_s=cfg.get("timeout", 20),
        chunk_bytes=cfg.get("chunk", 1 << 20),
    ).start()
    print("ready", flush=True)
    try:
        out = ROLES[role](t, cfg)
    except CipherrayError as e:
        out = {"error": type(e).__name__, "party": getattr(e, "party", None), "msg": str(e)}
    print(json.dumps(out), flush=True)
    t.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
