"""Joint pseudonyms: one token per person across parties, that no single party can compute.

Every party P_i holds a secret X25519 scalar k_i (fresh per run, from `os.urandom`; it
never leaves P_i). The token of identifier x is

    token(x) = (k_1 * k_2 * ... * k_n) * H(x)

with `H` the PSI hash to Curve25519 or its twist (`protocols/psi/curve.py`) under a
per-run salt. Scalar multiplication commutes, so every party that holds x gets the same
token; recomputing a token, or testing a guess of x against one, needs every party's
scalar.

Steps for party P_i's identifiers (all parties run them at once):

1. `step1_mask` at P_i: hash its identifiers and blind them with a fresh one-time
   scalar r_i (not k_i), so that nobody else ever sees P_i's final tokens:
   M = r_i * H(X_i).
2. `step2_blind` at each other party P_j in ring order: M <- k_j * M; the message goes
   on to the next party and finally back to P_i.
3. `step3_unmask` at P_i: M <- (k_i / r_i) * M = token(X_i), in P_i's input order.

Authorised re-identification of tokens, with the owner O of the identifiers:

4. `step_strip` at every party P_j other than O, in turn: M <- (1 / k_j) * M.
5. `step_match` at O: M is now k_O * H(x); O compares it with k_O * H(y) for its own
   identifiers y and returns them (None where O does not hold the identifier).

What each party learns: the messages of steps 1-2 and 4 are points blinded by at least
one scalar the receiver lacks (pseudorandom under DDH); the sizes of the other parties'
identifier lists; nothing about which identifiers they share (no party sees another
party's tokens). In step 5, O learns which of its identifiers the tokens stand for.

Arithmetic. X25519 clamps its scalar to 2^254 + 8m (0 <= m < 2^251). A blinded point lies
in the prime-order subgroup of the curve (order L_CURVE) or of its twist (order
L_TWIST), where only the scalar modulo that order matters. Dividing by a scalar (steps
3 and 4) needs a multiplier that is no clamped scalar in general; `multiply` applies any
multiplier s as two X25519 calls with clamped scalars c1, c2 with c1 * c2 = s modulo the
order of the point's group, drawn afresh until such a pair exists (half the draws on the
curve, a quarter on the twist), after sorting the points by their group (a Legendre
symbol). Costs: one X25519 per identifier per party (steps 1-2), two more at the owner
(step 3), two per party and identifier for a re-identification.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from cipherray.protocols.psi.curve import (
    POINT_DTYPE,
    BlindingKey,
    blind,
    hash_to_points,
    points_from_bytes,
)

P = 2**255 - 19
A = 486662
L_CURVE = 2**252 + 27742317777372353535851937790883648493  # prime order, curve subgroup
L_TWIST = 2**253 - 55484635554744707071703875581767296995  # prime order, twist subgroup
DOMAIN = b"cipherray/deid/joint/v1"
TOKEN_HEX = 64  # characters of a token (32 bytes)


class JointKey:
    """A party's secret scalar for joint pseudonyms; its repr never shows it."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise ValueError("an X25519 scalar is 32 bytes")
        self.raw = bytes(raw)

    @classmethod
    def generate(cls) -> JointKey:
        """A fresh scalar from the OS CSPRNG."""
        return cls(os.urandom(32))

    @property
    def scalar(self) -> int:
        """The clamped scalar X25519 multiplies by (RFC 7748)."""
        return clamp(self.raw)

    @property
    def blinding_key(self) -> BlindingKey:
        return BlindingKey(self.raw)

    def __repr__(self) -> str:
        return "<JointKey (secret)>"


def clamp(raw: bytes) -> int:
    """RFC 7748's decodeScalar25519: clear bits 0-2 and 255, set bit 254."""
    k = int.from_bytes(raw, "little")
    return (k & ~7 & ((1 << 255) - 1)) | (1 << 254)


def new_salt() -> bytes:
    """The per-run salt (32 bytes from the OS CSPRNG), shared by all parties."""
    return os.urandom(32)


def identifier_bytes(values: Iterable) -> tuple[list[bytes], np.ndarray]:
    """Identifiers as UTF-8 of `str(value)` (as the keyed pseudonyms do) and the mask of
    present ones (None / NaN / NaT are missing and get no token)."""
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    present = ~series.isna().to_numpy()
    ids = [str(v).encode() for v, ok in zip(series.tolist(), present) if ok]
    return ids, present


def hash_ids(ids: list[bytes], salt: bytes) -> np.ndarray:
    """H(x) for each identifier: the PSI hash under a salt bound to this protocol."""
    run_salt = hashlib.blake2b(DOMAIN + salt, digest_size=32).digest()
    return hash_to_points(ids, run_salt)


def on_twist(points: np.ndarray) -> np.ndarray:
    """True where a u-coordinate lies on the twist (u^3 + A u^2 + u is a non-square)."""
    import gmpy2

    out = np.zeros(len(points), dtype=bool)
    for i, b in enumerate(points.tolist()):
        u = int.from_bytes(b, "little") % P
        out[i] = gmpy2.legendre((u * u * u + A * u * u + u) % P, P) == -1
    return out


