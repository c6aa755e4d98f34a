"""Cross-silo transport on loopback: two parties in two processes, mutual TLS.

    python bench/cross_silo.py [--pings 1000] [--mb 100] [--repeats 5] [--chunk-kib 1024]
                               [--no-copy-thread]
                               [--no-buffer-pool] [--out bench/out]

1. round trip of a small message: bank sends an 8-element float64 array to insurer, which
   sends it back (`Transport.send` returns at the acknowledgement, `recv` at arrival);
   median and 99th percentile over `--pings` round trips after a warm-up;
2. `--mb` MB of uint64 shares from bank to insurer as one message (chunks of
   `--chunk-kib`, every chunk checked, acknowledged once whole) vs a bare gRPC
   client stream of the same bytes in the same chunks over the same mutual-TLS link to
   a handler that only counts them (no headers, checks or assembly), interleaved,
   median of `--repeats` each (and the ratio of the best runs); a bare stream without
   TLS, and one that copies the chunks into one array as the transport must (the
   receiving step gets a contiguous array), are reported for context. The receiving process keeps freed memory for reuse as a
   party actor does (`keep_freed_memory`; `--no-keep-freed` to measure without); it
   copies the chunks into the message's buffer on a thread of its own
   (`--no-copy-thread`: in the gRPC receive loop), into a buffer reused from an earlier
   message (`--no-buffer-pool`: a new one each time).

With `--jobs` instead: the cross-silo runtime against simulation on the same backend
and the same network model (`--network`, default lan): PSI of `--psi-n` identifiers per
party (generated CSV files, 50% overlap, both learn the intersection; reading, all steps,
writing) and the epoch of the vertical logistic regression on shares with the OT
provider (`--epochs`), each party in its own process with its own runtime (`--backend`,
default ray: one Ray per organisation) against one runtime running both parties. In both
modes the runtime is started first (its start-up, Ray's included, is reported apart),
the parties exchange a start signal (one small message each way, so that two processes
start the timed job within a round trip of each other), and then the job is timed. The
time of a cross-silo job is its slower party's.

    python bench/cross_silo.py --jobs [--psi-n 1000000] [--epochs 2] [--backend ray]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

from cipherray.runtime.silo import TLS, make_dev_pki  # noqa: E402
from cipherray.runtime.silo.transport import Transport  # noqa: E402

BARE = "/bench.Bare/Sink"
ASSEMBLE = "/bench.Bare/Assemble"
GRPC_BIG = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sink(chunks, context) -> bytes:
    n = 0
    for c in chunks:
        n += len(c)
    return n.to_bytes(8, "big")


def _assemble(chunks, context) -> bytes:
    """The bare stream, also copying the chunks into one array as the transport does."""
    n = int(dict(context.invocation_metadata())["nbytes"])
    buf = np.empty(n, dtype=np.uint8)
    at = 0
    for c in chunks:
        buf[at : at + len(c)] = np.frombuffer(c, dtype=np.uint8)
        at += len(c)
    return at.to_bytes(8, "big")


def serve(cfg: dict) -> int:
    """The insurer process: a Transport, and the bare gRPC sinks (TLS and plain)."""
    if cfg["keep_freed"]:
        from cipherray.runtime.worker import keep_freed_memory

        keep_freed_memory()  # as in a party actor's process
    tls = TLS.from_dir(cfg["pki"], "insurer")
    cert, key, ca = tls.read()
    bare = grpc.server(ThreadPoolExecutor(4), options=GRPC_BIG)
    bare.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "bench.Bare",
                {
                    "Sink": grpc.stream_unary_rpc_method_handler(_sink),
                    "Assemble": grpc.stream_unary_rpc_method_handler(_assemble),
                },
            ),
        )
    )
    bare.add_secure_port(
        cfg["bare_tls"],
        grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True),
    )
    bare.add_insecure_port(cfg["bare_plain"])
    bare.start()
    t = Transport(
        "insurer", cfg["addresses"], tls, job="bench", timeout_s=120, chunk_bytes=cfg["chunk"],
        copy_thread=cfg["copy_thread"], buffer_pool_bytes=cfg["buffer_pool_bytes"],
    )  # fmt: skip
    with t:
        print("ready", flush=True)
        k = 0
        while True:
            cmd = t.recv("bank", f"cmd/{k}")
            k += 1
            if cmd["op"] == "stop":
                break
            for i in range(cmd["n"]):
                v = t.recv("bank", f"{cmd['op']}/{i}")
                if cmd["op"] == "ping":
                    t.send("bank", f"pong/{i}", v)
    bare.stop(0)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pings", type=int, default=1000)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunk-kib", type=int, default=1024)
    ap.add_argument(
        "--no-keep-freed",
        action="store_true",
        help="receiver without keep_freed_memory (party actors have it)",
    )
    ap.add_argument(
        "--no-copy-thread",
        action="store_true",
        help="receiver copies chunks in the gRPC receive loop (Transport(copy_thread=False))",
    )
    ap.add_argument(
        "--no-buffer-pool",
        action="store_true",
        help="receiver allocates every message's buffer anew (Transport(buffer_pool_bytes=0))",
    )
    ap.add_argument("--out", default=None)
    ap.add_argument("--jobs", action="store_true", help="jobs: cross-silo vs simulation")
    ap.add_argument("--psi-n", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--network", default="lan")
    ap.add_argument("--backend", default="ray", choices=["ray", "inline"])
    ap.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--job-party", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(json.loads(args.serve))
    if args.job_party:
        print(json.dumps(job_party(json.loads(args.job_party))), flush=True)
        return 0

    with tempfile.TemporaryDirectory(prefix="cipherray-bench-pki-") as d:
        return measure_jobs(args, Path(d)) if args.jobs else measure(args, Path(d))


# -- jobs: the cross-silo runtime against simulation ---------------------------------------
def _psi_config(cfg: dict, **kw: Any):
    from cipherray.workloads.psi.job import PsiConfig

    return PsiConfig(
        inputs=cfg["inputs"], keys=["phone"], out=cfg["out"], backend=cfg["backend"],
        network=cfg["network"], workers=2, progress=False, timeout_s=3600, **kw,
    )  # fmt: skip


def _lr_config(cfg: dict, **kw: Any):
    from cipherray.workloads.vfl.ss_logreg import VflLogregConfig

    return VflLogregConfig(
        epochs=cfg["epochs"], backend=cfg["backend"], network=cfg["network"], provider="ot",
        timeout_s=3600, **kw,
    )  # fmt: skip


def _start_signal() -> np.ndarray:
    return np.zeros(1)


def _started(rt: Any) -> None:
    """One small message each way between alice and bob; returns at a party once the
    other's has arrived (both processes, and their workers, are up)."""
    rt.protocol("bench", {"ping": "nothing (a start signal)", "pong": "nothing"})
    a, b = rt.party("alice"), rt.party("bob")
    ping = rt.send(a(_start_signal)(), b, "bench/ping")
    pong = rt.send(b(_start_signal)(), a, "bench/pong")
    for party, ref in ((b, ping), (a, pong)):
        if rt.is_local(party):
            rt.wait(ref, timeout=600)


