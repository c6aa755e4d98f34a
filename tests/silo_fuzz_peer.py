"""A malicious party of the cross-silo message-check tests, in its own process:

    python tests/silo_fuzz_peer.py '{"party": "bank", "tls": DIR, "timeout": 20,
                                    "runs": [{"mutation": ..., "addresses": {...}}, ...]}'

For each run it joins a job with its own `cr.init` and runs `script` (the job every
party runs), but the messages it sends under the mutation's tag (``reveal#...``: its
share of an MPC open; ``share#...``: the seed of its input's sharing) are first changed
by `MUTATIONS` (another dtype, fewer or more elements, bytes, a tuple, a bad seed, or
frames cut short on the wire). It prints ``ready`` once imported, then one JSON line:
per run, the error that ended its script (class, party, step), or "ok".

`PROVIDER_MUTATIONS` change a provider's correlated randomness instead: a run with
"script": "ot" computes x y + (x + y)(x - y) with the OT provider (bank is member 0
and owns x: its base-OT point under ``offline/setup#``, its COT corrections of the
private product x y under ``private_mul/cot#``, its extension matrix and Gilboa
corrections of the triple under ``offline/mul#``), "script": "dealer" with bank as the dealer of insurer and
alice (its seeds under ``offline/setup#``, member 0's triple correction under
``offline/mul#``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

BANK_INPUT = np.array([1.5, -2.0, 3.25, 4.0])
INSURER_INPUT = np.array([0.5, 2.0, -1.25, 1.0])

MUTATIONS: dict[str, tuple[str, Any]] = {
    "none": ("", None),
    "dtype": ("reveal#", lambda v: v.astype(np.float64)),
    "truncated": ("reveal#", lambda v: v[:-1]),
    "oversized": ("reveal#", lambda v: np.tile(v, 4096)),
    "kind": ("reveal#", lambda v: v.tobytes()),
    "tuple": ("reveal#", lambda v: (v, v)),
    "frames": ("reveal#", "frames"),  # a message whose last frame never comes
    "short_seed": ("share#", lambda v: (v[0][:16], v[1])),
    "huge_shape": ("share#", lambda v: (v[0], (1 << 40,))),
}


def _only(dtype: Any, change: Any) -> Any:
    """`change` applied to arrays of `dtype` only (one message kind among a step's)."""
    return lambda v: change(v) if getattr(v, "dtype", None) == dtype else v


# name: (script, tag prefix, change)
PROVIDER_MUTATIONS: dict[str, tuple[str, str, Any]] = {
    "ot_none": ("ot", "", None),
    "dealer_none": ("dealer", "", None),
    "ot_base_truncated": ("ot", "offline/setup#", lambda v: v[:-1]),
    "ot_private_cot_truncated": ("ot", "private_mul/cot#", lambda v: v[:-1]),
    "ot_extend_oversized": ("ot", "offline/mul#", _only(np.uint8, lambda v: np.tile(v, 8))),
    "ot_cot_dtype": ("ot", "offline/mul#", _only(np.uint64, lambda v: v.view(np.int64))),
    "dealer_seed_truncated": ("dealer", "offline/setup#", lambda v: v[:16]),
    "dealer_triple_truncated": ("dealer", "offline/mul#", lambda v: v[:-1]),
    "dealer_triple_kind": ("dealer", "offline/mul#", lambda v: v.tobytes()),
}


def _bank_input() -> np.ndarray:
    return BANK_INPUT.copy()


def _insurer_input() -> np.ndarray:
    return INSURER_INPUT.copy()


def _count(x: np.ndarray) -> int:
    return int(np.size(x))


def script(rt: Any, refs: dict) -> Any:
    """The job every party runs; `refs` gets each ref as it is made (for the tests to
    look at the state a failure left). Returns the published result (every party)."""
    bank, insurer = rt.party("bank"), rt.party("insurer")
    mpc = rt.mpc(bank, insurer)
    rt.policy.grant(owner=bank, to=insurer, allow="plaintext")
    refs["kept"] = insurer(np.arange)(5)  # insurer's own state, unrelated to bank
    x = bank(_bank_input)().to(mpc)
    y = insurer(_insurer_input)().to(mpc)
    refs["total"] = (x + y).reveal_to(insurer)
    refs["done"] = insurer(_count, declare="public")(refs["total"])
    return rt.get(refs["done"])


def product_script(provider: str, rt: Any, refs: dict) -> Any:
    """x * y revealed to insurer, with the OT provider (bank, insurer) or bank as the
    dealer of (insurer, alice): the correlated randomness comes from `provider`."""
    bank, insurer = rt.party("bank"), rt.party("insurer")
    if provider == "ot":
        mpc, owner = rt.mpc(bank, insurer, provider="ot"), bank
    else:
        owner = rt.party("alice")
        mpc = rt.mpc(insurer, owner, dealer=bank)
    rt.policy.grant(owner=owner, to=insurer, allow="plaintext")
    x = owner(_bank_input)().to(mpc)
    refs["kept"] = insurer(np.arange)(5)
    y = insurer(_insurer_input)().to(mpc)
    refs["total"] = (x * y + (x + y) * (x - y)).reveal_to(insurer)
    refs["done"] = insurer(_count, declare="public")(refs["total"])
    return rt.get(refs["done"])


SCRIPTS = {
    "open": script,
    "ot": lambda rt, refs: product_script("ot", rt, refs),
    "dealer": lambda rt, refs: product_script("dealer", rt, refs),
}


def mutation_of(name: str) -> tuple[str, str, Any]:
    """(script, tag prefix, change) of a mutation of either table."""
    if name in PROVIDER_MUTATIONS:
        return PROVIDER_MUTATIONS[name]
    return ("open", *MUTATIONS[name])


def corrupt(mutation: str) -> None:
    """Make this process's transport send the mutation's messages changed (the process
    plays a party that controls its own bytes: it wraps `Transport.send`)."""
    from cipherray.runtime.errors import CipherrayError
    from cipherray.runtime.silo import wire
    from cipherray.runtime.silo.transport import Transport

    honest_send = getattr(Transport, "honest_send", Transport.send)
    Transport.honest_send = honest_send
    _, prefix, change = mutation_of(mutation)

    def send(t: Transport, dst: str, tag: str, value: Any, timeout: float | None = None):
        if change is None or not tag.startswith(prefix):
            return honest_send(t, dst, tag, value, timeout)
        if change != "frames":
            changed = change(wire.unpack_value(value, t.party, tag))
            return honest_send(t, dst, tag, wire.pack_value(changed), timeout)
        frames = list(
            wire.frames(
                value, job=t.job, src=t.party, dst=dst, tag=tag, sess=0, seq=1 << 40,
                chunk_bytes=8,
            )
        )  # fmt: skip
        try:
            t.send_frames(dst, frames[:-1], tag)
        except CipherrayError:
            pass  # refused, as it should be

    Transport.send = send


def main() -> int:
    import cipherray as cr

    cfg = json.loads(sys.argv[1])
    print("ready", flush=True)
    out = []
    for run in cfg["runs"]:
        corrupt(run["mutation"])
        try:
            with cr.init(
                party=cfg["party"], addresses=run["addresses"], tls=cfg["tls"],
                backend="inline", timeout_s=cfg["timeout"], job=run["job"],
            ) as rt:  # fmt: skip
                SCRIPTS[run.get("script", "open")](rt, {})
            out.append({"result": "ok"})
        except cr.CipherrayError as e:
            out.append(
                {"error": type(e).__name__, "party": getattr(e, "party", None),
                 "step": getattr(e, "step", None)}
            )  # fmt: skip
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
