"""Refs: handles to values at a location. The driver holds refs, never the values.

- `PartyRef`     plaintext at one party
- `SharedRef`    additive shares over Z_2^64, one per member of an MPC location
- `EncryptedRef` Paillier ciphertexts (arrives with the HE location)

`ref.to(location)` is the only way a value crosses a trust boundary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cipherray.runtime.errors import DisclosureError, LocationError

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime.party import Party
    from cipherray.runtime.runtime import Runtime


class Obj:
    """One backend future (a Ray ObjectRef) produced by step `step_id` at `party`."""

    __slots__ = ("fut", "party", "step_id")

    def __init__(self, fut: Any, party: str, step_id: int):
        self.fut = fut
        self.party = party
        self.step_id = step_id


class Transfer:
    """An `Obj` on its way to another party through the channel (message `msg_id`)."""

    __slots__ = ("obj", "dst", "tag", "msg_id", "round")

    def __init__(self, obj: Obj, dst: str, tag: str, msg_id: int, round: int = 1):
        self.obj = obj
        self.dst = dst
        self.tag = tag
        self.msg_id = msg_id
        self.round = round


class Ref:
    """Base class of every ref."""

    _rt: Runtime

    @property
    def location(self) -> Any:
        raise NotImplementedError

    def to(self, location: Any) -> Ref:
        raise NotImplementedError

    def reveal_to(self, party: Party | str) -> PartyRef:
        raise NotImplementedError


class PartyRef(Ref):
    """A plaintext value living at one party."""

    __slots__ = ("_rt", "_obj", "_party")

    def __init__(self, rt: Runtime, obj: Obj, party: Party):
        self._rt = rt
        self._obj = obj
        self._party = party

    @property
    def party(self) -> Party:
        return self._party

    @property
    def location(self) -> Party:
        return self._party

    def to(self, location: Any) -> Ref:
        """Move this value to `location`: its own party (no-op), an MPC location
        (secret-share it) or an HE location (encrypt it). Another party: DisclosureError."""
        self._rt._check_open()
        from cipherray.runtime.party import Party

        if isinstance(location, Party):
            if location is self._party or location.name == self._party.name:
                return self
            raise DisclosureError(
                f"plaintext of party '{self._party.name}' cannot move to party "
                f"'{location.name}'; share it with rt.mpc(...), or use "
                f"reveal_to('{location.name}') under an explicit policy rule"
            )
        conv = getattr(location, "_convert_from_party", None)
        if conv is None:
            raise LocationError(f"cannot convert a PartyRef to {location!r}")
        return conv(self)

    def reveal_to(self, party: Party | str) -> PartyRef:
        """Send this party's plaintext to another party; needs an explicit policy rule
        (`rt.policy.allow_transfer(src, dst)`), else DisclosureError."""
        return self._rt._reveal_plaintext(self, party)

    def __repr__(self) -> str:
        return f"PartyRef(party={self._party.name!r}, step={self._rt._step_name(self._obj)!r})"

    def __bool__(self) -> bool:
        return True

    def __reduce__(self):
        raise TypeError("a PartyRef cannot be pickled; pass it as an argument to a party call")
