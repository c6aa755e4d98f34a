"""2HashDH OPRF over the prime-order group of edwards25519 (libsodium through PyNaCl).

``F_s(x) = H2(x, u(s * H1(x)))`` where

- ``H1(x) = from_uniform(h(x))`` with ``h(x) = BLAKE2b-256(x; person="cipherray/qry/h1")``:
  libsodium's ``crypto_core_ed25519_from_uniform``, i.e. ``8 * M(x)`` where ``M(x)`` is the
  Elligator 2 image of ``h(x)`` (RFC 9380's map with Z = 2): a point of the order-l subgroup;
- ``s`` is the holder's secret, an Edwards scalar derived from 32 CSPRNG bytes used as an
  X25519 private key: with ``c = 2^254 + 8m`` the clamped key, ``s = c / 8 mod l``;
- ``u(P) = (1 + y) / (1 - y) mod p``, the Montgomery u-coordinate of the Edwards point
  ``P = (x, y)``;
- ``H2`` (BLAKE2b over a length-prefixed ``x`` and ``u``) gives a 32-byte seed from which
  :mod:`.table` derives the row's tag and label pad.

Two ways to the same value. The querier works on Edwards points (libsodium), as the
oblivious protocol needs. The holder, evaluating its *own* N rows, computes the Elligator 2
u-coordinate of ``M(x)`` directly (gmpy2, one Legendre symbol and a batch inversion) and
one X25519 ladder with ``c`` -- the batched IFMA kernel of
:mod:`cipherray.cpu_kernels.x25519` where the CPU has it, ``cryptography`` otherwise:
``X25519(c, u(M)) = u(c * M) = u(s * 8 * M) = u(s * H1(x))``, as c is a multiple of 8 (it
removes M's small-order part) and c = 8s mod l. A test checks both ways agree bit for bit.

Oblivious evaluation (Jarecki-Kiayias-Krawczyk-Xu, 2HashDH; semi-honest querier and holder):
1. querier: for each key x, a fresh scalar r <- Z_l (CSPRNG), sends B = r * H1(x);
2. holder: checks every B (canonical, on the curve, in the order-l subgroup), returns
   E = s * B;
3. querier: checks every E, computes r^-1 * E = s * H1(x), then u(.) and H2.
What each learns: the holder sees k points that are uniform in the group whatever the keys
(r is uniform and fresh per key and per query), so nothing but k -- two queries of the same
key cannot be linked. The querier learns F_s at its k keys and, under the one-more-gap-DH
assumption (H1, H2 random oracles), nothing about F_s elsewhere.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import gmpy2
import numpy as np
from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from cipherray.cpu_kernels import x25519 as _x25519

POINT_BYTES = 32
SEED_BYTES = 32
L = 2**252 + 27742317777372353535851937790883648493  # the order of the prime subgroup
_P = 2**255 - 19
_A = 486662  # Curve25519's Montgomery coefficient
_INV8 = pow(8, -1, L)
_H1 = b"cipherray/qry/h1"  # BLAKE2b personalisations (16 bytes at most)
_H2 = b"cipherray/qry/h2"

Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]


class OprfError(ValueError):
    """A malformed OPRF message (wrong size, or a point outside the prime-order group)."""


class OprfKey:
    """The holder's OPRF secret. Picklable as its 32 raw bytes (so chunks can be evaluated
    in worker processes); its repr never shows the secret."""

    __slots__ = ("_ed", "_raw")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise ValueError("an OPRF key is 32 bytes")
        self._raw = bytes(raw)
        k = bytearray(self._raw)  # X25519 clamping (RFC 7748)
        k[0] &= 248
        k[31] &= 127
        k[31] |= 64
        c = int.from_bytes(k, "little")
        self._ed = (c * _INV8 % L).to_bytes(32, "little")  # s = c / 8 mod l

    @classmethod
    def generate(cls) -> OprfKey:
        return cls(os.urandom(32))

    def __getstate__(self) -> bytes:
        return self._raw

    def __setstate__(self, raw: bytes) -> None:
        self.__init__(raw)

    def __repr__(self) -> str:
        return "<OprfKey (secret)>"


def _as_bytes(keys: Sequence[Any]) -> list[bytes]:
    return [k if isinstance(k, bytes) else str(k).encode() for k in keys]


def hash_to_group(keys: Sequence[bytes]) -> list[bytes]:
    """H1 of each key: 32-byte Edwards encodings of points of the order-l subgroup."""
    fu = sodium.crypto_core_ed25519_from_uniform
    return [fu(h) for h in _h(keys)]


def _h(keys: Sequence[bytes]) -> list[bytes]:
    return [hashlib.blake2b(x, digest_size=32, person=_H1).digest() for x in keys]


def elligator_u(keys: Sequence[bytes]) -> np.ndarray:
    """u-coordinates of M(x), the Elligator 2 images before the cofactor is cleared,
    (n, 32) uint8 (``8 * M(x)`` is :func:`hash_to_group`'s point, up to sign)."""
    n = len(keys)
    out = np.empty((n, 32), dtype=np.uint8)
    if n == 0:
        return out
    mask = (1 << 255) - 1  # libsodium clears bit 255 (the sign) and reads the rest mod p
    rs = [gmpy2.mpz(int.from_bytes(h, "little") & mask) for h in _h(keys)]
    den = [(1 + 2 * r * r) % _P for r in rs]  # 1 + Z r^2 (Z = 2)
    prefix = [gmpy2.mpz(0)] * n
    acc = gmpy2.mpz(1)
    for i, d in enumerate(den):
        acc = acc * d % _P
        prefix[i] = acc
    inv = gmpy2.invert(acc, _P)
    us = [0] * n
    for i in range(n - 1, -1, -1):
        di = inv * prefix[i - 1] % _P if i else inv
        inv = inv * den[i] % _P
        x = (-_A * di) % _P  # x1 = -A / (1 + 2 r^2)
        if gmpy2.legendre(x * (x * x + _A * x + 1) % _P, _P) == -1:
            x = (-x - _A) % _P  # not on the curve: the other candidate
        us[i] = int(x)
    blob = b"".join(u.to_bytes(32, "little") for u in us)
    out[:] = np.frombuffer(blob, dtype=np.uint8).reshape(n, 32)
    return out


def edwards_to_u(points: Sequence[bytes]) -> np.ndarray:
    """Montgomery u-coordinates, (n, 32) uint8, of Edwards encodings (batch inversion:
    one modular exponentiation for the whole batch)."""
    n = len(points)
    out = np.empty((n, 32), dtype=np.uint8)
    if n == 0:
        return out
    mask = (1 << 255) - 1
    ys = [int.from_bytes(p, "little") & mask for p in points]
    den = [(1 - y) % _P for y in ys]
    prefix = [0] * n
    acc = 1
    for i, d in enumerate(den):
        acc = acc * d % _P
        prefix[i] = acc
    inv = pow(acc, -1, _P)
    us = [0] * n
    for i in range(n - 1, 0, -1):
        us[i] = (1 + ys[i]) * inv * prefix[i - 1] % _P
        inv = inv * den[i] % _P
    us[0] = (1 + ys[0]) * inv % _P
    blob = b"".join(u.to_bytes(32, "little") for u in us)
    out[:] = np.frombuffer(blob, dtype=np.uint8).reshape(n, 32)
    return out


def seeds(keys: Sequence[bytes], us: np.ndarray) -> np.ndarray:
    """H2(x, u) for each key and u-coordinate: (n, 32) uint8."""
    blob = b"".join(
        hashlib.blake2b(
            len(x).to_bytes(4, "little") + x + u, digest_size=SEED_BYTES, person=_H2
        ).digest()
        for x, u in zip(keys, (bytes(r) for r in us), strict=True)
    )
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(keys), SEED_BYTES).copy()


