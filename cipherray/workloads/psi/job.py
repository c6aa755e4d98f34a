"""`cipherray run psi`: align the identifiers of two or more parties' files.

Modes (two parties unless stated; ECDH on X25519, see `protocols/psi`):

- intersection (default): every learning party writes its own rows that are in the
  intersection to OUT/<party>.csv (or .parquet), all files in the same row order;
  `receiver` restricts who learns it; with 3+ parties the multi-party ring protocol;
- cardinality: the receiver learns only the size;
- sum: the receiver (first party) learns the sum of the other party's VALUE column
  over the intersection (ECDH + Paillier), nothing per row.

Steps of the two-party intersection, as run here:
1. schema check: each party reports its key columns' types (must match);
2. party A draws the per-run salt and sends it to B;
3. each party streams its key columns, normalises, hashes to the curve, deduplicates;
4. each party shuffles and blinds its points with its own key, in chunks over its
   workers (`party.map`), and sends them to the other party;
5. each party blinds the peer's points again (chunks over its workers);
6. B returns A's doubly blinded points; A matches; A sends B its matched positions;
7. each learning party maps positions to its own rows and writes them.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from cipherray.workloads import silo_options
from cipherray.workloads.psi import steps


class PsiInputError(ValueError):
    """Bad job input (duplicate party, mismatched key types, ...), naming party and file."""


@dataclass
class PsiConfig:
    inputs: dict[str, str]  # party -> file (CSV or Parquet)
    keys: list[str]
    out: str = "psi_out"
    mode: str = "intersection"  # intersection | cardinality | sum
    value: str | None = None  # the value column for mode "sum" (second party's file)
    receiver: str | None = None  # None: both (intersection), the first party otherwise
    normalize: Any = None  # e.g. "strip", ["strip", "casefold"], {"phone": "digits"}
    strict: bool = False  # missing key values: raise instead of dropping and counting
    workers: int = 2  # workers per party
    chunksize: int = 1_000_000  # rows read at a time
    backend: str = "ray"
    address: str | None = None
    network: Any = None
    timeout_s: float = 3600.0
    progress: bool = True
    graph: str | None = None  # write the task graph here (.dot, or .json)
    paillier_bits: int = 2048
    insecure: bool = False  # smaller Paillier keys, for tests only
    extra: dict = field(default_factory=dict)
    # cross-silo: this process runs one party; the others run the same job
    party: str | None = None
    addresses: dict | None = None  # {party: "host:port"} for every party
    tls: Any = None  # cr.TLS or the directory `cipherray certs` wrote


def parse_inputs(pairs: list[str]) -> dict[str, str]:
    """["bank=bank.csv", ...] -> {"bank": "bank.csv"}; a party named twice is an error."""
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            raise PsiInputError(f"--input expects PARTY=FILE, got {p!r}")
        name, path = p.split("=", 1)
        if name in out:
            raise PsiInputError(f"party '{name}' is given twice ({out[name]} and {path})")
        out[name] = path
    return out


def _check(cfg: PsiConfig) -> None:
    if len(cfg.inputs) < 2:
        raise PsiInputError("PSI needs at least two --input PARTY=FILE")
    if not cfg.keys:
        raise PsiInputError("at least one --key column is required")
    if cfg.mode not in ("intersection", "cardinality", "sum"):
        raise PsiInputError(f"unknown mode {cfg.mode!r}")
    if cfg.mode in ("cardinality", "sum") and len(cfg.inputs) != 2:
        raise PsiInputError(f"mode {cfg.mode!r} is a two-party protocol")
    if cfg.mode == "sum" and not cfg.value:
        raise PsiInputError("mode 'sum' needs --value COLUMN (in the second party's file)")
    if cfg.receiver is not None and cfg.receiver not in cfg.inputs:
        raise PsiInputError(f"receiver '{cfg.receiver}' is not one of {list(cfg.inputs)}")


def run(cfg: PsiConfig, rt: Any = None) -> dict:
    import cipherray as cr

    _check(cfg)
    t0 = time.perf_counter()
    own = rt is None
    if own:
        rt = cr.init(
            {p: {"workers": cfg.workers} for p in cfg.inputs},
            address=cfg.address, backend=cfg.backend, network=cfg.network,
            timeout_s=cfg.timeout_s, **silo_options(cfg),
        )  # fmt: skip
    bar = tqdm(total=7, desc=f"psi ({cfg.mode})", disable=not cfg.progress, leave=False)
    try:
        job = _Job(rt, cfg, bar)
        report = job.run()
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


class _Job:
    def __init__(self, rt: Any, cfg: PsiConfig, bar: Any):
        self.rt = rt
        self.cfg = cfg
        self.bar = bar
        self.parties = [rt.party(p) for p in cfg.inputs]
        self.paths = dict(cfg.inputs)
        rt.protocol("psi", PSI_MESSAGES)

    def _step(self, what: str) -> None:
        self.bar.set_postfix_str(what)
        self.bar.update()

    def _send(self, ref: Any, dst: Any, tag: str) -> Any:
        """A protocol message (blinded points, positions, ciphertexts) to another party:
        declared in PSI_MESSAGES, so the policy lets it pass."""
        return self.rt.send(ref, to=dst, tag=f"psi/{tag}")

    def _chunked(self, party: Any, parts: tuple, key: Any, what: str) -> Any:
        """Blind the chunks on the party's workers (one chunk per worker, submitted at
        once so that both parties' chunks run concurrently), then join them."""
        outs = [
            party(steps.blind_chunk, name=what, worker=i % party.workers)((p, key))
            for i, p in enumerate(parts)
        ]
        return party(steps.concat, name=f"{what}/concat")(*outs)

    def run(self) -> dict:
        rt, cfg = self.rt, self.cfg
        # 1. key types must agree
        types = {
            p.name: p(steps.key_types, declare="public")(self.paths[p.name], cfg.keys)
            for p in self.parties
        }
        got = {name: rt.get(ref) for name, ref in types.items()}
        first = self.parties[0].name
        for name, t in got.items():
            if t != got[first]:
                raise PsiInputError(
                    f"key types differ: party '{first}' ({self.paths[first]}) has {got[first]}, "
                    f"party '{name}' ({self.paths[name]}) has {t}"
                )
        self._step("schema")
        # 2. salt from the first party to the others
        salt0 = self.parties[0](steps.new_salt)()
        salts = {first: salt0}
        for p in self.parties[1:]:
            salts[p.name] = self._send(salt0, p, "salt")
        # 3. stream, normalise, hash, dedup
        hashed = {
            p.name: p(steps.hash_ids)(
                self.paths[p.name], cfg.keys, cfg.normalize, cfg.strict, salts[p.name],
                cfg.chunksize,
            )
            for p in self.parties
        }  # fmt: skip
        stats = {
            name: rt.get(rt.party(name)(steps.counts, declare="public")(h))
            for name, h in hashed.items()
        }
        self._step("hashed")
        keys = {p.name: p(steps.new_key)() for p in self.parties}
        if len(self.parties) > 2:
            return self._multiparty(hashed, keys, stats)
        a, b = self.parties
        # 4. shuffle + blind own points in chunks; exchange
        perm, msg = {}, {}
        for p in (a, b) if cfg.mode != "sum" else (a,):
            out = p(steps.shuffle_split, num_returns=p.workers + 1)(hashed[p.name], p.workers)
            perm[p.name] = out[0]
            msg[p.name] = self._chunked(p, out[1:], keys[p.name], "psi/blind_own")
        if cfg.mode == "sum":
            self._step("blinded")
            return self._sum(a, b, hashed, keys, salts, msg, stats)
        m_a_at_b = self._send(msg[a.name], b, "blinded")
        m_b_at_a = self._send(msg[b.name], a, "blinded")
        self._step("blinded")

        # 5. blind the peer's points again
        def double(p: Any, m: Any) -> Any:
            parts = p(steps.split, num_returns=p.workers)(m, p.workers) if p.workers > 1 else (m,)
            return self._chunked(p, parts, keys[p.name], "psi/double_blind")

        d_a_at_b = double(b, m_a_at_b)  # A's points under k_A, k_B
        d_b_at_a = double(a, m_b_at_a)  # B's points under k_B, k_A
        self._step("double-blinded")
        receiver = cfg.receiver
        report: dict[str, Any] = {"mode": cfg.mode, "stats": stats}
        if cfg.mode == "cardinality":
            r, s = (a, b) if receiver in (None, a.name) else (b, a)
            own_double = d_a_at_b if r is a else d_b_at_a
            peer_double = d_b_at_a if r is a else d_a_at_b
            shuffled = s(steps.shuffle)(own_double)  # the sender hides the order
            at_r = self._send(shuffled, r, "double")
            size = rt.get(r(steps.count, declare="public")(at_r, peer_double))
            self._step("counted")
            report.update(size=size, receiver=r.name)
            self._step("done")
            return report
        # 6. intersection: R matches and tells S (receiver "both": R = A)
        r, s = (b, a) if receiver == b.name else (a, b)
        own_double_at_s = d_a_at_b if r is a else d_b_at_a
        peer_double_at_r = d_b_at_a if r is a else d_a_at_b
        back = self._send(own_double_at_s, r, "double")
        pos_r, pos_s = r(steps.match, num_returns=2)(back, peer_double_at_r)
        rows = {r.name: r(steps.rows_of)(pos_r, perm[r.name], hashed[r.name])}
        learners = [r]
        if receiver is None:
            pos_at_s = self._send(pos_s, s, "positions")
            rows[s.name] = s(steps.rows_of)(pos_at_s, perm[s.name], hashed[s.name])
            learners.append(s)
        self._step("matched")
        # 7. each learning party writes its own rows
        written = {
            p.name: p(steps.write_rows, declare="public")(
                self.paths[p.name], rows[p.name], cfg.out, p.name, cfg.chunksize
            )
            for p in learners
        }
        report["files"] = {name: rt.get(ref) for name, ref in written.items()}
        report["size"] = int(rt.get(learners[0](len, declare="public")(rows[learners[0].name])))
        report["learners"] = [p.name for p in learners]
        self._step("written")
        return report

    def _multiparty(self, hashed: dict, keys: dict, stats: dict) -> dict:
        """Ring protocol: every party's points are blinded by every key; the leader (the
        first party) intersects the fully blinded sets and returns positions."""
        rt, cfg = self.rt, self.cfg
        parties = self.parties
        n = len(parties)
        perm, cur = {}, {}
        for p in parties:
            out = p(steps.shuffle_split, num_returns=p.workers + 1)(hashed[p.name], p.workers)
            perm[p.name] = out[0]
            cur[p.name] = (p, self._chunked(p, out[1:], keys[p.name], "psi/blind_own"))
        self._step("blinded")
        for hop in range(1, n):
            for i, owner in enumerate(parties):
                holder, ref = cur[owner.name]
                nxt = parties[(i + hop) % n]
                moved = self._send(ref, nxt, f"ring/{hop}")
                cur[owner.name] = (nxt, nxt(steps.ring_blind)(moved, keys[nxt.name]))
        self._step("ring")
        leader = parties[0]
        full = []
        for owner in parties:
            holder, ref = cur[owner.name]
            full.append(ref if holder is leader else self._send(ref, leader, "full"))
        positions = leader(steps.intersect_sets, num_returns=n)(*full)
        self._step("intersected")
        rows, written = {}, {}
        for p, pos in zip(parties, positions):
            at_p = pos if p is leader else self._send(pos, p, "positions")
            rows[p.name] = p(steps.rows_of)(at_p, perm[p.name], hashed[p.name])
            written[p.name] = p(steps.write_rows, declare="public")(
                self.paths[p.name], rows[p.name], cfg.out, p.name, cfg.chunksize
            )
        files = {name: rt.get(ref) for name, ref in written.items()}
        size = int(rt.get(leader(len, declare="public")(rows[leader.name])))
        self._step("written")
        return {"mode": "intersection", "stats": stats, "files": files, "size": size,
                "learners": [p.name for p in parties]}  # fmt: skip

    def _sum(
        self, a: Any, b: Any, hashed: dict, keys: dict, salts: dict, msg: dict, stats: dict
    ) -> dict:
        """Intersection-sum (protocols/psi/intersection_sum.py): B holds the values and
        the Paillier key; A matches and learns the sum (masked decryption round)."""
        from cipherray.protocols.psi import intersection_sum as isum

        rt, cfg = self.rt, self.cfg
        pk_b, sk_b = b(isum.step0_keygen, num_returns=2)(cfg.paillier_bits, cfg.insecure)
        pk_at_a = self._send(pk_b, a, "paillier_pk")
        values = b(steps.values_of)(self.paths[b.name], cfg.value, hashed[b.name], cfg.chunksize)
        enc = b(_encode)(values)
        m_a_at_b = self._send(msg[a.name], b, "blinded_a")
        d_a, m_b, e_b = b(_step2_sum, num_returns=3)(
            m_a_at_b, hashed[b.name], enc, salts[b.name], keys[b.name], pk_b
        )
        d_a_at_a = self._send(d_a, a, "double")
        m_b_at_a = self._send(m_b, a, "blinded_b")
        e_b_at_a = self._send(e_b, a, "ciphertexts")
        # C goes to B; the size and the mask r stay at A (cross-silo: in A's process only)
        c, size, r = a(isum.step3_match_and_sum, num_returns=3)(
            d_a_at_a, m_b_at_a, e_b_at_a, keys[a.name], pk_at_a, True
        )
        # A's results: the simulation driver reads them as published; cross-silo, A's
        # process reads them as its own and no other process receives them
        result = "public" if rt.here is None else None
        size = a(_same, declare=result, name="psi/size")(size)
        self._step("summed")
        c_at_b = self._send(c, b, "masked_sum")
        dec = b(isum.step4_decrypt)(c_at_b, sk_b)
        dec_at_a = self._send(dec, a, "masked_plain")
        scale = b(_scale_of)(enc)
        scale_at_a = self._send(scale, a, "scale")
        total = a(isum.step5_unmask, declare=result)(dec_at_a, r, scale_at_a)
        self._step("done")
        mine = rt.is_local(a)  # B's process: None
        return {"mode": "sum", "stats": stats, "sum": rt.get(total) if mine else None,
                "size": int(rt.get(size)) if mine else None, "receiver": a.name}  # fmt: skip


