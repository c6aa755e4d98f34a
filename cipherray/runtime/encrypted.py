"""The HE location: Paillier ciphertexts under one keyholder's key.

`he = rt.he(keyholder=party)` generates a key pair *inside the keyholder's actor*; the
private key never leaves it (only the public key crosses the channel, once per party
that needs it). An `EncryptedRef` is a `CipherArray` held by one party (its holder).

- `party_ref.to(he)` encrypts at the owning party with the keyholder's public key;
- `he(fn)(enc, plain...)` runs `fn` on the ciphertexts at the party that holds them,
  with that party's own plaintext operands;
- `enc.to(other_party)` moves ciphertexts to another non-keyholder party (the owners
  of the values grant it: `rt.policy.grant(owner, to=other_party, allow="encrypted")`);
- `enc.to(mpc)` converts to additive shares (mask, decrypt at the keyholder: H2A) and
  `shared_ref.to(he)` converts back (A2H) — see `protocols/he_conversions.py`;
- `enc.reveal_to(keyholder)` decrypts there, under the disclosure policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from cipherray.protocols import he_conversions as hc
from cipherray.runtime.call import identity, refs_in, walk
from cipherray.runtime.errors import ConfigError, LocationError
from cipherray.runtime.party import Party
from cipherray.runtime.refs import PartyRef, Ref
from cipherray.runtime.silo.expect import Check, Like
from cipherray.runtime.values import AGGREGATE, Handle, Meta, join

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime.runtime import Runtime
    from cipherray.runtime.shared import MPC, SharedRef


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
        pk, sk = rt._step(
            keyholder, _keygen, (self.bits, bool(insecure)), step="he/keygen",
            num_returns=2, location=self.name, eager=False,
        )  # fmt: skip
        self._sk: Handle = sk  # never leaves the keyholder's worker
        self._pk: dict[str, Handle] = {keyholder.name: pk}

    def __repr__(self) -> str:
        return self.name

    def __call__(
        self, fn: Callable, *, declare: str | None = None, rows: int | None = None
    ) -> HECall:
        """`he(fn)(enc, plain...)` evaluates `fn` on ciphertexts at their holder;
        `declare="aggregate"` (with `rows`) states that the result aggregates rows
        (e.g. X.T @ [[d]]), for the policy."""
        if declare not in (None, AGGREGATE):
            raise ConfigError("declare must be None or 'aggregate'")
        return HECall(self, fn, declare, rows)

    def private_key(self) -> PartyRef:
        """The private key as a value of the keyholder (readable by a driver that runs
        as the keyholder; it cannot be revealed to anyone else)."""
        k = self.keyholder.name
        return PartyRef(self._rt, self._sk, self.keyholder, Meta.of(k))

    def public_key_at(self, party: Party) -> Handle:
        """The public key at `party` (sent once through the channel, then cached)."""
        h = self._pk.get(party.name)
        if h is None:
            rt = self._rt
            sends = [(self._pk[self.keyholder.name], party.name)]
            (msg,) = rt._messages("he/public_key", sends, Check(hc.check_public_key))
            (h,) = rt._step(party, identity, (msg,), step="he/public_key", location=self.name)
            self._pk[party.name] = h
        return h

    # -- conversions (called from conversions.py)
    def encrypt(self, ref: PartyRef) -> EncryptedRef:
        rt = self._rt
        owner = ref.party
        pk = self.public_key_at(owner)
        k = owner.workers
        loc = self.name
        if k == 1 or owner.spec.gpus:  # one worker, or the party's GPU worker does it all
            (c,) = rt._step(owner, _encrypt, (pk, ref), step="he/encrypt", location=loc)
        else:  # spread the work over the party's workers
            parts = rt._step(owner, _split, (ref, k), step="he/split", num_returns=k)
            encs = [
                rt._step(owner, _encrypt, (pk, p), step="he/encrypt", worker=i, location=loc)[0]
                for i, p in enumerate(parts)
            ]
            (c,) = rt._step(owner, _concat, tuple(encs), step="he/concat", location=loc)
        return EncryptedRef(self, c, owner, ref.meta.with_(revealed_to=None))

    def from_shared(self, shared: SharedRef) -> EncryptedRef:
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
        meta = shared.meta
        shared = shared._normalised_pow16()
        f = shared.scale.bit_length() - 1  # a multiple of 4
        holder_i = next(i for i, nm in enumerate(names) if nm != self.keyholder.name)
        holder = mpc.parties[holder_i]
        k_i = names.index(self.keyholder.name)
        masked, r = rt._step(
            holder, hc.a2h_mask, (shared._shares[holder_i],), step="he/a2h_mask",
            num_returns=2, location=self.name,
        )  # fmt: skip
        sends = [
            (masked if i == holder_i else shared._shares[i], self.keyholder.name)
            for i in range(len(names))
            if i != k_i
        ]
        msgs = rt._messages("he/a2h_open", sends, Like(shared._shares[k_i]))
        pk_k = self._pk[self.keyholder.name]
        (enc,) = rt._step(
            self.keyholder, _a2h_encrypt_step, (pk_k, shared._shares[k_i], *msgs),
            {"frac_bits": f}, step="he/a2h_encrypt", location=self.name,
        )  # fmt: skip
        (back,) = rt._messages(
            "he/a2h_return", [(enc, holder.name)], Check(hc.check_like_mask, of=r)
        )
        (out,) = rt._step(
            holder, hc.a2h_unmask, (back, r, f), step="he/a2h_unmask", location=self.name
        )
        return EncryptedRef(self, out, holder, meta)

    def to_shared(self, enc: EncryptedRef, mpc: MPC) -> SharedRef:
        """H2A (see protocols/he_conversions.py): mask at the holder, decrypt at the
        keyholder; other members get zero shares."""
        from cipherray.runtime.shared import SharedRef

        rt = self._rt
        names = mpc.names
        for who, role in ((enc.holder.name, "holder"), (self.keyholder.name, "keyholder")):
            if who not in names:
                raise LocationError(
                    f"{self.name} -> {mpc.name}: the {role} '{who}' must be a member of the "
                    "MPC location"
                )
        if enc.holder.name == self.keyholder.name:
            raise LocationError("the keyholder holds these ciphertexts; it cannot mask for itself")
        f = mpc.frac_bits
        masked, own = rt._step(
            enc.holder, hc.h2a_mask, (enc._h, f), step="he/h2a_mask", num_returns=2,
            location=self.name,
        )  # fmt: skip
        (msg,) = rt._messages(
            "he/h2a", [(masked, self.keyholder.name)], Check(hc.check_under_key, of=self._sk)
        )
        (k_share,) = rt._step(
            self.keyholder, hc.h2a_unmask, (self._sk, msg, f), step="he/h2a_unmask",
            location=self.name,
        )  # fmt: skip
        shares = []
        shape = None
        for p in mpc.parties:
            if p.name == enc.holder.name:
                shares.append(own)
            elif p.name == self.keyholder.name:
                shares.append(k_share)
            else:
                if shape is None:
                    shape = enc.shape
                shares.append(rt._step(p, _zeros, (shape,), step="he/h2a_zero")[0])
        return SharedRef(mpc, shares, 2**f, enc.meta)

    def move(self, enc: EncryptedRef, dst: Party) -> EncryptedRef:
        """Ciphertexts to another party that cannot decrypt them (policy checked by
        the caller)."""
        rt = self._rt
        (msg,) = rt._messages("he/send", [(enc._h, dst.name)], Check(hc.check_ciphertexts))
        (h,) = rt._step(dst, identity, (msg,), step="he/receive", location=self.name)
        return EncryptedRef(self, h, dst, enc.meta)

    def open_at(self, enc: EncryptedRef, dst: Party) -> PartyRef:
        """Decrypt at the keyholder `dst` (the policy was checked by the caller)."""
        rt = self._rt
        src: Any = enc._h
        if enc.holder.name != dst.name:
            want = Check(hc.check_under_key, of=self._sk)
            (src,) = rt._messages("reveal", [(enc._h, dst.name)], want)
        (h,) = rt._step(
            dst, _decrypt, (self._sk, src), step="he/decrypt", location=self.name,
            eager=dst.name in rt.driver_as,
        )  # fmt: skip
        return PartyRef(rt, h, dst, enc.meta.with_(revealed_to=dst.name))


def _a2h_encrypt_step(pk: Any, own: np.ndarray, *parts: np.ndarray, frac_bits: int) -> Any:
    return hc.a2h_encrypt(pk, [own, *parts], frac_bits)


class EncryptedRef(Ref):
    """Paillier ciphertexts at one party (the holder) under the keyholder's key."""

    def __init__(self, he: HE, handle: Handle, holder: Party, meta: Meta):
        self._he = he
        self._rt = he._rt
        self._h = handle
        self.holder = holder
        self.meta = meta

    @property
    def location(self) -> HE:
        return self._he

    def _handles(self) -> list[Handle]:
        return [self._h]

    def __repr__(self) -> str:
        return f"EncryptedRef({self._he.name}, held by {self.holder.name!r})"

    @property
    def shape(self) -> tuple:
        m = self._rt._meta_of(self._h)
        return tuple(m[0]) if m is not None else ()


