"""Hidden query: holder setup, online query time and bytes against N rows with labels.

For each N (``--sizes``): the holder's setup (OPRF on every row over ``--workers``
processes, labels encrypted, entries sorted by tag), the querier's copy of the table, and
online batches of k keys (``--ks`` at the largest N; k = 1 and 1000 at every N), half of
them present. Time per phase (one run each), bytes per query and for setup, and the
published APSI figure for comparison (other hardware, labelled as such). Results go to
``--out`` (JSON + markdown) only when it is given.

    python bench/query.py --sizes 10000,100000,1000000 --ks 1,10,100,1000,10000 --out DIR
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, write  # noqa: E402
from cipherray.protocols.query import HolderTable, Querier, QuerierTable  # noqa: E402

# Published figure (not measured here): SecretFlow's APSI benchmark, one query against
# 10^6 items with 32-byte labels, LAN, sender on 32 cores.
APSI_PUBLISHED = {
    "system": "SecretFlow APSI (published figure, other hardware: sender on 32 cores, LAN)",
    "n": 10**6,
    "label_bytes": 32,
    "k": 1,
    "online_s": 0.494,
    "query_bytes": None,  # not part of the cited figure
}


def one_size(n: int, ks: list[int], width: int, pool: ProcessPoolExecutor | None) -> list[dict]:
    keys = [b"id%012d" % i for i in range(n)]
    labels = np.frombuffer(os.urandom(n * width), dtype=np.uint8).reshape(n, width)
    holder = HolderTable(width)
    mapper = pool.map if pool is not None else None
    chunk = max(1024, -(-n // (8 * (pool._max_workers if pool else 1))))
    t0 = time.perf_counter()
    msg = holder.setup(keys, labels, mapper, chunk=chunk)
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    querier = Querier(QuerierTable(msg))
    load_s = time.perf_counter() - t0
    rows = []
    for k in ks:
        present = [keys[i] for i in np.frombuffer(os.urandom(8 * k), "<u8")[: (k + 1) // 2] % n]
        absent = [b"absent%d" % i for i in range(k - len(present))]
        asked = present + absent
        t0 = time.perf_counter()
        state, blinded = querier.blind(asked)
        t1 = time.perf_counter()
        answer = holder.answer(blinded)
        t2 = time.perf_counter()
        found, got = querier.finish(state, answer)
        t3 = time.perf_counter()
        assert found[: len(present)].all() and not found[len(present) :].any()
        idx = [int(p[2:]) for p in present]
        assert np.array_equal(got[: len(present)], labels[idx])
        rows.append(
            {
                "n": n,
                "label_bytes": width,
                "k": k,
                "setup_s": round(setup_s, 2),
                "setup_bytes": msg.nbytes,
                "querier_load_s": round(load_s, 3),
                "online_s": round(t3 - t0, 4),
                "querier_s": round((t1 - t0) + (t3 - t2), 4),
                "holder_s": round(t2 - t1, 4),
                "query_bytes": len(blinded) + len(answer),
                "bytes_per_key": (len(blinded) + len(answer)) // k,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--ks", default="1,10,100,1000,10000", help="batch sizes at the largest N")
    ap.add_argument("--label-bytes", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="processes for the holder's setup")
    ap.add_argument("--out", default=None, help="write query.json and query.md here")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    ks_all = [int(k) for k in args.ks.split(",")]
    rows: list[dict] = []
    pool = ProcessPoolExecutor(args.workers) if args.workers > 1 else None
    try:
        for n in sizes:
            ks = ks_all if n == max(sizes) else [1, 1000]
            rows += one_size(n, ks, args.label_bytes, pool)
    finally:
        if pool is not None:
            pool.shutdown()
    apsi = dict(APSI_PUBLISHED)
    print("published, not measured here:", apsi)
    if args.out:
        cols = ["n", "k", "setup_s", "setup_bytes", "querier_load_s", "online_s", "querier_s",
                "holder_s", "query_bytes", "bytes_per_key"]  # fmt: skip
        table = rows + [
            {
                "n": apsi["n"],
                "k": apsi["k"],
                "online_s": f"{apsi['online_s']} (SecretFlow APSI, published, 32-core sender)",
                "query_bytes": "not in the cited figure",
            }
        ]
        write(args.out, "query", {"machine": machine(), "workers": args.workers,
                                  "results": rows, "published": apsi}, table, cols)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