PSI_MESSAGES = {
    "salt": "the per-run salt (random, public to the parties)",
    "blinded": "the sender's hashed identifiers under its secret key: pseudorandom",
    "blinded_a": "A's blinded identifiers (intersection-sum)",
    "blinded_b": "B's blinded identifiers (intersection-sum)",
    "double": "identifiers under both keys: equal exactly for common identifiers",
    "positions": "positions of the intersection in the receiver's shuffled order",
    "ring": "blinded identifiers on their way round the ring (multi-party)",
    "full": "identifiers under every party's key, to the leader (multi-party)",
    "paillier_pk": "B's Paillier public key",
    "ciphertexts": "B's values, Paillier-encrypted under B's key",
    "masked_sum": "the encrypted sum plus A's random mask",
    "masked_plain": "the masked sum, decrypted: uniform to A without its mask",
    "scale": "the fixed-point scale of B's values (public)",
}


def _encode(values: Any) -> tuple:
    from cipherray.protocols.psi import intersection_sum as isum

    return isum.encode_values(values)


def _same(x: Any) -> Any:
    return x


def _scale_of(enc: tuple) -> int:
    return int(enc[1])


def _step2_sum(peer_message, hashed, enc, salt, key, pk) -> tuple:
    from cipherray.protocols.psi import intersection_sum as isum

    return isum.step2_double_blind_and_encrypt(peer_message, hashed.points, enc[0], salt, key, pk)


