"""Two parties, no dealer: the OT provider against the dealer and against Paillier.

    python bench/ot_mpc.py [--parts compare,vlr,matmul] [--out bench/out]

Parts (each a function `part_<name>(results, table, ...)` that adds its figures to
`results` and its rows to `table`, so bench/ot.py can run them too):

compare  `x > y` on n shared values, two parties on the runtime (Ray backend) under the
         LAN network model (0.5 ms, 1 Gbit/s), with no dealer (OTProvider, the
         randomness made on demand: offline + online) and with a dealer, in the same
         run. The OT version (the default provider: SoftSpokenOT k = 4, millionaires'
         protocol, 94 random OTs per element) runs at the sizes in --compare-ot
         (default 10^4, 10^5; the 10^6 figure is measured when 10^6 is among them, else
         extrapolated linearly); the dealer version runs at 10^6 too. The same sizes
         run again with IKNP instead of SoftSpoken ("ot_iknp"), and with
         --compare-carry-tree with IKNP and the bit-sliced A2B carry tree
         (`OTProvider(extension="iknp", millionaire_m=None)`, the comparison before the
         millionaires' protocol), as "ot_carry_tree". Bytes per comparison
         (`bytes_per_compare`, deterministic) are reported.
vlr      the vertical logistic-regression example (breast cancer, alice 15 features,
         bob 15 and the labels) on the runtime under LAN, provider "ot" (two parties)
         and "dealer" (three): seconds per epoch and accuracy.
matmul   one matrix triple (m, m) @ (m, m): OTProvider (Gilboa over correlated OT) against
         PaillierProvider (2048-bit n), on the in-process engine (both members' work in
         this process, one after the other: the sum of their compute), time and bytes.
         1024^3 is out of reach for both here; the sizes in --mm-ot / --mm-paillier are
         measured and 1024^3 extrapolated as m^3 (time, OT bytes) and m^2 (Paillier
         bytes).

Synthetic data comes from numpy generators (benchmark inputs, not secrets).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import cipherray as cr  # noqa: E402


def synthetic(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 10.0, n)  # synthetic data, not secrets


def _ledger_bytes(rt: Any) -> tuple[int, int]:
    """(all bytes, offline bytes) in the ledger."""
    df = rt.ledger.by_tag()
    off = df[df["tag"].str.contains("offline/")]
    return int(df["bytes"].sum()), int(off["bytes"].sum())


def _compare_once(rt: Any, mpc: Any, n: int) -> dict:
    a, b = rt.party("alice"), rt.party("bob")
    x = a(synthetic)(n, 1).to(mpc)
    y = b(synthetic)(n, 2).to(mpc)
    rt.wait(x, y)
    rt.ledger.reset()
    t = time.perf_counter()
    z = x > y
    rt.wait(z)
    dt = time.perf_counter() - t
    total, offline = _ledger_bytes(rt)
    got = rt.get(z.reveal_to(a))
    from cipherray.protocols.mpc.testing import encoded

    # against the fixed-point encodings (values closer than 2^-16 encode equal)
    want = (encoded(synthetic(n, 1)) > encoded(synthetic(n, 2))).astype(float)
    return {
        "n": n,
        "seconds": dt,
        "bytes": total,
        "bytes_per_compare": total / n,
        "offline_bytes": offline,
        "correct": bool(np.array_equal(got, want)),
        "mismatches_vs_float": int(np.sum(got != (synthetic(n, 1) > synthetic(n, 2)))),
    }


def part_compare(
    results: dict,
    table: list,
    ot_sizes: tuple = (10**4, 10**5),
    dealer_sizes: tuple = (10**4, 10**5, 10**6),
    network: str = "lan",
    carry_tree: bool = False,
) -> None:
    from cipherray.protocols.mpc.ot_provider import OTProvider

    names = ["alice", "bob", "dealer"]
    rt = cr.init(names, network=network, timeout_s=7200, driver_as=["alice", "bob"])
    rt.policy.grant(owner="bob", to="alice", allow="plaintext")  # checks the result
    out: dict[str, Any] = {"network": network, "ot": [], "dealer": []}
    try:
        a, b = rt.party("alice"), rt.party("bob")
        warm = rt.mpc(a, b)  # base OTs and the first extension, apart
        _compare_once(rt, warm, 1000)
        for n in dealer_sizes:
            r = _compare_once(rt, rt.mpc(a, b, dealer="dealer"), n)
            print("compare dealer", r, flush=True)
            out["dealer"].append(r)
        ot_mpc = rt.mpc(a, b)
        _compare_once(rt, ot_mpc, 1000)  # setup (base OTs) of this location, apart
        for n in ot_sizes:
            r = _compare_once(rt, ot_mpc, n)
            print("compare ot", r, flush=True)
            out["ot"].append(r)
        others = [("ot_iknp", OTProvider(extension="iknp"))]  # SoftSpoken is the default
        if carry_tree:
            others.append(("ot_carry_tree", OTProvider(extension="iknp", millionaire_m=None)))
        for key, prov in others:
            out[key] = []
            old = rt.mpc(a, b, provider=prov)
            _compare_once(rt, old, 1000)
            for n in ot_sizes:
                r = _compare_once(rt, old, n)
                print("compare", key, r, flush=True)
                out[key].append(r)
    finally:
        rt.shutdown()
    big = out["ot"][-1]
    per = big["seconds"] / big["n"]
    out["ot_extrapolated_1e6_s"] = per * 1e6
    out["ot_extrapolated_1e6_bytes"] = big["bytes"] / big["n"] * 1e6
    d6 = next((r for r in out["dealer"] if r["n"] == 10**6), out["dealer"][-1])
    results["compare"] = out
    labels = (
        ("ot", "OT: SoftSpoken k=4, millionaires"),
        ("ot_iknp", "OT: IKNP, millionaires"),
        ("ot_carry_tree", "OT: IKNP, A2B carry tree"),
    )
    for key, label in labels:
        for r in out.get(key, []):
            table.append(
                {
                    "what": f"x > y, {r['n']:,} values, 2 parties no dealer ({label}), {network}",
                    "cipherray": f"{r['seconds']:.2f} s, {r['bytes'] / 1e6:.0f} MB "
                    f"({r['offline_bytes'] / 1e6:.0f} MB offline, "
                    f"{r['bytes_per_compare']:.0f} B each), correct={r['correct']}",
                    "baseline": "",
                    "target": "",
                }
            )
    table.append(
        {
            "what": f"x > y, 10^6 values, no dealer (OT), {network}",
            "cipherray": f"{out['ot_extrapolated_1e6_s']:.2f} s, "
            f"{out['ot_extrapolated_1e6_bytes'] / 1e9:.2f} GB"
            + ("" if big["n"] == 10**6 else f" (extrapolated from {big['n']:,})"),
            "baseline": f"dealer {d6['seconds']:.2f} s, {d6['bytes'] / 1e6:.0f} MB "
            f"({d6['n']:,} values)",
            "target": "<= 10 s",
        }
    )


def part_vlr(results: dict, table: list, epochs: int = 3, network: str = "lan") -> None:
    from cipherray.workloads.vfl.ss_logreg import VflLogregConfig, plaintext_reference, run

    out = {}
    for prov in ("dealer", "ot"):
        r = run(VflLogregConfig(epochs=epochs, network=network, provider=prov, timeout_s=7200))
        out[prov] = {
            k: r[k] for k in ("accuracy", "seconds_per_epoch", "seconds_train", "bytes", "rounds")
        }
        print("vlr", prov, out[prov], flush=True)
    ref = plaintext_reference(VflLogregConfig(epochs=epochs))
    out["plaintext_accuracy"] = ref["accuracy"]
    out["ratio"] = out["ot"]["seconds_per_epoch"] / out["dealer"]["seconds_per_epoch"]
    results["vlr"] = out
    table.append(
        {
            "what": f"vertical LR, breast cancer, {epochs} epochs, {network}: no dealer (OT)",
            "cipherray": f"{out['ot']['seconds_per_epoch']:.2f} s/epoch, accuracy "
            f"{out['ot']['accuracy']:.4f}, {out['ot']['bytes'] / 1e6:.0f} MB",
            "baseline": f"dealer {out['dealer']['seconds_per_epoch']:.2f} s/epoch, accuracy "
            f"{out['dealer']['accuracy']:.4f} (plaintext {ref['accuracy']:.4f})",
            "target": f"<= 3x: {out['ratio']:.1f}x",
        }
    )


def _triple_cost(provider: Any, m: int) -> dict:
    from cipherray.protocols.mpc.engine import LocalEngine
    from cipherray.protocols.mpc.ring import matmul_u64

    e = LocalEngine(2, has_dealer=False)
    provider.request(e, "mul", ((1,), (1,)))  # setup apart (base OTs / key generation)
    b0 = e.bytes()
    t = time.perf_counter()
    a, b, c = provider.request(e, "matmul", ((m, m), (m, m)))
    dt = time.perf_counter() - t
    ok = bool(np.array_equal(e.reconstruct(c), matmul_u64(e.reconstruct(a), e.reconstruct(b))))
    return {"m": m, "seconds": dt, "bytes": e.bytes() - b0, "correct": ok}


def part_matmul(
    results: dict, table: list, ot_sizes: tuple = (32, 64, 128), pl_sizes: tuple = (16, 32)
) -> None:
    from cipherray.protocols.mpc.ot_provider import OTProvider
    from cipherray.protocols.mpc.providers import PaillierProvider

    out: dict[str, Any] = {"ot": [], "paillier": []}
    for m in ot_sizes:
        r = _triple_cost(OTProvider(), m)
        print("matmul ot", r, flush=True)
        out["ot"].append(r)
    for m in pl_sizes:
        r = _triple_cost(PaillierProvider(key_bits=2048), m)
        print("matmul paillier", r, flush=True)
        out["paillier"].append(r)
    big = 1024
    for kind in ("ot", "paillier"):
        last = out[kind][-1]
        scale = (big / last["m"]) ** 3
        bscale = scale if kind == "ot" else (big / last["m"]) ** 2
        out[f"{kind}_1024_s"] = last["seconds"] * scale
        out[f"{kind}_1024_bytes"] = last["bytes"] * bscale
    results["matmul"] = out
    for kind, label in (
        ("ot", "OTProvider (SoftSpoken + Gilboa COT)"),
        ("paillier", "PaillierProvider"),
    ):
        for r in out[kind]:
            table.append(
                {
                    "what": f"matrix triple {r['m']}^3, {label}",
                    "cipherray": f"{r['seconds']:.2f} s, {r['bytes'] / 1e6:.1f} MB, "
                    f"correct={r['correct']}",
                    "baseline": "",
                    "target": "",
                }
            )
        table.append(
            {
                "what": f"matrix triple 1024^3, {label} (extrapolated)",
                "cipherray": f"{out[f'{kind}_1024_s'] / 3600:.1f} h, "
                f"{out[f'{kind}_1024_bytes'] / 1e9:.0f} GB",
                "baseline": "",
                "target": "the faster is the default",
            }
        )


PARTS = {"compare": part_compare, "vlr": part_vlr, "matmul": part_matmul}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="compare,vlr,matmul")
    ap.add_argument("--compare-ot", default="10000,100000")
    ap.add_argument("--compare-dealer", default="10000,100000,1000000")
    ap.add_argument("--compare-carry-tree", action="store_true")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--mm-ot", default="32,64,128")
    ap.add_argument("--mm-paillier", default="16,32")
    ap.add_argument("--out", default="bench/out")
    args = ap.parse_args()

    def ints(s: str) -> tuple:
        return tuple(int(v) for v in s.split(",") if v)

    results: dict[str, Any] = {
        "machine": common.machine(),
        "command": "python bench/ot_mpc.py " + " ".join(sys.argv[1:]),
    }
    table: list[dict] = []
    for part in args.parts.split(","):
        if part == "compare":
            part_compare(
                results,
                table,
                ints(args.compare_ot),
                ints(args.compare_dealer),
                carry_tree=args.compare_carry_tree,
            )
        elif part == "vlr":
            part_vlr(results, table, args.epochs)
        elif part == "matmul":
            part_matmul(results, table, ints(args.mm_ot), ints(args.mm_paillier))
        else:
            raise SystemExit(f"unknown part {part!r}; parts are {list(PARTS)}")
    common.write(args.out, "ot_mpc", results, table, ["what", "cipherray", "baseline", "target"])


if __name__ == "__main__":
    main()
