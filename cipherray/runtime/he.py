"""The HE location: Paillier ciphertexts under one keyholder's key.

`he = rt.he(keyholder=party)` generates a key pair *inside the keyholder's actor*; the
private key never leaves it (only the public key crosses the channel, once per party
that needs it). An `EncryptedRef` is a `CipherArray` held by one party (its holder).

- `party_ref.to(he)` encrypts at the owning party with the keyholder's public key;
- `he(fn)(enc, plain...)` runs `fn` on the ciphertexts at the party that holds them,
  with that party's own plaintext operands;
- `enc.to(other_party)` moves ciphertexts to another non-keyholder party;
- `enc.to(mpc)` converts to additive shares (mask, decrypt at the keyholder: H2A) and
  `shared_ref.to(he)` converts back (A2H) — see `protocols/he_conversions.py`;
- `enc.reveal_to(keyholder)` decrypts there, under the disclosure policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from cipherray.protocols import he_conversions as hc
from cipherray.runtime.audit import Disclosure
from cipherray.runtime.call import receive
from cipherray.runtime.errors import DisclosureError, LocationError
from cipherray.runtime.party import Party
from cipherray.runtime.refs import Obj, PartyRef, Ref

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime.mpc import MPC, SharedRef
    from cipherray.runtime.runtime import Runtime


# ---- steps (run inside party actors)


def _keygen(bits: int, insecure: bool) -> tuple:
    from cipherray.protocols.paillier import keygen

    return keygen(bits=bits, insecure=insecure)


def _encrypt(pk: Any, x: Any) -> Any:
    return pk.encrypt(np.asarray(x))


def _split(x: Any, k: int) -> tuple:
    return tuple(np.array_split(np.asarray(x), k, axis=0))


def _concat(*parts: Any) -> Any:
    from cipherray.protocols.paillier import concatenate

    return concatenate(list(parts), axis=0)


def _decrypt(sk: Any, c: Any) -> np.ndarray:
    return sk.decrypt(c)


def _shape(c: Any) -> tuple:
    return tuple(c.shape)


def _zeros(shape: tuple) -> np.ndarray:
    return np.zeros(shape, dtype=np.uint64)


def _check_cipher(x: Any, step: str) -> Any:
    from cipherray.protocols.paillier import CipherArray

    if not isinstance(x, CipherArray):
        raise TypeError(
            f"he step '{step}' must return a CipherArray (ciphertexts), got {type(x).__name__}"
        )
    return x


def _evaluate(fn: Callable, step: str, *args: Any, **kwargs: Any) -> Any:
    return _check_cipher(fn(*args, **kwargs), step)


class HE:
    """A Paillier location: the keyholder's key pair, ciphertexts held by parties."""

    def __init__(self, rt: Runtime, keyholder: Party, bits: int = 2048, insecure: bool = False):
        self._rt = rt
        self.keyholder = keyholder
        self.bits = int(bits)
        self.name = f"he({keyholder.name})"
        pk, sk = rt._run_at(
            keyholder,
            _keygen,
            (self.bits, bool(insecure)),
            {},
            step="he/keygen",
            num_returns=2,
            location=self.name,
        )
        self._sk: Obj = sk._obj  # never leaves the keyholder
        self._pk: dict[str, Obj] = {keyholder.name: pk._obj}

    def __repr__(self) -> str:
        return self.name

    def __call__(self, fn: Callable) -> HECall:
        return HECall(self, fn)

    def public_key_at(self, party: Party) -> Obj:
        """The public key at `party` (sent once through the channel, then cached)."""
        obj = self._pk.get(party.name)
        if obj is None:
            rt = self._rt
            (msg,) = rt._channel_round(
                "he/public_key", [(self._pk[self.keyholder.name], party.name)]
            )
            obj = rt._run_at(
                party, receive, (msg,), {}, step="he/public_key", location=self.name
            )._obj
            self._pk[party.name] = obj
        return obj

    # -- conversions
    def _convert_from_party(self, ref: PartyRef) -> EncryptedRef:
        rt = self._rt
        owner = ref.party
        pk = self.public_key_at(owner)
        k = owner.workers
        if k == 1 or owner.spec.gpus:  # one worker, or the party's GPU worker does it all
            c = rt._run_at(owner, _encrypt, (pk, ref), {}, step="he/encrypt", location=self.name)
        else:  # spread the work over the party's workers
            parts = rt._run_at(owner, _split, (ref, k), {}, step="he/split", num_returns=k)
            encs = [
                rt._run_at(
                    owner, _encrypt, (pk, p), {}, step="he/encrypt", worker=i, location=self.name
                )
                for i, p in enumerate(parts)
            ]
            c = rt._run_at(owner, _concat, tuple(encs), {}, step="he/concat", location=self.name)
        return EncryptedRef(self, c._obj, owner)

    def _convert_from_shared(self, shared: SharedRef) -> EncryptedRef:
        """A2H (see protocols/he_conversions.py): the holder is the first member that
        is not the keyholder."""
        rt = self._rt
        mpc = shared.location
        names = mpc.names
        if self.keyholder.name not in names:
            raise LocationError(
                f"{mpc.name} -> {self.name}: the keyholder '{self.keyholder.name}' must be a "
                "member of the MPC location"
            )
        shared = shared._normalised_pow16()
        f = shared.scale.bit_length() - 1  # a multiple of 4
        holder_i = next(i for i, nm in enumerate(names) if nm != self.keyholder.name)
        holder = mpc.parties[holder_i]
        k_i = names.index(self.keyholder.name)
        masked, r = rt._run_at(
            holder,
            hc.a2h_mask,
            (shared._shares[holder_i],),
            {},
            step="he/a2h_mask",
            num_returns=2,
            location=self.name,
        )
        sends = [
            (masked._obj if i == holder_i else shared._shares[i], self.keyholder.name)
            for i in range(len(names))
            if i != k_i
        ]
        msgs = rt._channel_round("he/a2h_open", sends)
        pk_k = self._pk[self.keyholder.name]
        enc = rt._run_at(
            self.keyholder,
            _a2h_encrypt_step,
            (pk_k, shared._shares[k_i], *msgs),
            {"frac_bits": f},
            step="he/a2h_encrypt",
            location=self.name,
        )
        (back,) = rt._channel_round("he/a2h_return", [(enc._obj, holder.name)])
        out = rt._run_at(
            holder, hc.a2h_unmask, (back, r, f), {}, step="he/a2h_unmask", location=self.name
        )
        return EncryptedRef(self, out._obj, holder)


