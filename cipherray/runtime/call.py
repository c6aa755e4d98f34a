"""What the driver sends a party worker for one step: a `Call`, and argument packing.

Refs inside the arguments (also nested in lists, tuples and dicts) are replaced by
`Slot`s. Slot i is filled, at the worker, from `Call.sources[i]`: a value already in
that worker's store (`Key`), or an inbound message (`Inbox`: the k-th dependency the
backend resolved, from party `src`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Slot:
    """Placeholder for the i-th resolved argument."""

    __slots__ = ("i",)

    def __init__(self, i: int):
        self.i = i

    def __reduce__(self):
        return (Slot, (self.i,))


@dataclass(frozen=True)
class Key:
    """A value in the executing worker's store."""

    id: int


@dataclass(frozen=True)
class Inbox:
    """A message: dependency number `dep` of the call, sent by party `src` (counted in
    the ledger as message `msg_id` under `tag` unless it moves within one party).
    `expect`: what the receiving step expects of it (`silo.expect`: an `Expect`, or
    `Like(i)`, the kind, dtype and shape of the step's own argument value i), checked
    at the receiving worker before the step runs; None: not checked."""

    dep: int
    src: str
    msg_id: int = 0
    tag: str = ""
    expect: Any = None

    @property
    def wire_tag(self) -> str:
        """The message's tag as the transport names it (``TAG#NUMBER``)."""
        return f"{self.tag}#{self.msg_id}" if self.msg_id else self.tag or "move"

    @property
    def counted(self) -> bool:
        return self.msg_id > 0


@dataclass
class Call:
    fn: Any
    step: str
    step_id: int
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    sources: tuple = ()  # Key | Inbox per slot
    outputs: tuple = ()  # store ids of the results (one per return value)
    eager: bool = False  # also return small results to the driver (it may read them)
    free: tuple = ()  # store ids the driver no longer names
    timeout_s: float = 300.0
    dep_parties: tuple = ()  # the party each dependency comes from (for error messages)


def pack(args: tuple, kwargs: dict, is_ref, to_source) -> tuple[tuple, dict, list]:
    """Replace refs by slots. Returns (args, kwargs, sources)."""
    sources: list = []

    def leaf(v):
        if is_ref(v):
            sources.append(to_source(v))
            return Slot(len(sources) - 1)
        return v

    new_args = tuple(walk(a, leaf) for a in args)
    new_kwargs = {k: walk(v, leaf) for k, v in kwargs.items()}
    return new_args, new_kwargs, sources


def unpack(args: tuple, kwargs: dict, values: list) -> tuple[tuple, dict]:
    def leaf(v):
        return values[v.i] if type(v) is Slot else v

    return tuple(walk(a, leaf) for a in args), {k: walk(v, leaf) for k, v in kwargs.items()}


def walk(v, leaf):
    """``leaf`` applied to every value inside lists, tuples and dicts (rebuilt as such)."""
    if type(v) in (list, tuple):
        out = [walk(x, leaf) for x in v]
        return out if type(v) is list else tuple(out)
    if type(v) is dict:
        return {k: walk(x, leaf) for k, x in v.items()}
    return leaf(v)


def refs_in(args: tuple, kwargs: dict) -> list:
    """Every non-plain leaf inside the arguments (refs, handles, ...), in order."""
    found: list = []

    def leaf(v):
        if not isinstance(v, _PLAIN):
            mod = type(v).__module__
            if mod.startswith("cipherray.runtime") or mod.startswith("ray"):
                found.append(v)
        return v

    for a in args:
        walk(a, leaf)
    for v in kwargs.values():
        walk(v, leaf)
    return found


_PLAIN = (int, float, str, bytes, bool, type(None), complex)


def identity(x: Any) -> Any:
    """The step that makes a received message a value of the receiving party."""
    return x