# -- the holder's own rows -------------------------------------------------------------------
def evaluate_own(keys: Sequence[bytes], key: OprfKey) -> np.ndarray:
    """F_s seeds of the holder's own keys, (n, 32) uint8: Elligator 2 u-coordinates, then
    one X25519 per key (the batched IFMA kernel where the CPU has it, ``cryptography``
    otherwise)."""
    keys = _as_bytes(keys)
    us = elligator_u(keys)
    if len(keys) >= _x25519.MIN_BATCH and _x25519.available():
        blob, zeros = _x25519.x25519_batch(key._raw, us)
        if zeros:  # impossible for points of the order-l subgroup
            raise OprfError(f"{zeros} key(s) hashed to a small-order point")
        su = np.frombuffer(blob, dtype=np.uint8).reshape(-1, 32)
    else:
        from cryptography.hazmat.primitives.asymmetric.x25519 import (
            X25519PrivateKey,
            X25519PublicKey,
        )

        ex = X25519PrivateKey.from_private_bytes(key._raw).exchange
        pub = X25519PublicKey.from_public_bytes
        su = np.frombuffer(b"".join(ex(pub(bytes(u))) for u in us), dtype=np.uint8)
        su = su.reshape(-1, 32)
    return seeds(keys, su)


def _evaluate_own_chunk(item: tuple) -> np.ndarray:
    return evaluate_own(*item)