def clamped_pair(s: int, order: int) -> tuple[bytes, bytes]:
    """Two clamped X25519 scalars c1, c2 (as 32 raw bytes) with c1 * c2 = s mod `order`.

    1. Draw c1 = 2^254 + 8m from the OS CSPRNG.
    2. c2 must be = s / c1 mod order, a multiple of 8, in [2^254, 2^255): the one
       candidate of the right residue mod 8 is checked; otherwise draw again.
    """
    s %= order
    if s == 0:
        raise ValueError("the multiplier is 0 in the group")
    lo, hi = 1 << 254, 1 << 255
    inv8 = pow(order, -1, 8)
    while True:
        c1 = clamp(os.urandom(32))
        target = s * pow(c1, -1, order) % order
        t = (-target * inv8) % 8  # target + t * order is a multiple of 8
        c2 = target + t * order
        c2 += ((lo - c2 + 8 * order - 1) // (8 * order)) * 8 * order if c2 < lo else 0
        if lo <= c2 < hi:
            return c1.to_bytes(32, "little"), c2.to_bytes(32, "little")


def multiply(points: np.ndarray, s_curve: int, s_twist: int) -> np.ndarray:
    """s * Q for each point Q of a prime-order subgroup: s_curve on the curve, s_twist on
    the twist (any integers, not only clamped scalars); order kept."""
    out = np.empty(len(points), dtype=POINT_DTYPE)
    twist = on_twist(points)
    for sel, s, order in ((~twist, s_curve, L_CURVE), (twist, s_twist, L_TWIST)):
        if not sel.any():
            continue
        c1, c2 = clamped_pair(s, order)
        out[sel] = blind(blind(points[sel], BlindingKey(c1)), BlindingKey(c2))
    return out


def tokens_hex(points: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Tokens as 64-char hex strings in input order (None where the identifier is missing)."""
    out = np.full(len(present), None, dtype=object)
    out[present] = [b.hex() for b in points.tolist()]
    return out


def tokens_to_points(tokens: Iterable) -> tuple[np.ndarray, np.ndarray]:
    """Points of hex tokens and the mask of present ones; a malformed token: ValueError."""
    tokens = list(tokens)
    present = np.array([t is not None and t == t for t in tokens], dtype=bool)
    blobs = []
    for i, t in enumerate(tokens):
        if not present[i]:
            continue
        if not isinstance(t, str) or len(t) != TOKEN_HEX:
            raise ValueError(f"token {i} is not a {TOKEN_HEX}-character hex string")
        try:
            blobs.append(bytes.fromhex(t))
        except ValueError:
            raise ValueError(f"token {i} is not a {TOKEN_HEX}-character hex string") from None
    return (points_from_bytes(blobs) if blobs else np.empty(0, POINT_DTYPE)), present


# -- the steps -------------------------------------------------------------------------


def step1_mask(values: Iterable, salt: bytes) -> tuple[np.ndarray, JointKey, np.ndarray]:
    """Step 1 at the owner: (r * H(x) for its present identifiers, r, present mask)."""
    ids, present = identifier_bytes(values)
    mask = JointKey.generate()
    points = hash_ids(ids, salt)
    return (blind(points, mask.blinding_key) if len(ids) else points), mask, present


def step2_blind(points: np.ndarray, key: JointKey) -> np.ndarray:
    """Step 2 at every other party: k * M, order kept."""
    return blind(points, key.blinding_key) if len(points) else points


def step3_unmask(
    points: np.ndarray, key: JointKey, mask: JointKey, present: np.ndarray
) -> np.ndarray:
    """Step 3 at the owner: (k / r) * M, as hex tokens in its input order."""
    if len(points):
        k, r = key.scalar, mask.scalar
        points = multiply(points, k * pow(r, -1, L_CURVE), k * pow(r, -1, L_TWIST))
    return tokens_hex(points, present)


def step_strip(points: np.ndarray, key: JointKey) -> np.ndarray:
    """Step 4 at a party other than the owner: (1 / k) * M."""
    if not len(points):
        return points
    k = key.scalar
    return multiply(points, pow(k, -1, L_CURVE), pow(k, -1, L_TWIST))


def step_match(
    points: np.ndarray, present: np.ndarray, values: Iterable, salt: bytes, key: JointKey
) -> np.ndarray:
    """Step 5 at the owner: its identifiers for the stripped tokens (None if not held)."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    ids, held = identifier_bytes(series)
    originals = series.to_numpy(dtype=object)[held]
    mine = step2_blind(hash_ids(ids, salt), key)
    index = {b: i for i, b in enumerate(mine.tolist())}
    out = np.full(len(present), None, dtype=object)
    found = [index.get(b) for b in points.tolist()]
    out[present] = [None if i is None else originals[i] for i in found]
    return out
