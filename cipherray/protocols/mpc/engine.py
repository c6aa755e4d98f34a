"""The engine: how the steps of a multi-party protocol run and exchange messages.

This is the contract between the protocols (pure Python/NumPy, no Ray) and whoever
executes them: the runtime's `RuntimeEngine` runs each step as a task in the
party's actor group and routes messages through the counted channel; `LocalEngine`
runs everything in this process (tests, reference) and counts the same way.

A protocol sees *handles* — opaque references to a value held by one member (an
array in `LocalEngine`, a ref in the runtime). A `PerParty` is one handle per
member, in member order; additive shares of a value are a `PerParty`. Protocols
never read a handle's value in the driver: they pass handles to `local`, `open`,
`send` and `run_at`, which run functions *at* the parties.

Rounds: a message's round is 1 + the deepest round its sender depends on; all
messages of one `open` travel concurrently (one round), and values opened together
(a tuple) travel in one message per pair.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

DEALER = "dealer"
Check = Callable[[Any], None]  # a receiver's check of a message (see `messages`)
Who = int | str  # a member index, or DEALER


class PerParty(tuple):
    """One handle per member (member order)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"PerParty(n={len(self)})"


class Engine(Protocol):
    n: int  # number of members
    has_dealer: bool

    def local(
        self, fn: Callable, *args: Any, num_returns: int = 1, step: str = "local"
    ) -> PerParty | tuple[PerParty, ...]:
        """Run `fn(i, *args_i)` at every member i, no messages. A `PerParty` argument is
        distributed (member i gets element i); any other argument is public (all get
        it). With num_returns > 1, `fn` returns a tuple and the result is a tuple of
        PerParty."""
        ...

    def open(self, values: PerParty, step: str = "open", op: str = "add") -> PerParty:
        """One round, all-to-all: each member gets the combination of all members'
        values: the sum mod 2^64 (op="add", uint64 arrays) or XOR (op="xor"). A value
        may be a tuple of arrays, opened together in one message per pair."""
        ...

    def open_to(self, values: PerParty, dst: int, step: str = "open", op: str = "add") -> Any:
        """One round: every other member sends its value to member `dst`, which gets the
        combination. Returns a handle at `dst`."""
        ...

    def send(
        self, value: Any, src: Who, dst: Who, step: str = "send", expect: Check | None = None
    ) -> Any:
        """One message from `src` to `dst`; returns a handle at `dst`. `expect`: what `dst`
        must receive (`messages`: a check made from the receiver's own parameters, run at
        `dst` before any step uses the value; ValueError there names what is wrong)."""
        ...

    def run_at(
        self, who: Who, fn: Callable, *args: Any, num_returns: int = 1, step: str = "run"
    ) -> Any:
        """Run `fn(*args)` at one member (or the dealer); handle arguments must live
        there. Returns a handle (or a tuple of handles)."""
        ...


def combine(values: list[Any], op: str) -> Any:
    """Sum mod 2^64 or XOR of per-member values (arrays or tuples of arrays)."""
    first = values[0]
    if isinstance(first, tuple):
        return tuple(combine([v[k] for v in values], op) for k in range(len(first)))
    out = np.array(first, dtype=np.uint64, copy=True)
    for v in values[1:]:
        if op == "add":
            out += np.asarray(v, dtype=np.uint64)
        elif op == "xor":
            out ^= np.asarray(v, dtype=np.uint64)
        else:
            raise ValueError(f"unknown open op {op!r}")
    return out


def nbytes(v: Any) -> int:
    if isinstance(v, tuple | list):
        return sum(nbytes(x) for x in v)
    if isinstance(v, np.ndarray):
        return int(v.nbytes)
    if isinstance(v, bytes):
        return len(v)
    return 8


class _H:
    """A LocalEngine handle: a value, where it lives, and its communication depth."""

    __slots__ = ("value", "who", "depth")

    def __init__(self, value: Any, who: Who, depth: int = 0):
        self.value = value
        self.who = who
        self.depth = depth

    def __repr__(self) -> str:
        return f"_H(at={self.who}, depth={self.depth})"


