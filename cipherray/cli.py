"""`cipherray run|bench|cluster ...` (also `python -m cipherray ...`)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def _network(value: str | None):
    if value is None:
        return None
    if value.startswith("{"):
        return json.loads(value)
    return value


def _cmd_run_quickstart(args: argparse.Namespace) -> int:
    from cipherray.workloads.quickstart import QuickstartConfig, run

    cfg = QuickstartConfig(
        hospitals=args.parties.split(","),
        backend=args.backend,
        address=args.address,
        network=_network(args.network),
        workers=args.workers or 1,
        timeout_s=args.timeout,
        progress=not args.no_progress,
        graph=args.graph,
    )
    report = run(cfg)
    first = cfg.hospitals[0]
    print(f"Joint statistics of {len(cfg.hospitals)} hospitals, revealed to {first} only:\n")
    print(report["result"].to_string(index=False))
    print("\nLedger (what crossed between parties):")
    print(report["ledger_text"])
    print(
        f"\nreveals audited: {report['reveals']}   backend: {report['backend']}   "
        f"time: {report['seconds_total']:.2f} s (start-up {report['seconds_init']:.2f} s)"
    )
    if args.graph:
        print(f"task graph written to {args.graph}")
    if args.json:
        out = {
            "result": report["result"].to_dict(orient="records"),
            "ledger": report["ledger"].to_dict(orient="records"),
            "seconds_total": report["seconds_total"],
            "seconds_init": report["seconds_init"],
            "backend": report["backend"],
        }
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def _cmd_run_psi(args: argparse.Namespace) -> int:
    from cipherray.workloads.psi.job import PsiConfig, PsiInputError, parse_inputs, run

    try:
        inputs = parse_inputs(args.input or [])
        normalize = _parse_normalize(args.normalize)
        cfg = PsiConfig(
            inputs=inputs,
            keys=args.key or [],
            out=args.out,
            mode=args.mode,
            value=args.value,
            receiver=args.receiver,
            normalize=normalize,
            strict=args.strict,
            workers=args.workers or 2,
            backend=args.backend,
            address=args.address,
            network=_network(args.network),
            timeout_s=args.timeout,
            progress=not args.no_progress,
        )
        report = run(cfg)
    except PsiInputError as e:
        print(f"cipherray psi: {e}", file=sys.stderr)
        return 2
    stats = report["stats"]
    for party, st in stats.items():
        print(
            f"{party}: {st['rows']:,} rows, {st['identifiers']:,} identifiers "
            f"({st['missing']:,} missing dropped, {st['duplicates']:,} duplicates)"
        )
    if report["mode"] == "intersection":
        print(
            f"intersection: {report['size']:,} identifiers, known to {', '.join(report['learners'])}"
        )
        for party, path in report["files"].items():
            print(f"  {party} -> {path}")
    elif report["mode"] == "cardinality":
        print(f"intersection size: {report['size']:,} (known to {report['receiver']} only)")
    else:
        print(
            f"intersection sum of {args.value}: {report['sum']} over {report['size']:,} "
            f"identifiers (known to {report['receiver']} only)"
        )
    print("\nLedger (what crossed between parties):")
    print(report["ledger_text"])
    print(f"\ntime: {report['seconds']:.2f} s")
    return 0


def _parse_normalize(items: list[str] | None):
    """["phone=digits", "name=strip,casefold"] -> {"phone": [...]}; ["strip"] -> all keys."""
    if not items:
        return None
    per_key: dict[str, list[str]] = {}
    everywhere: list[str] = []
    for item in items:
        if "=" in item:
            k, ops = item.split("=", 1)
            per_key.setdefault(k, []).extend(o for o in ops.split(",") if o)
        else:
            everywhere.extend(o for o in item.split(",") if o)
    if per_key and everywhere:
        raise SystemExit("--normalize: use either KEY=OPS or OPS for all keys, not both")
    return per_key or everywhere


WORKLOADS = {"quickstart": _cmd_run_quickstart, "psi": _cmd_run_psi}


def _cmd_bench(args: argparse.Namespace) -> int:
    script = Path(args.bench_dir) / f"{args.name}.py"
    if not script.exists():
        print(f"no benchmark {script}; run from the repository root", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(script), *args.rest])


def _cmd_cluster(args: argparse.Namespace) -> int:
    parties = [p for p in args.parties.split(",") if p]
    res = json.dumps({f"party:{p}": args.workers for p in parties})
    print(f"ray start --head --resources='{res}'")
    if args.action == "start-head":
        return subprocess.call(["ray", "start", "--head", f"--resources={res}"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cipherray", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a workload")
    r.add_argument("workload", choices=sorted(WORKLOADS))
    r.add_argument("--parties", default="h1,h2,h3", help="quickstart: comma-separated names")
    r.add_argument("--address", default=None, help="None: embedded Ray; 'auto' or ray://...")
    r.add_argument("--backend", default="ray", choices=["ray", "inline"])
    r.add_argument("--network", default=None, help="lan, wan or a JSON dict")
    r.add_argument("--workers", type=int, default=None, help="workers per party")
    r.add_argument("--timeout", type=float, default=120.0, help="seconds before a wait fails")
    r.add_argument("--graph", default=None, help="write the task graph (.dot or .json)")
    r.add_argument("--json", default=None, help="write the report as JSON")
    r.add_argument("--no-progress", action="store_true")
    psi = r.add_argument_group("psi")
    psi.add_argument("--input", action="append", help="PARTY=FILE (CSV or Parquet), repeat")
    psi.add_argument("--key", action="append", help="key column, repeat for composite keys")
    psi.add_argument("--out", default="psi_out", help="output folder")
    psi.add_argument(
        "--mode", default="intersection", choices=["intersection", "cardinality", "sum"]
    )
    psi.add_argument("--value", default=None, help="value column for --mode sum")
    psi.add_argument("--receiver", default=None, help="the only party that learns the result")
    psi.add_argument(
        "--normalize", action="append", help="strip, casefold, digits: OPS or KEY=OPS (repeat)"
    )
    psi.add_argument("--strict", action="store_true", help="missing key values are an error")

    b = sub.add_parser("bench", help="run a benchmark script from bench/")
    b.add_argument("name")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.add_argument("--bench-dir", default=os.environ.get("CIPHERRAY_BENCH_DIR", "bench"))

    c = sub.add_parser("cluster", help="cluster helpers")
    c.add_argument("action", choices=["head-command", "start-head"])
    c.add_argument("--parties", required=True)
    c.add_argument("--workers", type=int, default=2)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from cipherray.runtime.errors import CipherrayError

        try:
            return WORKLOADS[args.workload](args)
        except CipherrayError as e:
            print(f"cipherray {args.workload}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    if args.command == "bench":
        return _cmd_bench(args)
    return _cmd_cluster(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
