"""Two-party ECDH-PSI benchmark: cipherray (2 cores / 1 core) vs openmined-psi.

    python bench/psi.py --sizes 10000,100000,1000000 [--workers 2] [--out bench/out]

For each N: two sets of N random 12-digit phone-number strings with 50% overlap (in a
DataFrame column each). cipherray's time is end to end from the two DataFrames:
``prepare_ids`` at both parties, then ``run_ecdh_psi_local`` (both parties learn the
intersection, rows aligned) with its blinding chunks spread over a
``ProcessPoolExecutor(workers)`` (started and warmed before timing, as a party's
workers would be), and again in-process on one core. openmined-psi 2.0.6 runs its
complete client/server protocol (server setup message with GCS at fpr 1e-9, client
request, server response, client intersection) on one core; it is skipped where the
previous size predicts > ``--openmined-max-s`` seconds, and extrapolated linearly
(marked "extrapolated"). Every output is checked against the plaintext intersection.

Writes ``<out>/psi.json``, ``<out>/psi.md`` and ``<out>/psi.png``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


import common as bench_common  # noqa: E402

from cipherray.cpu_kernels import x25519 as x25519_kernel  # noqa: E402
from cipherray.protocols.psi import prepare_ids, run_ecdh_psi_local  # noqa: E402


def make_sets(n: int, overlap: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Two DataFrames of n distinct 12-digit numbers (as strings) sharing ``overlap * n``."""
    rng = np.random.default_rng(seed)
    common = int(round(n * overlap))
    total = 2 * n - common
    nums = np.unique(rng.integers(10**11, 10**12, size=int(total * 1.01) + 16))
    while len(nums) < total:  # (practically never) top up
        nums = np.unique(np.concatenate([nums, rng.integers(10**11, 10**12, size=total)]))
    nums = rng.permutation(nums)[:total]
    a = nums[:n]
    b = rng.permutation(nums[n - common :])
    to_str = lambda x: pd.Series(x.astype("S12").astype(str), dtype="str")  # noqa: E731
    return pd.DataFrame({"phone": to_str(a)}), pd.DataFrame({"tel": to_str(b)}), common


def plaintext_intersection(da: pd.DataFrame, db: pd.DataFrame) -> np.ndarray:
    """Sorted int64 values of the plaintext intersection (12-digit numbers)."""
    return np.intersect1d(
        da["phone"].to_numpy(dtype="S12").astype(np.int64),
        db["tel"].to_numpy(dtype="S12").astype(np.int64),
    )


def _as_int(ids: np.ndarray) -> np.ndarray:
    return np.asarray(ids, dtype="S12").astype(np.int64)


def _worker_hwm(_: int) -> tuple[int, float]:
    time.sleep(0.05)  # long enough that every worker picks up some of these tasks
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return os.getpid(), int(line.split()[1]) / 1024
    return os.getpid(), 0.0


def peak_rss_mb(pool: ProcessPoolExecutor, workers: int) -> dict[str, float]:
    """Peak resident memory so far: the driver and each pool worker (VmHWM)."""
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per: dict[int, float] = {}
    for pid, mb in pool.map(_worker_hwm, range(8 * workers)):
        per[pid] = max(per.get(pid, 0.0), mb)
    return {
        "driver_mb": round(me, 1),
        "largest_worker_mb": round(max(per.values(), default=0.0), 1),
        "total_mb": round(me + sum(per.values()), 1),
    }


def run_ours(da: pd.DataFrame, db: pd.DataFrame, expect: np.ndarray, mapper, chunk: int) -> dict:
    t0 = time.perf_counter()
    pa = prepare_ids(da, "phone")
    pb = prepare_ids(db, "tel")
    t1 = time.perf_counter()
    res = run_ecdh_psi_local(pa, pb, receiver="both", mapper=mapper, chunk_size=chunk)
    t2 = time.perf_counter()
    # check (not timed): row-aligned outputs equal the plaintext intersection
    va = _as_int(pa.ids[np.searchsorted(pa.rows, res.rows_a)])
    vb = _as_int(pb.ids[np.searchsorted(pb.rows, res.rows_b)])
    ok = bool(np.array_equal(va, vb) and np.array_equal(np.sort(va), expect))
    return {
        "seconds": t2 - t0,
        "prepare_s": t1 - t0,
        "protocol_s": t2 - t1,
        "size": res.size,
        "bytes": res.transcript.total_bytes,
        "bytes_by_edge": res.transcript.bytes,
        "correct": ok,
    }


