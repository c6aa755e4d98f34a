"""Oblivious-transfer benchmark: IKNP random OTs per second on one core, beside libOTe.

    python3 bench/ot.py                                 # part rot, table printed only
    python3 bench/ot.py --parts rot --out bench/results # also bench/results/ot.{json,md}

Parts (`--parts`, comma-separated):
- rot: random OTs (16-byte messages) after the base OTs. Both parties run in this one
       process pinned to one core, so the rate is per core: m / (receiver_extend +
       sender_extend + rot_sender + rot_receiver), and per side (R: receiver_extend +
       rot_receiver; S: sender_extend + rot_sender). Also the 128 base OTs' setup time and
       the bytes sent (u, 16 bytes an OT; setup 32 + 128 * 32 bytes). Each timing is the
       median of --repeats runs after one warm-up (which pays the first-use kernel build
       and page faults of fresh buffers; its time is reported as well). Peer: libOTe's
       IKNP, 2^24 OTs in 0.6 s on one thread with an AES hash (about 28 M OTs/s, issue 23);
       target >= 10^7 OTs/s, a third of it. The process's CPU affinity is restored after.
- compare, vlr, matmul: the two-party MPC parts of bench/ot_mpc.py (its docstring):
       dealerless `x > y` on the runtime under the LAN model (--compare-ot sizes, the
       dealer at --compare-dealer sizes; target 10^6 in <= 10 s), vertical LR per epoch
       against the dealer (target <= 3x), matrix triples against Paillier.

    python3 bench/ot.py --parts rot,compare,vlr,matmul --out bench/results
writes all parts into one file set, bench/results/ot.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine, write  # noqa: E402

LIBOTE_IKNP_PER_S = 2**24 / 0.6  # libOTe IKNP, one thread, AES hash (issue 23's anchor)
TARGET_ROT_PER_S = 1e7
COLUMNS = ["case", "metric", "cipherray", "peer", "target", "met"]


def _pin_one_core() -> int | None:
    """Run this process on one core (the first it may use); returns it, or None where the
    platform has no affinity call."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def part_rot(args: argparse.Namespace, results: dict, table: list) -> None:
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    core = _pin_one_core()
    try:
        _rot(args, results, table, core)
    finally:  # the later parts (Ray workers inherit it) get every core back
        if before is not None:
            os.sched_setaffinity(0, before)


def _rot(args: argparse.Namespace, results: dict, table: list, core: int | None) -> None:
    from cipherray.cpu_kernels import aes_ctr, bit_transpose, ot_hash
    from cipherray.protocols import ot

    m = args.m

    t = time.perf_counter()
    r, msg_a = ot.receiver_setup()
    s, msg_b = ot.sender_setup(msg_a)
    r = ot.receiver_setup_finish(r, msg_b)
    setup_s = time.perf_counter() - t

    def one_run(r, s):
        t0 = time.perf_counter()
        r, rb, u = ot.receiver_extend(r, m)
        t1 = time.perf_counter()
        s, sb = ot.sender_extend(s, u, m)
        t2 = time.perf_counter()
        m0, m1 = ot.rot_sender(sb, 16)
        t3 = time.perf_counter()
        mc = ot.rot_receiver(rb, 16)
        t4 = time.perf_counter()
        # the outputs are right (one row checked per run; test_ot.py checks all)
        j = m // 2
        assert (mc[j] == (m1[j] if rb.choices[j] else m0[j])).all()
        steps = {"receiver_extend": t1 - t0, "sender_extend": t2 - t1}
        steps |= {"rot_sender": t3 - t2, "rot_receiver": t4 - t3}
        return r, s, steps, u.nbytes

    r, s, warm, u_bytes = one_run(r, s)
    runs = []
    for _ in range(args.repeats):
        r, s, steps, _ = one_run(r, s)
        runs.append(steps)
    med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
    total = sum(med.values())
    recv = med["receiver_extend"] + med["rot_receiver"]
    send = med["sender_extend"] + med["rot_sender"]
    rate = m / total
    results["rot"] = {
        "m": m,
        "nbytes": 16,
        "repeats": args.repeats,
        "core": core,
        "kernels": {
            "prg": aes_ctr.kernel(),
            "transpose": bit_transpose.kernel(),
            "hash": ot_hash.kernel(),
        },
        "base_ot_setup_s": setup_s,
        "setup_bytes": len(msg_a) + len(msg_b),
        "u_bytes": u_bytes,
        "median_s": med,
        "warmup_s": warm,
        "total_s": total,
        "rot_per_s": rate,
        "receiver_rot_per_s": m / recv,
        "sender_rot_per_s": m / send,
        "libote_iknp_per_s": LIBOTE_IKNP_PER_S,
        "runs": runs,
    }
    peer = f"libOTe IKNP {LIBOTE_IKNP_PER_S / 1e6:.0f} M/s (1 thread)"
    table.append({
        "case": f"random OT, m = {m:,}, 16 B, both sides on one core", "metric": "M OTs / s",
        "cipherray": f"{rate / 1e6:.1f}", "peer": peer, "target": ">= 10",
        "met": "yes" if rate >= TARGET_ROT_PER_S else "no",
    })  # fmt: skip
    for side, sec in (("receiver (extend + rot)", recv), ("sender (extend + rot)", send)):
        table.append({
            "case": f"random OT, {side}", "metric": "M OTs / s",
            "cipherray": f"{m / sec / 1e6:.1f}", "peer": "", "target": "", "met": "",
        })  # fmt: skip
    table.append({
        "case": "128 base OTs (Chou-Orlandi, edwards25519)", "metric": "ms",
        "cipherray": f"{setup_s * 1e3:.0f}", "peer": "", "target": "", "met": "",
    })  # fmt: skip
    table.append({
        "case": f"bytes sent, m = {m:,}", "metric": "MB (u) + setup B",
        "cipherray": f"{u_bytes / 1e6:.1f} + {len(msg_a) + len(msg_b)}",
        "peer": "16 B / OT", "target": "", "met": "",
    })  # fmt: skip
    print(table[0], flush=True)


