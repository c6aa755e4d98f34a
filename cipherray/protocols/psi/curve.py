"""X25519 primitives for ECDH-based PSI: hash to a point, blind, shuffle.

Points are handled as *point arrays*: 1-D NumPy arrays of dtype ``V32`` (one 32-byte
little-endian X25519 u-coordinate per element, contiguous, no per-row Python object at
rest). ``points.tolist()`` yields the ``bytes`` objects the ``cryptography`` API needs
and ``np.frombuffer(b"".join(...), POINT_DTYPE)`` packs results back.

Hash to the curve
-----------------
``H_salt(x) = BLAKE2b-256(x; key=salt, person=b"cipherray/psi/v1")`` with bit 255
cleared, used directly as a u-coordinate. BLAKE2b's keyed mode gives the per-run salt,
its personalisation string the domain separation tag. Every 255-bit string is a valid
X25519 input (RFC 7748 section 5): about half of them lie on Curve25519 and half on its
quadratic twist. Curve25519 is twist-secure (the twist has order 4 * p2 with p2 a
253-bit prime), so blinding is a DH operation in the prime-order subgroup of the curve
or of the twist (the clamped scalar is a multiple of 8 and clears any small-order
component); hard in both (~2^126 work). The same direct-hash map is what SecretFlow's
ECDH-PSI does for Curve25519. Rejection sampling onto the curve proper would cost a
Legendre symbol per item (2 tries on average) for no practical gain.

Low-order inputs (u in a set of 7 values, probability ~2^-252 per hashed item) would
make ``exchange`` return all zeros, which ``cryptography`` refuses; ``hash_to_points``
re-hashes those with a counter so the map stays deterministic and total, and
``blind`` raises ``LowOrderPointError`` if a *received* point has low order (only a
malformed/malicious message can cause that).

Scalars
-------
``BlindingKey.generate()`` draws a fresh X25519 private key from the OS CSPRNG; it is
clamped by X25519 on every use (``k = 2^254 + 8 m``). Blinding commutes,
``k1 * (k2 * P) == k2 * (k1 * P)``, since each exchange multiplies the (u-coordinate
of the) point by the clamped scalar and scalar multiplication commutes.

Cost: one X25519 per item per blinding, by ``cryptography`` (OpenSSL), or where the CPU has
AVX-512 IFMA by the batched kernel of :mod:`cipherray.cpu_kernels.x25519`, the same output
bit for bit (timings: the README's Performance section).
Work on chunks (``split``) and spread them over a party's workers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from cipherray.cpu_kernels import x25519 as _x25519

DOMAIN = b"cipherray/psi/v1"
POINT_BYTES = 32
POINT_DTYPE = np.dtype("V32")
SALT_BYTES = 32

_P = 2**255 - 19
# u-coordinates of the points of order dividing 8 on Curve25519 and of order dividing 4
# on its twist (RFC 7748 / Bernstein's list); X25519 maps them to 0.
_LOW_ORDER_U = frozenset(
    {
        0,
        1,
        _P - 1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
    }
)

Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]


class LowOrderPointError(ValueError):
    """A received point has small order (malformed or malicious message)."""


def new_salt() -> bytes:
    """A fresh per-run salt (32 bytes from the OS CSPRNG); both parties must use it."""
    return os.urandom(SALT_BYTES)


class BlindingKey:
    """A party's secret X25519 scalar for one PSI run. Picklable (as its 32 raw bytes) so
    chunks can be blinded in worker processes; its repr never shows the secret."""

    __slots__ = ("_raw", "_sk")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise ValueError("an X25519 private key is 32 bytes")
        self._raw = bytes(raw)
        self._sk = X25519PrivateKey.from_private_bytes(self._raw)

    @classmethod
    def generate(cls) -> BlindingKey:
        """A fresh key from the OS CSPRNG."""
        return cls(os.urandom(32))

    @property
    def private_key(self) -> X25519PrivateKey:
        return self._sk

    def __getstate__(self) -> bytes:
        return self._raw

    def __setstate__(self, raw: bytes) -> None:
        self.__init__(raw)

    def __repr__(self) -> str:
        return "<BlindingKey (secret)>"


def points_from_bytes(data: bytes | Sequence[bytes]) -> np.ndarray:
    """Pack 32-byte values (one ``bytes`` blob or a sequence of 32-byte items)."""
    blob = data if isinstance(data, bytes | bytearray | memoryview) else b"".join(data)
    if len(blob) % POINT_BYTES:
        raise ValueError(f"point data must be a multiple of {POINT_BYTES} bytes")
    return np.frombuffer(blob, dtype=POINT_DTYPE)


def empty_points() -> np.ndarray:
    return np.empty(0, dtype=POINT_DTYPE)


def _check_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points)
    if points.dtype != POINT_DTYPE or points.ndim != 1:
        raise TypeError(f"expected a 1-D point array of dtype V32, got {points.dtype}")
    return points


def hash_to_points(ids: Sequence[bytes] | np.ndarray, salt: bytes) -> np.ndarray:
    """``H_salt(x)`` for each identifier (bytes): a point array of the same length."""
    if not isinstance(salt, bytes) or not 16 <= len(salt) <= 64:
        raise ValueError("salt must be 16..64 bytes (use new_salt())")
    base = hashlib.blake2b(digest_size=POINT_BYTES, key=salt, person=DOMAIN)
    out = bytearray(POINT_BYTES * len(ids))
    pos = 0
    for x in ids.tolist() if isinstance(ids, np.ndarray) else ids:
        h = base.copy()
        h.update(x)
        out[pos : pos + POINT_BYTES] = h.digest()
        pos += POINT_BYTES
    pts = np.frombuffer(out, dtype=np.uint8).reshape(-1, POINT_BYTES)
    pts[:, 31] &= 0x7F  # clear bit 255 (ignored by X25519 anyway)
    res = pts.reshape(-1).view(POINT_DTYPE)
    _rehash_low_order(res, ids, base)
    return res


def _rehash_low_order(pts: np.ndarray, ids: Any, base: Any) -> None:
    if not len(pts):
        return
    # cheap vectorised pre-filter on the top 8 bytes, exact check on the (rare) hits
    words = pts.view("<u8").reshape(-1, 4)
    cand_top = {u >> 192 for u in _LOW_ORDER_U}
    hit = np.isin(words[:, 3], np.array(sorted(cand_top), dtype=np.uint64))
    for i in np.flatnonzero(hit):
        ctr = 0
        while int.from_bytes(pts[i].tobytes(), "little") % _P in _LOW_ORDER_U:
            ctr += 1
            h = base.copy()
            h.update(bytes(ids[i]) + b"\x00rehash" + ctr.to_bytes(4, "big"))
            d = bytearray(h.digest())
            d[31] &= 0x7F
            pts[i] = np.frombuffer(bytes(d), dtype=POINT_DTYPE)[0]


def blind(points: np.ndarray, key: BlindingKey) -> np.ndarray:
    """``k * P`` for every point (X25519 with the clamped scalar); order preserved.

    Batches go to the AVX-512 IFMA kernel (:mod:`cipherray.cpu_kernels.x25519`, the same
    bits as ``cryptography``) where the CPU has it, and to ``cryptography`` otherwise."""
    points = _check_points(points)
    if len(points) >= _x25519.MIN_BATCH and _x25519.available():
        out_blob, zeros = _x25519.x25519_batch(key._raw, points)
        if zeros:
            raise LowOrderPointError(
                f"{zeros} point(s) in the message have small order (malformed or malicious input)"
            )
        return points_from_bytes(out_blob)
    ex = key.private_key.exchange
    pub = X25519PublicKey.from_public_bytes
    try:
        out = [ex(pub(p)) for p in points.tolist()]
    except ValueError as e:  # cryptography refuses an all-zero shared secret
        raise LowOrderPointError(
            "a point in the message has small order (malformed or malicious input)"
        ) from e
    return points_from_bytes(out) if out else empty_points()


def hash_and_blind(ids: Sequence[bytes] | np.ndarray, salt: bytes, key: BlindingKey) -> np.ndarray:
    """``k * H_salt(x)`` for each identifier (hash and first blinding fused). ``ids`` may
    also be points already hashed with this salt (``streaming.hash_stream``)."""
    if isinstance(ids, np.ndarray) and ids.dtype == POINT_DTYPE:
        return blind(ids, key)
    return blind(hash_to_points(ids, salt), key)


# -- chunking -----------------------------------------------------------------------------


def split(arr: np.ndarray | Sequence[Any], chunk_size: int) -> list[Any]:
    """Consecutive chunks of at most ``chunk_size`` items (at least one chunk)."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    n = len(arr)
    if n == 0:
        return [arr[0:0]]
    return [arr[i : i + chunk_size] for i in range(0, n, chunk_size)]


