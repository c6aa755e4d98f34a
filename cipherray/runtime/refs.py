"""Refs: the driver's handles to values at a location. The driver never holds the
values, nor any backend future that could be passed elsewhere.

- `PartyRef`     plaintext at one party
- `SharedRef`    additive shares over Z_2^64, one per member of an MPC location
- `EncryptedRef` Paillier ciphertexts held by one party under a keyholder's key

Every ref carries its provenance (`meta`: whose inputs, which kind of operation).
`ref.to(location)` is the only way a value changes location (conversions.py);
`ref.reveal_to(party)` the only way it leaves in the clear (policy-checked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cipherray.runtime.values import Handle, Meta

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime.party import Party
    from cipherray.runtime.runtime import Runtime


class Ref:
    """Base class of every ref."""

    _rt: Runtime
    meta: Meta

    @property
    def location(self) -> Any:
        raise NotImplementedError

    @property
    def provenance(self) -> frozenset[str]:
        """The parties whose inputs this value was computed from."""
        return self.meta.owners

    def _handles(self) -> list[Handle]:
        raise NotImplementedError

    def to(self, location: Any) -> Ref:
        """Convert to another location (see conversions.py for the table)."""
        return self._rt._convert(self, location)

    def reveal_to(self, party: Party | str) -> PartyRef:
        """The value in the clear at `party`, if the policy allows it (audited)."""
        return self._rt._reveal(self, party)

    def __reduce__(self):
        raise TypeError(
            f"a {type(self).__name__} cannot be pickled; pass it as an argument to a step"
        )


class PartyRef(Ref):
    """A plaintext value living at one party."""

    __slots__ = ("_rt", "_h", "_party", "meta")

    def __init__(self, rt: Runtime, handle: Handle, party: Party, meta: Meta):
        self._rt = rt
        self._h = handle
        self._party = party
        self.meta = meta

    @property
    def party(self) -> Party:
        return self._party

    def _handles(self) -> list[Handle]:
        return [self._h]

    @property
    def location(self) -> Party:
        return self._party

    @property
    def shape(self) -> tuple | None:
        """The value's shape (None if it has none): public metadata, waits for the step."""
        m = self._rt._meta_of(self._h)
        return None if m is None else tuple(m[0])

    @property
    def dtype(self) -> str | None:
        m = self._rt._meta_of(self._h)
        return None if m is None else m[1]

    def send_to(self, party: Party | str, tag: str, expect: Any = None) -> PartyRef:
        """`rt.send(self, to=party, tag=tag, expect=expect)`: a protocol message to
        another party (`expect`: what the receiver must get, see `Runtime.send`)."""
        return self._rt.send(self, party, tag, expect=expect)

    def __repr__(self) -> str:
        return f"PartyRef(party={self._party.name!r}, step={self._rt._step_name(self._h)!r})"

    def __bool__(self) -> bool:
        return True