def _a2h_encrypt_step(pk: Any, own: np.ndarray, *parts: np.ndarray, frac_bits: int) -> Any:
    return hc.a2h_encrypt(pk, [own, *parts], frac_bits)


class EncryptedRef(Ref):
    """Paillier ciphertexts at one party (the holder) under the keyholder's key."""

    def __init__(self, he: HE, obj: Obj, holder: Party):
        self._he = he
        self._rt = he._rt
        self._obj = obj
        self.holder = holder

    @property
    def location(self) -> HE:
        return self._he

    def __repr__(self) -> str:
        return f"EncryptedRef({self._he.name}, held by {self.holder.name!r})"

    def to(self, location: Any) -> Ref:
        rt = self._rt
        rt._check_open()
        if isinstance(location, HE):
            if location is self._he:
                return self
            raise LocationError("ciphertexts cannot move between two HE keys directly")
        if isinstance(location, Party):
            if location.name == self.holder.name:
                return self
            if location.name == self._he.keyholder.name:
                raise DisclosureError(
                    f"sending ciphertexts to the keyholder '{location.name}' would let it "
                    "decrypt them; use .reveal_to(keyholder), which the policy checks"
                )
            (msg,) = rt._channel_round("he/send", [(self._obj, location.name)])
            r = rt._run_at(location, receive, (msg,), {}, step="he/receive", location=self._he.name)
            return EncryptedRef(self._he, r._obj, location)
        from cipherray.runtime.mpc import MPC

        if isinstance(location, MPC):
            return self._to_mpc(location)
        raise LocationError(f"cannot convert an EncryptedRef to {location!r}")

    def _to_mpc(self, mpc: MPC) -> SharedRef:
        """H2A (see protocols/he_conversions.py): mask at the holder, decrypt at the
        keyholder; other members get zero shares."""
        from cipherray.runtime.mpc import SharedRef

        rt = self._rt
        he = self._he
        names = mpc.names
        for who, role in ((self.holder.name, "holder"), (he.keyholder.name, "keyholder")):
            if who not in names:
                raise LocationError(
                    f"{he.name} -> {mpc.name}: the {role} '{who}' must be a member of the MPC "
                    "location"
                )
        if self.holder.name == he.keyholder.name:
            raise LocationError("the keyholder holds these ciphertexts; it cannot mask for itself")
        f = mpc.frac_bits
        masked, own = rt._run_at(
            self.holder,
            hc.h2a_mask,
            (self._obj, f),
            {},
            step="he/h2a_mask",
            num_returns=2,
            location=he.name,
        )
        (msg,) = rt._channel_round("he/h2a", [(masked._obj, he.keyholder.name)])
        k_share = rt._run_at(
            he.keyholder,
            hc.h2a_unmask,
            (he._sk, msg, f),
            {},
            step="he/h2a_unmask",
            location=he.name,
        )
        shares = []
        shape = None
        for p in mpc.parties:
            if p.name == self.holder.name:
                shares.append(own._obj)
            elif p.name == he.keyholder.name:
                shares.append(k_share._obj)
            else:
                if shape is None:
                    shape = self.shape
                shares.append(rt._run_at(p, _zeros, (shape,), {}, step="he/h2a_zero")._obj)
        return SharedRef(mpc, shares, 2**f)

    @property
    def shape(self) -> tuple:
        r = self._rt._run_at(self.holder, _shape, (self._obj,), {}, step="he/shape")
        return tuple(self._rt.get(r))

    def reveal_to(self, party: Party | str) -> PartyRef:
        """Decrypt at the keyholder (policy-checked, audited)."""
        rt = self._rt
        rt._check_open()
        dst = rt.party(party)
        he = self._he
        if dst.name != he.keyholder.name:
            raise DisclosureError(
                f"only the keyholder '{he.keyholder.name}' can decrypt; to reveal to "
                f"'{dst.name}', convert with .to(mpc) and reveal the shares"
            )
        d = Disclosure(
            kind="encrypted",
            source=he.name,
            members=(self.holder.name, he.keyholder.name),
            to=dst.name,
            step=rt._tag("he/decrypt"),
            tag=rt._tag("reveal"),
            what="encrypted value",
        )
        rule = rt.policy.check(d)
        rt.audit.record(d, rule)
        src = self._obj
        if self.holder.name != dst.name:
            (src,) = rt._channel_round("reveal", [(self._obj, dst.name)])
        return rt._run_at(dst, _decrypt, (he._sk, src), {}, step="he/decrypt", location=he.name)


