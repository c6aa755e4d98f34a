"""`cipherray run stats --input bank=bank.csv --input insurer=insurer.parquet --key id ...`:
joint statistics over the parties' files, released through the gates.

Steps:
1. every party reads its own file (CSV or Parquet) in its own worker;
2. two inputs with `--key`: a privately joined table (a dealer party is added to the
   runtime for the oblivious permutations); otherwise the inputs are stacked;
3. the `--where` predicates are evaluated by the party that holds their columns;
4. `--groupby` / `--agg` are computed on shares;
5. the result is released to `--to` through the gates: `--min-group` (suppression on the
   exact counts), `--epsilon` / `--delta` (DP, with `--bounds` clamping the summed columns);
6. `DIR/result.csv` (one row per released group, columns `<col>_<agg>`) and
   `DIR/report.json` (what was suppressed, ε spent, bytes, rounds) are written, each to a
   temporary name first and then renamed, and only after every check has passed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from cipherray.workloads import files


class StatsInputError(ValueError):
    """A bad command line or input file (named)."""


def read_table(path: str, party: str) -> pd.DataFrame:
    """At a party: its file as a DataFrame (CSV or Parquet by the extension)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{party}: input file {path} does not exist")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p)
    return pd.read_csv(p)


def parse_inputs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for it in items:
        if "=" not in it:
            raise StatsInputError(f"--input {it!r} must read PARTY=PATH")
        party, path = it.split("=", 1)
        if not party or party in out:
            raise StatsInputError(f"--input: party {party!r} is empty or given twice")
        out[party] = path
    return out


