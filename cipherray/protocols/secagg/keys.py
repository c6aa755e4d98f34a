"""Per-round X25519 key pairs, pairwise key agreement, and the authenticated channel.

Each client draws two fresh X25519 key pairs per round: ``c`` for the channel that
carries Shamir shares and ``s`` for the pairwise masks (kept apart because the server
may learn ``s_u^SK`` of a client u that drops out, and must not then read u's channel).
An agreement ``X25519(a^SK, b^PK)`` is hashed with SHA-256 under a domain tag, the
round id, the purpose and the ordered pair of client ids into a 32-byte key: a PRG seed
for masks, or an AES-256-GCM key for the channel. Where the CPU has AVX-512 IFMA a
client's agreements with all its neighbours are one call to the batched kernel of
:mod:`cipherray.cpu_kernels.x25519` (the same function as ``cryptography``'s X25519 bit
for bit); otherwise ``cryptography`` computes them one by one.

Channel: AES-256-GCM under the pair's channel key. The key is used for one message in
each direction per round, and the nonce is the sender's id, so nonces never repeat
under a key; the associated data binds the round, sender and receiver.

What each party learns: the server relays public keys and ciphertexts; without a
private key of the pair it learns neither the pair's keys nor the plaintexts.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cipherray.cpu_kernels import _native
from cipherray.cpu_kernels import x25519 as _x25519

from .errors import ProtocolViolation

DOMAIN = b"cipherray/secagg/v1"
KEY_BYTES = 32
MASK_PURPOSE = b"mask"
CHANNEL_PURPOSE = b"channel"


@dataclass(frozen=True)
class KeyPair:
    private: bytes
    public: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh X25519 key pair from the operating system's CSPRNG."""
        sk = X25519PrivateKey.generate()
        return cls(sk.private_bytes_raw(), sk.public_key().public_bytes_raw())

    @staticmethod
    def public_of(private: bytes) -> bytes:
        """The public key of a raw 32-byte private key."""
        return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def agreements(private: bytes, publics: list[bytes]) -> list[bytes]:
    """X25519(private, p) for each public key p; refuses low-order (all-zero) results."""
    if not publics:
        return []
    if _x25519.available() and len(publics) >= _x25519.MIN_BATCH:
        blob, zeros = _x25519.x25519_batch(private, b"".join(publics))
        if zeros:
            raise ProtocolViolation("a public key of low order was advertised")
        return [blob[i : i + 32] for i in range(0, len(blob), 32)]
    sk = X25519PrivateKey.from_private_bytes(private)
    try:
        return [sk.exchange(X25519PublicKey.from_public_bytes(p)) for p in publics]
    except ValueError as e:  # cryptography refuses all-zero shared secrets
        raise ProtocolViolation("a public key of low order was advertised") from e


def agreements_array(private: bytes, publics: np.ndarray) -> np.ndarray:
    """:func:`agreements` for an (s, 32) uint8 array of public keys; (s, 32) results."""
    publics = np.ascontiguousarray(publics, dtype=np.uint8).reshape(-1, 32)
    if _x25519.available() and publics.shape[0] >= _x25519.MIN_BATCH:
        blob, zeros = _x25519.x25519_batch(private, publics)
        if zeros:
            raise ProtocolViolation("a public key of low order was advertised")
        return np.frombuffer(blob, np.uint8).reshape(-1, 32)
    out = agreements(private, [p.tobytes() for p in publics])
    return np.frombuffer(b"".join(out), np.uint8).reshape(-1, 32)


_PAIR_KEYS = (
    ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
    ctypes.c_int64, ctypes.c_void_p,
)  # fmt: skip


def agreements_many(privates: np.ndarray, publics: np.ndarray, threads: int = 1) -> np.ndarray:
    """X25519(privates[i], publics[i]) for two (s, 32) uint8 arrays, in one call of the
    IFMA kernel where present; refuses low-order (all-zero) results."""
    privates = np.ascontiguousarray(privates, dtype=np.uint8).reshape(-1, 32)
    publics = np.ascontiguousarray(publics, dtype=np.uint8).reshape(-1, 32)
    if _x25519.available():
        out, zeros = _x25519.x25519_many(privates, publics, threads)
        if zeros:
            raise ProtocolViolation("a public key of low order was advertised")
        return out
    out = np.empty_like(publics)
    try:
        for i in range(publics.shape[0]):
            sk = X25519PrivateKey.from_private_bytes(privates[i].tobytes())
            pk = X25519PublicKey.from_public_bytes(publics[i].tobytes())
            out[i] = np.frombuffer(sk.exchange(pk), np.uint8)
    except ValueError as e:  # cryptography refuses all-zero shared secrets
        raise ProtocolViolation("a public key of low order was advertised") from e
    return out


