"""`cipherray run|bench|cluster|certs ...` (also `python -m cipherray ...`).

`cipherray run <workload>` has one subcommand per workload. A workload is a module that
exposes ``add_arguments(parser)`` (its own options, plus the shared ones through
:func:`add_runtime_arguments`) and ``main(args) -> int``; :data:`WORKLOADS` maps its name to
that module, which is imported only when the workload is named on the command line (so
``cipherray --help`` and ``cipherray run --help`` import no workload and never Ray).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Workload:
    module: str  # exposes add_arguments(parser) and main(args) -> int
    summary: str  # the line `cipherray run --help` shows
    aliases: tuple[str, ...] = ()


# One entry per workload: `cipherray run <name>`.
WORKLOADS: dict[str, Workload] = {
    "stats": Workload(
        "cipherray.workloads.stats",
        "joint statistics of hospitals on secret shares",
        aliases=("quickstart",),
    ),
    "psi": Workload(
        "cipherray.workloads.psi.job",
        "private set intersection of the parties' files",
    ),
    "mpc-logreg": Workload(
        "cipherray.workloads.vfl.ss_logreg",
        "vertical logistic regression on secret shares (MPC: dealer or OT provider)",
    ),
    "hfl": Workload(
        "cipherray.workloads.hfl.job",
        "horizontal federated learning (populations or silos; SecAgg+, DP)",
    ),
    "vfl": Workload(
        "cipherray.workloads.vfl.job",
        "vertical FL on Paillier: hetero logistic regression or SecureBoost (PSI-aligned)",
    ),
    "query": Workload(
        "cipherray.workloads.query.job",
        "hidden query: keyword lookups the holder never sees; joint blacklists",
    ),
    "deid": Workload(
        "cipherray.workloads.analytics.deid_job",
        "de-identify a table: pseudonyms, Mondrian k-anonymity with l / t, risk report",
    ),
}


# -- options every workload shares ---------------------------------------------------------
def network(value: str | None) -> Any:
    """--network: None, a preset name ("lan", "wan") or a JSON dict."""
    if value is None:
        return None
    if value.startswith("{"):
        return json.loads(value)
    return value


def positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def add_runtime_arguments(
    parser: argparse.ArgumentParser,
    *,
    workers: int,
    graph: bool = True,
    report: bool = True,
    silo: bool = False,
) -> None:
    """The options of the runtime a workload runs on: --backend, --address, --network,
    --workers (default ``workers`` per party), --timeout, --no-progress, and where the
    workload writes them, --graph (``graph``) and --json (``report``); with ``silo``
    (a workload that runs in cross-silo mode) --party, --addresses and --tls."""
    g = parser.add_argument_group("runtime")
    g.add_argument("--backend", default="ray", choices=["ray", "inline"])
    g.add_argument("--address", default=None, help="None: embedded Ray; 'auto' or ray://...")
    g.add_argument("--network", default=None, help="lan, wan or a JSON dict")
    g.add_argument(
        "--workers", type=positive_int, default=workers, help=f"workers per party ({workers})"
    )
    g.add_argument("--timeout", type=float, default=120.0, help="seconds before a wait fails")
    g.add_argument("--no-progress", action="store_true")
    if graph:
        g.add_argument("--graph", default=None, help="write the task graph (.dot or .json)")
    if report:
        g.add_argument("--json", default=None, help="write the report as JSON")
    if silo:
        s = parser.add_argument_group(
            "cross-silo (each organisation runs the same command with its own --party)"
        )
        s.add_argument("--party", default=None, help="the party this process runs")
        s.add_argument(
            "--addresses", default=None, help="every party's endpoint: bank=HOST:PORT,..."
        )
        s.add_argument("--tls", default=None, help="directory of ca.crt, PARTY.crt, PARTY.key")


def runtime_options(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields add_runtime_arguments' options give (every workload config has them)."""
    return {
        "backend": args.backend,
        "address": args.address,
        "network": network(args.network),
        "workers": args.workers,
        "timeout_s": args.timeout,
        "progress": not args.no_progress,
        **silo_options(args),
    }