class HECall:
    """`he(fn)`: evaluate on ciphertexts at the party that holds them."""

    def __init__(self, he: HE, fn: Callable):
        self.he = he
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> EncryptedRef:
        he = self.he
        rt = he._rt
        rt._check_open()
        step = getattr(self.fn, "__name__", "fn")
        encs = [a for a in list(args) + list(kwargs.values()) if isinstance(a, EncryptedRef)]
        if not encs:
            raise LocationError(f"he step '{step}' needs at least one EncryptedRef argument")
        holder = encs[0].holder
        for e in encs:
            if e._he is not he:
                raise LocationError(
                    f"he step '{step}' mixes ciphertexts of {e._he.name} and {he.name}"
                )
            if e.holder.name != holder.name:
                raise LocationError(
                    f"he step '{step}': ciphertexts are held by '{holder.name}' and "
                    f"'{e.holder.name}'; move them with .to(party) first"
                )

        def unwrap(v: Any) -> Any:
            if isinstance(v, EncryptedRef):
                return v._obj
            if isinstance(v, PartyRef) and v.party.name != holder.name:
                raise LocationError(
                    f"he step '{step}' runs at '{holder.name}' but was given plaintext of "
                    f"'{v.party.name}'"
                )
            if isinstance(v, Ref) and not isinstance(v, PartyRef):
                raise LocationError(f"he step '{step}' cannot take a {type(v).__name__}")
            return v

        new_args = tuple(unwrap(a) for a in args)
        new_kwargs = {k: unwrap(v) for k, v in kwargs.items()}
        r = rt._run_at(
            holder,
            _evaluate,
            (self.fn, step, *new_args),
            new_kwargs,
            step=f"he/{step}",
            location=he.name,
        )
        return EncryptedRef(he, r._obj, holder)