def evaluate_own_chunked(
    keys: Sequence[bytes], key: OprfKey, mapper: Mapper | None = None, chunk: int = 65536
) -> np.ndarray:
    """``evaluate_own`` over chunks with ``mapper`` (e.g. ``ProcessPoolExecutor.map``)."""
    keys = _as_bytes(keys)
    parts = [(keys[i : i + chunk], key) for i in range(0, len(keys), chunk)]
    outs = list((mapper or map)(_evaluate_own_chunk, parts))
    return np.concatenate(outs) if outs else np.empty((0, SEED_BYTES), dtype=np.uint8)


# -- oblivious evaluation --------------------------------------------------------------------
class Blinded:
    """The querier's state between steps 1 and 3 (kept at the querier)."""

    __slots__ = ("inverses", "keys")

    def __init__(self, keys: list[bytes], inverses: list[bytes]) -> None:
        self.keys = keys
        self.inverses = inverses

    def __repr__(self) -> str:
        return f"<Blinded: {len(self.keys)} keys (secret)>"


def random_scalar() -> bytes:
    """A uniform nonzero scalar mod l (64 CSPRNG bytes reduced: bias below 2^-250)."""
    while True:
        r = sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
        if any(r):
            return r


def blind(keys: Sequence[Any]) -> tuple[Blinded, bytes]:
    """Step 1 at the querier: (state, message of k * 32 bytes)."""
    keys = _as_bytes(keys)
    mul = sodium.crypto_scalarmult_ed25519_noclamp
    inv = sodium.crypto_core_ed25519_scalar_invert
    out, invs = [], []
    for p in hash_to_group(keys):
        r = random_scalar()
        out.append(mul(r, p))
        invs.append(inv(r))
    return Blinded(keys, invs), b"".join(out)


def _points(msg: object, role: str, what: str, count: int | None = None) -> list[bytes]:
    if not isinstance(msg, bytes | bytearray | memoryview):
        raise OprfError(f"{role}: {what} must be bytes, not {type(msg).__name__}")
    msg = bytes(msg)
    if len(msg) % POINT_BYTES or (count is not None and len(msg) != count * POINT_BYTES):
        want = f"{count} points" if count is not None else f"a multiple of {POINT_BYTES} bytes"
        raise OprfError(f"{role}: {what} has {len(msg)} bytes, expected {want}")
    pts = [msg[i : i + POINT_BYTES] for i in range(0, len(msg), POINT_BYTES)]
    valid = sodium.crypto_core_ed25519_is_valid_point
    for i, p in enumerate(pts):
        if not valid(p):
            raise OprfError(f"{role}: {what} point {i} is not in the prime-order group")
    return pts


def _mul_all(scalar: bytes, pts: list[bytes], role: str) -> list[bytes]:
    mul = sodium.crypto_scalarmult_ed25519_noclamp
    try:
        return [mul(scalar, p) for p in pts]
    except SodiumRuntimeError as exc:  # identity result: a malformed point
        raise OprfError(f"{role}: scalar multiplication rejected a point") from exc


def evaluate(msg: object, key: OprfKey) -> bytes:
    """Step 2 at the holder: s * B for every blinded point (each checked first)."""
    return b"".join(_mul_all(key._ed, _points(msg, "holder", "blinded query"), "holder"))


def evaluate_share(msg: object, share: bytes) -> bytes:
    """Step 2 with an Edwards scalar ``share`` (a holder's share of a joint key)."""
    return b"".join(_mul_all(share, _points(msg, "holder", "blinded query"), "holder"))


def unblind_points(state: Blinded, evaluated: object) -> list[bytes]:
    """r^-1 * E for every evaluated point (each checked first)."""
    pts = _points(evaluated, "querier", "evaluated reply", len(state.keys))
    mul = sodium.crypto_scalarmult_ed25519_noclamp
    try:
        return [mul(r, p) for r, p in zip(state.inverses, pts, strict=True)]
    except SodiumRuntimeError as exc:
        raise OprfError("querier: unblinding rejected a point") from exc


def finalize(state: Blinded, evaluated: object) -> np.ndarray:
    """Step 3 at the querier: the F_s seeds of its keys, (k, 32) uint8, in order."""
    return seeds(state.keys, edwards_to_u(unblind_points(state, evaluated)))


def add_points(*messages: bytes) -> bytes:
    """Point-wise sum of several evaluated replies (joint key s = sum of shares)."""
    lists = [_points(m, "querier", "evaluated reply") for m in messages]
    out = []
    for col in zip(*lists, strict=True):
        acc = col[0]
        for p in col[1:]:
            acc = sodium.crypto_core_ed25519_add(acc, p)
        out.append(acc)
    return b"".join(out)
