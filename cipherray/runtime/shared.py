"""The MPC location and `SharedRef`: additive secret sharing over Z_2^64.

A `SharedRef` holds one share per member party (each a ref to a uint64 array in
that party's actor group) and a public *scale*: the secret is
signed(sum of shares) / scale. The scale starts at 2^f (f fractional bits);
multiplying by a public real c = m / 2^e multiplies the shares by the integer m and
the scale by 2^e, and dividing by a public integer k multiplies the scale by k. So
linear operations with public constants are exact for any number of parties and
need no truncation protocol. Shapes are public (as in every MPC framework).

Linear operations (`+`, `-`, public scalars and arrays, `sum`, `mean`, indexing,
reshape, transpose, concatenation) are local: one task per party, no messages.
Sharing a value costs one round of 32-byte seeds; a reveal costs one round in which
every other member sends its share to the receiver.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cipherray.protocols import fixedpoint, linear, prg
from cipherray.protocols.mpc import common
from cipherray.runtime.call import identity
from cipherray.runtime.errors import ConfigError, LocationError
from cipherray.runtime.party import Party
from cipherray.runtime.refs import PartyRef, Ref
from cipherray.runtime.silo import expect
from cipherray.runtime.silo.expect import Like
from cipherray.runtime.values import COMPARE, PUBLIC, Handle, Meta, contracted, join, reduced

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime.runtime import Runtime

_RING_LIMIT = 2**62
# what a member checks of the sharing messages it receives (silo.expect): a seed is
# (32 bytes, public shape), a dealt share a uint64 array; neither beyond 2^31 elements
MAX_SHARE_BYTES = 8 << 31
SEED_MESSAGE = expect.seed(prg.SEED_BYTES, MAX_SHARE_BYTES)
SHARE_MESSAGE = expect.ring_shares(max_bytes=MAX_SHARE_BYTES)


class MPC:
    """A secure-computation location over a fixed set of parties."""

    def __init__(
        self,
        rt: Runtime,
        parties: Sequence[Party],
        frac_bits: int = 16,
        dealer: Party | None = None,
        provider: Any = None,
        check_overflow: bool = False,
    ):
        if not 0 <= frac_bits <= 30:
            raise ValueError("frac_bits must be in 0..30 (products need 2f bits)")
        self._rt = rt
        self.parties = tuple(parties)
        self.frac_bits = int(frac_bits)
        self.dealer = dealer
        self.name = "mpc(" + ",".join(p.name for p in self.parties) + ")"
        self._engine = None
        self._provider = provider
        self.check_overflow = bool(check_overflow)

    def context(self, provider: Any, tag: str = "") -> Any:
        """The protocols' context for one operation on this location."""
        from cipherray.protocols.mpc.context import MPCContext

        return MPCContext(self.engine, provider, self.frac_bits, tag)

    @property
    def provider(self) -> Any:
        """Correlated randomness for multiplications and comparisons: a DealerProvider
        when the location has a dealer, else an OTProvider (oblivious transfer, every
        kind) for two members. `provider="paillier"` picks the PaillierProvider
        (products only), "ot" / "dealer" the others."""
        from cipherray.protocols.mpc import providers
        from cipherray.protocols.mpc.ot_provider import OTProvider

        if self._provider is None:
            if self.dealer is not None:
                self._provider = providers.DealerProvider()
            elif len(self.parties) == 2:
                self._provider = OTProvider()
            else:
                raise ConfigError(
                    f"{self.name}: multiplying shared values needs correlated randomness; "
                    "create the location with rt.mpc(..., dealer='<party>')"
                )
        elif self._provider == "paillier":
            self._provider = providers.PaillierProvider()
        elif self._provider == "ot":
            self._provider = OTProvider()
        elif self._provider == "dealer":
            self._provider = providers.DealerProvider()
        elif isinstance(self._provider, str):
            raise ConfigError(
                f"{self.name}: unknown provider {self._provider!r}; expected 'dealer', "
                "'ot', 'paillier' or a Provider object"
            )
        return self._provider

    def preprocess(self, plan: Sequence[tuple[str, Sequence[Any]]]) -> int:
        """Offline phase: generate the correlated randomness a known workload needs,
        e.g. [("mul", [(1000,), (1000,)]), ("matmul", [(64, 30), (30, 1)])]; online
        operations then consume it in order. Returns how many items are pooled."""
        return self.provider.preprocess(self.engine, plan)

    @property
    def engine(self) -> Any:
        """The protocols' Engine on this runtime (see protocols/mpc/engine.py)."""
        if self._engine is None:
            from cipherray.runtime.engine import RuntimeEngine

            self._engine = RuntimeEngine(self)
        return self._engine

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parties)

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MPC)
            and other._rt is self._rt
            and other.names == self.names
            and other.frac_bits == self.frac_bits
        )

    def __hash__(self) -> int:
        return hash(("mpc", self.names, self.frac_bits))

    def __call__(self, fn: Callable) -> Callable[..., Any]:
        """`mpc(fn)(*shared_refs)` runs `fn` on shares; `fn` sees SharedRefs of this
        location (and public values) and returns SharedRefs (or a tuple of them)."""
        step = getattr(fn, "__name__", "fn")

        def run(*args: Any, **kwargs: Any) -> Any:
            self._rt._check_open()
            for a in list(args) + list(kwargs.values()):
                self._check_member_value(a, step)
            with self._rt.scope(step):
                return fn(*args, **kwargs)

        run.__name__ = f"mpc.{step}"
        return run

    def _check_member_value(self, v: Any, step: str) -> None:
        if isinstance(v, SharedRef):
            if v._mpc != self:
                raise LocationError(
                    f"step '{step}' on {self.name} was given shares of {v._mpc.name}; "
                    "values of two MPC locations cannot be mixed"
                )
        elif isinstance(v, Ref):
            raise LocationError(
                f"step '{step}' on {self.name} was given a {type(v).__name__} at "
                f"{v.location!r}; convert it first with .to({self.name})"
            )
        elif isinstance(v, list | tuple):
            for x in v:
                self._check_member_value(x, step)

    # -- conversions (called from conversions.py)
    def share(self, ref: PartyRef) -> SharedRef:
        """Steps of `PartyRef.to(mpc)` (seed-compressed sharing, one round):
        1. the owner draws one seed per other member (with the public shape);
        2. each seed goes to its member through the channel (32 bytes), while
        3. the owner encodes to fixed point and subtracts the seeds' shares (its own
           share), and each member expands its seed into its share.
        An owner outside the MPC location deals shares to all members (seeds for all
        but the first, which receives its share itself)."""
        rt = self._rt
        owner = ref.party
        n = len(self.parties)
        seeds = rt._step(
            owner, linear.share_seeds, (ref, n), step="share", num_returns=n - 1,
            location=self.name,
        )  # fmt: skip
        member = owner.name in self.names
        if member and self._trivial_sharing():
            return self._share_trivial(ref, seeds[0])
        receivers = [p for p in self.parties if p.name != owner.name]
        if not member:  # a non-member owner keeps nothing: the first member gets the full share
            receivers = receivers[1:]
        # the seeds leave before the owner's next step is queued: a worker runs its calls
        # in order, so the members expand their shares while the owner encodes its own
        seed_msgs = rt._messages(
            "share", [(m, p.name) for m, p in zip(seeds, receivers)], SEED_MESSAGE
        )
        (own,) = rt._step(
            owner, linear.share_own, (ref, self.frac_bits, *seeds), step="share",
            location=self.name,
        )  # fmt: skip
        shares: dict[str, Handle] = {}
        for t, p in zip(seed_msgs, receivers):
            (shares[p.name],) = rt._step(
                p, linear.share_receiver, (t,), step="share", location=self.name
            )
        if member:  # the owner keeps its own share
            shares[owner.name] = own
        else:
            first = self.parties[0]
            (t,) = rt._messages("share", [(own, first.name)], SHARE_MESSAGE)
            (shares[first.name],) = rt._step(
                first, identity, (t,), step="share", location=self.name
            )
        meta = ref.meta.with_(revealed_to=None)
        return SharedRef(self, [shares[nm] for nm in self.names], 2**self.frac_bits, meta)

    def _trivial_sharing(self) -> bool:
        """Whether a member's input is shared trivially (owner x, the other member 0), so
        that products with it take `private_product`: two members and the OT provider."""
        from cipherray.protocols.mpc import private_product

        return len(self.parties) == 2 and private_product.supported(self.context(self.provider))

    def _share_trivial(self, ref: PartyRef, seed: Handle) -> SharedRef:
        """`share` for two members with the OT provider: the owner keeps the encoding x,
        the other member's share is 0 (its message carries only the public shape; a
        share of 0 reveals nothing). The result is private to the owner (`_priv`)."""
        rt = self._rt
        owner = ref.party
        other = next(p for p in self.parties if p.name != owner.name)
        (msg,) = rt._messages("share", [(seed, other.name)], SEED_MESSAGE)
        (own,) = rt._step(
            owner, linear.share_own, (ref, self.frac_bits), step="share", location=self.name
        )
        (zero,) = rt._step(other, linear.share_zero, (msg,), step="share", location=self.name)
        shares = {owner.name: own, other.name: zero}
        meta = ref.meta.with_(revealed_to=None)
        out = SharedRef(self, [shares[nm] for nm in self.names], 2**self.frac_bits, meta)
        out._priv = ("all", self.names.index(owner.name))
        return out

    def public(self, value: Any) -> SharedRef:
        """A public constant as a shared value (member 0 holds its encoding, the others
        zeros): no messages, provenance public."""
        arr = np.asarray(value, dtype=np.float64)
        enc = fixedpoint.encode(arr, self.frac_bits, what="public constant")
        pp = self.engine.local(_public_share, enc, step="public")
        out = SharedRef(self, list(pp), 2**self.frac_bits, PUBLIC)
        out._shape = tuple(arr.shape)
        out._priv = ("all", 0)  # member 0 holds it, the others 0: trivially shared
        return out

    def zeros(self, shape: Any) -> SharedRef:
        """Shared zeros of a public shape (e.g. initial model weights)."""
        return self.public(np.zeros(shape))

    def apply(
        self,
        protocol: Callable,
        *args: Any,
        shape: Any,
        meta: Meta,
        tag: str | None = None,
        **kwargs: Any,
    ) -> SharedRef:
        """Run a protocol function of `protocols/mpc` on this location:
        `protocol(ctx, *args, **kwargs)` with every SharedRef argument replaced by its
        shares (one handle per member) and every PartyRef at a member (or the dealer)
        by its handle there, so the protocol can use that party's private input in its
        steps. The protocol returns shares; they come back as a SharedRef of `shape`
        with provenance `meta`, at the scale of the shared arguments (the protocols
        run this way must be linear in the shares: permutations, selections, sums).
        A protocol that also returns private values (`(shares, handle, ...)`) gives
        `(SharedRef, PartyRef, ...)`, each PartyRef owned by the party holding it."""
        self._rt._check_open()
        step = tag or getattr(protocol, "__name__", "protocol")
        shared = [a for a in args if isinstance(a, SharedRef)]
        for a in shared:
            self._check_member_value(a, step)
        scale = _lcm_all([a.scale for a in shared]) if shared else 2**self.frac_bits
        allowed = set(self.names) | ({self.dealer.name} if self.dealer is not None else set())

        def convert(a: Any) -> Any:
            if isinstance(a, SharedRef):
                return a._rescaled(scale)._pp
            if isinstance(a, PartyRef):
                if a.party.name not in allowed:
                    raise LocationError(
                        f"step '{step}' on {self.name} was given a value of "
                        f"{a.party.name!r}, which is not a member"
                    )
                return a._h
            if isinstance(a, Ref):
                raise LocationError(
                    f"step '{step}' on {self.name} cannot take a {type(a).__name__}"
                )
            return a

        conv = [convert(a) for a in args]
        with self._rt.scope(step):
            pp = protocol(self.context(self.provider, tag=step), *conv, **kwargs)
        extra: tuple = ()
        if isinstance(pp, tuple) and not _is_per_party(pp):
            pp, *rest = pp
            extra = tuple(
                PartyRef(self._rt, h, self._rt.party(h.party), Meta.of(h.party)) for h in rest
            )
        out = SharedRef(self, list(pp), scale, meta)
        out._shape = None if shape is None else tuple(int(s) for s in shape)
        return (out, *extra) if extra else out

    def open_at(self, x: SharedRef, dst: Party) -> PartyRef:
        """Reconstruct `x` at `dst` (the policy was checked by the caller). One round:
        every other member sends its share to `dst`, which adds and decodes."""
        rt = self._rt
        names = self.names
        sends = [(h, dst.name) for h, nm in zip(x._shares, names) if nm != dst.name]
        if dst.name in names:  # the others' shares have the form of dst's own
            own = x._shares[names.index(dst.name)]
            transfers = rt._messages("reveal", sends, Like(own))
            operands = [own, *transfers]
        else:
            transfers = rt._messages("reveal", sends, expect.ring_shares(x._shape, MAX_SHARE_BYTES))
            operands = list(transfers)
        (h,) = rt._step(
            dst, linear.reconstruct_decode, tuple(operands), {"scale": x.scale},
            step="reveal", location=self.name, eager=dst.name in rt.driver_as,
        )  # fmt: skip
        return PartyRef(rt, h, dst, x.meta.with_(revealed_to=dst.name))


