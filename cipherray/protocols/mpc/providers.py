"""Providers of correlated randomness (Beaver triples and friends), pluggable and counted.

A provider hands the online protocols the correlated randomness they consume, as
`PerParty` handles living at the members. Every kind is requested with public shapes:

=========  ===============================  ==========================================
kind       shapes                            what each member gets (shares mod 2^64)
=========  ===============================  ==========================================
"mul"      (x_shape, y_shape)                a, b, c = a * b  (c has the broadcast shape)
"square"   (shape,)                          a, c = a * a
"matmul"   (x_shape, y_shape) (1-D/2-D)      a, b, c = a @ b
"and"      (shape,)                          XOR shares of a, b, c = a & b (uint64 words)
"wrap"     (shape,)                          r, theta_r: additive shares of a random r and
                                             of the number of wraparounds theta_r when
                                             the members' signed int64 shares of r are
                                             summed as exact integers
"bit"      (shape,)                          r in arithmetic form (additive shares of 0/1)
                                             and in XOR form (low bit of each word)
"and_pair" (shape,)                          XOR shares of a (shape), b ((2,) + shape),
                                             c = a & b[k] ((2,) + shape): two AND
                                             triples per bit sharing their input a
"rot_n"    ((k, m, d),), 1 <= m <= 5,        k random 1-out-of-2^m OTs with 2-bit
           d in {0, 1} ((k, m): d = 0)       messages between members 0 and 1 (not
                                             shares), member d receiving: (idx, mask);
                                             the sender 1 - d gets idx = its 2^m masks,
                                             entry i in bits (2i, 2i+1) of a (k,)
                                             uint64 word, and an empty mask; the
                                             receiver d gets idx = a random index r
                                             (k,) uint8 and mask = entry r of the
                                             sender's word (k,) uint8; further members
                                             get empty arrays
=========  ===============================  ==========================================

All randomness is AES-256-CTR output of `prg` under seeds from `os.urandom`.

`DealerProvider` — the engine's dealer (a trusted third party, `engine.has_dealer`)
generates everything, with seed compression:

1. Setup (once per engine, step "offline/setup"): the dealer draws one 32-byte seed
   per member and sends member i its seed (n messages of 32 bytes, one round).
2. Request number k (a public counter kept by the driver): member i expands every
   array it needs from PRG(seed_i, stream = 8k + j) locally — a_i, b_i, and for
   i >= 1 also c_i. The dealer, which knows all seeds, expands the same arrays,
   computes c = a*b (or a@b, a&b, theta_r, ...) and sends member 0 only its
   correction share c_0 = c - sum_{i>=1} c_i: ONE array per request (step
   "offline/<kind>", one message, one round; it depends on nothing online, so a
   whole plan's corrections travel in the same round).

A pool makes the offline phase explicit: `provider.preprocess(engine, plan)` with
`plan = [(kind, shapes), ...]` generates ahead of time; online requests then take
items from per-(kind, shapes) FIFO queues in order. With `strict=True` a request that
the plan did not cover raises (to check a plan); otherwise it is generated on demand
(still tagged "offline/..."). `provider.log` records every request, so a dry run of a
workload yields its plan.

`PaillierProvider` — two members, no dealer; kinds "mul", "square", "matmul" (enough
for products, 2-member local truncation and `logreg` without the sigmoid; the
boolean kinds "and"/"bit" and "wrap" need a dealer). Member 0 owns a Paillier key
(`cipherray.protocols.paillier`, n of `key_bits` >= 2048 bits by default):

1. Setup: member 0 generates (pk, sk) and sends pk to member 1 (step "offline/setup").
2. Request: each member draws its own a_i, b_i in Z_2^64 (PRG under a fresh
   os.urandom seed).
3. Member 0 sends Enc(a_0), Enc(b_0) (one message).
4. Member 1 computes C = Enc(a_0) * b_1 + Enc(b_0) * a_1 + Enc(rho) (for matmul:
   Enc(a_0) @ b_1 + a_1 @ Enc(b_0) + Enc(rho)) with rho uniform in
   [0, 2^(2*64 + log2(k) + 1 + 40)), which hides the cross terms statistically
   (distance <= 2^-40) and keeps the plaintext far below n, so nothing wraps mod n;
   member 1 keeps c_1 = a_1 * b_1 - rho mod 2^64 and sends C (one message).
5. Member 0 decrypts v = a_0 b_1 + b_0 a_1 + rho (an exact integer), reduces it
   mod 2^64 and keeps c_0 = a_0 * b_0 + v mod 2^64. Then c_0 + c_1 = a * b.
Two offline rounds and two messages per request (ciphertexts counted as their
serialised bytes: about 2 * key_bits / 8 bytes per element).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import numpy as np

from cipherray.protocols import prg
from cipherray.protocols.mpc import common, messages
from cipherray.protocols.mpc.engine import DEALER, Engine, PerParty
from cipherray.protocols.mpc.ring import broadcast_shape, matmul_shape, matmul_u64

STAT_SECURITY = 40

Shape = tuple[int, ...]
KINDS = ("mul", "square", "matmul", "and", "wrap", "bit", "and_pair", "rot_n")
_RETURNS = {"mul": 3, "square": 2, "matmul": 3, "and": 3, "wrap": 2, "bit": 2, "and_pair": 3,
            "rot_n": 2}  # fmt: skip
_STREAMS_PER_REQUEST = 8


def _norm_shape(s: Any) -> Shape:
    if isinstance(s, int | np.integer):
        return (int(s),)
    try:
        out = tuple(int(d) for d in s)
    except TypeError:
        raise ValueError(f"a shape must be a tuple of ints, got {s!r}") from None
    if any(d < 0 for d in out):
        raise ValueError(f"negative dimension in shape {out}")
    return out


def normalise_request(kind: str, shapes: Sequence[Any]) -> tuple[str, tuple[Shape, ...]]:
    """Validate a (kind, shapes) request; ValueError naming the shapes on a mismatch."""
    if kind not in KINDS:
        raise ValueError(f"unknown correlated-randomness kind {kind!r}; expected one of {KINDS}")
    shapes = tuple(_norm_shape(s) for s in shapes)
    want = 2 if kind in ("mul", "matmul") else 1
    if len(shapes) != want:
        raise ValueError(f"kind {kind!r} takes {want} shape(s), got {len(shapes)}: {shapes}")
    if kind == "mul":
        broadcast_shape(*shapes)
    elif kind == "matmul":
        matmul_shape(*shapes)
    elif kind == "rot_n":
        sh = shapes[0]
        if len(sh) not in (2, 3) or not 1 <= sh[1] <= 5 or (len(sh) == 3 and sh[2] > 1):
            raise ValueError(
                f"kind 'rot_n' takes one shape (k, m) or (k, m, receiver) with 1 <= m <= 5 "
                f"and receiver 0 or 1, got {shapes}"
            )
        shapes = ((sh[0], sh[1], sh[2] if len(sh) == 3 else 0),)
    return kind, shapes


def _result_shape(kind: str, shapes: tuple[Shape, ...]) -> Shape:
    if kind == "mul":
        return broadcast_shape(*shapes)
    if kind == "matmul":
        return matmul_shape(*shapes)
    if kind == "and_pair":
        return (2, *shapes[0])
    if kind == "rot_n":
        return shapes[0][:1]
    return shapes[0]


# ---------------------------------------------------------------- count_wraps


def count_wraps(values: Sequence[np.ndarray]) -> np.ndarray:
    """theta with sum_i signed(v_i) = signed(sum_i v_i mod 2^64) + theta * 2^64 (int64).

    Runs along the list keeping the invariant exact_sum = running + theta * 2^64."""
    running = np.array(values[0], dtype=np.uint64).view(np.int64).copy()
    theta = np.zeros(running.shape, dtype=np.int64)
    for v in values[1:]:
        v = np.asarray(v, dtype=np.uint64).view(np.int64)
        new = (running.view(np.uint64) + v.view(np.uint64)).view(np.int64)
        theta += ((running >= 0) & (v >= 0) & (new < 0)).astype(np.int64)
        theta -= ((running < 0) & (v < 0) & (new >= 0)).astype(np.int64)
        running = new
    return theta


# ------------------------------------------------ dealer-side and member-side steps


@common.member_step
def _dealer_seeds(n: int) -> tuple:
    """At the dealer: one fresh seed per member; returns (all seeds, seed_0, ..., seed_{n-1})."""
    seeds = tuple(prg.new_seed() for _ in range(n))
    return (seeds, *seeds)


@common.member_step
def _nothing(i: int) -> None:
    return None


def _expand(seed: bytes, shape: Shape, k: int, j: int) -> np.ndarray:
    return prg.random_ring(seed, shape, stream=_STREAMS_PER_REQUEST * k + j)


def _sum_expand(seeds: Sequence[bytes], shape: Shape, k: int, j: int) -> np.ndarray:
    out = np.zeros(shape, dtype=np.uint64)
    for s in seeds:
        out += _expand(s, shape, k, j)
    return out


def _xor_expand(seeds: Sequence[bytes], shape: Shape, k: int, j: int) -> np.ndarray:
    out = np.zeros(shape, dtype=np.uint64)
    for s in seeds:
        out ^= _expand(s, shape, k, j)
    return out


@common.member_step
def _dealer_correction(seeds: tuple, k: int, kind: str, shapes: tuple) -> np.ndarray:
    """At the dealer: member 0's correction share for request k (step 2)."""
    out_shape = _result_shape(kind, shapes)
    others = seeds[1:]
    if kind in ("mul", "matmul"):
        a = _sum_expand(seeds, shapes[0], k, 0)
        b = _sum_expand(seeds, shapes[1], k, 1)
        c = np.multiply(a, b) if kind == "mul" else matmul_u64(a, b)
        return c - _sum_expand(others, out_shape, k, 2)
    if kind == "square":
        a = _sum_expand(seeds, shapes[0], k, 0)
        return np.multiply(a, a) - _sum_expand(others, out_shape, k, 2)
    if kind == "and":
        a = _xor_expand(seeds, shapes[0], k, 0)
        b = _xor_expand(seeds, shapes[0], k, 1)
        return (a & b) ^ _xor_expand(others, out_shape, k, 2)
    if kind == "wrap":
        theta = count_wraps([_expand(s, shapes[0], k, 0) for s in seeds]).view(np.uint64)
        return theta - _sum_expand(others, out_shape, k, 1)
    if kind == "bit":
        r = _xor_expand(seeds, shapes[0], k, 0) & np.uint64(1)
        return r - _sum_expand(others, out_shape, k, 1)
    if kind == "and_pair":
        a = _xor_expand(seeds, shapes[0], k, 0)
        b = _xor_expand(seeds, out_shape, k, 1)
        return (a[None] & b) ^ _xor_expand(others, out_shape, k, 2)
    if kind == "rot_n":  # the receiver d's mask: entry r of the sender's word
        d = shapes[0][2]
        r, masks = _rot_n_index(seeds[d], shapes[0], k), _rot_n_masks(seeds[1 - d], shapes[0], k)
        return ((masks >> (np.uint64(2) * r)) & np.uint64(3)).astype(np.uint8)
    raise ValueError(f"unknown kind {kind!r}")


