"""The disclosure policy: owners' grants, protocol declarations, and the audit log.

Every ref carries its provenance (`values.Meta`): the parties whose inputs it was
computed from, and whether it is row-level, an aggregate over some number of rows, or
the outcome of a comparison. A value may reach party P in the clear (a reveal, a
protocol message) only if, for every owner Q other than P, one of these holds:

- *the default rule* ("members-may-learn-joint-aggregates"): the value is an aggregate
  computed jointly (it depends on at least two parties' inputs) and P is a member of
  the computation that holds it (the MPC location, or the holder/keyholder of
  ciphertexts);
- *a grant* by Q: `rt.policy.grant(owner=Q, to=P, allow=...)` with `allow` one of
  "plaintext" (anything derived from Q's inputs), "aggregate" (aggregates of at least
  `min_rows` rows), "compare" (comparison outcomes, and aggregates), "encrypted"
  (P may hold Q's values as ciphertexts under a key P does not hold; never plaintext);
- *a protocol declaration*: the message is one that a registered protocol declares
  (`rt.protocol("psi", {"blinded": "..."})`), sent under that protocol's tag.

Nothing computed only from Q's inputs reaches another party by default. Provenance
follows which inputs and which operations produced a value, not the numbers: code
that the driver submits could still compute a value that equals an input through
operations that look aggregate (simulation mode trusts the driver: see the README).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from cipherray.runtime.errors import ConfigError, DisclosureError
from cipherray.runtime.values import AGGREGATE, COMPARE, Meta

ALLOW = ("plaintext", "aggregate", "compare", "encrypted")
ANY = "*"


@dataclass(frozen=True)
class Disclosure:
    """What would leave its holders: a value (with its provenance) going to `to`.

    `form` is "plaintext" (a reveal or a protocol message) or "encrypted"
    (ciphertexts moving to a party that cannot decrypt them)."""

    form: str
    source: str  # the location that holds the value now: "mpc(a,b)", "he(a)", "bank"
    members: tuple[str, ...]  # parties of that location (the computation)
    to: str
    step: str
    tag: str
    meta: Meta
    protocol_message: str | None = None  # "psi/blinded" when a protocol declares it

    @property
    def owners(self) -> frozenset[str]:
        return self.meta.owners - {self.to}


@dataclass(frozen=True)
class Grant:
    owner: str
    to: str
    allow: str
    min_rows: int = 1
    tag: str | None = None

    def covers(self, d: Disclosure) -> bool:
        if self.to not in (ANY, d.to):
            return False
        if self.tag is not None and not (d.tag == self.tag or d.tag.startswith(self.tag + "/")):
            return False
        m = d.meta
        if self.allow == "plaintext":
            return True
        if self.allow == "encrypted":
            return d.form == "encrypted"
        if d.form == "encrypted":
            return True  # any plaintext grant also lets the value travel encrypted
        aggregate_ok = m.kind == AGGREGATE and (m.rows is None or m.rows >= self.min_rows)
        if self.allow == "aggregate":
            return aggregate_ok and (m.rows is not None or self.min_rows <= 1)
        if self.allow == "compare":
            return m.kind == COMPARE or aggregate_ok
        return False

    def __str__(self) -> str:
        extra = f", min_rows={self.min_rows}" if self.allow == "aggregate" else ""
        tag = f", tag={self.tag!r}" if self.tag else ""
        return f"grant {self.owner}->{self.to}: {self.allow}{extra}{tag}"


DEFAULT_RULE = "members-may-learn-joint-aggregates"


def _default_allows(d: Disclosure) -> bool:
    m = d.meta
    return (
        d.form == "plaintext" and m.kind == AGGREGATE and len(m.owners) >= 2 and d.to in d.members
    )


@dataclass
class DisclosurePolicy:
    """Owners' grants and registered protocols; `check` names the rule that allows a
    disclosure or raises `DisclosureError` naming owner, receiver and step."""

    grants: list[Grant] = field(default_factory=list)
    protocols: dict[str, dict[str, str]] = field(default_factory=dict)
    parties: tuple[str, ...] = ()

    def grant(
        self,
        owner: object,
        to: object,
        allow: str,
        min_rows: int = 1,
        tag: str | None = None,
    ) -> Grant:
        """`owner` lets values derived from its inputs reach `to` (a party, or "*" for
        any party) in the form `allow`: "plaintext", "aggregate" (of at least
        `min_rows` rows), "compare" or "encrypted"; only under protocol tag `tag` if
        given."""
        owner_name, to_name = _name(owner), _name(to)
        if allow not in ALLOW:
            raise ConfigError(f"grant allow={allow!r}: use one of {', '.join(ALLOW)}")
        for who in (owner_name, to_name):
            if self.parties and who != ANY and who not in self.parties:
                raise ConfigError(f"grant names unknown party {who!r}")
        if owner_name == ANY:
            raise ConfigError("a grant needs one owner")
        if not isinstance(min_rows, int) or min_rows < 1:
            raise ConfigError(f"min_rows must be an int >= 1, got {min_rows!r}")
        g = Grant(owner_name, to_name, allow, min_rows, tag)
        self.grants.append(g)
        return g

    def declare_protocol(self, name: str, messages: dict[str, str]) -> None:
        """Register protocol `name`: the messages it sends (tag -> what it discloses).
        A message sent with `rt.send(..., tag="<name>/<message>")` is then allowed."""
        if not name or "/" in name:
            raise ConfigError(f"bad protocol name {name!r}")
        if not messages:
            raise ConfigError(f"protocol {name!r} declares no messages")
        self.protocols[name] = dict(messages)

    def protocol_message(self, tag: str) -> str | None:
        """'proto/message' if `tag` (possibly scoped: 'run1/psi/blinded/3') names a
        declared message of a registered protocol."""
        parts = tag.split("/")
        for i, p in enumerate(parts[:-1]):
            msgs = self.protocols.get(p)
            if msgs is not None and parts[i + 1] in msgs:
                return f"{p}/{parts[i + 1]}"
        return None

    def check(self, d: Disclosure) -> str:
        """The rules used (one per owner), or DisclosureError."""
        used: list[str] = []
        for owner in sorted(d.owners):
            rule = self._rule_for(owner, d)
            if rule is None:
                raise DisclosureError(
                    f"owner '{owner}' did not allow {d.meta.describe()} (held at "
                    f"{d.source}) to reach '{d.to}' in {d.form} at step '{d.step}': no "
                    f"rule allows it; the owner can grant it with rt.policy.grant("
                    f"owner='{owner}', to='{d.to}', allow=...)"
                )
            used.append(rule)
        return "; ".join(dict.fromkeys(used)) if used else "own data"

    def _rule_for(self, owner: str, d: Disclosure) -> str | None:
        if d.protocol_message is not None:
            return f"protocol {d.protocol_message}"
        if _default_allows(d):
            return DEFAULT_RULE
        for g in self.grants:
            if g.owner == owner and g.covers(d):
                return str(g)
        return None


def _name(p: object) -> str:
    name = getattr(p, "name", p)
    if not isinstance(name, str):
        raise ConfigError(f"expected a party or its name, got {p!r}")
    return name


@dataclass
class AuditRecord:
    time: float
    form: str
    source: str
    to: str
    step: str
    tag: str
    what: str
    owners: str
    rule: str


class AuditLog:
    """Every disclosure that passed the policy: who, what, provenance, and the rule."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def record(self, d: Disclosure, rule: str) -> AuditRecord:
        rec = AuditRecord(
            time.time(),
            d.form,
            d.source,
            d.to,
            d.step,
            d.tag,
            d.meta.describe(),
            ",".join(sorted(d.meta.owners)),
            rule,
        )
        self.records.append(rec)
        return rec

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, i: int) -> AuditRecord:
        return self.records[i]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.__dict__ for r in self.records])