# -- `cipherray run psi` ------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cipherray.cli import add_runtime_arguments

    parser.add_argument("--input", action="append", help="PARTY=FILE (CSV or Parquet), repeat")
    parser.add_argument("--key", action="append", help="key column, repeat for composite keys")
    parser.add_argument("--out", default="psi_out", help="output folder")
    parser.add_argument(
        "--mode", default="intersection", choices=["intersection", "cardinality", "sum"]
    )
    parser.add_argument("--value", default=None, help="value column for --mode sum")
    parser.add_argument("--receiver", default=None, help="the only party that learns the result")
    parser.add_argument(
        "--normalize", action="append", help="strip, casefold, digits: OPS or KEY=OPS (repeat)"
    )
    parser.add_argument("--strict", action="store_true", help="missing key values are an error")
    add_runtime_arguments(parser, workers=2, silo=True)


def parse_normalize(items: list[str] | None) -> Any:
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


def main(args: argparse.Namespace) -> int:
    from cipherray.cli import runtime_options, write_json

    try:
        cfg = PsiConfig(
            inputs=parse_inputs(args.input or []),
            keys=args.key or [],
            out=args.out,
            mode=args.mode,
            value=args.value,
            receiver=args.receiver,
            normalize=parse_normalize(args.normalize),
            strict=args.strict,
            graph=args.graph,
            **runtime_options(args),
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
    elif report["sum"] is None:  # cross-silo, at B
        print(f"this process runs {args.party}; the sum is at {report['receiver']}")
    else:
        print(
            f"intersection sum of {args.value}: {report['sum']} over {report['size']:,} "
            f"identifiers (known to {report['receiver']} only)"
        )
    print("\nLedger (what crossed between parties):")
    print(report["ledger_text"])
    print(f"\ntime: {report['seconds']:.2f} s")
    if args.graph:
        print(f"task graph written to {args.graph}")
    if args.json:
        keep = ("mode", "size", "sum", "receiver", "learners", "files", "stats", "seconds")
        out = {k: report[k] for k in keep if k in report}
        out["ledger"] = report["ledger"].to_dict(orient="records")
        write_json(args.json, out)
    return 0