@common.member_step
def _member_expand(i: int, seed: bytes, corr: Any, k: int, kind: str, shapes: tuple) -> tuple:
    """At member i: its shares for request k (step 2); member 0 uses the dealer's correction."""
    out_shape = _result_shape(kind, shapes)
    if kind in ("mul", "matmul", "and"):
        a = _expand(seed, shapes[0], k, 0)
        b = _expand(seed, shapes[1 if kind != "and" else 0], k, 1)
        c = corr if i == 0 else _expand(seed, out_shape, k, 2)
        return a, b, c
    if kind == "square":
        a = _expand(seed, shapes[0], k, 0)
        return a, (corr if i == 0 else _expand(seed, out_shape, k, 2))
    if kind == "wrap":
        r = _expand(seed, shapes[0], k, 0)
        return r, (corr if i == 0 else _expand(seed, out_shape, k, 1))
    if kind == "bit":
        rb = _expand(seed, shapes[0], k, 0) & np.uint64(1)
        return (corr if i == 0 else _expand(seed, out_shape, k, 1)), rb
    if kind == "and_pair":
        a = _expand(seed, shapes[0], k, 0)
        b = _expand(seed, out_shape, k, 1)
        return a, b, (corr if i == 0 else _expand(seed, out_shape, k, 2))
    if kind == "rot_n":
        empty = np.zeros(0, dtype=np.uint8)
        d = shapes[0][2]
        if i == d:
            return _rot_n_index(seed, shapes[0], k).astype(np.uint8), corr
        if i == 1 - d:
            return _rot_n_masks(seed, shapes[0], k), empty
        return empty, empty
    raise ValueError(f"unknown kind {kind!r}")