def run_openmined(da: pd.DataFrame, db: pd.DataFrame, expect: np.ndarray) -> dict:
    import private_set_intersection.python as psi

    client_items = da["phone"].tolist()
    server_items = db["tel"].tolist()
    t0 = time.perf_counter()
    server = psi.server.CreateWithNewKey(True)
    client = psi.client.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(1e-9, len(client_items), server_items, psi.DataStructure.GCS)
    request = client.CreateRequest(client_items)
    response = server.ProcessRequest(request)
    idx = client.GetIntersection(setup, response)
    dt = time.perf_counter() - t0
    nbytes = sum(len(m.SerializeToString()) for m in (setup, request, response))
    got = np.sort(_as_int(np.asarray(client_items, dtype="S12")[np.asarray(idx, dtype=np.int64)]))
    ok = bool(np.array_equal(got, expect))
    return {
        "seconds": dt,
        "size": len(idx),
        "bytes": nbytes,
        "correct": ok,
        "extrapolated": False,
        "version": getattr(psi, "__version__", "?"),
    }


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``seconds`` while this benchmark idles (other
    processes on the machine distort the timings; recorded with each result)."""

    def snap() -> tuple[int, int]:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = f[3] + f[4]
        return sum(f) - idle, sum(f)

    b0, t0 = snap()
    time.sleep(seconds)
    b1, t1 = snap()
    return (b1 - b0) / max(1, t1 - t0)


def _jiffies(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def _system_busy_jiffies() -> tuple[int, int]:
    f = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)


class OtherLoad:
    """CPU share used by *other* processes while a timed run is in progress
    (system busy time minus this benchmark's own processes), in cores."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def __enter__(self) -> OtherLoad:
        self.t0 = time.time()
        self.own0 = _jiffies(self.pids)
        self.sys0 = _system_busy_jiffies()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        wall = max(1e-9, time.time() - self.t0)
        own = _jiffies(self.pids) - self.own0
        other = (_system_busy_jiffies()[0] - self.sys0) - own
        self.cores = round(max(0.0, other / hz / wall), 2)
        self.own_cpu_s = round(own / hz, 2)


def wait_quiet(max_wait: float, threshold: float = 0.1) -> float:
    """Wait (up to ``max_wait`` s) until other processes use < ``threshold`` of the
    CPUs; returns the last busy fraction measured."""
    deadline = time.time() + max_wait
    busy = cpu_busy()
    while busy >= threshold and time.time() < deadline:
        busy = cpu_busy(2.0)
    return round(busy, 3)


def _noop(x: int) -> int:
    return x


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--overlap", type=float, default=0.5)
    ap.add_argument("--openmined-max-s", type=float, default=120.0)
    ap.add_argument(
        "--single-core-max-n", type=int, default=1_000_000, help="skip the 1-core run above this N"
    )
    ap.add_argument("--no-openmined", action="store_true")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the other sizes already in <out>/psi.json (replace re-measured ones)",
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="before each timed run wait up to this many s for an idle machine",
    )
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    pool = ProcessPoolExecutor(args.workers)
    list(pool.map(_noop, range(4 * args.workers)))  # start and warm the workers
    pids = [os.getpid()] + sorted(
        {pid for pid, _ in pool.map(_worker_hwm, range(8 * args.workers))}
    )
    rows: list[dict] = []
    om_rate = None  # openmined items/s from the last measured size
    if args.merge and (out / "psi.json").exists():
        old = json.loads((out / "psi.json").read_text())["results"]
        rows = [r for r in old if r["n"] not in sizes]
        measured = [r for r in rows if "openmined" in r and not r["openmined"]["extrapolated"]]
        if measured:
            om_rate = measured[-1]["n"] / measured[-1]["openmined"]["seconds"]
    for n in sizes:
        da, db, common = make_sets(n, args.overlap, args.seed)
        expect = plaintext_intersection(da, db)
        row: dict = {"n": n, "overlap": common}
        chunk = int(min(16384, max(1024, n // (args.workers * 64))))
        gc.collect()
        row["busy_before"] = {"ours_workers": wait_quiet(args.wait_quiet)}
        with OtherLoad(pids) as load:
            row["ours_workers"] = run_ours(da, db, expect, pool.map, chunk)
        row["other_load_cores"] = {"ours_workers": load.cores}
        row["ours_workers"]["cpu_s"] = load.own_cpu_s
        row["ours_workers"]["workers"] = args.workers
        print(
            f"N={n}: cipherray {args.workers} workers {row['ours_workers']['seconds']:.2f} s",
            flush=True,
        )
        if n <= args.single_core_max_n:
            gc.collect()
            row["busy_before"]["ours_1core"] = wait_quiet(args.wait_quiet)
            with OtherLoad(pids) as load:
                row["ours_1core"] = run_ours(da, db, expect, None, chunk)
            row["other_load_cores"]["ours_1core"] = load.cores
            row["ours_1core"]["cpu_s"] = load.own_cpu_s
            print(f"N={n}: cipherray 1 core {row['ours_1core']['seconds']:.2f} s", flush=True)
        if not args.no_openmined:
            predicted = n / om_rate if om_rate else 0.0
            if predicted <= args.openmined_max_s:
                gc.collect()
                row["busy_before"]["openmined"] = wait_quiet(args.wait_quiet)
                with OtherLoad(pids) as load:
                    row["openmined"] = run_openmined(da, db, expect)
                row["other_load_cores"]["openmined"] = load.cores
                row["openmined"]["cpu_s"] = load.own_cpu_s
                om_rate = n / row["openmined"]["seconds"]
                print(f"N={n}: openmined {row['openmined']['seconds']:.2f} s", flush=True)
            else:
                last = next(r for r in reversed(rows) if not r["openmined"]["extrapolated"])
                row["openmined"] = {
                    "seconds": predicted,
                    "bytes": int(last["openmined"]["bytes"] * n / last["n"]),
                    "extrapolated": True,
                    "note": f"linear from N={last['n']} ({om_rate:.0f} items/s); "
                    f"predicted > {args.openmined_max_s:.0f} s so not run",
                }
        row["peak_rss"] = peak_rss_mb(pool, args.workers)
        rows.append(row)
        rows.sort(key=lambda r: r["n"])
        del da, db
    pool.shutdown()

    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "workers": args.workers,
        "overlap_fraction": args.overlap,
        "items_per_s": "N / seconds (N items per side)",
        "ours": "prepare_ids x2 + ECDH-PSI (X25519, both learn), chunks on a process pool",
        "openmined": "complete client/server protocol, GCS fpr 1e-9, reveal_intersection, 1 core",
        "x25519_engine": "avx512-ifma (cipherray.cpu_kernels.x25519)"
        if x25519_kernel.available()
        else "cryptography (OpenSSL)",
        "cpu_model": bench_common.machine().get("cpu", "unknown"),
    }
    (out / "psi.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    write_md(out / "psi.md", rows, meta, args.workers)
    write_png(out / "psi.png", rows, args.workers)
    print((out / "psi.md").read_text())
    return 0 if all(r["ours_workers"]["correct"] for r in rows) else 1


def _fmt_s(x: float) -> str:
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def write_md(path: Path, rows: list[dict], meta: dict, workers: int) -> None:
    lines = [
        "# PSI benchmark: cipherray ECDH-PSI (X25519) vs openmined-psi",
        "",
        f"Machine: {meta['machine']}; Python {meta['python']}. Two sets of N 12-digit phone "
        f"numbers, {int(meta['overlap_fraction'] * 100)}% overlap. items/s = N / seconds. "
        f"X25519: {meta['x25519_engine']} on {meta['cpu_model']}.",
        "",
        f"| N | intersection | ours {workers} cores s | items/s | ours 1 core s | items/s | "
        "openmined 1 core s | items/s | ratio total (om / ours) | ratio per core | "
        "bytes ours | bytes openmined | outputs = plaintext |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ow, o1, om = r["ours_workers"], r.get("ours_1core"), r.get("openmined")
        n = r["n"]
        om_s = om["seconds"] if om else None
        om_txt = (
            "-" if om is None else _fmt_s(om_s) + (" (extrapolated)" if om["extrapolated"] else "")
        )
        ratio = f"{om_s / ow['seconds']:.2f}x" if om else "-"
        if om and o1:
            per_core = f"{om_s / o1['seconds']:.2f}x"
        elif om:
            per_core = f"{om_s / (ow['seconds'] * workers):.2f}x (from {workers}-core time)"
        else:
            per_core = "-"
        ok = (
            ow["correct"]
            and (o1 is None or o1["correct"])
            and (om is None or om.get("extrapolated") or om["correct"])
        )
        lines.append(
            f"| {n:,} | {r['overlap']:,} | {_fmt_s(ow['seconds'])} | {n / ow['seconds']:,.0f} | "
            + (f"{_fmt_s(o1['seconds'])} | {n / o1['seconds']:,.0f} | " if o1 else "- | - | ")
            + f"{om_txt} | "
            + (f"{n / om_s:,.0f} | " if om else "- | ")
            + f"{ratio} | {per_core} | {ow['bytes'] / 1e6:.1f} MB | "
            + (f"{om['bytes'] / 1e6:.1f} MB" if om else "-")
            + f" | {'yes' if ok else 'NO'} |"
        )
    lines += [
        "",
        "Other processes on the machine (shared dev box) during each timed run, in cores "
        "busy (0 = quiet; the machine has 2): "
        + "; ".join(f"N={r['n']:,}: {r['other_load_cores']}" for r in rows),
    ]
    lines += [
        "",
        "CPU seconds of the benchmark's own processes per run (driver + pool workers), "
        "a contention-free measure of work: "
        + "; ".join(
            f"N={r['n']:,}: "
            + ", ".join(
                f"{k} {r[k]['cpu_s']}"
                for k in ("ours_workers", "ours_1core", "openmined")
                if k in r and "cpu_s" in r[k]
            )
            for r in rows
        ),
    ]
    lines += ["", "Phases of the multi-core run (s): prepare_ids / protocol; peak RSS so far:", ""]
    for r in rows:
        ow = r["ours_workers"]
        lines.append(
            f"- N={r['n']:,}: {ow['prepare_s']:.2f} / {ow['protocol_s']:.2f}; "
            f"driver {r['peak_rss']['driver_mb']:.0f} MB, largest worker "
            f"{r['peak_rss']['largest_worker_mb']:.0f} MB, all processes "
            f"{r['peak_rss']['total_mb']:.0f} MB"
        )
    for r in rows:
        om = r.get("openmined")
        if om and om.get("extrapolated"):
            lines.append(f"- openmined at N={r['n']:,}: {om['note']}")
    path.write_text("\n".join(lines) + "\n")


def write_png(path: Path, rows: list[dict], workers: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(
        ns,
        [r["ours_workers"]["seconds"] for r in rows],
        "o-",
        label=f"cipherray ECDH-PSI, {workers} cores",
    )
    one = [(r["n"], r["ours_1core"]["seconds"]) for r in rows if "ours_1core" in r]
    if one:
        ax.plot(*zip(*one), "s-", label="cipherray ECDH-PSI, 1 core")
    om_m = [
        (r["n"], r["openmined"]["seconds"])
        for r in rows
        if "openmined" in r and not r["openmined"]["extrapolated"]
    ]
    om_x = [
        (r["n"], r["openmined"]["seconds"])
        for r in rows
        if "openmined" in r and r["openmined"]["extrapolated"]
    ]
    if om_m:
        ax.plot(*zip(*om_m), "^-", color="C2", label="openmined-psi 2.0.6, 1 core")
    if om_x:
        ax.plot(
            *zip(*(om_m[-1:] + om_x)),
            "^--",
            color="C2",
            mfc="none",
            label="openmined-psi (extrapolated)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (items per party, 50% overlap)")
    ax.set_ylabel("seconds, end to end")
    ax.set_title("Two-party PSI scaling")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
