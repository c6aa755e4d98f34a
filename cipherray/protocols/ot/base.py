"""Base oblivious transfer: 128 random OTs from a prime-order group, the seeds of IKNP.

Construction: Chou–Orlandi "simplest OT" (CO15, eprint 2015/267) with every key hashed
from the whole transcript (the OT index, the sender's point A and the receiver's point
B_i), as libOTe's ``SimplestOT`` does. Why this one: two messages in the order that IKNP's
setup needs (the base-OT sender speaks first), one fixed-base and one variable-base scalar
multiplication per OT and side, and security against semi-honest parties under CDH with
the KDF a random oracle -- all that semi-honest IKNP asks of its base OTs. The published
problems of the original (its claimed UC proof does not hold: Genç–Iovino–Rial, eprint
2017/370; Hauck–Loss, eprint 2017/1011; keys not bound to B_i; points
outside the prime-order group) concern malicious parties or are closed here by hashing
(i, A, B_i) into every key and validating every point received. Masny–Rindal (endemic OT)
would also do but needs a hash onto the group for the receiver's points; it gains nothing
for semi-honest use.

Group: the prime-order (order l = 2^252 + 27742317777372353535851937790883648493)
subgroup of edwards25519 (isomorphic to the group ristretto255 encodes), every operation
from libsodium through PyNaCl (``crypto_scalarmult_ed25519_*_noclamp``,
``crypto_core_ed25519_*``). PyNaCl exposes no ristretto255 functions, so points travel in
the canonical edwards25519 encoding and every point that arrives is checked with
``crypto_core_ed25519_is_valid_point`` (canonical, on the curve, in the order-l subgroup,
not of small order); libsodium's scalar multiplication rejects the identity result.

Roles (named as in the extension): R, the extension receiver, is the base-OT *sender*
with two random 32-byte keys per OT; S, the extension sender, is the base-OT *receiver*
with choice bits delta (its IKNP secret).

Steps:
1. R: a <- Z_l (CSPRNG), A = a*G; sends A (32 bytes) to S.
2. S: checks A. For every i < 128 with choice bit delta_i: b_i <- Z_l,
   B_i = b_i*G + delta_i*A; key k_i = KDF(i, A, B_i, b_i*A). Sends B_0..B_127 to R.
3. R: checks every B_i; k_{i,0} = KDF(i, A, B_i, a*B_i) and
   k_{i,1} = KDF(i, A, B_i, a*B_i - a*A) = KDF(i, A, B_i, a*(B_i - A)).
   Then k_i = k_{i, delta_i}.
What each learns: R sees the B_i, uniform in the group whatever delta_i is (b_i is
uniform), so nothing about delta. S sees A and learns k_{i, delta_i}; the other key hashes
a*(B_i -/+ A) = a*(b_i*G -/+ A), a Diffie-Hellman value of A and a point S knows no
logarithm of, so it is pseudo-random to S under CDH (with KDF a random oracle).
KDF = SHA-256 over a domain label, i, A, B_i and the group element.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from .errors import OTError

KAPPA = 128  # base OTs = the extension's security parameter
POINT_BYTES = 32
KEY_BYTES = 32  # an AES-256-CTR seed of cipherray.protocols.prg
_LABEL = b"cipherray/ot/base/co15/v1"


def random_scalar() -> bytes:
    """A uniform scalar mod l (64 CSPRNG bytes reduced: bias below 2^-250)."""
    return sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))


def kdf(i: int, a_point: bytes, b_point: bytes, shared: bytes) -> bytes:
    """The 32-byte key of base OT ``i`` from its transcript and the shared group element."""
    return hashlib.sha256(_LABEL + i.to_bytes(4, "little") + a_point + b_point + shared).digest()


def check_point(point: object, role: str, what: str) -> bytes:
    """``point`` as 32 bytes if it is a valid element of the prime-order group, else OTError
    naming ``role`` and the setup step."""
    if not isinstance(point, bytes | bytearray | memoryview):
        raise OTError(f"{role}: setup: {what} must be bytes, not {type(point).__name__}")
    point = bytes(point)
    if len(point) != POINT_BYTES:
        raise OTError(f"{role}: setup: {what} must be {POINT_BYTES} bytes, not {len(point)}")
    if not sodium.crypto_core_ed25519_is_valid_point(point):
        raise OTError(f"{role}: setup: {what} is not a valid point of the prime-order group")
    return point


def _mul(scalar: bytes, point: bytes, role: str) -> bytes:
    try:
        return sodium.crypto_scalarmult_ed25519_noclamp(scalar, point)
    except SodiumRuntimeError as exc:  # identity result: only from a malformed point
        raise OTError(f"{role}: setup: scalar multiplication rejected a point") from exc


def sender_first() -> tuple[bytes, bytes]:
    """Step 1 at R: (secret scalar a, message A)."""
    a = random_scalar()
    return a, sodium.crypto_scalarmult_ed25519_base_noclamp(a)


def _rows(items: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(items), dtype=np.uint8).reshape(len(items), -1)


def receiver_choose(a_point: bytes, choices: np.ndarray) -> tuple[np.ndarray, bytes]:
    """Step 2 at S: the keys k_{i, choices_i} as a (n, 32) uint8 array and the message
    B_0 || ... || B_{n-1}. ``a_point`` must already be checked."""
    n = int(choices.shape[0])
    plain, shifted, keys0, keys1 = [], [], [], []
    for i in range(n):
        b = random_scalar()
        b_g = sodium.crypto_scalarmult_ed25519_base_noclamp(b)
        b_ga = sodium.crypto_core_ed25519_add(b_g, a_point)
        shared = _mul(b, a_point, "OT sender")
        plain.append(b_g)
        shifted.append(b_ga)
        keys0.append(kdf(i, a_point, b_g, shared))
        keys1.append(kdf(i, a_point, b_ga, shared))
    # select by delta without a branch on it: both candidates exist for every i
    sel = choices.astype(bool)[:, None]
    points = np.where(sel, _rows(shifted), _rows(plain))
    keys = np.where(sel, _rows(keys1), _rows(keys0))
    return np.ascontiguousarray(keys), points.tobytes()


def check_msg_b(msg_b: object, n: int) -> None:
    """S's answer for `n` base OTs as R expects it: n points of 32 bytes; else OTError."""
    role = "OT receiver"
    if not isinstance(msg_b, bytes | bytearray | memoryview):
        raise OTError(f"{role}: setup: msg_b must be bytes, not {type(msg_b).__name__}")
    if len(msg_b) != n * POINT_BYTES:
        raise OTError(
            f"{role}: setup: msg_b must be {n * POINT_BYTES} bytes ({n} points), not {len(msg_b)}"
        )


def sender_keys(a: bytes, a_point: bytes, msg_b: object, n: int) -> np.ndarray:
    """Step 3 at R: the (n, 2, 32) uint8 keys k_{i,0}, k_{i,1} from S's message."""
    role = "OT receiver"
    check_msg_b(msg_b, n)
    msg_b = bytes(msg_b)
    a_a = _mul(a, a_point, role)
    keys = np.empty((n, 2, KEY_BYTES), dtype=np.uint8)
    for i in range(n):
        b_i = check_point(msg_b[i * POINT_BYTES : (i + 1) * POINT_BYTES], role, f"msg_b point {i}")
        k0 = _mul(a, b_i, role)
        k1 = sodium.crypto_core_ed25519_sub(k0, a_a)
        keys[i, 0] = np.frombuffer(kdf(i, a_point, b_i, k0), dtype=np.uint8)
        keys[i, 1] = np.frombuffer(kdf(i, a_point, b_i, k1), dtype=np.uint8)
    return keys
