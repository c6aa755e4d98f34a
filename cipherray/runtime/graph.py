"""The recorded task graph of a run: steps (location, party, duration) and transfers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MAX_NODES = 100_000


@dataclass
class StepNode:
    step_id: int
    step: str
    location: str
    party: str
    worker: int
    inputs: list[int] = field(default_factory=list)
    start: float | None = None
    compute_s: float | None = None
    network_s: float | None = None


@dataclass
class TransferEdge:
    msg_id: int
    src_step: int
    dst_step: int
    src: str
    dst: str
    tag: str
    nbytes: int | None = None


class TaskGraph:
    def __init__(self) -> None:
        self.nodes: dict[int, StepNode] = {}
        self.transfers: dict[int, TransferEdge] = {}
        self.dropped = 0
        self._refresh = None

    def add_step(self, node: StepNode) -> None:
        if len(self.nodes) < MAX_NODES:
            self.nodes[node.step_id] = node
        else:
            self.dropped += 1

    def add_transfer(self, edge: TransferEdge) -> None:
        if len(self.transfers) < MAX_NODES:
            self.transfers[edge.msg_id] = edge

    def _sync(self) -> None:
        if self._refresh is not None:
            self._refresh()

    def to_dict(self) -> dict:
        self._sync()
        return {
            "steps": [asdict(n) for n in self.nodes.values()],
            "transfers": [asdict(t) for t in self.transfers.values()],
            "dropped_steps": self.dropped,
        }

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    def write(self, path: str | Path) -> str:
        """Write the graph to `path`: JSON for a .json name, else DOT."""
        return self.to_json(path) if str(path).endswith(".json") else self.to_dot(path)

    def to_dot(self, path: str | Path | None = None) -> str:
        """Graphviz DOT: one cluster per party, dashed edges for cross-party transfers."""
        self._sync()
        by_party: dict[str, list[StepNode]] = {}
        for n in self.nodes.values():
            by_party.setdefault(n.party, []).append(n)
        out = ["digraph cipherray {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
        for i, (party, nodes) in enumerate(by_party.items()):
            out.append(f'  subgraph cluster_{i} {{ label="{party}"; style=rounded;')
            for n in nodes:
                dur = "" if n.compute_s is None else f"\\n{n.compute_s * 1e3:.2f} ms"
                out.append(f'    s{n.step_id} [label="{_esc(n.step)}\\n{_esc(n.location)}{dur}"];')
            out.append("  }")
        transfer_pairs = {(t.src_step, t.dst_step) for t in self.transfers.values()}
        for n in self.nodes.values():
            for src in n.inputs:
                if src in self.nodes and (src, n.step_id) not in transfer_pairs:
                    out.append(f"  s{src} -> s{n.step_id};")
        for t in self.transfers.values():
            if t.src_step in self.nodes and t.dst_step in self.nodes:
                nb = "?" if t.nbytes is None else _human(t.nbytes)
                out.append(
                    f"  s{t.src_step} -> s{t.dst_step} [style=dashed, color=red, "
                    f'label="{_esc(t.tag)}\\n{nb}"];'
                )
        out.append("}")
        text = "\n".join(out) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    def __len__(self) -> int:
        return len(self.nodes)


def _esc(s: str) -> str:
    return str(s).replace('"', "'")


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