def _timed_job(cfg: dict, silo: dict) -> dict:
    """Start the runtime, exchange the start signal, then run and time the job."""
    import cipherray as cr

    t = time.perf_counter()
    if cfg["job"] == "psi":
        from cipherray.workloads.psi.job import run

        spec: Any = {p: {"workers": 2} for p in cfg["inputs"]}
        job_cfg = _psi_config(cfg, **silo)
    else:
        from cipherray.workloads.vfl.ss_logreg import run

        spec = ["alice", "bob"]
        job_cfg = _lr_config(cfg, **silo)
    rt = cr.init(spec, backend=cfg["backend"], network=cfg["network"], timeout_s=3600, **silo)
    try:
        _started(rt)
        start_s = time.perf_counter() - t
        t = time.perf_counter()
        r = run(job_cfg, rt=rt)
        seconds = time.perf_counter() - t
    finally:
        rt.shutdown()
    if cfg["job"] == "psi":
        return {"seconds": seconds, "start_s": start_s, "size": r["size"], "bytes": r["bytes"]}
    keep = ("seconds_per_epoch", "accuracy", "bytes")
    return {**{k: r[k] for k in keep}, "seconds": seconds, "start_s": start_s}


def job_party(cfg: dict) -> dict:
    """One party of a cross-silo job (this script, in its own process)."""
    silo = {"party": cfg["party"], "addresses": cfg["addresses"], "tls": cfg["pki"]}
    return _timed_job(cfg, silo)


def _silo_port() -> int:
    """A free port below the ephemeral range, where Ray (which each party starts in
    its own process) picks none of its own."""
    import random
    import socket

    while True:
        port = random.randrange(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _cross_silo(cfg: dict, parties: list[str]) -> dict:
    addrs = {p: f"127.0.0.1:{_silo_port()}" for p in parties}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--job-party",
                json.dumps({**cfg, "party": p, "addresses": addrs}),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for p in parties
    ]
    out = {}
    for p, proc in zip(parties, procs):
        stdout, _ = proc.communicate(timeout=7200)
        out[p] = json.loads(stdout.strip().splitlines()[-1])
    return out


