"""`ref.to(location)` and `ref.reveal_to(party)`: one table, one reveal.

The table is keyed by (source location kind, target location kind); each entry is a
small function. Kinds: "party" (plaintext at one party), "mpc" (additive shares),
"he" (Paillier ciphertexts held by one party).

| from \\ to | party                    | mpc                      | he                        |
|-----------|--------------------------|--------------------------|---------------------------|
| party     | same party only          | share (seeds, one round) | encrypt at the owner      |
| mpc       | reveal_to (policy)       | same location only       | A2H (mask, encrypt)       |
| he        | move ciphertexts (grant) | H2A (mask, decrypt)      | same key only             |

`reveal` is the one function every location's reveal goes through: it builds the
`Disclosure` from the ref's provenance, asks the policy, records the audit entry and
then asks the location to open the value at the receiver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cipherray.runtime.encrypted import HE, EncryptedRef
from cipherray.runtime.errors import DisclosureError, LocationError
from cipherray.runtime.party import Party
from cipherray.runtime.policy import Disclosure
from cipherray.runtime.refs import PartyRef, Ref
from cipherray.runtime.shared import MPC, SharedRef

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime.runtime import Runtime


def kind_of(location: Any) -> str:
    if isinstance(location, Party):
        return "party"
    if isinstance(location, MPC):
        return "mpc"
    if isinstance(location, HE):
        return "he"
    raise LocationError(f"{location!r} is not a location (a party, rt.mpc(...) or rt.he(...))")


def _same(ref: Ref, location: Any) -> Ref:
    if ref.location == location:
        return ref
    raise LocationError(
        f"cannot move a {type(ref).__name__} from {ref.location!r} to {location!r} directly"
    )


def _party_to_party(ref: PartyRef, dst: Party) -> Ref:
    if dst.name == ref.party.name:
        return ref
    raise DisclosureError(
        f"plaintext of party '{ref.party.name}' cannot move to party '{dst.name}'; "
        f"share it with rt.mpc(...), send a protocol message with rt.send(...), or use "
        f"reveal_to('{dst.name}') under the owner's grant"
    )


def _party_to_mpc(ref: PartyRef, mpc: MPC) -> Ref:
    return mpc.share(ref)


def _party_to_he(ref: PartyRef, he: HE) -> Ref:
    return he.encrypt(ref)


def _mpc_to_party(ref: SharedRef, dst: Party) -> Ref:
    raise LocationError(
        f"a SharedRef moves to a party only by .reveal_to({dst.name!r}), which the "
        "disclosure policy checks"
    )


def _mpc_to_he(ref: SharedRef, he: HE) -> Ref:
    return he.from_shared(ref)


def _he_to_mpc(ref: EncryptedRef, mpc: MPC) -> Ref:
    return ref.location.to_shared(ref, mpc)


def _he_to_party(ref: EncryptedRef, dst: Party) -> Ref:
    he = ref.location
    if dst.name == ref.holder.name:
        return ref
    if dst.name == he.keyholder.name:
        raise DisclosureError(
            f"sending ciphertexts to the keyholder '{dst.name}' would let it decrypt them; "
            "use .reveal_to(keyholder), which the policy checks"
        )
    rt = ref._rt
    step = rt._tag("he/send")
    d = Disclosure("encrypted", he.name, (ref.holder.name,), dst.name, step, step, ref.meta)
    rt._authorise(d)
    return he.move(ref, dst)


CONVERSIONS: dict[tuple[str, str], Callable[[Any, Any], Ref]] = {
    ("party", "party"): _party_to_party,
    ("party", "mpc"): _party_to_mpc,
    ("party", "he"): _party_to_he,
    ("mpc", "party"): _mpc_to_party,
    ("mpc", "mpc"): _same,
    ("mpc", "he"): _mpc_to_he,
    ("he", "party"): _he_to_party,
    ("he", "mpc"): _he_to_mpc,
    ("he", "he"): _same,
}


def convert(rt: Runtime, ref: Ref, location: Any) -> Ref:
    """`ref.to(location)` through the table."""
    return CONVERSIONS[(kind_of(ref.location), kind_of(location))](ref, location)


def _members(ref: Ref) -> tuple[str, ...]:
    if isinstance(ref, SharedRef):
        return ref.location.names
    if isinstance(ref, EncryptedRef):
        return (ref.holder.name, ref.location.keyholder.name)
    return (ref.location.name,)


def reveal(rt: Runtime, ref: Ref, dst: Party) -> PartyRef:
    """The value of `ref` in the clear at `dst`: policy-checked, audited, then opened by
    the location that holds it."""
    if isinstance(ref, PartyRef) and ref.party.name == dst.name:
        return ref
    if isinstance(ref, EncryptedRef) and dst.name != ref.location.keyholder.name:
        raise DisclosureError(
            f"only the keyholder '{ref.location.keyholder.name}' can decrypt; to reveal to "
            f"'{dst.name}', convert with .to(mpc) and reveal the shares"
        )
    step = rt._tag("reveal")
    source = ref.location.name
    d = Disclosure("plaintext", source, _members(ref), dst.name, step, step, ref.meta)
    rt._authorise(d)
    if isinstance(ref, PartyRef):
        return rt._deliver(ref, dst, "reveal", ref.meta.with_(revealed_to=dst.name))
    return ref.location.open_at(ref, dst)
