"""Disclosure policy and the audit log of every reveal."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from cipherray.runtime.errors import DisclosureError


@dataclass(frozen=True)
class Disclosure:
    """What a reveal would disclose: from which location, to which party, at which step."""

    kind: str  # "shared", "encrypted", "plaintext"
    source: str  # location name, e.g. "mpc(a,b)" or "bank"
    members: tuple[str, ...]  # parties holding the value now
    to: str
    step: str
    tag: str
    what: str


Rule = Callable[[Disclosure], bool]


def members_may_learn_results(d: Disclosure) -> bool:
    """Default rule: a value computed jointly may be revealed to one of the parties that
    computed it (the protocol's output). Raw plaintext of one party is never covered."""
    return d.kind in ("shared", "encrypted") and d.to in d.members


class DisclosurePolicy:
    """A list of named rules; a reveal passes if any rule allows it."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, Rule]] = [
            ("members-may-learn-results", members_may_learn_results)
        ]

    def allow(self, rule: Rule, name: str | None = None) -> None:
        """Add a rule, e.g. `rt.policy.allow(lambda d: d.tag.startswith("model/"))`."""
        self.rules.append((name or getattr(rule, "__name__", "rule"), rule))

    def allow_transfer(self, src: str, dst: str, tag: str | None = None) -> None:
        """Allow one party's own plaintext to reach another party (optionally under a tag)."""

        def rule(d: Disclosure) -> bool:
            return (
                d.kind == "plaintext"
                and d.source == src
                and d.to == dst
                and (tag is None or d.tag == tag)
            )

        self.allow(rule, f"transfer {src}->{dst}" + (f" [{tag}]" if tag else ""))

    def check(self, d: Disclosure) -> str:
        for name, rule in self.rules:
            if rule(d):
                return name
        raise DisclosureError(
            f"policy forbids revealing {d.what} ({d.kind}, held by {d.source}) to "
            f"'{d.to}' at step '{d.step}': no rule allows it"
        )


@dataclass
class AuditRecord:
    time: float
    kind: str
    source: str
    to: str
    step: str
    tag: str
    what: str
    rule: str


class AuditLog:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def record(self, d: Disclosure, rule: str) -> AuditRecord:
        rec = AuditRecord(time.time(), d.kind, d.source, d.to, d.step, d.tag, d.what, rule)
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