def _ints(text: str) -> tuple:
    return tuple(int(v) for v in text.split(",") if v)


def _mpc_part(name: str):
    """bench/ot_mpc.py's part `name`, its rows in this table's columns."""

    def run(args: argparse.Namespace, results: dict, table: list) -> None:
        import ot_mpc

        rows: list[dict] = []
        if name == "compare":
            ot_mpc.part_compare(
                results,
                rows,
                _ints(args.compare_ot),
                _ints(args.compare_dealer),
                carry_tree=args.compare_carry_tree,
            )
        elif name == "vlr":
            ot_mpc.part_vlr(results, rows, args.epochs)
        else:
            ot_mpc.part_matmul(results, rows, _ints(args.mm_ot), _ints(args.mm_paillier))
        for row in rows:
            table.append({
                "case": row["what"], "metric": "", "cipherray": row["cipherray"],
                "peer": row["baseline"], "target": row["target"], "met": _met(name, row, results),
            })  # fmt: skip

    return run


def _met(name: str, row: dict, results: dict) -> str:
    if name == "compare" and row["target"]:
        return "yes" if results["compare"]["ot_extrapolated_1e6_s"] <= 10 else "no"
    if name == "vlr":
        return "yes" if results["vlr"]["ratio"] <= 3 else "no"
    return ""


PARTS = {"rot": part_rot, **{p: _mpc_part(p) for p in ("compare", "vlr", "matmul")}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="rot", help=f"comma-separated, of {sorted(PARTS)}")
    ap.add_argument("--m", type=int, default=1 << 22, help="OTs per extension (rot)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compare-ot", default="10000,100000", help="compare: OT sizes")
    ap.add_argument("--compare-dealer", default="10000,100000,1000000", help="compare: dealer")
    ap.add_argument("--compare-carry-tree", action="store_true", help="compare: the old way too")
    ap.add_argument("--epochs", type=int, default=3, help="vlr: epochs")
    ap.add_argument("--mm-ot", default="32,64,128", help="matmul: OT sizes")
    ap.add_argument("--mm-paillier", default="16,32", help="matmul: Paillier sizes")
    ap.add_argument("--out", default=None, help="write ot.json / ot.md into this folder")
    args = ap.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown parts {unknown}; known: {sorted(PARTS)}")
    results: dict = {"machine": machine()}
    table: list[dict] = []
    t0 = time.perf_counter()
    for part in parts:
        PARTS[part](args, results, table)
    results["seconds"] = time.perf_counter() - t0
    if args.out:
        write(args.out, "ot", {**results, "table": table}, table, COLUMNS)
    else:
        for row in table:
            print(" | ".join(str(row[c]) for c in COLUMNS))


if __name__ == "__main__":
    main()
