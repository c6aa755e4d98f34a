"""Gather flower_bench.py outputs into one JSON list and a Markdown table (stdlib only).

    python bench/flower_peer/collect.py RUN.json [RUN.json ...] \
        --out bench/results/flower_peer.json --md bench/results/flower_peer.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def table(runs: list[dict]) -> str:
    """One row per run: the best actor count's median round, plus every try's median."""
    head = (
        "| mode | clients | rows | rounds | seconds_per_round (median, best) | best actors "
        "| per actor count: median s (all rounds s) | accuracy |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in runs:
        tries = "; ".join(
            f"{t['actors']}: {t['seconds_per_round']:.2f} ({', '.join(f'{s:.2f}' for s in t['all_round_seconds'])})"
            for t in r["tries"]
        )
        rows.append(
            f"| {r['mode']} | {r['clients']} | {r['rows']} | {r['rounds']} "
            f"| {r['seconds_per_round']:.2f} | {r['actors']} | {tries} | {r['accuracy']:.4f} |"
        )
    return head + "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--md", type=Path, required=True)
    args = ap.parse_args()
    runs = [json.loads(p.read_text()) for p in args.runs]
    args.out.write_text(json.dumps(runs, indent=2) + "\n")
    r0 = runs[0]
    secagg = next((r["secagg"] for r in runs if "secagg" in r), None)
    md = (
        f"# Flower {r0['flwr_version']} peer (Ray {r0['ray_version']}), "
        f"{r0['cores']}-core machine\n\n"
        "Anchor workload (softmax regression on replicated digits, every client every "
        "round, 1 local epoch, batch 32, lr 0.1), Flower Simulation Engine with its Ray "
        "backend; round = configure_fit .. aggregate_fit, median after one warm-up round. "
        "See bench/flower_peer/README.md.\n\n" + table(runs)
    )
    if secagg is not None:
        md += "\nSecAgg+ parameters: " + ", ".join(f"{k}={v}" for k, v in secagg.items()) + "\n"
    args.md.write_text(md)
    print(md)


if __name__ == "__main__":
    main()