def measure_jobs(args: argparse.Namespace, pki: Path) -> int:
    from psi_runtime import make_files

    parties = ["alice", "bob"]
    make_dev_pki(parties, pki)
    base = {"backend": args.backend, "network": args.network, "pki": str(pki)}
    rows, data = [], {"machine": common.machine(), "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="cipherray-bench-psi-") as d:
        a, b, overlap = make_files(args.psi_n, Path(d))
        psi = {**base, "job": "psi", "inputs": {"alice": a, "bob": b}, "out": f"{d}/out"}
        sim = _timed_job(psi, {})
        silo = _cross_silo(psi, parties)
    assert sim["size"] == overlap and all(r["size"] == overlap for r in silo.values())
    psi_silo = max(r["seconds"] for r in silo.values())
    data["psi"] = {"simulation_s": sim["seconds"], "cross_silo_s": psi_silo, "parties": silo,
                   "simulation_start_s": sim["start_s"]}  # fmt: skip
    rows.append({
        "job": f"PSI {args.psi_n:,} per party, {args.network}, {args.backend}",
        "simulation": f"{sim['seconds']:.2f} s", "cross-silo": f"{psi_silo:.2f} s",
        "ratio": f"{psi_silo / sim['seconds']:.2f}x", "target": "<= 1.2x",
    })  # fmt: skip
    lr = {**base, "job": "lr", "epochs": args.epochs}
    sim = _timed_job(lr, {})
    silo = _cross_silo(lr, parties)
    lr_silo = max(r["seconds_per_epoch"] for r in silo.values())
    data["lr"] = {"simulation_s": sim["seconds_per_epoch"], "cross_silo_s": lr_silo,
                  "accuracy": [sim["accuracy"], silo["bob"]["accuracy"]], "parties": silo,
                  "simulation_start_s": sim["start_s"], "simulation_job_s": sim["seconds"]}  # fmt: skip
    rows.append({
        "job": f"MPC LR epoch (OT), {args.network}, {args.backend}",
        "simulation": f"{sim['seconds_per_epoch']:.2f} s", "cross-silo": f"{lr_silo:.2f} s",
        "ratio": f"{lr_silo / sim['seconds_per_epoch']:.2f}x", "target": "<= 1.2x",
    })  # fmt: skip
    for r in rows:
        print(" | ".join(r.values()))
    if args.out:
        common.write(args.out, "cross_silo_jobs", data, rows, list(rows[0]))
    return 0


def measure(args: argparse.Namespace, pki: Path) -> int:
    make_dev_pki(["bank", "insurer"], pki)
    addrs = {p: f"127.0.0.1:{_free_port()}" for p in ("bank", "insurer")}
    chunk = args.chunk_kib << 10
    cfg = {
        "pki": str(pki),
        "addresses": addrs,
        "chunk": chunk,
        "keep_freed": not args.no_keep_freed,
        "copy_thread": not args.no_copy_thread,
        "buffer_pool_bytes": 0 if args.no_buffer_pool else 1 << 30,
        "bare_tls": f"127.0.0.1:{_free_port()}",
        "bare_plain": f"127.0.0.1:{_free_port()}",
    }
    peer = subprocess.Popen(
        [sys.executable, __file__, "--serve", json.dumps(cfg)], stdout=subprocess.PIPE, text=True
    )
    assert peer.stdout.readline().strip() == "ready"
    tls = TLS.from_dir(pki, "bank")
    cert, key, ca = tls.read()
    cmds = iter(range(1 << 30))

    with Transport("bank", addrs, tls, job="bench", timeout_s=120, chunk_bytes=chunk) as bank:

        def command(op: str, n: int) -> None:
            bank.send("insurer", f"cmd/{next(cmds)}", {"op": op, "n": n})

        # 1. small-message round trips
        warm = 50
        command("ping", warm + args.pings)
        x = np.arange(8, dtype=np.float64)
        rtts = []
        for i in range(warm + args.pings):
            t0 = time.perf_counter()
            bank.send("insurer", f"ping/{i}", x)
            bank.recv("insurer", f"pong/{i}")
            rtts.append(time.perf_counter() - t0)
        rtts = sorted(rtts[warm:])
        rtt_ms = 1e3 * statistics.median(rtts)
        rtt_p99 = 1e3 * rtts[int(0.99 * (len(rtts) - 1))]
        print(f"round trip: median {rtt_ms:.3f} ms, p99 {rtt_p99:.3f} ms ({args.pings} pings)")

        # 2. bulk shares vs a bare gRPC stream on the same link
        shares = np.random.default_rng(0).integers(
            0, 2**63, size=(args.mb * 10**6) // 8, dtype=np.uint64
        )
        payload = memoryview(shares.reshape(-1).view(np.uint8))
        nbytes = len(payload)
        creds = grpc.ssl_channel_credentials(ca, key, cert)
        tls_ch = grpc.secure_channel(
            cfg["bare_tls"],
            creds,
            options=[("grpc.ssl_target_name_override", "insurer"), *GRPC_BIG],
        )
        plain_ch = grpc.insecure_channel(cfg["bare_plain"], options=GRPC_BIG)

        def bare(ch, method: str = BARE) -> float:
            stub = ch.stream_unary(method)
            t0 = time.perf_counter()
            got = stub(
                (bytes(payload[i : i + chunk]) for i in range(0, nbytes, chunk)),
                timeout=120,
                metadata=(("nbytes", str(nbytes)),),
            )
            dt = time.perf_counter() - t0
            assert int.from_bytes(got, "big") == nbytes
            return dt

        bare(tls_ch), bare(plain_ch)  # connect and warm up
        command("bulk", args.repeats + 1)
        bank.send("insurer", "bulk/0", shares)  # warm-up
        ours, bare_tls, bare_plain, assembled = [], [], [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            bank.send("insurer", f"bulk/{r + 1}", shares)
            ours.append(time.perf_counter() - t0)
            bare_tls.append(bare(tls_ch))
            bare_plain.append(bare(plain_ch))
            assembled.append(bare(tls_ch, ASSEMBLE))
        command("stop", 0)
        tls_ch.close()
        plain_ch.close()
    peer.wait(timeout=60)

    mbps = {k: nbytes / 1e6 / statistics.median(v) for k, v in
            (("ours", ours), ("bare_tls", bare_tls), ("bare_plain", bare_plain),
             ("bare_tls_assembled", assembled))}  # fmt: skip
    ratio = mbps["ours"] / mbps["bare_tls"]
    best = min(bare_tls) / min(ours)  # the least disturbed run of each
    print(
        f"{args.mb} MB: transport {mbps['ours']:.0f} MB/s, bare gRPC stream (mTLS) "
        f"{mbps['bare_tls']:.0f} MB/s -> {100 * ratio:.0f}% (best runs: {100 * best:.0f}%); bare without TLS "
        f"{mbps['bare_plain']:.0f} MB/s; bare (mTLS) copying into one array "
        f"{mbps['bare_tls_assembled']:.0f} MB/s (chunks of {args.chunk_kib} KiB)"
    )
    if args.out:
        data = {
            "machine": common.machine(),
            "args": vars(args),
            "round_trip_ms": {"median": rtt_ms, "p99": rtt_p99},
            "bulk_mb_s": mbps,
            "bulk_seconds": {
                "ours": ours,
                "bare_tls": bare_tls,
                "bare_plain": bare_plain,
                "bare_tls_assembled": assembled,
            },
            "ratio_vs_bare_tls": ratio,
            "ratio_vs_bare_tls_best_runs": best,
        }
        table = [
            {"measure": "small-message round trip (median)", "value": f"{rtt_ms:.3f} ms"},
            {"measure": "small-message round trip (p99)", "value": f"{rtt_p99:.3f} ms"},
            {"measure": f"{args.mb} MB shares, transport", "value": f"{mbps['ours']:.0f} MB/s"},
            {
                "measure": f"{args.mb} MB, bare gRPC stream (mTLS)",
                "value": f"{mbps['bare_tls']:.0f} MB/s",
            },
            {"measure": "transport / bare (mTLS)", "value": f"{100 * ratio:.0f}%"},
            {"measure": "transport / bare (mTLS), best runs", "value": f"{100 * best:.0f}%"},
            {
                "measure": f"{args.mb} MB, bare gRPC stream (no TLS)",
                "value": f"{mbps['bare_plain']:.0f} MB/s",
            },
            {
                "measure": f"{args.mb} MB, bare gRPC stream (mTLS) copied into one array",
                "value": f"{mbps['bare_tls_assembled']:.0f} MB/s",
            },
        ]
        common.write(args.out, "cross_silo", data, table, ["measure", "value"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
