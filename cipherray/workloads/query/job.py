"""`cipherray run query`: hidden query (keyword lookup with labels) and joint blacklists.

One holder (`--holder bureau=blacklist.csv`), protocol of :mod:`cipherray.protocols.query.table`:
1. schema: the holder checks its key and label columns, the querier its key columns;
2. holder: reads its file (empty keys dropped, duplicate keys first-kept or refused,
   counted), encodes each row's label columns (JSON, padded to the declared width);
3. holder: evaluates its OPRF on its keys in chunks over its workers, encrypts the labels,
   sends the encrypted table (sorted by tag) to the querier -- the only form in which the
   holder's rows leave it;
4. querier: blinds its keys and sends them; 5. holder: answers (s * B);
6. querier: unblinds, looks its keys up, writes OUT/<querier>.csv (its rows, `found` and
   the label columns). The holder learns the number of keys only.

Several holders (`--holders a=..,b=..,c=.. --threshold t`), protocol of
:mod:`cipherray.protocols.query.joint`: joint OPRF key, a slot tag per holder and key
(slots permuted per key under the holders' slot key), sealed to the querier's key and
shuffled by the first holder; the querier writes `found` (listed by >= t holders) and
`count`, and learns nothing about which holders list a key.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from cipherray.workloads.query import steps


class QueryInputError(ValueError):
    """Bad job configuration (a party named twice, no label columns, ...)."""


@dataclass
class QueryConfig:
    holders: dict[str, str]  # party -> file; one holder, or several (joint form)
    querier: tuple[str, str]  # (party, file)
    keys: list[str]
    labels: list[str] = field(default_factory=list)
    out: str = "query_out"
    threshold: int | None = None  # joint form: found = listed by >= threshold holders
    label_bytes: int | None = None  # declared label width (None: the widest label)
    tag_bytes: int = 12
    duplicates: str = "first"  # first | error
    workers: int = 2
    backend: str = "ray"
    address: str | None = None
    network: Any = None
    timeout_s: float = 3600.0
    progress: bool = True
    graph: str | None = None


def parse_parties(items: list[str], flag: str) -> dict[str, str]:
    """["a=x.csv,b=y.csv", "c=z.csv"] -> {"a": "x.csv", ...}; a party named twice is an error."""
    out: dict[str, str] = {}
    for item in items:
        for p in (s for s in item.split(",") if s):
            if "=" not in p:
                raise QueryInputError(f"{flag} expects PARTY=FILE, got {p!r}")
            name, path = p.split("=", 1)
            if name in out:
                raise QueryInputError(f"party '{name}' is given twice ({out[name]} and {path})")
            out[name] = path
    return out


def _check(cfg: QueryConfig) -> None:
    if not cfg.holders:
        raise QueryInputError("give the holder (--holder PARTY=FILE) or holders (--holders)")
    if not cfg.keys:
        raise QueryInputError("at least one --key column is required")
    if cfg.querier[0] in cfg.holders:
        raise QueryInputError(f"party '{cfg.querier[0]}' is both querier and holder")
    if cfg.duplicates not in ("first", "error"):
        raise QueryInputError(f"--duplicates must be 'first' or 'error', not {cfg.duplicates!r}")
    if len(cfg.holders) == 1:
        if cfg.threshold is not None:
            raise QueryInputError("--threshold needs several holders (--holders a=..,b=..)")
        if not cfg.labels:
            raise QueryInputError("name the label columns (--labels a,b)")
    else:
        if cfg.threshold is None or not 1 <= cfg.threshold <= len(cfg.holders):
            raise QueryInputError(
                f"several holders need --threshold between 1 and {len(cfg.holders)}"
            )
        if cfg.labels:
            raise QueryInputError("the joint form returns counts; it takes no --labels")


QUERY_MESSAGES = {
    "setup": "the holder's table: tags and labels encrypted under keys from its OPRF",
    "blinded": "the querier's keys hashed to the curve times fresh random scalars: uniform",
    "evaluated": "the holder's OPRF key times the blinded points",
    "joint_blinded": "a holder's own keys, blinded, to another holder (joint OPRF key)",
    "joint_evaluated": "a holder's key share times another holder's blinded points",
    "joint_slot_share": "a holder's random share of the holders' slot key (16 bytes)",
    "querier_pk": "the querier's X25519 public key, to seal the holders' tags to",
    "sealed": "a holder's tags sealed to the querier's public key, to the combiner",
    "bag": "all holders' sealed tags, shuffled by the combiner",
}


def run(cfg: QueryConfig, rt: Any = None) -> dict:
    import cipherray as cr

    _check(cfg)
    t0 = time.perf_counter()
    own = rt is None
    names = [*cfg.holders, cfg.querier[0]]
    if own:
        rt = cr.init(
            {p: {"workers": cfg.workers} for p in names},
            address=cfg.address, backend=cfg.backend, network=cfg.network,
            timeout_s=cfg.timeout_s,
        )  # fmt: skip
    joint = len(cfg.holders) > 1
    bar = tqdm(total=6, desc="query", disable=not cfg.progress, leave=False)
    try:
        rt.protocol("query", QUERY_MESSAGES)
        report = _joint(rt, cfg, bar) if joint else _single(rt, cfg, bar)
        report["seconds"] = time.perf_counter() - t0
        report["bytes"] = rt.ledger.total_bytes
        report["ledger"] = rt.ledger.summary()
        report["ledger_text"] = rt.ledger.report()
        if cfg.graph:
            rt.graph.write(cfg.graph)
        return report
    finally:
        bar.close()
        if own:
            rt.shutdown()


def _send(rt: Any, ref: Any, dst: Any, tag: str) -> Any:
    return rt.send(ref, to=dst, tag=f"query/{tag}")


def _single(rt: Any, cfg: QueryConfig, bar: Any) -> dict:
    (hname, hpath), (qname, qpath) = next(iter(cfg.holders.items())), cfg.querier
    h, q = rt.party(hname), rt.party(qname)
    # 1-2. read both sides (errors name the party, the file and the column)
    rows = h(steps.holder_rows)(hpath, cfg.keys, cfg.labels, cfg.label_bytes, cfg.duplicates)
    qrows = q(steps.querier_rows)(qpath, cfg.keys)
    stats = rt.get(h(steps.stats_of, declare="public")(rows))
    qstats = rt.get(q(steps.query_count, declare="public")(qrows))
    bar.update()
    # 3. OPRF over the holder's workers, encrypted table to the querier
    t = h(steps.new_holder_table)(stats["label_bytes"], cfg.tag_bytes)
    parts = max(1, min(h.workers, stats["kept"] // 4096 + 1))
    seeds = [
        h(steps.own_seeds, name="query/oprf_own", worker=i % h.workers)(
            (h(steps.key_chunk, worker=i % h.workers)(rows, i, parts), t)
        )
        for i in range(parts)
    ]
    t, setup_msg = h(steps.setup, num_returns=2)(t, rows, *seeds)
    setup_at_q = _send(rt, setup_msg, q, "setup")
    bar.update()
    # 4-5. one online round
    state, blinded = q(steps.blind, num_returns=2)(qrows)
    answer = h(steps.answer)(t, _send(rt, blinded, h, "blinded"))
    answer_at_q = _send(rt, answer, q, "evaluated")
    bar.update()
    # 6. lookups and the querier's file
    done = q(steps.finish, declare="public")(
        setup_at_q, state, answer_at_q, qpath, qrows, cfg.labels, cfg.out, qname
    )
    res = rt.get(done)
    bar.update(3)
    return {"mode": "lookup", "holder": hname, "querier": qname, "holder_stats": stats,
            "querier_stats": qstats, "file": res["file"], "found": res["found"]}  # fmt: skip


def _joint(rt: Any, cfg: QueryConfig, bar: Any) -> dict:
    qname, qpath = cfg.querier
    q = rt.party(qname)
    hs = [rt.party(n) for n in cfg.holders]
    jh = {p.name: p(steps.joint_holder)(cfg.holders[p.name], cfg.keys, cfg.duplicates) for p in hs}
    qrows = q(steps.querier_rows)(qpath, cfg.keys)
    stats = {p.name: rt.get(p(steps.joint_stats, declare="public")(jh[p.name])) for p in hs}
    qstats = rt.get(q(steps.query_count, declare="public")(qrows))
    bar.update()
    # offline 1-3: joint OPRF of every holder's own keys
    own = {p.name: p(steps.joint_blind_own, num_returns=3)(jh[p.name]) for p in hs}
    for p in hs:
        jh[p.name] = own[p.name][0]
    replies: dict[str, list] = {p.name: [] for p in hs}
    shares: dict[str, list] = {p.name: [] for p in hs}  # every holder's, in holder order
    for p in hs:
        for o in hs:
            if o is p:
                shares[p.name].append(own[p.name][2])
                continue
            msg = _send(rt, own[p.name][1], o, "joint_blinded")
            rep = o(steps.joint_evaluate)(jh[o.name], msg)
            replies[p.name].append(_send(rt, rep, p, "joint_evaluated"))
            shares[p.name].append(_send(rt, own[o.name][2], p, "joint_slot_share"))
    for j, p in enumerate(hs):
        jh[p.name] = p(steps.joint_finish_own)(
            jh[p.name], j, len(hs), *replies[p.name], *shares[p.name]
        )
    bar.update()
    # offline 4-7: sealed, shuffled bag to the querier
    jq, q_pk = q(steps.new_joint_querier, num_returns=2)(len(hs))
    combiner = hs[0]
    bags = []
    for p in hs:
        sealed = p(steps.joint_seal)(jh[p.name], _send(rt, q_pk, p, "querier_pk"))
        bags.append(sealed if p is combiner else _send(rt, sealed, combiner, "sealed"))
    bag = combiner(steps.joint_combine)(*bags)
    jq = q(steps.joint_open)(jq, _send(rt, bag, q, "bag"))
    bar.update()
    # online 8-10
    state, blinded = q(steps.blind, num_returns=2)(qrows)
    answers = []
    for p in hs:
        rep = p(steps.joint_evaluate)(jh[p.name], _send(rt, blinded, p, "blinded"))
        answers.append(_send(rt, rep, q, "evaluated"))
    done = q(steps.joint_finish, declare="public")(
        jq, state, qpath, qrows, cfg.threshold, cfg.out, qname, *answers
    )
    res = rt.get(done)
    bar.update(3)
    return {"mode": "joint", "holders": list(cfg.holders), "querier": qname,
            "threshold": cfg.threshold, "holder_stats": stats, "querier_stats": qstats,
            "combiner": combiner.name, "file": res["file"], "found": res["found"]}  # fmt: skip


# -- `cipherray run query` ----------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cipherray.cli import add_runtime_arguments

    parser.add_argument("--holder", action="append", help="PARTY=FILE: the table's holder")
    parser.add_argument(
        "--holders", action="append", help="A=FILE,B=FILE,...: several holders (joint form)"
    )
    parser.add_argument("--querier", required=True, help="PARTY=FILE: the querier's keys")
    parser.add_argument("--key", action="append", help="key column, repeat for composite keys")
    parser.add_argument("--labels", default="", help="label columns, comma-separated")
    parser.add_argument("--out", default="query_out", help="output folder")
    parser.add_argument("--threshold", type=int, default=None, help="joint form: listed by >= t")
    parser.add_argument(
        "--label-bytes", type=int, default=None, help="declared label width (default: widest)"
    )
    parser.add_argument(
        "--duplicates", default="first", choices=["first", "error"],
        help="duplicate keys at a holder: keep the first row (counted) or refuse",
    )  # fmt: skip
    add_runtime_arguments(parser, workers=2)


def main(args: argparse.Namespace) -> int:
    from cipherray.cli import runtime_options, write_json

    try:
        holders = parse_parties((args.holder or []) + (args.holders or []), "--holder(s)")
        querier = parse_parties([args.querier], "--querier")
        if len(querier) != 1:
            raise QueryInputError("--querier takes one PARTY=FILE")
        cfg = QueryConfig(
            holders=holders,
            querier=next(iter(querier.items())),
            keys=args.key or [],
            labels=[c for c in args.labels.split(",") if c],
            out=args.out,
            threshold=args.threshold,
            label_bytes=args.label_bytes,
            duplicates=args.duplicates,
            graph=args.graph,
            **runtime_options(args),
        )
        report = run(cfg)
    except QueryInputError as e:
        print(f"cipherray query: {e}", file=sys.stderr)
        return 2
    qs = report["querier_stats"]
    if report["mode"] == "lookup":
        st = report["holder_stats"]
        print(
            f"{report['holder']}: {st['rows']:,} rows, {st['kept']:,} kept "
            f"({st['missing']:,} empty keys, {st['duplicates']:,} duplicates), "
            f"labels of {st['label_bytes']} bytes"
        )
        print(f"{report['querier']}: {qs['keys']:,} keys; {report['found']:,} found")
    else:
        for name, st in report["holder_stats"].items():
            print(f"{name}: {st['kept']:,} keys ({st['duplicates']:,} duplicates)")
        print(
            f"{report['querier']}: {qs['keys']:,} keys; {report['found']:,} listed by at least "
            f"{report['threshold']} of {len(report['holders'])} holders"
        )
    print(f"  {report['querier']} -> {report['file']}")
    print("\nLedger (what crossed between parties):")
    print(report["ledger_text"])
    print(f"\ntime: {report['seconds']:.2f} s")
    if args.json:
        keep = ("mode", "found", "file", "holder_stats", "querier_stats", "threshold", "seconds")
        out = {k: report[k] for k in keep if k in report}
        out["ledger"] = report["ledger"].to_dict(orient="records")
        write_json(args.json, out)
    return 0
