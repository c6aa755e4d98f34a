"""Pseudonyms across parties, and authorised re-identification, on the runtime.

- `joint_pseudonyms(rt, {bank: ids, insurer: ids})`: every party gets a token per
  identifier, equal across parties for the same identifier, that no single party can
  compute or reverse (`protocols/deid/joint.py`: each party's secret X25519 scalar stays
  in its own worker; only blinded points cross, as messages of the `deid_joint`
  protocol).
- `reidentify(rt, tokens, key_holder=..., to=..., key_file=...)`: the holder of an
  AES-SIV key maps keyed pseudonyms back to identifiers for `to`.
- `reidentify_joint(rt, pseudonyms, tokens, owner=..., to=...)`: the parties strip their
  scalars in turn and the owner of the identifiers maps what is left back to its own
  identifiers (only those it holds).

Both re-identifications hand the identifiers to `to` through the runtime's policy: the
identifiers' owner(s) must have granted it, e.g. `rt.policy.grant(owner=bank, to=insurer,
allow="plaintext", tag="deid/reidentify")`, else `DisclosureError` naming owner, receiver
and step; each one is recorded in `rt.audit` with the grant used. When `to` is the key
holder or owner itself, the tokens go to it under the same tag, so the tokens' holder
(and, for joint tokens, every party whose scalar they carry) must have granted that.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cipherray.protocols.deid import joint
from cipherray.protocols.deid.pseudonyms import SivPseudonymizer, load_key

PROTOCOL = "deid_joint"
MESSAGES = {
    "salt": "the per-run salt (random; the same at every party)",
    "masked": "an owner's hashed identifiers under its one-time mask and the scalars "
    "applied so far: pseudorandom to the receiver (it lacks the mask); their count",
    "strip": "tokens with some parties' scalars removed, on their way to the identifiers' "
    "owner: pseudorandom to the receiver (the owner's scalar is still on them)",
    "stripped": "tokens under the owner's scalar alone: the owner learns which of its "
    "identifiers they stand for (re-identification)",
    "keyed_tokens": "AES-SIV pseudonyms to their key holder for re-identification: the key "
    "holder learns the identifiers they stand for",
}
REIDENTIFY_TAG = "deid/reidentify"


@dataclass
class JointPseudonyms(Mapping):
    """Token arrays per party (`result[party]` is a PartyRef at that party: hex strings,
    one per input identifier, in its input order, None for a missing identifier), and
    what `reidentify_joint` needs: each party's scalar and salt (PartyRefs at the party,
    never readable elsewhere) and its input identifiers."""

    tokens: dict[str, Any]
    keys: dict[str, Any] = field(repr=False)
    salts: dict[str, Any] = field(repr=False)
    ids: dict[str, Any] = field(repr=False)
    tag: str = "pseudonyms"

    def __getitem__(self, party: Any) -> Any:
        return self.tokens[getattr(party, "name", party)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)


def joint_pseudonyms(rt: Any, ids: Mapping[Any, Any], tag: str = "pseudonyms") -> JointPseudonyms:
    """Tokens of each party's identifiers under every party's scalar (see the module).

    `ids` maps each party (two or more) to a PartyRef at that party of its identifiers
    (a list, array or Series). Steps, tagged `<tag>/deid_joint/...` in the ledger:

    1. Each party draws its scalar; the first party draws the salt and sends it on.
    2. Each party masks its hashed identifiers with a one-time scalar (`step1_mask`).
    3. Each party's masked points go round the ring; every other party multiplies them
       by its scalar (`step2_blind`) and passes them on, back to their owner.
    4. Each owner swaps its mask for its scalar (`step3_unmask`): its tokens.
    """
    parties = [rt.party(p) for p in ids]
    if len(parties) < 2:
        raise ValueError("joint pseudonyms need at least two parties")
    if len({p.name for p in parties}) != len(parties):
        raise ValueError("joint_pseudonyms: a party is named twice")
    rt.protocol(PROTOCOL, MESSAGES)
    refs = {p.name: ids[p] if p in ids else ids[p.name] for p in parties}
    n = len(parties)
    with rt.scope(tag):
        keys = {p.name: p(joint.JointKey.generate, name="deid_joint/key")() for p in parties}
        first = parties[0]
        salt = first(joint.new_salt, name="deid_joint/salt")()
        salts = {first.name: salt}
        for p in parties[1:]:
            salts[p.name] = rt.send(salt, to=p, tag=f"{PROTOCOL}/salt")
        tokens = {}
        for i, owner in enumerate(parties):
            masked, mask, present = owner(joint.step1_mask, num_returns=3)(
                refs[owner.name], salts[owner.name]
            )
            for hop in range(1, n):
                nxt = parties[(i + hop) % n]
                masked = rt.send(masked, to=nxt, tag=f"{PROTOCOL}/masked")
                masked = nxt(joint.step2_blind)(masked, keys[nxt.name])
            back = rt.send(masked, to=owner, tag=f"{PROTOCOL}/masked")
            tokens[owner.name] = owner(joint.step3_unmask)(back, keys[owner.name], mask, present)
    return JointPseudonyms(tokens, keys, salts, refs, tag)


def reidentify_joint(rt: Any, pseudonyms: JointPseudonyms, tokens: Any, owner: Any, to: Any) -> Any:
    """The identifiers that `owner` holds for joint `tokens` (a PartyRef of hex tokens at
    any party of the run), as a PartyRef at `to` (None where the owner does not hold the
    identifier). Needs the grants described in the module docstring.

    1. The tokens go to each party other than the owner in turn (starting with their
       holder), which strips its scalar (`step_strip`).
    2. They reach the owner (a `deid_joint/stripped` message, or, when `to` is the owner,
       a message under the grants' tag), which matches them with its identifiers.
    3. The identifiers are revealed to `to` under the tag `deid/reidentify`.
    """
    owner, to = rt.party(owner), rt.party(to)
    if owner.name not in pseudonyms.tokens:
        raise ValueError(f"'{owner.name}' took no part in these pseudonyms")
    holder = tokens.party
    strippers = [rt.party(p) for p in pseudonyms.tokens if p != owner.name]
    strippers.sort(key=lambda p: p != holder)  # the holder first, if it strips
    keys, salts = pseudonyms.keys, pseudonyms.salts
    with rt.scope(pseudonyms.tag):
        points, present = holder(_token_points, num_returns=2)(tokens)
        at = holder
        for p in strippers:
            if p != at:
                points = rt.send(points, to=p, tag=f"{PROTOCOL}/strip")
                present = rt.send(present, to=p, tag=f"{PROTOCOL}/strip")
                at = p
            points = p(joint.step_strip)(points, keys[p.name])
        if to != owner:
            points = rt.send(points, to=owner, tag=f"{PROTOCOL}/stripped")
            present = rt.send(present, to=owner, tag=f"{PROTOCOL}/stripped")
    if to == owner:  # the owner learns what the tokens stand for: the grants decide
        points = rt.send(points, to=owner, tag=f"{REIDENTIFY_TAG}/stripped")
        present = rt.send(present, to=owner, tag=f"{REIDENTIFY_TAG}/stripped")
    found = owner(joint.step_match, name="deid/reidentify/match")(
        points, present, pseudonyms.ids[owner.name], salts[owner.name], keys[owner.name]
    )
    return _reveal(rt, found, to)


def reidentify(
    rt: Any, tokens: Any, key_holder: Any, to: Any, key_file: str | Path, context: str = ""
) -> Any:
    """The identifiers behind AES-SIV pseudonyms `tokens` (a PartyRef at any party), for
    `to`: `key_holder` decrypts them with the key in `key_file` (read at the key holder;
    `context` as when they were made) and they are revealed to `to` under the tag
    `deid/reidentify` (grants: see the module docstring)."""
    key_holder, to = rt.party(key_holder), rt.party(to)
    rt.protocol(PROTOCOL, MESSAGES)
    tag = f"{REIDENTIFY_TAG}/tokens" if to == key_holder else f"{PROTOCOL}/keyed_tokens"
    at_holder = rt.send(tokens, to=key_holder, tag=tag)
    found = key_holder(siv_identifiers, name="deid/reidentify/decrypt")(
        at_holder, str(key_file), context
    )
    return _reveal(rt, found, to)


def _reveal(rt: Any, found: Any, to: Any) -> Any:
    with rt.scope(REIDENTIFY_TAG):
        return found.reveal_to(to)


def _token_points(tokens: Any) -> tuple[np.ndarray, np.ndarray]:
    return joint.tokens_to_points(tokens)


# -- keyed pseudonyms as party steps -----------------------------------------------------


def siv_pseudonyms(values: Any, key_file: str, context: str = "") -> np.ndarray:
    """At the key holder: AES-SIV pseudonyms of `values` under the key in `key_file`."""
    return SivPseudonymizer(load_key(key_file, "siv"), context).encrypt(values)


def siv_identifiers(tokens: Any, key_file: str, context: str = "") -> np.ndarray:
    """At the key holder: the identifiers behind AES-SIV pseudonyms (TokenError if one
    was altered)."""
    return SivPseudonymizer(load_key(key_file, "siv"), context).decrypt(tokens)
