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

from cipherray.protocols import fixedpoint, linear
from cipherray.protocols.mpc import common
from cipherray.runtime.audit import Disclosure
from cipherray.runtime.call import receive
from cipherray.runtime.errors import ConfigError, LocationError
from cipherray.runtime.party import Party
from cipherray.runtime.refs import Obj, PartyRef, Ref

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime.runtime import Runtime

_RING_LIMIT = 2**62


class MPC:
    """A secure-computation location over a fixed set of parties."""

    def __init__(
        self,
        rt: Runtime,
        parties: Sequence[Party],
        frac_bits: int = 16,
        dealer: Party | None = None,
        provider: Any = None,
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

    @property
    def provider(self) -> Any:
        """Correlated randomness for multiplications and comparisons: a DealerProvider
        when the location has a dealer, else a PaillierProvider for two members."""
        from cipherray.protocols.mpc import providers

        if self._provider is None:
            if self.dealer is not None:
                self._provider = providers.DealerProvider()
            elif len(self.parties) == 2:
                self._provider = providers.PaillierProvider()
            else:
                raise ConfigError(
                    f"{self.name}: multiplying shared values needs correlated randomness; "
                    "create the location with rt.mpc(..., dealer='<party>')"
                )
        elif self._provider == "paillier":
            self._provider = providers.PaillierProvider()
        elif self._provider == "dealer":
            self._provider = providers.DealerProvider()
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
            from cipherray.runtime.mpc_engine import RuntimeEngine

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

    # -- conversions
    def _convert_from_party(self, ref: PartyRef) -> SharedRef:
        """Steps of `PartyRef.to(mpc)` (seed-compressed sharing, one round):
        1. the owner encodes to fixed point and splits: own share + one seed per member;
        2. each seed goes to its member through the channel (32 bytes);
        3. each member expands its seed into its share.
        An owner outside the MPC location deals shares to all members (seeds for all
        but the first, which receives its share itself)."""
        rt = self._rt
        owner = ref.party
        outs = rt._run_at(
            owner, linear.share_owner, (ref, len(self.parties), self.frac_bits), {},
            step="share", num_returns=len(self.parties), location=self.name,
        )  # fmt: skip
        shares: dict[str, Obj] = {}
        if owner.name in self.names:  # the owner keeps the first output, its own share
            shares[owner.name] = outs[0]._obj
            receivers = [p for p in self.parties if p.name != owner.name]
            messages, expand = outs[1:], [linear.share_receiver] * len(receivers)
        else:  # a non-member owner keeps nothing: the first member gets the full share
            receivers, messages = list(self.parties), outs
            expand = [receive] + [linear.share_receiver] * (len(receivers) - 1)
        transfers = rt._channel_round(
            "share", [(m._obj, p.name) for m, p in zip(messages, receivers)]
        )
        for t, p, fn in zip(transfers, receivers, expand):
            shares[p.name] = rt._run_at(p, fn, (t,), {}, step="share", location=self.name)._obj
        return SharedRef(self, [shares[nm] for nm in self.names], 2**self.frac_bits)

    def concatenate(self, parts: Sequence[SharedRef], axis: int = 0) -> SharedRef:
        parts = list(parts)
        if not parts:
            raise ValueError("concatenate needs at least one SharedRef")
        for p in parts:
            self._check_member_value(p, "concatenate")
        scale = _lcm_all([p.scale for p in parts])
        parts = [p._rescaled(scale) for p in parts]
        return parts[0]._local(linear.concatenate, parts[1:], args=(axis,), scale=scale)


def _lcm_all(xs: Sequence[int]) -> int:
    out = 1
    for x in xs:
        out = out * x // math.gcd(out, x)
    return out


class SharedRef(Ref):
    """Shares of one value at an MPC location; the driver never sees them."""

    __array_priority__ = 1000  # numpy scalars/arrays defer to our reflected operators

    def __init__(self, mpc: MPC, shares: list[Obj], scale: int):
        self._mpc = mpc
        self._rt = mpc._rt
        self._shares = shares
        self.scale = int(scale)
        self._shape: tuple | None = None

    @property
    def location(self) -> MPC:
        return self._mpc

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
    ) -> SharedRef:
        """Run `fn(i, share_i, other_shares_i..., *args)` at every member i (no messages),
        through the location's engine."""
        self._rt._check_open()
        pp = self._mpc.engine.local(
            fn, self._pp, *[o._pp for o in others], *args, step=step or fn.__name__
        )
        return SharedRef(self._mpc, list(pp), self.scale if scale is None else scale)

    def _rescaled(self, scale: int) -> SharedRef:
        if scale == self.scale:
            return self
        factor, rem = divmod(scale, self.scale)
        if rem:
            raise ValueError("internal: scale is not a multiple")
        return self._local(
            common.mul_public_ring, args=(_ring_int(factor),), scale=scale, step="rescale"
        )

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

    # -- arithmetic
    def __add__(self, other: Any) -> SharedRef:
        if isinstance(other, SharedRef):
            a, b = self._aligned(other)
            return a._local(common.add, [b])
        if isinstance(other, Ref):
            return NotImplemented
        enc = self._encode_public(other)
        return self._local(common.add_public, args=(enc,), step="add_public")

    __radd__ = __add__

    def __neg__(self) -> SharedRef:
        return self._local(common.neg)

    def __sub__(self, other: Any) -> SharedRef:
        if isinstance(other, SharedRef):
            a, b = self._aligned(other)
            return a._local(common.sub, [b])
        if isinstance(other, Ref):
            return NotImplemented
        return self + (-np.asarray(other))

    def __rsub__(self, other: Any) -> SharedRef:
        return (-self) + other

    def __mul__(self, other: Any) -> SharedRef:
        if isinstance(other, SharedRef):
            return self._secure_mul(other)
        if isinstance(other, Ref):
            return NotImplemented
        arr = fixedpoint.check_numeric(other, "public multiplier")
        shape = _bshape(self._shape, arr.shape)
        if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
            if arr.size and int(np.max(np.abs(arr.astype(np.int64)))) >= 2**31:
                raise OverflowError("public integer multiplier too large for the ring")
            out = self._local(common.mul_public_ring, args=(_ring_int(arr),), step="mul_public")
            out._shape = shape
            return out
        if arr.ndim == 0:
            m, e = fixedpoint.encode_public_scalar(float(arr))
            out = self._local(
                common.mul_public_ring,
                args=(_ring_int(m),),
                scale=self.scale << e,
                step="mul_public",
            )
            out._shape = shape
            return out
        peak = float(np.max(np.abs(arr))) if arr.size else 0.0
        e = 0 if peak == 0 else max(0, 19 - int(np.floor(np.log2(peak))))
        m = np.rint(arr * 2.0**e).astype(np.int64)
        out = self._local(
            common.mul_public_ring, args=(_ring_int(m),), scale=self.scale << e, step="mul_public"
        )
        out._shape = shape
        return out

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
            return SharedRef(self._mpc, base._shares, self.scale * abs(k))
        m, e = fixedpoint.encode_public_scalar(c)
        base = self if m > 0 else -self
        scaled = (
            base._local(common.mul_public_ring, args=(_ring_int(2**e),), step="div_public")
            if e
            else base
        )
        return SharedRef(self._mpc, scaled._shares, self.scale * abs(m))

    # -- secure operations (Beaver triples, truncation, comparisons): protocols/mpc
    @property
    def _pp(self) -> Any:
        from cipherray.protocols.mpc.engine import PerParty

        return PerParty(self._shares)

    def _wrap(self, pp: Any, shape: tuple | None) -> SharedRef:
        out = SharedRef(self._mpc, list(pp), 2**self._mpc.frac_bits)
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
        if k & (k - 1) == 0:
            pp = truncation.truncate(
                mpc.engine, self._pp, k.bit_length() - 1, prov, shape=shape, tag="rescale"
            )
        else:
            pp = truncation.divide_public(mpc.engine, self._pp, k, prov, shape=shape, tag="rescale")
        return self._wrap(pp, shape)

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
        pp = getattr(arithmetic, op)(
            mpc.engine, x._pp, y._pp, mpc.provider, x_shape=sx, y_shape=sy,
            frac_bits=mpc.frac_bits, tag=op,
        )  # fmt: skip
        return self._wrap(pp, _bshape(sx, sy) if op == "mul" else matmul_shape(sx, sy))

    def _secure_mul(self, other: SharedRef) -> SharedRef:
        return self._beaver("mul", other)

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
        pp = arithmetic.matmul_public(
            mpc.engine, x._pp, w, prov, x_shape=sx, side=side, frac_bits=mpc.frac_bits,
            tag="matmul_public",
        )  # fmt: skip
        shape = matmul_shape(sx, w.shape) if side == "right" else matmul_shape(w.shape, sx)
        return self._wrap(pp, shape)

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
                "rt.mpc(..., dealer='<party>')"
            )

    def _compare(self, name: str, other: Any) -> SharedRef:
        from cipherray.protocols.mpc import compare

        self._need_binary(f"comparison '{name}'")
        mpc = self._mpc
        x = self._normalised()
        sx = x.shape
        if isinstance(other, SharedRef):
            y = self._operand(other, name)
            yv, sy = y._pp, y.shape
        elif isinstance(other, Ref):
            raise LocationError(f"cannot compare a SharedRef with a {type(other).__name__}")
        else:
            yv = fixedpoint.check_numeric(other, "public comparand")
            sy = yv.shape
        fn = getattr(compare, name)
        pp = fn(
            mpc.engine,
            x._pp,
            yv,
            mpc.provider,
            x_shape=sx,
            y_shape=sy,
            frac_bits=mpc.frac_bits,
            tag=name,
        )
        return self._wrap(pp, _bshape(sx, sy))

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
        pp = getattr(mod, name)(
            mpc.engine,
            x._pp,
            mpc.provider,
            shape=shape,
            frac_bits=mpc.frac_bits,
            tag=name,
            **kwargs,
        )
        return self._wrap(pp, shape)

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
        return self._local(linear.ring_sum, args=(axis,), step="sum")

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
        return self._local(common.getitem, args=(key,), step="getitem")

    def reshape(self, *shape: Any) -> SharedRef:
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape
        return self._local(linear.reshape, args=(tuple(shape),), step="reshape")

    def transpose(self, *axes: Any) -> SharedRef:
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], tuple | list) else axes
        return self._local(linear.transpose, args=(tuple(axes) or None,), step="transpose")

    @property
    def T(self) -> SharedRef:
        return self.transpose()

    @property
    def shape(self) -> tuple:
        """The public shape (asks the first member once and caches it)."""
        if self._shape is None:
            party = self._mpc.parties[0]
            r = self._rt._run_at(party, linear.shape_of, (_as_ref(self, 0),), {}, step="shape")
            self._shape = tuple(self._rt.get(r))
        return self._shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    # -- leaving the MPC location
    def to(self, location: Any) -> Ref:
        if isinstance(location, MPC) and location == self._mpc:
            return self
        if isinstance(location, Party):
            raise LocationError(
                f"a SharedRef moves to a party only by .reveal_to({location.name!r}), "
                "which the disclosure policy checks"
            )
        conv = getattr(location, "_convert_from_shared", None)
        if conv is None:
            raise LocationError(f"cannot convert shares of {self._mpc.name} to {location!r}")
        return conv(self)

    def reveal_to(self, party: Party | str) -> PartyRef:
        """Reconstruct the value at `party` (policy-checked and audited). One round:
        every other member sends its share to `party`, which adds and decodes."""
        rt = self._rt
        rt._check_open()
        dst = rt.party(party)
        d = Disclosure(
            kind="shared",
            source=self._mpc.name,
            members=self._mpc.names,
            to=dst.name,
            step=rt._tag("reveal"),
            tag=rt._tag("reveal"),
            what=f"shared value (scale {self.scale})",
        )
        rule = rt.policy.check(d)
        rt.audit.record(d, rule)
        names = self._mpc.names
        sends = [(obj, dst.name) for obj, nm in zip(self._shares, names) if nm != dst.name]
        transfers = rt._channel_round("reveal", sends)
        if dst.name in names:
            own = self._shares[names.index(dst.name)]
            operands = [own, *transfers]
        else:  # a non-member receiver gets every share
            operands = transfers
            operands = [operands[0], *operands[1:]]
        return rt._run_at(
            dst,
            linear.reconstruct_decode,
            tuple(operands),
            {"scale": self.scale},
            step="reveal",
            location=self._mpc.name,
        )


def _ring_int(m: Any) -> np.ndarray:
    """A public integer (array) as ring elements (two's complement)."""
    return np.asarray(m, dtype=np.int64).view(np.uint64)


def _bshape(a: tuple | None, b: tuple | None) -> tuple | None:
    if a is None or b is None:
        return None
    return tuple(np.broadcast_shapes(tuple(a), tuple(b)))


def _as_ref(s: SharedRef, i: int) -> Obj:
    return s._shares[i]


SharedTensor = SharedRef
