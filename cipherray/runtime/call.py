"""What the driver sends to a party worker for one step: `Call`, and argument packing.

Refs inside the arguments (also nested in lists, tuples and dicts) are replaced by
numbered slots; their backend objects travel as top-level arguments so the backend
(Ray) resolves them before the worker runs.
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


@dataclass
class Inbound:
    """A cross-party message delivered as argument slot `slot` from party `src`."""

    slot: int
    src: str
    msg_id: int
    tag: str


@dataclass
class Call:
    fn: Any
    step: str
    step_id: int
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    inbound: tuple = ()
    num_returns: int = 1
    packed: bool = False


def pack(args: tuple, kwargs: dict, is_ref, to_object) -> tuple[tuple, dict, list, bool]:
    """Replace refs by slots. Returns (args, kwargs, objects, any_ref)."""
    objects: list = []

    def walk(v):
        if is_ref(v):
            objects.append(to_object(v))
            return Slot(len(objects) - 1)
        if type(v) in (list, tuple):
            out = [walk(x) for x in v]
            return out if type(v) is list else tuple(out)
        if type(v) is dict:
            return {k: walk(x) for k, x in v.items()}
        return v

    new_args = tuple(walk(a) for a in args)
    new_kwargs = {k: walk(v) for k, v in kwargs.items()}
    return new_args, new_kwargs, objects, bool(objects)


def unpack(args: tuple, kwargs: dict, values: tuple) -> tuple[tuple, dict]:
    def walk(v):
        if type(v) is Slot:
            return values[v.i]
        if type(v) in (list, tuple):
            out = [walk(x) for x in v]
            return out if type(v) is list else tuple(out)
        if type(v) is dict:
            return {k: walk(x) for k, x in v.items()}
        return v

    return tuple(walk(a) for a in args), {k: walk(v) for k, v in kwargs.items()}


def receive(x: Any) -> Any:
    """The step that makes a channel message a value of the receiving party."""
    return x