def _is_per_party(x: Any) -> bool:
    from cipherray.protocols.mpc.engine import PerParty

    return isinstance(x, PerParty)


def _public_share(i: int, enc: np.ndarray) -> np.ndarray:
    return enc.copy() if i == 0 else np.zeros_like(enc)


def _shape_after(shape: tuple | None, op: Callable[[np.ndarray], np.ndarray]) -> tuple | None:
    """The shape `op` gives an array of `shape`, found on a zero-stride view (no data)."""
    if shape is None:
        return None
    view = np.lib.stride_tricks.as_strided(np.zeros(1), shape, (0,) * len(shape))
    return tuple(op(view).shape)


def concatenate(parts: Sequence[SharedRef], axis: int = 0) -> SharedRef:
    """Concatenate SharedRefs of one MPC location along `axis` (local, no messages)."""
    parts = list(parts)
    if not parts or not all(isinstance(p, SharedRef) for p in parts):
        raise TypeError("concatenate expects a non-empty list of SharedRefs")
    mpc = parts[0]._mpc
    for p in parts:
        mpc._check_member_value(p, "concatenate")
    scale = _lcm_all([p.scale for p in parts])
    parts = [p._rescaled(scale) for p in parts]
    meta = join([p.meta for p in parts])
    shapes = [p._shape for p in parts]
    shape = None
    if all(sh is not None for sh in shapes):
        views = [np.lib.stride_tricks.as_strided(np.zeros(1), sh, (0,) * len(sh)) for sh in shapes]
        shape = tuple(np.concatenate(views, axis=axis).shape)
    out = parts[0]._local(
        linear.concatenate, parts[1:], args=(axis,), scale=scale, meta=meta, shape=shape
    )
    out._priv = _concat_priv(parts, axis)
    return out