def concat_points(chunks: Iterable[np.ndarray]) -> np.ndarray:
    parts = [_check_points(c) for c in chunks]
    return np.concatenate(parts) if parts else empty_points()


def _blind_chunk(args: tuple[np.ndarray, BlindingKey]) -> np.ndarray:
    return blind(*args)


def _hash_and_blind_chunk(args: tuple[Any, bytes, BlindingKey]) -> np.ndarray:
    return hash_and_blind(*args)


def blind_chunked(
    points: np.ndarray, key: BlindingKey, mapper: Mapper | None = None, chunk_size: int = 65536
) -> np.ndarray:
    """``blind`` over chunks with ``mapper`` (e.g. ``ProcessPoolExecutor.map`` or the
    runtime's ``party.map``); the builtin ``map`` (in-process) when None."""
    m = mapper or map
    return concat_points(m(_blind_chunk, [(c, key) for c in split(points, chunk_size)]))


def hash_and_blind_chunked(
    ids: Sequence[bytes] | np.ndarray,
    salt: bytes,
    key: BlindingKey,
    mapper: Mapper | None = None,
    chunk_size: int = 65536,
) -> np.ndarray:
    """``hash_and_blind`` over chunks with ``mapper`` (see ``blind_chunked``)."""
    m = mapper or map
    return concat_points(m(_hash_and_blind_chunk, [(c, salt, key) for c in split(ids, chunk_size)]))


# -- randomness for shuffles -------------------------------------------------------------


def random_permutation(n: int) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` from the OS CSPRNG (argsort of
    64-bit random keys; ties have probability < n^2 / 2^65 and only bias it slightly)."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    keys = np.frombuffer(os.urandom(8 * n), dtype="<u8")
    return np.argsort(keys, kind="stable").astype(np.int64)
