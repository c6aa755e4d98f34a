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

    def leaf(v):
        if is_ref(v):
            objects.append(to_object(v))
            return Slot(len(objects) - 1)
        return v

    new_args = tuple(_walk(a, leaf) for a in args)
    new_kwargs = {k: _walk(v, leaf) for k, v in kwargs.items()}
    return new_args, new_kwargs, objects, bool(objects)


def unpack(args: tuple, kwargs: dict, values: tuple) -> tuple[tuple, dict]:
    def leaf(v):
        return values[v.i] if type(v) is Slot else v

    return tuple(_walk(a, leaf) for a in args), {k: _walk(v, leaf) for k, v in kwargs.items()}


def _walk(v, leaf):
    """``leaf`` applied to every value inside lists, tuples and dicts (rebuilt as such)."""
    if type(v) in (list, tuple):
        out = [_walk(x, leaf) for x in v]
        return out if type(v) is list else tuple(out)
    if type(v) is dict:
        return {k: _walk(x, leaf) for k, x in v.items()}
    return leaf(v)


def receive(x: Any) -> Any:
    """The step that makes a channel message a value of the receiving party."""
    return x
