"""The ledger: what crossed between parties — bytes, messages, rounds, network time.

The driver records each message when it routes it (edge, protocol tag, round);
the receiving worker measures the payload and the simulated network delay, and the
ledger merges those measurements in when it is read.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Message:
    msg_id: int
    src: str
    dst: str
    tag: str
    round: int = 1
    nbytes: int | None = None


@dataclass
class Ledger:
    messages: dict[int, Message] = field(default_factory=dict)
    compute_s: float = 0.0
    network_s: float = 0.0
    _refresh: object = None  # callable pulling worker statistics

    # -- recording (driver side)
    def add_messages(self, tag: str, edges: list[tuple[int, str, str, int]]) -> None:
        """Record messages (msg_id, src, dst, round) sent under protocol `tag`.

        `round` is the message's communication depth in the run (1 + the longest chain
        of rounds its sender depends on). Messages with the same depth travel
        concurrently, so the rounds of a tag are its distinct depths."""
        for msg_id, src, dst, rnd in edges:
            self.messages[msg_id] = Message(msg_id, src, dst, tag, rnd)

    @property
    def rounds(self) -> dict[str, int]:
        """Communication rounds per protocol tag."""
        depths: dict[str, set[int]] = defaultdict(set)
        for m in self.messages.values():
            depths[m.tag].add(m.round)
        return {t: len(d) for t, d in sorted(depths.items())}

    def merge(self, msg_id: int, nbytes: int) -> None:
        m = self.messages.get(msg_id)
        if m is not None:
            m.nbytes = nbytes

    def _sync(self) -> None:
        if self._refresh is not None:
            self._refresh()

    # -- reading
    @property
    def total_bytes(self) -> int:
        self._sync()
        return sum(m.nbytes or 0 for m in self.messages.values())

    @property
    def total_messages(self) -> int:
        return len(self.messages)

    @property
    def total_rounds(self) -> int:
        """Rounds of the whole run: distinct communication depths over all messages."""
        return len({m.round for m in self.messages.values()})

    @property
    def critical_rounds(self) -> int:
        """The deepest chain of dependent rounds (the latency a WAN would multiply)."""
        return max((m.round for m in self.messages.values()), default=0)

    def edges(self) -> pd.DataFrame:
        """Bytes and messages per (from, to) edge."""
        self._sync()
        agg: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for m in self.messages.values():
            a = agg[(m.src, m.dst)]
            a[0] += 1
            a[1] += m.nbytes or 0
        rows = [
            {"from": s, "to": d, "messages": v[0], "bytes": v[1]}
            for (s, d), v in sorted(agg.items())
        ]
        return pd.DataFrame(rows, columns=["from", "to", "messages", "bytes"])

    def by_tag(self) -> pd.DataFrame:
        """Rounds, messages and bytes per protocol tag."""
        self._sync()
        agg: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        rounds = self.rounds
        for m in self.messages.values():
            agg[m.tag][0] += 1
            agg[m.tag][1] += m.nbytes or 0
        rows = [
            {"tag": t, "rounds": rounds.get(t, 0), "messages": v[0], "bytes": v[1]}
            for t, v in sorted(agg.items())
        ]
        return pd.DataFrame(rows, columns=["tag", "rounds", "messages", "bytes"])

    def summary(self) -> pd.DataFrame:
        """One row per (from, to) edge plus a total row; `.attrs` carries the times."""
        df = self.edges()
        total = {
            "from": "total",
            "to": "",
            "messages": int(df["messages"].sum()) if len(df) else 0,
            "bytes": int(df["bytes"].sum()) if len(df) else 0,
        }
        df = pd.concat([df, pd.DataFrame([total])], ignore_index=True)
        df["MB"] = (df["bytes"] / 1e6).round(3)
        df.attrs.update(
            rounds=self.total_rounds,
            compute_s=round(self.compute_s, 4),
            network_s=round(self.network_s, 4),
        )
        return df

    def report(self) -> str:
        """The summary as text, with rounds per tag and compute vs simulated network time."""
        s = self.summary()
        lines = [s.to_string(index=False), "", self.by_tag().to_string(index=False), ""]
        lines.append(
            f"rounds: {self.total_rounds}   compute: {self.compute_s:.3f} s   "
            f"simulated network (summed over receiving steps): {self.network_s:.3f} s"
        )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Ledger {self.total_messages} messages, {self.total_rounds} rounds>"

    def reset(self) -> None:
        self._sync()
        self.messages.clear()
        self.compute_s = 0.0
        self.network_s = 0.0