def silo_options(args: argparse.Namespace) -> dict[str, Any]:
    """--party, --addresses, --tls as config fields (none unless --party is given)."""
    party = getattr(args, "party", None)
    if party is None:
        if getattr(args, "addresses", None) or getattr(args, "tls", None):
            raise SystemExit("--addresses and --tls need --party (cross-silo mode)")
        return {}
    if not args.addresses or not args.tls:
        raise SystemExit("cross-silo mode needs --party, --addresses and --tls")
    from cipherray.runtime.silo.transport import parse_addresses

    return {"party": party, "addresses": parse_addresses(args.addresses), "tls": args.tls}


def write_json(path: str, report: dict) -> None:
    """--json: the report (NumPy scalars as Python numbers)."""

    def plain(x: Any) -> Any:
        return x.item() if hasattr(x, "item") else str(x)

    from cipherray.workloads import files

    files.write_text(path, json.dumps(report, indent=1, default=plain))


# -- `cipherray run` -------------------------------------------------------------------------
class _WorkloadParser(argparse.ArgumentParser):
    """A workload's subcommand: its module is imported, and its options added, only when
    this parser parses or prints help."""

    def __init__(self, *args: Any, workload: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._workload = workload

    def _load(self) -> None:
        if self._workload is not None:
            name, self._workload = self._workload, None
            importlib.import_module(WORKLOADS[name].module).add_arguments(self)
            self.set_defaults(workload=name)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self._load()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._load()
        return super().format_help()

    def format_usage(self) -> str:
        self._load()
        return super().format_usage()


def _cmd_run(args: argparse.Namespace) -> int:
    from cipherray.runtime.errors import CipherrayError

    module = importlib.import_module(WORKLOADS[args.workload].module)
    try:
        return module.main(args)
    except CipherrayError as e:
        print(f"cipherray {args.workload}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


# -- `cipherray bench`, `cipherray cluster` --------------------------------------------------
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


def _cmd_certs(args: argparse.Namespace) -> int:
    from cipherray.runtime.silo import certs

    return certs.main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cipherray", description="cipherray: privacy computing on Ray."
    )
    sub = p.add_subparsers(dest="command", required=True)

    width = max(len(", ".join((n, *w.aliases))) for n, w in WORKLOADS.items()) + 2
    listing = "".join(
        f"\n  {', '.join((n, *w.aliases)):<{width}}{w.summary}" for n, w in WORKLOADS.items()
    )
    r = sub.add_parser(
        "run",
        help="run a workload",
        usage="%(prog)s [-h] WORKLOAD [options]",
        description="Run a workload; `cipherray run WORKLOAD --help` lists its options.\n\n"
        f"workloads:{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    workloads = r.add_subparsers(
        dest="workload_name",
        metavar="WORKLOAD",
        required=True,
        help=argparse.SUPPRESS,  # listed in the description, one line each
        parser_class=_WorkloadParser,
    )
    for name, w in WORKLOADS.items():
        workloads.add_parser(
            name,
            aliases=list(w.aliases),
            prog=f"{r.prog} {name}",  # not the usage line above
            description=w.summary,
            workload=name,
        )

    b = sub.add_parser("bench", help="run a benchmark script from bench/")
    b.add_argument("name")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.add_argument("--bench-dir", default=os.environ.get("CIPHERRAY_BENCH_DIR", "bench"))

    c = sub.add_parser("cluster", help="cluster helpers")
    c.add_argument("action", choices=["head-command", "start-head"])
    c.add_argument("--parties", required=True)
    c.add_argument("--workers", type=int, default=2)

    k = sub.add_parser(
        "certs",
        help="make a development PKI for cross-silo mode (a CA, a key + certificate per party)",
    )
    k.add_argument("--parties", required=True, help="comma-separated party names")
    k.add_argument("--out", required=True, help="directory for ca.crt and <party>.crt/.key")
    k.add_argument("--days", type=positive_int, default=365, help="validity (365)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return _cmd_run(args)
    if args.command == "bench":
        return _cmd_bench(args)
    if args.command == "certs":
        return _cmd_certs(args)
    return _cmd_cluster(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