def _concat_priv(parts: Sequence[SharedRef], axis: int) -> tuple | None:
    """The `_priv` blocks of a concatenation: each part's owner(s) along `axis` (None
    unless every part is private and the shapes are known)."""
    if any(p._priv is None for p in parts):
        return None
    shapes = [p.shape for p in parts]  # public (the members' step receipts)
    ax = axis % len(shapes[0]) if shapes[0] else 0
    if not shapes[0]:
        return None
    segs: list[tuple[int, int, int]] = []
    off = 0
    for p in parts:
        size = int(p.shape[ax])
        if p._priv[0] == "all":
            segs.append((off, off + size, p._priv[1]))
        elif p._priv[1] == ax:
            segs.extend((off + a, off + b, o) for a, b, o in p._priv[2])
        else:
            return None
        off += size
    owners = {o for _, _, o in segs}
    return ("all", segs[0][2]) if len(owners) == 1 else ("blocks", ax, tuple(segs))


def _lcm_all(xs: Sequence[int]) -> int:
    out = 1
    for x in xs:
        out = out * x // math.gcd(out, x)
    return out


class SharedRef(Ref):
    """Shares of one value at an MPC location; the driver never sees them."""

    __array_priority__ = 1000  # numpy scalars/arrays defer to our reflected operators

    def __init__(self, mpc: MPC, shares: list[Handle], scale: int, meta: Meta):
        self._mpc = mpc
        self._rt = mpc._rt
        self._shares = shares
        self.scale = int(scale)
        self.meta = meta
        self._shape: tuple | None = None
        # public: a trivial sharing known to members (`private_product`): ("all", p) the
        # whole value at member p, the others' shares 0; ("blocks", axis, ((start, stop,
        # p), ...)) slices along `axis` each at one member p. None: a general sharing.
        self._priv: tuple | None = None

    @property
    def location(self) -> MPC:
        return self._mpc

    def _handles(self) -> list[Handle]:
        return list(self._shares)

    def __repr__(self) -> str:
        shape = "" if self._shape is None else f", shape={self._shape}"
        return f"SharedRef({self._mpc.name}{shape})"

    # -- plumbing
    def _local(
        self,
        fn: Callable,
        others: Sequence[SharedRef] = (),
        args: tuple = (),
        scale: int | None = None,
        step: str | None = None,
        meta: Meta | None = None,
        shape: tuple | None = None,
    ) -> SharedRef:
        """Run `fn(i, share_i, other_shares_i..., *args)` at every member i (no messages),
        through the location's engine."""
        self._rt._check_open()
        pp = self._mpc.engine.local(
            fn, self._pp, *[o._pp for o in others], *args, step=step or fn.__name__
        )
        out = SharedRef(
            self._mpc, list(pp), self.scale if scale is None else scale,
            self.meta if meta is None else meta,
        )  # fmt: skip
        out._shape = shape
        return out

    def _same(self, scale: int | None = None, shares: list[Handle] | None = None) -> SharedRef:
        out = SharedRef(
            self._mpc, self._shares if shares is None else shares,
            self.scale if scale is None else scale, self.meta,
        )  # fmt: skip
        out._shape = self._shape
        if shares is None:
            out._priv = self._priv
        return out

    def _rescaled(self, scale: int) -> SharedRef:
        if scale == self.scale:
            return self
        factor, rem = divmod(scale, self.scale)
        if rem:
            raise ValueError("internal: scale is not a multiple")
        return self._local(
            common.mul_public_ring, args=(_ring_int(factor),), scale=scale, step="rescale",
            shape=self._shape,
        )  # fmt: skip

    def _aligned(self, other: SharedRef) -> tuple[SharedRef, SharedRef]:
        self._mpc._check_member_value(other, "align")
        scale = _lcm_all([self.scale, other.scale])
        return self._rescaled(scale), other._rescaled(scale)

    def _normalised_pow16(self) -> SharedRef:
        """The same value with a public scale that is a power of 16 (for Paillier's
        base-16 exponents): multiply the shares by a small power of two."""
        if self.scale & (self.scale - 1):
            raise ValueError(
                f"scale {self.scale} is not a power of two (a public division is pending); "
                "this conversion needs the secret-sharing engine's truncation"
            )
        bits = self.scale.bit_length() - 1
        target = -(-bits // 4) * 4
        return self._rescaled(1 << target) if target != bits else self

    def _encode_public(self, value: Any) -> np.ndarray:
        arr = fixedpoint.check_numeric(value, "public operand")
        scaled = arr.astype(np.float64) * float(self.scale)
        if arr.size and float(np.max(np.abs(scaled))) >= _RING_LIMIT:
            raise OverflowError(
                f"public operand times the scale {self.scale} leaves the 64-bit ring"
            )
        if np.issubdtype(arr.dtype, np.integer) and self.scale < 2**31:
            return (arr.astype(np.int64) * np.int64(self.scale)).astype(np.uint64)
        return np.rint(scaled).astype(np.int64).astype(np.uint64)

    def _known_shape(self, other_shape: tuple | None) -> tuple | None:
        return _bshape(self._shape, other_shape)

    # -- arithmetic (linear: local, no messages)
    def __add__(self, other: Any) -> SharedRef:
        if isinstance(other, SharedRef):
            a, b = self._aligned(other)
            return a._local(
                common.add, [b], meta=join([self.meta, other.meta]),
                shape=_bshape(self._shape, other._shape),
            )  # fmt: skip
        if isinstance(other, Ref):
            return NotImplemented
        enc = self._encode_public(other)
        return self._local(
            common.add_public, args=(enc,), step="add_public",
            shape=self._known_shape(np.shape(other)),
        )  # fmt: skip

    __radd__ = __add__

    def __neg__(self) -> SharedRef:
        return self._local(common.neg, shape=self._shape)

    def _shape_or_ask(self) -> tuple:
        return self._shape if self._shape is not None else self.shape

    def __sub__(self, other: Any) -> SharedRef:
        if isinstance(other, SharedRef):
            a, b = self._aligned(other)
            return a._local(
                common.sub, [b], meta=join([self.meta, other.meta]),
                shape=_bshape(self._shape, other._shape),
            )  # fmt: skip
        if isinstance(other, Ref):
            return NotImplemented
        return self + (-np.asarray(other))

    def __rsub__(self, other: Any) -> SharedRef:
        return (-self) + other

    def _mul_public_ring(self, m: Any, scale: int, shape: tuple | None) -> SharedRef:
        return self._local(
            common.mul_public_ring, args=(_ring_int(m),), scale=scale, step="mul_public",
            shape=shape,
        )  # fmt: skip

    def __mul__(self, other: Any) -> SharedRef:
        if isinstance(other, SharedRef):
            return self._beaver("mul", other)
        if isinstance(other, Ref):
            return NotImplemented
        arr = fixedpoint.check_numeric(other, "public multiplier")
        shape = self._known_shape(arr.shape)
        if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
            if arr.size and int(np.max(np.abs(arr.astype(np.int64)))) >= 2**31:
                raise OverflowError("public integer multiplier too large for the ring")
            return self._mul_public_ring(arr, self.scale, shape)
        if arr.ndim == 0:
            m, e = fixedpoint.encode_public_scalar(float(arr))
            return self._mul_public_ring(m, self.scale << e, shape)
        peak = float(np.max(np.abs(arr))) if arr.size else 0.0
        e = 0 if peak == 0 else max(0, 19 - int(np.floor(np.log2(peak))))
        m = np.rint(arr * 2.0**e).astype(np.int64)
        return self._mul_public_ring(m, self.scale << e, shape)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> SharedRef:
        if isinstance(other, SharedRef):
            return self * other.reciprocal()
        if isinstance(other, Ref):
            return NotImplemented
        arr = fixedpoint.check_numeric(other, "public divisor")
        if arr.ndim != 0:
            if np.any(arr == 0):
                raise ZeroDivisionError("division of a shared value by zero")
            return self * (1.0 / arr.astype(np.float64))
        c = float(arr)
        if c == 0:
            raise ZeroDivisionError("division of a shared value by zero")
        if c == int(c) and abs(c) < 2**31:
            k = int(c)
            base = self if k > 0 else -self
            return base._same(scale=self.scale * abs(k))
        m, e = fixedpoint.encode_public_scalar(c)
        base = self if m > 0 else -self
        scaled = (
            base._local(
                common.mul_public_ring,
                args=(_ring_int(2**e),),
                step="div_public",
                shape=self._shape,
            )  # fmt: skip
            if e
            else base
        )
        return scaled._same(scale=self.scale * abs(m))

    # -- secure operations (Beaver triples, truncation, comparisons): protocols/mpc
    @property
    def _pp(self) -> Any:
        from cipherray.protocols.mpc.engine import PerParty

        return PerParty(self._shares)

    def _wrap(self, pp: Any, shape: tuple | None, meta: Meta) -> SharedRef:
        out = SharedRef(self._mpc, list(pp), 2**self._mpc.frac_bits, meta)
        out._shape = None if shape is None else tuple(shape)
        return out

    def _normalised(self) -> SharedRef:
        """The same value at scale 2^f: a pending public factor 2^e or divisor k is
        applied with the truncation protocol (local for 2 members)."""
        from cipherray.protocols.mpc import truncation

        mpc = self._mpc
        target = 2**mpc.frac_bits
        if self.scale == target:
            return self
        k, rem = divmod(self.scale, target)
        if rem or k < 1:  # pragma: no cover - scales only grow by integer factors
            raise ValueError(f"internal: scale {self.scale} is not a multiple of 2^f")
        shape = self.shape
        prov = mpc.provider if len(mpc.parties) > 2 else None
        ctx = mpc.context(prov, tag="rescale")
        if k & (k - 1) == 0:
            pp = truncation.truncate(ctx, self._pp, k.bit_length() - 1, shape=shape)
        else:
            pp = truncation.divide_public(ctx, self._pp, k, shape=shape)
        return self._wrap(pp, shape, self.meta)

    def _operand(self, other: Any, what: str) -> SharedRef:
        self._mpc._check_member_value(other, what)
        return other._normalised()

    def _beaver(self, op: str, other: SharedRef) -> SharedRef:
        """`mul` or `matmul` of two shared values with Beaver triples: 1 round (+1
        truncation round for 3+ members)."""
        from cipherray.protocols.mpc import arithmetic
        from cipherray.protocols.mpc.ring import matmul_shape

        y = self._operand(other, op)
        x = self._normalised()
        mpc = self._mpc
        sx, sy = x.shape, y.shape
        pp = _private_product(mpc, op, x, y, sx, sy)
        if pp is None:
            pp = getattr(arithmetic, op)(
                mpc.context(mpc.provider), x._pp, y._pp, x_shape=sx, y_shape=sy,
                check_overflow=mpc.check_overflow,
            )  # fmt: skip
        if op == "mul":
            return self._wrap(pp, _bshape(sx, sy), join([self.meta, other.meta]))
        n = int(sy[0]) if len(sy) else 1
        meta = contracted(self.meta, other.meta, len(sx), n)
        return self._wrap(pp, matmul_shape(sx, sy), meta)

    def _public_matmul(self, w: Any, side: str) -> SharedRef:
        """x @ W (side "right") or W @ x ("left") for a public matrix W: local, then the
        truncation (0 rounds for 2 members, 1 for 3+)."""
        from cipherray.protocols.mpc import arithmetic
        from cipherray.protocols.mpc.ring import matmul_shape

        mpc = self._mpc
        x = self._normalised()
        sx = x.shape
        w = np.asarray(w)
        prov = mpc.provider if len(mpc.parties) > 2 else None
        pp = arithmetic.matmul_public(mpc.context(prov), x._pp, w, x_shape=sx, side=side)
        if side == "right":
            shape = matmul_shape(sx, w.shape)
            meta = contracted(self.meta, Meta(frozenset()), len(sx), int(w.shape[0]))
        else:
            shape = matmul_shape(w.shape, sx)
            meta = contracted(Meta(frozenset()), self.meta, w.ndim, int(sx[0]) if sx else 1)
        return self._wrap(pp, shape, meta)

    def __matmul__(self, other: Any) -> SharedRef:
        if isinstance(other, SharedRef):
            return self._beaver("matmul", other)
        if isinstance(other, Ref):
            return NotImplemented
        return self._public_matmul(other, "right")

    def __rmatmul__(self, other: Any) -> SharedRef:
        if isinstance(other, Ref):
            return NotImplemented
        return self._public_matmul(other, "left")

    def _need_binary(self, what: str) -> None:
        prov = self._mpc.provider
        if not (prov.supports("and") and prov.supports("bit")):
            raise ConfigError(
                f"{what} on {self._mpc.name} needs binary (AND) triples and random bits, "
                f"which {type(prov).__name__} does not make: create the location with "
                "rt.mpc(..., dealer='<party>') or, for two parties, provider='ot' (the default)"
            )

    def _compare(self, name: str, other: Any) -> SharedRef:
        from cipherray.protocols.mpc import compare

        self._need_binary(f"comparison '{name}'")
        mpc = self._mpc
        x = self._normalised()
        sx = x.shape
        metas = [self.meta]
        if isinstance(other, SharedRef):
            y = self._operand(other, name)
            yv, sy = y._pp, y.shape
            metas.append(other.meta)
        elif isinstance(other, Ref):
            raise LocationError(f"cannot compare a SharedRef with a {type(other).__name__}")
        else:
            yv = fixedpoint.check_numeric(other, "public comparand")
            sy = yv.shape
        pp = compare.relation(mpc.context(mpc.provider), name, x._pp, yv, x_shape=sx, y_shape=sy)
        meta = join(metas)
        if meta.kind != "aggregate":
            meta = meta.with_(kind=COMPARE)
        return self._wrap(pp, _bshape(sx, sy), meta)

    def __lt__(self, other: Any) -> SharedRef:
        return self._compare("lt", other)

    def __le__(self, other: Any) -> SharedRef:
        return self._compare("le", other)

    def __gt__(self, other: Any) -> SharedRef:
        return self._compare("gt", other)

    def __ge__(self, other: Any) -> SharedRef:
        return self._compare("ge", other)

    def __eq__(self, other: Any) -> SharedRef:  # type: ignore[override]
        return self._compare("eq", other)

    __hash__ = object.__hash__

    def _unary(self, module: str, name: str, **kwargs: Any) -> SharedRef:
        import importlib

        mod = importlib.import_module(f"cipherray.protocols.mpc.{module}")
        if name != "exp":
            self._need_binary(name)
        mpc = self._mpc
        x = self._normalised()
        shape = x.shape
        pp = getattr(mod, name)(mpc.context(mpc.provider), x._pp, shape=shape, **kwargs)
        return self._wrap(pp, shape, self.meta)

    def relu(self) -> SharedRef:
        """max(x, 0): one comparison and one multiplication."""
        return self._unary("compare", "relu")

    def sigmoid(self) -> SharedRef:
        """Piecewise-linear logistic function, max abs error 1e-3 on all reals."""
        return self._unary("functions", "sigmoid")

    def tanh(self) -> SharedRef:
        """2 sigmoid(2x) - 1, max abs error 2e-3 on all reals."""
        return self._unary("functions", "tanh")

    def exp(self) -> SharedRef:
        """e^x on [-16, 4], abs error <= 2e-3 * max(1, e^x)."""
        return self._unary("functions", "exp")

    def reciprocal(self) -> SharedRef:
        """1/x on [0.05, 1000], abs error <= 1e-3 * max(1, 1/x)."""
        return self._unary("functions", "reciprocal")

    def sqrt(self) -> SharedRef:
        """Square root; domain and error in protocols/mpc/functions.py."""
        return self._unary("functions", "sqrt")

    # -- reductions and shape
    def sum(self, axis: Any = None) -> SharedRef:
        axes = None if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
        shape = self.shape if self.meta.kind != "aggregate" and self.meta.owners else self._shape
        meta = reduced(self.meta, axes, shape)
        out_shape = None
        if shape is not None:
            out_shape = (
                ()
                if axes is None
                else tuple(
                    d for i, d in enumerate(shape) if i not in {a % len(shape) for a in axes}
                )
            )
        return self._local(linear.ring_sum, args=(axis,), step="sum", meta=meta, shape=out_shape)

    def mean(self, axis: Any = None) -> SharedRef:
        shape = self.shape
        if axis is None:
            count = int(np.prod(shape)) if shape else 1
        else:
            axes = (axis,) if isinstance(axis, int) else tuple(axis)
            count = int(np.prod([shape[a] for a in axes]))
        if count == 0:
            raise ValueError("mean of an empty shared array")
        return self.sum(axis) / count

    def __getitem__(self, key: Any) -> SharedRef:
        if isinstance(key, Ref):
            raise LocationError("indices must be public values, not refs")
        meta = self.meta
        if meta.kind != "aggregate" and not _keeps_leading_axis(key):
            meta = meta.with_(row_axis=None)
        shape = _shape_after(self._shape, lambda a: a[key])
        out = self._local(common.getitem, args=(key,), step="getitem", meta=meta, shape=shape)
        if self._priv is not None and self._priv[0] == "all":
            out._priv = self._priv  # a selection of a trivial sharing is trivial
        elif self._priv is not None and self._priv[1] != 0 and _leading_slice(key):
            out._priv = self._priv  # rows of column blocks
        return out

    def reshape(self, *shape: Any) -> SharedRef:
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape
        meta = self.meta if self.meta.kind == "aggregate" else self.meta.with_(row_axis=None)
        out_shape = _shape_after(self._shape, lambda a: a.reshape(tuple(shape)))
        return self._local(
            linear.reshape, args=(tuple(shape),), step="reshape", meta=meta, shape=out_shape
        )

    def transpose(self, *axes: Any) -> SharedRef:
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], tuple | list) else axes
        axes = tuple(axes) or None
        meta = self.meta
        if meta.kind != "aggregate" and meta.row_axis is not None:
            shape = self._shape_or_ask()
            order = tuple(reversed(range(len(shape)))) if axes is None else axes
            meta = meta.with_(row_axis=list(order).index(meta.row_axis))
        shape = _shape_after(self._shape, lambda a: a.transpose(axes))
        out = self._local(linear.transpose, args=(axes,), step="transpose", meta=meta, shape=shape)
        if self._priv is not None and self._priv[0] == "all":
            out._priv = self._priv
        elif self._priv is not None and self._shape is not None and len(self._shape) == 2:
            if axes is None or tuple(axes) == (1, 0):
                out._priv = ("blocks", 1 - self._priv[1], self._priv[2])
        return out

    @property
    def private_to(self) -> str | None:
        """The member whose own input this value is, shared trivially (it holds the value,
        the other member 0), or None. Public; products with it take `private_product`."""
        if self._priv is None or self._priv[0] != "all":
            return None
        return self._mpc.names[self._priv[1]]

    @property
    def private_blocks(self) -> tuple | None:
        """(axis, ((start, stop, member), ...)) when slices along `axis` are each one
        member's input (a concatenation of the members' columns), else None. Public."""
        if self._priv is None or self._priv[0] != "blocks":
            return None
        _, axis, segs = self._priv
        return axis, tuple((a, b, self._mpc.names[o]) for a, b, o in segs)

    @property
    def T(self) -> SharedRef:
        return self.transpose()

    @property
    def shape(self) -> tuple:
        """The public shape (from the first member's step receipt; cached)."""
        if self._shape is None:
            self._shape = self._rt._shared_shape(self._shares)
        return self._shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]