class HECall:
    """`he(fn)`: evaluate on ciphertexts at the party that holds them."""

    def __init__(self, he: HE, fn: Callable, declare: str | None, rows: int | None):
        self.he = he
        self.fn = fn
        self.declare = declare
        self.rows = rows

    def __call__(self, *args: Any, **kwargs: Any) -> EncryptedRef:
        he = self.he
        rt = he._rt
        rt._check_open()
        step = getattr(self.fn, "__name__", "fn")
        leaves = refs_in(args, kwargs)
        encs = [a for a in leaves if isinstance(a, EncryptedRef)]
        if not encs:
            raise LocationError(f"he step '{step}' needs at least one EncryptedRef argument")
        holder = encs[0].holder
        for v in leaves:
            if isinstance(v, EncryptedRef):
                if v._he is not he:
                    raise LocationError(
                        f"he step '{step}' mixes ciphertexts of {v._he.name} and {he.name}"
                    )
                if v.holder.name != holder.name:
                    raise LocationError(
                        f"he step '{step}': ciphertexts are held by '{holder.name}' and "
                        f"'{v.holder.name}'; move them with .to(party) first"
                    )
            elif isinstance(v, PartyRef):
                if v.party.name != holder.name:
                    raise LocationError(
                        f"he step '{step}' runs at '{holder.name}' but was given plaintext of "
                        f"'{v.party.name}'"
                    )
            else:
                raise LocationError(f"he step '{step}' cannot take a {type(v).__name__}")
        meta = join([v.meta for v in leaves]).plus(holder.name)
        if self.declare is not None:
            meta = Meta(meta.owners, AGGREGATE, self.rows, None)

        def swap(v: Any) -> Any:
            return v._h if isinstance(v, EncryptedRef) else v

        new_args = tuple(walk(a, swap) for a in args)
        new_kwargs = {k: walk(v, swap) for k, v in kwargs.items()}
        (h,) = rt._step(
            holder, _evaluate, (self.fn, step, *new_args), new_kwargs, step=f"he/{step}",
            location=he.name,
        )  # fmt: skip
        return EncryptedRef(he, h, holder, meta)
