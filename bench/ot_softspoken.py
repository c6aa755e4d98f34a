"""SoftSpokenOT vs IKNP: random OTs per second on one core and bytes per OT (issue 23).

    nice -n 19 python3 bench/ot_softspoken.py                       # table printed only
    nice -n 19 python3 bench/ot_softspoken.py --out bench/results   # also ot_softspoken.*
    nice -n 19 python3 bench/ot_softspoken.py --vole-numpy          # SoftSpoken's numpy path

For every extension (IKNP; SoftSpoken with k in --ks) and every m in --ms: both parties
run in this one process pinned to one core, so a rate is per core. "extend" is
m / (receiver_extend + sender_extend), "rot" adds rot_sender + rot_receiver (16-byte
messages, the TCCR hash shared by both extensions). Each time is the median of --repeats
runs after one warm-up. Also the setup (base OTs) time and bytes, the extension's bytes
per OT, and the time R's message takes on a 1 Gbit/s link (the LAN model): where it
exceeds the compute time the link bounds the rate. On a shared host the numbers are rough.

--compare N (0: skip) also runs `x > y` on N shared values through OTProvider with each
extension on the in-process engine (both members in this process): bytes per comparison,
their time on the 1 Gbit/s link scaled to 10^6 comparisons, compute per comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine, write  # noqa: E402
from ot import _pin_one_core  # noqa: E402

LINK_BYTES_PER_S = 1e9 / 8  # the LAN model: 1 Gbit/s
COLUMNS = ["extension", "m", "setup_ms", "setup_KiB", "B_per_OT", "extend_M_per_s",
           "rot_M_per_s", "link_M_per_s", "bound_M_per_s"]  # fmt: skip


def _module(name: str):
    from cipherray.protocols import ot

    return ot.softspoken if name.startswith("softspoken") else ot


def run_case(ext: str, k: int | None, m: int, repeats: int) -> dict:
    mod = _module(ext)
    t = time.perf_counter()
    r, msg_a = mod.receiver_setup() if k is None else mod.receiver_setup(k)
    s, msg_b = mod.sender_setup(msg_a) if k is None else mod.sender_setup(msg_a, k)
    r = mod.receiver_setup_finish(r, msg_b)
    setup_s = time.perf_counter() - t

    def one(r, s):
        t0 = time.perf_counter()
        r, rb, u = mod.receiver_extend(r, m)
        t1 = time.perf_counter()
        s, sb = mod.sender_extend(s, u, m)
        t2 = time.perf_counter()
        m0, m1 = mod.rot_sender(sb, 16)
        mc = mod.rot_receiver(rb, 16)
        t3 = time.perf_counter()
        j = m // 2
        assert (mc[j] == (m1[j] if rb.choices[j] else m0[j])).all()
        return r, s, {"r_extend": t1 - t0, "s_extend": t2 - t1, "rot": t3 - t2}, u.nbytes

    r, s, _, msg_bytes = one(r, s)
    runs = []
    for _ in range(repeats):
        r, s, steps, _ = one(r, s)
        runs.append(steps)
    med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    extend = med["r_extend"] + med["s_extend"]
    per_ot = msg_bytes / m
    link = LINK_BYTES_PER_S / per_ot
    rot = m / (extend + med["rot"])
    return {
        "extension": ext if k is None else f"{ext} k={k}",
        "m": m,
        "setup_s": setup_s,
        "setup_bytes": len(msg_a) + len(msg_b),
        "bytes_per_ot": per_ot,
        "median_s": med,
        "extend_per_s": m / extend,
        "rot_per_s": rot,
        "link_per_s": link,
        "bound_per_s": min(rot, link),
    }


def compare_case(ext: str, k: int, n: int) -> dict:
    import numpy as np

    from cipherray.protocols.mpc import compare
    from cipherray.protocols.mpc.ot_provider import OTProvider
    from cipherray.protocols.mpc.testing import encoded, local_context, reveal, share

    rng = np.random.default_rng(1)  # benchmark inputs, not secrets
    x, y = rng.normal(size=n), rng.normal(size=n)
    prov = OTProvider(extension=ext, softspoken_k=k)
    ctx = local_context(2, provider=prov, has_dealer=False)
    e = ctx.engine
    reveal(e, compare.gt(ctx, share(e, x[:100]), share(e, y[:100])))  # setup, apart
    xs, ys = share(e, x), share(e, y)
    b0 = sum(v["bytes"] for v in e.by_step().values())
    t = time.perf_counter()
    z = compare.gt(ctx, xs, ys)
    dt = time.perf_counter() - t
    per = (sum(v["bytes"] for v in e.by_step().values()) - b0) / n
    ok = bool(np.array_equal(reveal(e, z), (encoded(x) > encoded(y)).astype(float)))
    return {"extension": ext if ext == "iknp" else f"{ext} k={k}", "n": n,
            "bytes_per_compare": per, "link_s_1e6": per * 1e6 / LINK_BYTES_PER_S,
            "compute_us_per_compare": dt / n * 1e6, "correct": ok}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ms", default="20,21,22", help="log2 of the OTs per extension")
    ap.add_argument("--ks", default="2,4,8", help="SoftSpoken's k values")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compare", type=int, default=0, help="x > y on this many values")
    ap.add_argument("--vole-numpy", action="store_true", help="SoftSpoken without its kernel")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    core = _pin_one_core()
    from cipherray.cpu_kernels import aes_ctr, bit_transpose, ot_hash, vole

    if args.vole_numpy:
        vole._fn = lambda: None  # aes_ctr keystreams + the numpy tree

    cases = [("iknp", None)] + [("softspoken", int(k)) for k in args.ks.split(",") if k]
    rows, table = [], []
    for lg in (int(x) for x in args.ms.split(",") if x):
        for ext, k in cases:
            res = run_case(ext, k, 1 << lg, args.repeats)
            rows.append(res)
            row = {
                "extension": res["extension"], "m": f"2^{lg}",
                "setup_ms": f"{res['setup_s'] * 1e3:.0f}",
                "setup_KiB": f"{res['setup_bytes'] / 1024:.1f}",
                "B_per_OT": f"{res['bytes_per_ot']:g}",
                "extend_M_per_s": f"{res['extend_per_s'] / 1e6:.2f}",
                "rot_M_per_s": f"{res['rot_per_s'] / 1e6:.2f}",
                "link_M_per_s": f"{res['link_per_s'] / 1e6:.1f}",
                "bound_M_per_s": f"{res['bound_per_s'] / 1e6:.2f}",
            }  # fmt: skip
            table.append(row)
            print(" | ".join(str(row[c]) for c in COLUMNS), flush=True)
    compares = []
    for ext, k in cases if args.compare else []:
        res = compare_case(ext, k or 4, args.compare)
        compares.append(res)
        print(res, flush=True)
    kernels = {"prg": aes_ctr.kernel(), "transpose": bit_transpose.kernel(),
               "hash": ot_hash.kernel(), "vole": vole.kernel()}  # fmt: skip
    if args.out:
        results = {
            "machine": machine(),
            "core": core,
            "kernels": kernels,
            "cases": rows,
            "compare": compares,
        }
        name = "ot_softspoken_vole_numpy" if args.vole_numpy else "ot_softspoken"
        write(args.out, name, {**results, "table": table}, table, COLUMNS)
    print(kernels)


if __name__ == "__main__":
    main()