def _rot_n_index(seed: bytes, shape: Shape, k: int) -> np.ndarray:
    count, m = shape[:2]
    return _expand(seed, (count,), k, 0) & np.uint64((1 << m) - 1)


def _rot_n_masks(seed: bytes, shape: Shape, k: int) -> np.ndarray:
    count, m = shape[:2]
    return _expand(seed, (count,), k, 1) & np.uint64((1 << (2 << m)) - 1)


# ------------------------------------------------------------------- providers


class Provider:
    """Base class: request API, pool and log. Subclasses implement `_generate`."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.log: list[tuple[str, tuple[Shape, ...]]] = []
        self._pool: dict[tuple, deque] = defaultdict(deque)
        self._engine: Engine | None = None

    # -- binding
    def _bind(self, engine: Engine) -> None:
        if self._engine is None:
            self._check_engine(engine)
            self._engine = engine
        elif self._engine is not engine:
            raise ValueError("this provider is bound to another engine; make one per engine")

    def _check_engine(self, engine: Engine) -> None:
        pass

    # -- the request API used by the online protocols
    def request(self, engine: Engine, kind: str, shapes: Sequence[Any]) -> tuple[PerParty, ...]:
        """Correlated randomness of `kind` for `shapes`: from the pool if preprocessed."""
        self._bind(engine)
        key = normalise_request(kind, shapes)
        self.log.append(key)
        queue = self._pool.get(key)
        if queue:
            return queue.popleft()
        if self.strict:
            raise LookupError(f"no preprocessed {key[0]!r} for shapes {key[1]} in the pool")
        return self._generate(engine, *key)

    def mul_triple(self, engine: Engine, x_shape: Any, y_shape: Any) -> tuple[PerParty, ...]:
        return self.request(engine, "mul", (x_shape, y_shape))

    def square_pair(self, engine: Engine, shape: Any) -> tuple[PerParty, ...]:
        return self.request(engine, "square", (shape,))

    def matmul_triple(self, engine: Engine, x_shape: Any, y_shape: Any) -> tuple[PerParty, ...]:
        return self.request(engine, "matmul", (x_shape, y_shape))

    def and_triple(self, engine: Engine, shape: Any) -> tuple[PerParty, ...]:
        return self.request(engine, "and", (shape,))

    def wrap_pair(self, engine: Engine, shape: Any) -> tuple[PerParty, ...]:
        return self.request(engine, "wrap", (shape,))

    def random_bit(self, engine: Engine, shape: Any) -> tuple[PerParty, ...]:
        """(arithmetic shares of r, XOR shares of r) for a random bit r per element."""
        return self.request(engine, "bit", (shape,))

    def and_pair(self, engine: Engine, shape: Any) -> tuple[PerParty, ...]:
        """XOR shares of a, b (2,) + shape, c[k] = a & b[k] (two triples sharing a)."""
        return self.request(engine, "and_pair", (shape,))

    def rot_n(self, engine: Engine, count: int, m: int, receiver: int = 0) -> tuple:
        """`count` random 1-out-of-2^m OTs with 2-bit messages (the kind "rot_n")."""
        return self.request(engine, "rot_n", ((count, m, receiver),))

    def supports(self, kind: str) -> bool:
        return kind in KINDS

    # -- offline phase
    def preprocess(self, engine: Engine, plan: Iterable[tuple[str, Sequence[Any]]]) -> int:
        """Generate ahead of time everything in `plan` ([(kind, shapes), ...]); returns the
        number of items now pooled. Online requests consume them in order per key."""
        self._bind(engine)
        count = 0
        for kind, shapes in plan:
            key = normalise_request(kind, shapes)
            self._pool[key].append(self._generate(engine, *key))
            count += 1
        return count

    def pooled(self) -> int:
        return sum(len(q) for q in self._pool.values())

    def _generate(self, engine: Engine, kind: str, shapes: tuple) -> tuple[PerParty, ...]:
        raise NotImplementedError


class DealerProvider(Provider):
    """The engine's dealer generates and deals, with seed compression (module docstring)."""

    def __init__(self, strict: bool = False):
        super().__init__(strict)
        self._counter = 0
        self._seeds: PerParty | None = None
        self._dealer_seeds: Any = None
        self._placeholders: PerParty | None = None

    def _check_engine(self, engine: Engine) -> None:
        if not engine.has_dealer:
            raise ValueError("DealerProvider needs an engine with a dealer (engine.has_dealer)")

    def _setup(self, engine: Engine) -> None:
        """Step 1: the dealer sends each member its 32-byte seed (one round)."""
        handles = engine.run_at(
            DEALER, _dealer_seeds, engine.n, num_returns=engine.n + 1, step="offline/setup"
        )
        self._dealer_seeds = handles[0]
        seed = messages.nbytes(prg.SEED_BYTES, "dealer seed")
        self._seeds = PerParty(
            engine.send(handles[1 + i], DEALER, i, step="offline/setup", expect=seed)
            for i in range(engine.n)
        )
        self._placeholders = engine.local(_nothing, step="offline/setup")

    def _generate(self, engine: Engine, kind: str, shapes: tuple) -> tuple[PerParty, ...]:
        """Step 2 for one request: one correction array from the dealer to member 0."""
        if self._seeds is None:
            self._setup(engine)
        k = self._counter
        self._counter += 1
        step = f"offline/{kind}"
        corr = engine.run_at(
            DEALER, _dealer_correction, self._dealer_seeds, k, kind, shapes, step=step
        )
        dst = shapes[0][2] if kind == "rot_n" else 0  # the receiver of a "rot_n"
        msgs = list(self._placeholders)
        msgs[dst] = engine.send(corr, DEALER, dst, step=step, expect=correction_check(kind, shapes))
        msgs = PerParty(msgs)
        return engine.local(
            _member_expand,
            self._seeds,
            msgs,
            k,
            kind,
            shapes,
            num_returns=_RETURNS[kind],
            step=step,
        )


