"""Runtime overheads, measured side by side with bare Ray in one run.

    python bench/runtime.py [--calls 1000] [--mb 100] [--sum-n 10000000] [--out bench/out]

1. a party step (`party(fn)(x)` then `rt.get`) vs a bare Ray actor call doing the same
   work: median of `--calls` calls each, interleaved;
2. a 100 MB cross-party transfer of shares (sender's step emits it, the channel
   delivers it as a declared protocol message, `rt.send`, the receiver reads it) vs
   bare `ray.put` + `ray.get` of the same bytes, and vs the same path on bare actors;
   and the delivery of a share that is already a value of the sender (what `reveal_to`
   does: the sender puts it into the object store, the receiver reads it);
3. secure sum of 3 x `--sum-n` float64 values held by 3 parties (share, add, reveal)
   vs numpy's plain sum of the same values (best of 5): the first run in fresh workers
   (values stay in the workers' memory: their first large arrays cost page faults)
   reported apart, then the median of `--sum-repeats` runs. Its floor, measured in the
   same run (interleaved with those runs, medians): (a) the AES-CTR expansion of the
   masks the protocol needs, at the three parties at once (each expands 2 (n_parties - 1)
   keystreams of --sum-n ring elements: the n - 1 it subtracts from its own value and
   the n - 1 it gets as seeds) with the fastest path there is (the AES-NI kernel's
   masked sum into an array already touched); (b) one transfer of a share-sized array
   (8 x --sum-n bytes) between two bare Ray actors. floor_s = (a) + (b); the protocol
   itself moves only seeds and one scalar per party (bytes_sent), so the floor of what
   it moves, (a) plus a small actor-to-actor message, is reported too.

The driver plays the three parties (`driver_as`), so it may read their step results
(`rt.get`), as the bare Ray driver reads its actors' results.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from workfns import (  # noqa: E402
    BareActor,
    declare_bench_protocol,
    deliver,
    emit,
    expand_masks,
    local_data,
    make_share,
    mask_buffer,
    work,
)

import cipherray as cr  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--sum-n", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--sum-repeats", type=int, default=7)
    ap.add_argument("--out", default="bench/out")
    args = ap.parse_args()
    import ray

    rt = cr.init(["a", "b", "c"], timeout_s=600, driver_as=["a", "b", "c"])
    declare_bench_protocol(rt)
    a, b, c = rt.parties
    bare = ray.remote(BareActor).options(resources={"party:a": 0.001}, num_cpus=0.01).remote()
    x_small = np.arange(16, dtype=np.float64)
    # warm up both paths
    for _ in range(50):
        rt.get(a(work)(x_small))
        ray.get(bare.run.remote(x_small))
    ours, theirs = [], []
    for _ in range(args.calls):
        t = time.perf_counter()
        rt.get(a(work)(x_small))
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        ray.get(bare.run.remote(x_small))
        theirs.append(time.perf_counter() - t)
    step = {
        "ours_median_ms": statistics.median(ours) * 1e3,
        "bare_ray_median_ms": statistics.median(theirs) * 1e3,
    }
    step["ratio"] = step["ours_median_ms"] / step["bare_ray_median_ms"]
    print("party step", step)

    # 2. 100 MB transfer of shares
    nbytes = args.mb * 1_000_000
    share_at_a = a(make_share)(nbytes)
    rt.wait(share_at_a)
    blob = make_share(nbytes)

    def run_existing() -> float:  # a value of the sender's already: sent as it is
        t = time.perf_counter()
        assert deliver(rt, [(share_at_a, b)], "bench/transfer") == [nbytes]
        return time.perf_counter() - t

    def run_emit() -> float:
        t = time.perf_counter()
        msg = a(emit)(share_at_a)  # the sender's step makes the value it sends
        assert deliver(rt, [(msg, b)], "bench/transfer") == [nbytes]
        return time.perf_counter() - t

    def run_bare() -> float:
        t = time.perf_counter()
        ref = ray.put(blob)
        assert ray.get(ref).nbytes == nbytes
        return time.perf_counter() - t

    bare_b = ray.remote(BareActor).options(resources={"party:b": 0.001}, num_cpus=0.01).remote()
    blob_ref = ray.put(blob)

    def run_bare_actors() -> float:  # the same path with bare Ray actors: emit at a, consume at b
        t = time.perf_counter()
        msg = bare.emit.remote(blob_ref)
        assert ray.get(bare_b.consume.remote(msg)) == nbytes
        return time.perf_counter() - t

    fns = {
        "existing": run_existing,
        "emit": run_emit,
        "bare": run_bare,
        "bare_actors": run_bare_actors,
    }
    for fn in fns.values():  # warm up every path
        fn()
    rt.ledger.reset()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(args.repeats):
        k = i % len(fns)
        for name in list(fns)[k:] + list(fns)[:k]:
            times[name].append(fns[name]())
    transfer = {
        "mb": args.mb,
        "repeats": args.repeats,
        "ours_existing_share_s": statistics.median(times["existing"]),
        "ours_emit_and_deliver_s": statistics.median(times["emit"]),
        "bare_put_get_s": statistics.median(times["bare"]),
        "bare_actor_emit_consume_s": statistics.median(times["bare_actors"]),
    }
    transfer["ratio_vs_bare_actors"] = (
        transfer["ours_emit_and_deliver_s"] / transfer["bare_actor_emit_consume_s"]
    )
    transfer["ratio"] = transfer["ours_emit_and_deliver_s"] / transfer["bare_put_get_s"]
    transfer["ratio_existing"] = transfer["ours_existing_share_s"] / transfer["bare_put_get_s"]
    sent = rt.ledger.by_tag().set_index("tag").loc["bench/transfer"]
    transfer["ledger_messages"] = int(sent["messages"])
    transfer["ledger_bytes_per_transfer"] = int(sent["bytes"]) // max(int(sent["messages"]), 1)
    print("transfer", transfer)

    # 3. secure sum of 3 x n values
    n = args.sum_n
    mpc = rt.mpc(a, b, c)
    data = [p(local_data)(i, n) for i, p in enumerate((a, b, c))]
    rt.wait(data)
    parties = (a, b, c)
    streams = 2 * (len(parties) - 1)  # keystreams each party expands (see the docstring)
    bufs = [p(mask_buffer)(n) for p in parties]
    share_blob_ref = ray.put(make_share(8 * n))
    small_ref = ray.put(np.zeros(4, dtype=np.uint64))

    def run_secure() -> tuple[float, float]:
        t = time.perf_counter()
        shared = [d.to(mpc) for d in data]
        total = (shared[0] + shared[1] + shared[2]).sum()
        value = float(rt.get(total.reveal_to(a)))
        return time.perf_counter() - t, value

    def run_masks() -> float:  # (a): the three parties expand their masks at once
        t = time.perf_counter()
        assert rt.get([p(expand_masks)(buf, streams) for p, buf in zip(parties, bufs)]) == [
            streams
        ] * len(parties)
        return time.perf_counter() - t

    def run_transfer(ref) -> float:  # (b): actor to actor, as in the transfer case above
        t = time.perf_counter()
        msg = bare.emit.remote(ref)
        ray.get(bare_b.consume.remote(msg))
        return time.perf_counter() - t

    rt.ledger.reset()
    t_first, secure = run_secure()  # in fresh workers (page faults: values stay in them)
    first_ledger = (rt.ledger.total_bytes, rt.ledger.total_rounds)
    run_masks(), run_transfer(share_blob_ref), run_transfer(small_ref)  # warm up
    secure_runs, mask_runs, transfer_runs, small_runs = [], [], [], []
    for _ in range(args.sum_repeats):
        dt, secure = run_secure()
        secure_runs.append(dt)
        mask_runs.append(run_masks())
        transfer_runs.append(run_transfer(share_blob_ref))
        small_runs.append(run_transfer(small_ref))
    del share_blob_ref, small_ref
    t_secure = statistics.median(secure_runs)
    t_masks = statistics.median(mask_runs)
    t_transfer = statistics.median(transfer_runs)
    t_small = statistics.median(small_runs)
    floor = t_masks + t_transfer
    plain_arrays = np.concatenate([local_data(i, n) for i in range(3)])
    reps = []
    for _ in range(5):
        t = time.perf_counter()
        plain = float(np.sum(plain_arrays))
        reps.append(time.perf_counter() - t)
    t_plain = min(reps)
    from cipherray.cpu_kernels import aes_ctr

    secure_sum = {
        "values": 3 * n,
        "secure_s": t_secure,
        "secure_runs_s": secure_runs,
        "secure_first_s": t_first,
        "numpy_s": t_plain,
        "ratio": t_secure / t_plain,
        "abs_error": abs(secure - plain),
        "bytes_sent": first_ledger[0],
        "rounds": first_ledger[1],
        "floor_s": floor,
        "ratio_to_floor": t_secure / floor,
        "floor_masks_s": t_masks,
        "floor_masks_runs_s": mask_runs,
        "floor_masks_bytes": len(parties) * streams * 8 * n,
        "floor_masks_kernel": aes_ctr.kernel(),
        "floor_transfer_s": t_transfer,
        "floor_transfer_bytes": 8 * n,
        "floor_of_what_it_moves_s": t_masks + t_small,
        "ratio_to_floor_of_what_it_moves": t_secure / (t_masks + t_small),
    }
    print("secure sum", secure_sum)
    rt.shutdown()

    data_out = {
        "machine": common.machine(),
        "command": "python bench/runtime.py " + " ".join(sys.argv[1:]),
        "party_step": step,
        "transfer_100mb": transfer,
        "secure_sum": secure_sum,
    }
    table = [
        {
            "what": f"party step, median of {args.calls}",
            "cipherray": f"{step['ours_median_ms']:.3f} ms",
            "baseline": f"bare Ray actor call {step['bare_ray_median_ms']:.3f} ms",
            "ratio": f"{step['ratio']:.2f}x",
            "target": "<= 1.5x",
        },
        {
            "what": f"{args.mb} MB cross-party transfer of shares (sender writes + channel "
            "delivers + receiver reads)",
            "cipherray": f"{transfer['ours_emit_and_deliver_s'] * 1e3:.1f} ms",
            "baseline": f"ray.put + ray.get {transfer['bare_put_get_s'] * 1e3:.1f} ms",
            "ratio": f"{transfer['ratio']:.2f}x",
            "target": "<= 1.3x",
        },
        {
            "what": f"{args.mb} MB: the same emit + deliver path on bare Ray actors",
            "cipherray": f"{transfer['ours_emit_and_deliver_s'] * 1e3:.1f} ms",
            "baseline": f"bare actor emit + consume {transfer['bare_actor_emit_consume_s'] * 1e3:.1f} ms",
            "ratio": f"{transfer['ratio_vs_bare_actors']:.2f}x",
            "target": "(report)",
        },
        {
            "what": f"{args.mb} MB share already at the sender, delivered (what reveal_to does: "
            "the sender writes it, the receiver reads it)",
            "cipherray": f"{transfer['ours_existing_share_s'] * 1e3:.1f} ms",
            "baseline": f"ray.put + ray.get {transfer['bare_put_get_s'] * 1e3:.1f} ms",
            "ratio": f"{transfer['ratio_existing']:.2f}x",
            "target": "(report)",
        },
        {
            "what": f"secure sum of 3 x {n:,} float64 (3 parties), median of {args.sum_repeats}",
            "cipherray": f"{t_secure:.3f} s, {secure_sum['bytes_sent']:,} B, "
            f"{secure_sum['rounds']} rounds (the first in fresh workers {t_first:.2f} s)",
            "baseline": f"numpy sum {t_plain * 1e3:.1f} ms",
            "ratio": f"{secure_sum['ratio']:.0f}x",
            "target": "report",
        },
        {
            "what": "secure sum vs its floor: AES-CTR expansion of the masks "
            f"({secure_sum['floor_masks_bytes'] / 1e6:,.0f} MB at 3 parties at once, "
            f"{secure_sum['floor_masks_kernel']}) + one transfer of a share "
            f"({8 * n / 1e6:,.0f} MB actor to actor)",
            "cipherray": f"{t_secure:.3f} s",
            "baseline": f"floor {floor:.3f} s = {t_masks:.3f} + {t_transfer:.3f} s",
            "ratio": f"{secure_sum['ratio_to_floor']:.2f}x",
            "target": "<= 0.4 s",
        },
    ]
    common.write(
        args.out, "runtime", data_out, table, ["what", "cipherray", "baseline", "ratio", "target"]
    )


if __name__ == "__main__":
    main()