class LocalEngine:
    """Runs every step in this process; counts messages, bytes and rounds per step tag."""

    def __init__(self, n: int, has_dealer: bool = True):
        if n < 2:
            raise ValueError("an engine needs at least 2 members")
        self.n = n
        self.has_dealer = has_dealer
        self.messages: list[tuple[str, Who, Who, int, int]] = []  # (step, src, dst, bytes, round)

    # -- helpers for tests
    def share(self, x_ring: np.ndarray) -> PerParty:
        from cipherray.protocols import sharing

        return PerParty(_H(s, i) for i, s in enumerate(sharing.share(x_ring, self.n)))

    def value(self, h: Any) -> Any:
        return h.value

    def reconstruct(self, x: PerParty) -> np.ndarray:
        return combine([h.value for h in x], "add")

    def rounds(self, prefix: str = "") -> int:
        return len({r for s, _, _, _, r in self.messages if s.startswith(prefix)})

    def bytes(self, prefix: str = "") -> int:
        return sum(b for s, _, _, b, _ in self.messages if s.startswith(prefix))

    def by_step(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"messages": 0, "bytes": 0, "rounds": set()}
        )
        for s, _, _, b, r in self.messages:
            out[s]["messages"] += 1
            out[s]["bytes"] += b
            out[s]["rounds"].add(r)
        return {s: {**v, "rounds": len(v["rounds"])} for s, v in out.items()}

    # -- the Engine API
    def _arg(self, a: Any, i: int) -> Any:
        if isinstance(a, PerParty):
            h = a[i]
            if h.who != i:
                raise ValueError(f"handle lives at {h.who}, not member {i}")
            return h.value
        return a

    def _depth(self, args: tuple, i: int | None = None) -> int:
        d = 0
        for a in args:
            if isinstance(a, PerParty):
                d = max(d, a[i].depth if i is not None else max(h.depth for h in a))
            elif isinstance(a, _H):
                d = max(d, a.depth)
        return d

    def local(self, fn: Callable, *args: Any, num_returns: int = 1, step: str = "local"):
        outs = []
        for i in range(self.n):
            vals = [self._arg(a, i) for a in args]
            r = fn(i, *vals)
            d = self._depth(args, i)
            if num_returns == 1:
                outs.append(_H(r, i, d))
            else:
                outs.append(tuple(_H(v, i, d) for v in r))
        if num_returns == 1:
            return PerParty(outs)
        return tuple(PerParty(o[k] for o in outs) for k in range(num_returns))

    def _msg(self, step: str, src: Who, dst: Who, value: Any, rnd: int) -> None:
        self.messages.append((step, src, dst, nbytes(value), rnd))

    def open(self, values: PerParty, step: str = "open", op: str = "add") -> PerParty:
        rnd = 1 + max(h.depth for h in values)
        for i in range(self.n):
            for j in range(self.n):
                if i != j:
                    self._msg(step, i, j, values[i].value, rnd)
        total = combine([h.value for h in values], op)
        return PerParty(_H(_copy(total), i, rnd) for i in range(self.n))

    def open_to(self, values: PerParty, dst: int, step: str = "open", op: str = "add"):
        rnd = 1 + max(h.depth for h in values)
        for i in range(self.n):
            if i != dst:
                self._msg(step, i, dst, values[i].value, rnd)
        return _H(combine([h.value for h in values], op), dst, rnd)

    def send(self, value: Any, src: Who, dst: Who, step: str = "send", expect: Check | None = None):
        if value.who != src:
            raise ValueError(f"handle lives at {value.who}, not {src}")
        if expect is not None:
            expect(value.value)
        rnd = value.depth + 1
        self._msg(step, src, dst, value.value, rnd)
        return _H(_copy(value.value), dst, rnd)

    def run_at(self, who: Who, fn: Callable, *args: Any, num_returns: int = 1, step: str = "run"):
        if who == DEALER and not self.has_dealer:
            raise ValueError("this engine has no dealer")
        vals = []
        for a in args:
            if isinstance(a, _H):
                if a.who != who:
                    raise ValueError(f"handle lives at {a.who}, not {who}")
                vals.append(a.value)
            else:
                vals.append(a)
        d = self._depth(args)
        r = fn(*vals)
        if num_returns == 1:
            return _H(r, who, d)
        return tuple(_H(v, who, d) for v in r)


def _copy(v: Any) -> Any:
    if isinstance(v, tuple):
        return tuple(_copy(x) for x in v)
    return v.copy() if isinstance(v, np.ndarray) else v