def correction_check(kind: str, shapes: tuple) -> messages.Check:
    """What the receiving member expects of the dealer's correction for a request: the
    result's shape in the ring (uint64), or for "rot_n" the receiver's (count,) uint8
    masks, from the kind and shapes it requested itself."""
    what = f"dealer correction for {kind!r} {shapes}"
    if kind == "rot_n":
        return messages.array(np.uint8, shapes[0][:1], what)
    return messages.ring(_result_shape(kind, shapes), what)


# ------------------------------------------------------- Paillier (no dealer)


@common.member_step
def _pl_keygen(bits: int, insecure: bool) -> tuple:
    from cipherray.protocols import paillier

    return paillier.keygen(bits, insecure=insecure)


@common.member_step
def _pl_sample(i: int, kind: str, shapes: tuple) -> tuple:
    """Step 2: a_i, b_i (b_i unused for "square")."""
    a = prg.fresh_ring(shapes[0])
    b = prg.fresh_ring(shapes[1] if kind in ("mul", "matmul") else shapes[0])
    return a, b


def _obj(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.uint64).astype(object)


@common.member_step
def _pl_encrypt(pk: Any, a0: np.ndarray, b0: np.ndarray, kind: str) -> tuple:
    """Step 3 at member 0: serialised Enc(a_0), Enc(b_0)."""
    ca = pk.encrypt(_obj(a0)).to_bytes()
    cb = pk.encrypt(_obj(b0)).to_bytes() if kind != "square" else b""
    return ca, cb