def parse_bounds(items: list[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for it in items or []:
        try:
            col, rng = it.split("=", 1)
            lo, hi = (float(v) for v in rng.split(":"))
        except ValueError:
            raise StatsInputError(f"--bounds {it!r} must read COLUMN=LO:HI") from None
        out[col] = (lo, hi)
    return out


def run(args: argparse.Namespace) -> dict:
    import cipherray as cr
    from cipherray.workloads.analytics import DP

    inputs = parse_inputs(args.input or [])
    if not inputs:
        raise StatsInputError("no --input given")
    for party, path in inputs.items():
        if not Path(path).exists():
            raise StatsInputError(f"{party}: input file {path} does not exist")
    if args.to not in inputs:
        raise StatsInputError(f"--to {args.to!r} is not one of the input parties {list(inputs)}")
    if args.min_group < 1:
        raise StatsInputError("--min-group must be at least 1")
    dp = None
    if args.epsilon is not None:
        if args.epsilon <= 0:
            raise StatsInputError(f"--epsilon must be positive, got {args.epsilon}")
        dp = DP(epsilon=args.epsilon, delta=args.delta, mechanism=args.mechanism)
    bounds = parse_bounds(args.bounds)
    joined = args.key is not None and len(inputs) == 2
    if args.key is not None and len(inputs) != 2:
        raise StatsInputError("--key joins exactly two inputs; leave it out to stack them")
    dealer = args.dealer
    if dealer in inputs:
        raise StatsInputError(f"--dealer {dealer!r} must not be an input party")
    names = [*inputs, dealer]
    t0 = time.perf_counter()
    with cr.init(
        parties={n: {"workers": args.workers} for n in names},
        backend=args.backend,
        address=args.address,
        timeout_s=args.timeout,
        driver_as=None
        if getattr(args, "party", None)
        else args.to,  # the analyst acts for the receiver
        **_silo(args),
    ) as rt:
        refs = {p: rt.party(p)(read_table)(path, p) for p, path in inputs.items()}
        if joined:
            table = rt.table(refs, on=args.key, dealer=dealer, sources=inputs)
        else:
            table = rt.table.union(*refs.values(), dealer=dealer)
        if args.epsilon is not None and args.budget is not None:
            table.set_budget(args.budget, args.delta)
        table.filter(*(args.where or []))
        if bounds:
            table.clamp(**bounds)
        aggs = args.agg or []
        res = table.groupby(args.groupby).agg(aggs) if args.groupby else table.agg(aggs)
        frame_ref = res.release(to=args.to, min_group=args.min_group, dp=dp)
        frame = rt.get(frame_ref) if rt.is_local(args.to) else None  # cross-silo: at --to
        outcome = res.summarise()
        ledger = rt.ledger.summary()
        total = ledger[ledger["from"] == "total"]
        report = {
            "inputs": inputs,
            "joined_on": args.key,
            "groupby": args.groupby,
            "aggregates": aggs,
            "where": args.where or [],
            "released_to": args.to,
            "groups": outcome.groups,
            "released_groups": outcome.released,
            "suppressed_groups": outcome.suppressed,
            "min_group": outcome.min_group,
            "dp": None
            if dp is None
            else {
                "epsilon_spent": outcome.epsilon,
                "delta": outcome.delta,
                "mechanism": outcome.mechanism,
                "noise_std": outcome.noise_std,
                "budget": outcome.budget,
                "budget_spent": outcome.budget_spent,
            },
            "bytes": int(total["bytes"].iloc[0]) if len(total) else 0,
            "messages": int(total["messages"].iloc[0]) if len(total) else 0,
            # the communication depth: the longest chain of messages that waited on each other
            "rounds": int(max((m.round for m in rt.ledger.messages.values()), default=0)),
            "seconds": time.perf_counter() - t0,
        }
    return {"frame": frame, "report": report}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("joint statistics over files (with --input)")
    g.add_argument("--input", action="append", metavar="PARTY=PATH", help="a party's CSV/Parquet")
    g.add_argument("--key", default=None, help="join two inputs on this column (privately)")
    g.add_argument("--groupby", default=None, help="group key (a column of one party)")
    g.add_argument("--agg", action="append", metavar="COL:FN", help="count/sum/mean/var/std/...")
    g.add_argument("--where", action="append", metavar="PRED", help='e.g. "age>=18"')
    g.add_argument("--min-group", type=int, default=1, help="suppress groups below this count")
    g.add_argument("--epsilon", type=float, default=None, help="DP release with this ε")
    g.add_argument("--delta", type=float, default=1e-6)
    g.add_argument("--mechanism", default="gaussian", choices=["gaussian", "laplace"])
    g.add_argument("--bounds", action="append", metavar="COL=LO:HI", help="clamp (for DP)")
    g.add_argument("--budget", type=float, default=None, help="the table's total ε budget")
    g.add_argument("--to", default=None, help="the party that receives the result")
    g.add_argument("--dealer", default="dealer", help="name of the dealer party (added)")
    g.add_argument("--out", default=None, help="output directory (result.csv, report.json)")


def main(args: argparse.Namespace) -> int:
    from cipherray.runtime.errors import CipherrayError

    try:
        if args.to is None:  # default: the first input's party
            args.to = next(iter(parse_inputs(args.input)))
        out = run(args)
    except (StatsInputError, CipherrayError, ValueError, FileNotFoundError) as e:
        print(f"error: {_clean(e)}", file=sys.stderr)
        return 2
    frame, report = out["frame"], out["report"]
    if frame is None:  # cross-silo, at a party other than --to
        print(f"this process runs {args.party}; the result is at {report['released_to']}")
        return 0
    print(frame.to_string(index=False))
    print(
        f"\nreleased {report['released_groups']} of {report['groups']} groups to "
        f"{report['released_to']} (suppressed {report['suppressed_groups']}); "
        f"{report['bytes'] / 1e6:.2f} MB between parties; {report['seconds']:.1f} s"
    )
    if args.out:
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        with files.atomic_output(out_dir / "result.csv") as tmp:
            frame.to_csv(tmp, index=False)
        files.write_text(out_dir / "report.json", json.dumps(report, indent=1, default=_plain))
        print(f"wrote {out_dir / 'result.csv'} and {out_dir / 'report.json'}")
    return 0


def _silo(args: argparse.Namespace) -> dict:
    """Cross-silo keywords from --party/--addresses/--tls (none in simulation)."""
    from cipherray.cli import silo_options

    return silo_options(args)


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else str(x)


def _clean(e: BaseException) -> str:
    """The message of an error raised at a party (the cause's text), else the error."""
    cause = getattr(e, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return f"{type(e).__name__}: {e}"