def _keeps_leading_axis(key: Any) -> bool:
    """Whether indexing with `key` keeps axis 0 as axis 0 (a slice or a row selection)."""
    first = key[0] if isinstance(key, tuple) and key else key
    if isinstance(first, slice) or first is Ellipsis:
        return True
    arr = np.asarray(first) if not isinstance(first, int) else None
    return arr is not None and arr.ndim == 1


def _private_product(mpc: MPC, op: str, x: SharedRef, y: SharedRef, sx: tuple, sy: tuple) -> Any:
    """Shares of x (*) y by `private_product` when an operand is private (`_priv`) and
    the location has two members and the OT provider; None: take Beaver.

    x private to member p ("all"): one private product. x @ y with x in blocks along
    its contraction axis (the columns of [Xa | Xb]): x @ y = sum over owners p of
    x[..., cols_p] @ y[cols_p], each private to p. x @ y with a 2-D x in row blocks
    (X^T): the rows of each owner p are x[rows_p] @ y, scattered back. "mul" with only
    y private swaps the operands. One truncation at the end."""
    from cipherray.protocols.mpc import arithmetic, private_product
    from cipherray.protocols.mpc.ring import broadcast_shape, matmul_shape

    if mpc.check_overflow or len(mpc.parties) != 2:
        return None
    if op == "mul" and x._priv is None and y._priv is not None and y._priv[0] == "all":
        x, y, sx, sy = y, x, sy, sx
    priv = x._priv
    if priv is None:
        return None
    ctx = mpc.context(mpc.provider).with_default_tag(f"private_{op}")
    if not private_product.supported(ctx):
        return None
    engine = ctx.engine
    out_shape = matmul_shape(sx, sy) if op == "matmul" else broadcast_shape(sx, sy)

    def run(owner: int, xs: Any, ys: Any, shx: tuple, shy: tuple) -> Any:
        return private_product.product(
            ctx, op, owner, xs, ys, x_shape=shx, y_shape=shy, truncate=False
        )

    if priv[0] == "all":
        z = run(priv[1], x._pp, y._pp, sx, sy)
    elif op != "matmul" or len(sx) != 2:
        return None
    else:
        _, axis, segs = priv
        owners = sorted({o for _, _, o in segs})
        idx = {o: np.concatenate([np.arange(a, b) for a, b, w in segs if w == o]) for o in owners}
        if axis == 1:  # contraction axis: sum the owners' products
            z = None
            for o in owners:
                xo = engine.local(common.getitem, x._pp, (slice(None), idx[o]), step="private")
                yo = engine.local(common.getitem, y._pp, idx[o], step="private")
                sy_o = (len(idx[o]), *sy[1:])
                zo = run(o, xo, yo, (sx[0], len(idx[o])), sy_o)
                z = zo if z is None else engine.local(common.add, z, zo, step="private")
        else:  # row blocks: each owner's rows of the product
            parts = []
            for o in owners:
                xo = engine.local(common.getitem, x._pp, idx[o], step="private")
                parts.append(run(o, xo, y._pp, (len(idx[o]), sx[1]), sy))
            order = tuple(idx[o] for o in owners)
            z = engine.local(_scatter_rows, out_shape, order, *parts, step="private")
    return arithmetic._finish(ctx, z, True, out_shape)


@common.member_step
def _scatter_rows(i: int, shape: tuple, order: tuple, *parts: np.ndarray) -> np.ndarray:
    """Rows order[k] of the result from parts[k] (the owners' row blocks)."""
    out = np.empty(shape, dtype=np.uint64)
    for rows, part in zip(order, parts):
        out[rows] = part
    return out


def _leading_slice(key: Any) -> bool:
    """Whether `key` only slices axis 0 (keeps every other axis whole)."""
    if isinstance(key, tuple):
        return len(key) == 1 and isinstance(key[0], slice)
    return isinstance(key, slice)


def _ring_int(m: Any) -> np.ndarray:
    """A public integer (array) as ring elements (two's complement)."""
    return np.asarray(m, dtype=np.int64).view(np.uint64)


def _bshape(a: tuple | None, b: tuple | None) -> tuple | None:
    if a is None or b is None:
        return None
    return tuple(np.broadcast_shapes(tuple(a), tuple(b)))