class Deriver:
    """:func:`derive_key` for one round and purpose, with the common prefix hashed once;
    `keys` derives many pairs' keys in one call (``cpu_kernels/sha256_kdf.cc`` where it
    builds, else one hashlib call each: the same bytes)."""

    def __init__(self, round_id: bytes, purpose: bytes):
        self._raw = DOMAIN + round_id + purpose
        self._prefix = hashlib.sha256(DOMAIN)
        self._prefix.update(round_id + purpose)
        self._native = _native.function("sha256_kdf.cc", "cr_pair_keys", _PAIR_KEYS, ctypes.c_int32)

    def keys(self, shared: np.ndarray, u: int | np.ndarray, vs: np.ndarray) -> np.ndarray:
        """(s, 32) keys of the pairs (u, vs[i]) (or (u[i], vs[i])) from their (s, 32)
        agreements."""
        shared = np.ascontiguousarray(shared, dtype=np.uint8).reshape(-1, 32)
        vs = np.asarray(vs, dtype=np.uint64)
        us = np.broadcast_to(np.asarray(u, dtype=np.uint64), vs.shape)
        lo = np.ascontiguousarray(np.minimum(vs, us))
        hi = np.ascontiguousarray(np.maximum(vs, us))
        out = np.empty_like(shared)
        if self._native is not None and shared.shape[0]:
            prefix = np.frombuffer(self._raw, np.uint8)
            rc = self._native(prefix.ctypes.data, prefix.size, shared.ctypes.data,
                              lo.ctypes.data, hi.ctypes.data, shared.shape[0], out.ctypes.data)  # fmt: skip
            if rc != 0:
                raise RuntimeError("cr_pair_keys refused its input")
            return out
        for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist())):
            out[i] = np.frombuffer(self.key(shared[i].tobytes(), a, b), np.uint8)
        return out

    def key(self, shared: bytes, u: int, v: int) -> bytes:
        lo, hi = (u, v) if u < v else (v, u)
        h = self._prefix.copy()
        h.update(struct.pack("<QQ", lo, hi) + shared)
        return h.digest()


class Channel:
    """:func:`seal` / :func:`open_sealed` for one round (same nonces and associated data)."""

    def __init__(self, round_id: bytes):
        self.round_id = round_id

    def seal(self, key: bytes, sender: int, receiver: int, plaintext: bytes) -> bytes:
        return AESGCM(key).encrypt(
            struct.pack("<Q", sender) + bytes(4),
            plaintext,
            self.round_id + struct.pack("<QQ", sender, receiver),
        )

    def open(self, key: bytes, sender: int, receiver: int, sealed: bytes) -> bytes:
        return AESGCM(key).decrypt(
            struct.pack("<Q", sender) + bytes(4),
            sealed,
            self.round_id + struct.pack("<QQ", sender, receiver),
        )


def derive_key(shared: bytes, round_id: bytes, purpose: bytes, u: int, v: int) -> bytes:
    """The 32-byte key of the pair {u, v} for ``purpose`` in round ``round_id``."""
    lo, hi = (u, v) if u < v else (v, u)
    h = hashlib.sha256(DOMAIN)
    h.update(round_id + purpose + struct.pack("<QQ", lo, hi) + shared)
    return h.digest()


def _nonce_and_data(round_id: bytes, sender: int, receiver: int) -> tuple[bytes, bytes]:
    return struct.pack("<Q", sender) + bytes(4), round_id + struct.pack("<QQ", sender, receiver)


def seal(key: bytes, round_id: bytes, sender: int, receiver: int, plaintext: bytes) -> bytes:
    """AES-256-GCM encryption of ``plaintext`` from ``sender`` to ``receiver``."""
    nonce, data = _nonce_and_data(round_id, sender, receiver)
    return AESGCM(key).encrypt(nonce, plaintext, data)


def open_sealed(key: bytes, round_id: bytes, sender: int, receiver: int, sealed: bytes) -> bytes:
    """Decrypt and authenticate a message of :func:`seal` (raises on tampering)."""
    nonce, data = _nonce_and_data(round_id, sender, receiver)
    return AESGCM(key).decrypt(nonce, sealed, data)