@common.member_step
def _pl_cross(
    pk: Any, msg: tuple, a1: np.ndarray, b1: np.ndarray, kind: str, shapes: tuple
) -> tuple:
    """Step 4 at member 1: C = cross terms + Enc(rho), and c_1 = a_1 b_1 - rho."""
    from cipherray.protocols.paillier import CipherArray

    ca = CipherArray.from_bytes(msg[0], pk)
    out_shape = _result_shape(kind, shapes)
    if kind == "mul":
        cross = ca * _obj(b1) + CipherArray.from_bytes(msg[1], pk) * _obj(a1)
        own = np.multiply(a1, b1)
        terms = 2
    elif kind == "square":
        cross = ca * (_obj(a1) * 2)
        own = np.multiply(a1, a1)
        terms = 2
    else:
        cross = ca @ _obj(b1) + _obj(a1) @ CipherArray.from_bytes(msg[1], pk)
        own = matmul_u64(a1, b1)
        terms = 2 * max(1, shapes[0][-1])
    rho_bits = 128 + int(terms).bit_length() + STAT_SECURITY
    if rho_bits + 2 >= pk.n.bit_length():
        raise ValueError("Paillier modulus too small for the masked cross terms")
    count = int(np.prod(out_shape, dtype=np.int64))
    raw = prg.random_bytes(prg.new_seed(), count * ((rho_bits + 7) // 8))
    width = (rho_bits + 7) // 8
    mask = (1 << rho_bits) - 1
    rho = np.array(
        [int.from_bytes(raw[j * width : (j + 1) * width], "little") & mask for j in range(count)],
        dtype=object,
    ).reshape(out_shape)
    c = cross + pk.encrypt(rho)
    rho_mod = (rho % (1 << 64)).astype(np.uint64) if count else np.zeros(out_shape, np.uint64)
    return c.to_bytes(), own - rho_mod


@common.member_step
def _pl_finish(sk: Any, msg: bytes, a0: np.ndarray, b0: np.ndarray, kind: str) -> np.ndarray:
    """Step 5 at member 0: c_0 = a_0 b_0 + (Dec(C) mod 2^64)."""
    from cipherray.protocols.paillier import CipherArray

    v = sk.decrypt(CipherArray.from_bytes(msg, sk.public_key))
    v = (np.asarray(v, dtype=object) % (1 << 64)).astype(np.uint64)
    if kind == "mul":
        own = np.multiply(a0, b0)
    elif kind == "square":
        own = np.multiply(a0, a0)
    else:
        own = matmul_u64(a0, b0)
    return own + v


def _check_public_key(value: Any, bits: int) -> None:
    from cipherray.protocols.paillier import PublicKey

    if not isinstance(value, PublicKey):
        raise ValueError(f"expected a Paillier public key, not {type(value).__name__}")
    if int(value.n).bit_length() != bits:
        raise ValueError(f"expected a Paillier key of {bits} bits, not {int(value.n).bit_length()}")


class PaillierProvider(Provider):
    """Two-member triples from Paillier, no dealer (module docstring, steps 1-5)."""

    KINDS = ("mul", "square", "matmul")

    def __init__(self, key_bits: int = 2048, insecure: bool = False, strict: bool = False):
        super().__init__(strict)
        self.key_bits = int(key_bits)
        self.insecure = bool(insecure)
        self._keys: tuple | None = None

    def supports(self, kind: str) -> bool:
        return kind in self.KINDS

    def _check_engine(self, engine: Engine) -> None:
        if engine.n != 2:
            raise ValueError(f"PaillierProvider is a two-member protocol, got {engine.n} members")

    # what each member expects of the other's messages, from its own parameters
    def _key_check(self) -> messages.Check:
        return partial(_check_public_key, bits=self.key_bits)

    def _cipher_check(self, shape: tuple, what: str) -> messages.Check:
        from cipherray.protocols.paillier.cipher_array import serialised_nbytes

        return messages.nbytes(serialised_nbytes(self.key_bits, shape), what)

    def _enc_check(self, kind: str, shapes: tuple) -> messages.Check:
        what = f"Paillier encryptions for {kind!r}"
        second = self._cipher_check(shapes[1], what) if kind != "square" else (
            messages.nbytes(0, what))  # fmt: skip
        return messages.tuple_of(self._cipher_check(shapes[0], what), second, what=what)

    def _setup(self, engine: Engine) -> None:
        pk0, sk = engine.run_at(
            0, _pl_keygen, self.key_bits, self.insecure, num_returns=2, step="offline/setup"
        )
        pk1 = engine.send(pk0, 0, 1, step="offline/setup", expect=self._key_check())
        self._keys = (pk0, sk, pk1)

    def _generate(self, engine: Engine, kind: str, shapes: tuple) -> tuple[PerParty, ...]:
        if kind not in self.KINDS:
            raise ValueError(
                f"PaillierProvider provides {self.KINDS} only, not {kind!r}: comparisons and "
                "3+-member truncation need a DealerProvider"
            )
        if self._keys is None:
            self._setup(engine)
        pk0, sk, pk1 = self._keys
        step = f"offline/{kind}"
        # 2
        a, b = engine.local(_pl_sample, kind, shapes, num_returns=2, step=step)
        # 3
        enc0 = engine.run_at(0, _pl_encrypt, pk0, a[0], b[0], kind, step=step)
        enc1 = engine.send(enc0, 0, 1, step=step, expect=self._enc_check(kind, shapes))
        # 4
        cmsg, c1 = engine.run_at(
            1, _pl_cross, pk1, enc1, a[1], b[1], kind, shapes, num_returns=2, step=step
        )
        cmsg0 = engine.send(cmsg, 1, 0, step=step, expect=self._cipher_check(
            _result_shape(kind, shapes), f"Paillier cross terms for {kind!r}"))  # fmt: skip
        # 5
        c0 = engine.run_at(0, _pl_finish, sk, cmsg0, a[0], b[0], kind, step=step)
        c = PerParty((c0, c1))
        if kind == "square":
            return a, c
        return a, b, c
