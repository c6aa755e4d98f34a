"""IKNP OT extension (semi-honest): millions of random, correlated and chosen-message OTs
from 128 base OTs (Ishai–Kilian–Nissim–Petrank, CRYPTO 2003; the random-OT form of
Asharov–Lindell–Schneider–Zohner, CCS 2013).

Parties: S, the extension sender, holds a random delta in {0,1}^128; R, the extension
receiver, holds choice bits c in {0,1}^m. kappa = 128.

Setup (:mod:`.base`, Chou–Orlandi): R is the base-OT sender with seed pairs
(k_i^0, k_i^1); S is the base-OT receiver with choice bits delta and learns k_i^{delta_i}.
1. R -> S: msg_a (the base-OT sender's point).
2. S -> R: msg_b (128 receiver points). S keeps delta and k_i^{delta_i}.
3. R derives (k_i^0, k_i^1).

Extension, call number s of the session (both parties count calls; the batch's OTs get
the indices start .. start + m - 1, start = OTs made before this call):
4. R: t^i = G(k_i^0), u^i = t^i xor G(k_i^1) xor c for i < 128 (G = AES-256-CTR of
   :mod:`cipherray.protocols.prg` keyed by the seed: the bits of OTs 2^16 k .. 2^16 (k+1)
   come from stream s * 2^32 + k, so the matrix is made and transposed a cache-sized
   chunk at a time); sends u = (128, ceil(m/8)) uint8 to S. The rows t_j (j < m) of the
   transposed matrix form the ReceiverBatch.
5. S: q^i = G(k_i^{delta_i}) xor delta_i * u^i = t^i xor delta_i * c, so that the rows of
   the transpose are q_j = t_j xor c_j * delta: the SenderBatch.
What each learns: S sees u^i = t^i xor G(k_i^1) xor c. For delta_i = 0 it holds
k_i^0 only, so G(k_i^1) is a one-time pad on t^i xor c; for delta_i = 1 it holds k_i^1
only and u^i xor G(k_i^1) = t^i xor c with t^i = G(k_i^0) a pad it cannot remove. Either
way u is pseudo-random and independent of c. R receives nothing in the extension.

Outputs, from a batch (spend every batch once: take() splits it into pieces):
6. Random OT: S's messages m_{j,0} = H(q_j, start + j), m_{j,1} = H(q_j xor delta,
   start + j); R's m_{j, c_j} = H(t_j, start + j). The other message needs
   q_j xor (1 - c_j) delta = t_j xor delta, i.e. delta, which R never sees.
7. Correlated OT over Z_2^64 (L ring elements per OT): S keeps x0_j = m_{j,0} and sends
   d_j = x0_j + corr_j - m_{j,1}; R outputs m_{j,c_j} + c_j * d_j = x0_j + c_j * corr_j.
   R learns only m_{j,c_j} and d_j (masked by m_{j,1}, which it lacks when c_j = 0).
8. Chosen-message OT: S sends (M_{j,0} xor m_{j,0}, M_{j,1} xor m_{j,1}); R unmasks the
   one of its choice.

H is the tweakable circular correlation-robust hash of Guo–Katz–Wang–Yu (S&P 2020,
their TCCR) from a fixed-key AES-128 permutation pi:
H(x, i) = pi(pi(x) xor i) xor pi(x), with the tweak i = (OT index, output block) as one
128-bit block (index in the low 8 bytes, little-endian). Outputs longer than 16 bytes are
the blocks b = 0, 1, ... of H(x, (index, b)). The key of pi is public (SHA-256 of a label);
tweaks never repeat within a session because every OT index is used once.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields, replace

import numpy as np

from cipherray.cpu_kernels import aes_ctr, bit_transpose, ot_hash

from . import base
from .errors import OTError

KAPPA = base.KAPPA
BLOCK = KAPPA // 8  # 16 bytes: one row of the transposed matrix
CHUNK_BYTES = 1 << 13  # PRG matrix columns made at a time: 2^16 OTs, 1 MiB for 128 rows
HASH_KEY = hashlib.sha256(b"cipherray/ot/iknp/fixed-key-aes/v1").digest()[:16]
SENDER, RECEIVER = "OT sender", "OT receiver"


# -- state and batches ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceiverState:
    """R's state: the base-OT secret until setup finishes, then the seed pairs (128, 2, 32)."""

    secret: bytes | None = None
    msg_a: bytes | None = None
    seeds: np.ndarray | None = None
    calls: int = 0  # extension calls so far (the PRG stream of the next one)
    start: int = 0  # OTs made so far (the first index of the next batch)


@dataclass(frozen=True)
class SenderState:
    """S's state: delta (16,) uint8 and its seeds k_i^{delta_i} (128, 32)."""

    delta: np.ndarray
    seeds: np.ndarray
    calls: int = 0
    start: int = 0


class _Batch:
    """len(batch): its number of OTs (the rows of its first array field)."""

    def __len__(self) -> int:
        return int(getattr(self, fields(self)[0].name).shape[0])


@dataclass(frozen=True)
class ReceiverBatch(_Batch):
    """m OTs at R: t (m, 16) uint8, its choice bits (m,) uint8, first OT index start."""

    t: np.ndarray
    choices: np.ndarray
    start: int


@dataclass(frozen=True)
class SenderBatch(_Batch):
    """m OTs at S: q (m, 16) uint8 with q_j = t_j xor c_j * delta, delta (16,), start."""

    q: np.ndarray
    delta: np.ndarray
    start: int


# -- setup (base OTs) ----------------------------------------------------------------------------
def receiver_setup() -> tuple[ReceiverState, bytes]:
    """Step 1 at R: its state and msg_a (32 bytes) for S."""
    secret, msg_a = base.sender_first()
    return ReceiverState(secret=secret, msg_a=msg_a), msg_a


def sender_setup(msg_a: bytes) -> tuple[SenderState, bytes]:
    """Step 2 at S: a fresh delta (CSPRNG), the base OTs with delta's bits as choices;
    returns S's state and msg_b (128 * 32 bytes) for R."""
    a_point = base.check_point(msg_a, SENDER, "msg_a")
    delta = np.frombuffer(os.urandom(BLOCK), dtype=np.uint8).copy()
    bits = np.unpackbits(delta, bitorder="little")
    seeds, msg_b = base.receiver_choose(a_point, bits)
    return SenderState(delta=delta, seeds=seeds), msg_b


def receiver_setup_finish(state: ReceiverState, msg_b: bytes) -> ReceiverState:
    """Step 3 at R: the seed pairs from S's msg_b."""
    if not isinstance(state, ReceiverState) or state.secret is None or state.msg_a is None:
        raise OTError(f"{RECEIVER}: setup: receiver_setup_finish needs receiver_setup's state")
    seeds = base.sender_keys(state.secret, state.msg_a, msg_b, KAPPA)
    return ReceiverState(seeds=seeds)


# -- extension -----------------------------------------------------------------------------------
def _padded_bytes(m: int) -> int:
    """Row length of the PRG matrix: m bits rounded up to whole 16-byte tiles."""
    return -(-m // KAPPA) * BLOCK


def _count(m: object, role: str, step: str) -> int:
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 0:
        raise OTError(f"{role}: {step}: the number of OTs must be an integer >= 0, not {m!r}")
    return int(m)


def _choice_bits(choices: object) -> tuple[np.ndarray, int]:
    if isinstance(choices, int | np.integer) and not isinstance(choices, bool):
        m = _count(choices, RECEIVER, "extend")
        packed = np.frombuffer(os.urandom(-(-m // 8)), dtype=np.uint8)
        return np.unpackbits(packed, count=m, bitorder="little"), m
    if not isinstance(choices, np.ndarray):
        raise OTError(
            f"{RECEIVER}: extend: choices must be a uint8 array or a count, "
            f"not {type(choices).__name__}"
        )
    if choices.dtype != np.uint8 or choices.ndim != 1:
        raise OTError(
            f"{RECEIVER}: extend: choices must be a 1-D uint8 array, "
            f"not {choices.dtype} of shape {choices.shape}"
        )
    if choices.size and choices.max() > 1:
        raise OTError(f"{RECEIVER}: extend: choices must be 0 or 1")
    return np.ascontiguousarray(choices), int(choices.shape[0])


def _chunks(width: int, calls: int, role: str):
    """(lo, hi, stream) for the column chunks of a PRG matrix of ``width`` bytes a row."""
    if calls >= 1 << 32:
        raise OTError(f"{role}: extend: more than 2^32 extensions in one session")
    for k, lo in enumerate(range(0, width, CHUNK_BYTES)):
        yield lo, min(lo + CHUNK_BYTES, width), (calls << 32) | k


def receiver_extend(
    state: ReceiverState, choices: np.ndarray | int
) -> tuple[ReceiverState, ReceiverBatch, np.ndarray]:
    """Step 4 at R: (new state, its batch, u (128, ceil(m/8)) uint8 for S). ``choices`` is
    an (m,) uint8 array of 0/1, or a count m for random choice bits from the CSPRNG."""
    if not isinstance(state, ReceiverState) or state.seeds is None:
        raise OTError(f"{RECEIVER}: extend: setup is not finished (receiver_setup_finish)")
    bits, m = _choice_bits(choices)
    width = _padded_bytes(m)
    packed = np.zeros(width, dtype=np.uint8)
    packed[: -(-m // 8)] = np.packbits(bits, bitorder="little")
    seeds0 = np.ascontiguousarray(state.seeds[:, 0])
    seeds1 = np.ascontiguousarray(state.seeds[:, 1])
    t = np.empty((8 * width, BLOCK), dtype=np.uint8)
    u = np.empty((KAPPA, width), dtype=np.uint8)
    for lo, hi, stream in _chunks(width, state.calls, RECEIVER):
        t_rows = aes_ctr.keystreams(seeds0, hi - lo, stream)  # t^i
        u_rows = aes_ctr.keystreams(seeds1, hi - lo, stream)  # G(k_i^1), then u^i
        bit_transpose.transpose_acc(t_rows, u_rows, packed[lo:hi], out=t[8 * lo : 8 * hi])
        u[:, lo:hi] = u_rows
    batch = ReceiverBatch(t=t[:m], choices=bits, start=state.start)
    new = replace(state, calls=state.calls + 1, start=state.start + m)
    return new, batch, np.ascontiguousarray(u[:, : -(-m // 8)])


def check_u(u: object, m: int) -> None:
    """R's extension message for `m` OTs as S expects it: a (KAPPA, ceil(m/8)) uint8
    array; else OTError (S checks it before using it, and so may a transport)."""
    m = _count(m, SENDER, "extend")
    nbytes = -(-m // 8)
    if not isinstance(u, np.ndarray):
        raise OTError(f"{SENDER}: extend: u must be a numpy array, not {type(u).__name__}")
    if u.dtype != np.uint8 or u.shape != (KAPPA, nbytes):
        raise OTError(
            f"{SENDER}: extend: u must be a uint8 array of shape ({KAPPA}, {nbytes}) for "
            f"{m} OTs, not {u.dtype} of shape {u.shape}"
        )


def sender_extend(state: SenderState, u: np.ndarray, m: int) -> tuple[SenderState, SenderBatch]:
    """Step 5 at S: (new state, its batch of m OTs) from R's u."""
    if not isinstance(state, SenderState):
        raise OTError(f"{SENDER}: extend: the state must come from sender_setup")
    m = _count(m, SENDER, "extend")
    nbytes = -(-m // 8)
    check_u(u, m)
    width = _padded_bytes(m)
    if nbytes != width:
        u = np.pad(u, ((0, 0), (0, width - nbytes)))
    mask = np.uint8(0) - np.unpackbits(state.delta, bitorder="little")  # 0xff where delta_i
    q = np.empty((8 * width, BLOCK), dtype=np.uint8)
    for lo, hi, stream in _chunks(width, state.calls, SENDER):
        g = aes_ctr.keystreams(state.seeds, hi - lo, stream)  # G(k_i^{delta_i})
        # rows of g xor delta_i * u^i = t^i xor delta_i * c, transposed
        bit_transpose.transpose_xor(g, u[:, lo:hi], mask, out=q[8 * lo : 8 * hi])
    batch = SenderBatch(q=q[:m], delta=state.delta, start=state.start)
    return replace(state, calls=state.calls + 1, start=state.start + m), batch


def take(batch: SenderBatch | ReceiverBatch, lo: int, hi: int) -> SenderBatch | ReceiverBatch:
    """OTs lo .. hi - 1 of ``batch`` as a batch of their own (start adjusted)."""
    if isinstance(batch, SenderBatch):
        role = SENDER
    elif isinstance(batch, ReceiverBatch):
        role = RECEIVER
    else:
        raise OTError(f"OT: take: expected a SenderBatch or ReceiverBatch, not {type(batch)}")
    n = len(batch)
    ok = all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in (lo, hi))
    if not ok or not 0 <= lo <= hi <= n:
        raise OTError(f"{role}: take: asked for OTs [{lo}, {hi}) of a batch of {n}")
    lo, hi = int(lo), int(hi)
    if role == SENDER:
        return SenderBatch(q=batch.q[lo:hi], delta=batch.delta, start=batch.start + lo)
    return ReceiverBatch(t=batch.t[lo:hi], choices=batch.choices[lo:hi], start=batch.start + lo)


# -- the correlation-robust hash ----------------------------------------------------------------
def _hash(x: np.ndarray, start: int, nbytes: int, delta: np.ndarray | None = None) -> np.ndarray:
    """(m, nbytes) uint8: the blocks b < ceil(nbytes / 16) of H(x_j xor delta, (start + j, b))."""
    nblocks = -(-nbytes // BLOCK)
    out = ot_hash.tccr(HASH_KEY, x, start, nblocks, delta)
    return out if nblocks * BLOCK == nbytes else np.ascontiguousarray(out[:, :nbytes])


# -- outputs -------------------------------------------------------------------------------------
def _check_batch(batch: object, cls: type, role: str, step: str) -> None:
    if not isinstance(batch, cls):
        raise OTError(f"{role}: {step}: expected a {cls.__name__}, not {type(batch).__name__}")


def _check_nbytes(nbytes: object, role: str, step: str) -> int:
    if isinstance(nbytes, bool) or not isinstance(nbytes, int | np.integer) or nbytes < 1:
        raise OTError(f"{role}: {step}: nbytes must be a positive integer, not {nbytes!r}")
    return int(nbytes)


def rot_sender(sb: SenderBatch, nbytes: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Step 6 at S: the random messages (m0, m1), each (m, nbytes) uint8."""
    _check_batch(sb, SenderBatch, SENDER, "rot")
    nbytes = _check_nbytes(nbytes, SENDER, "rot")
    return _hash(sb.q, sb.start, nbytes), _hash(sb.q, sb.start, nbytes, sb.delta)


def rot_receiver(rb: ReceiverBatch, nbytes: int = 16) -> np.ndarray:
    """Step 6 at R: m_{c_j} for every OT, (m, nbytes) uint8."""
    _check_batch(rb, ReceiverBatch, RECEIVER, "rot")
    nbytes = _check_nbytes(nbytes, RECEIVER, "rot")
    return _hash(rb.t, rb.start, nbytes)


def _matrix(a: object, dtype: type, m: int, role: str, step: str, what: str) -> np.ndarray:
    """``a`` if it is an (m, width >= 1) array of ``dtype``, else OTError."""
    if not isinstance(a, np.ndarray):
        raise OTError(f"{role}: {step}: {what} must be a numpy array, not {type(a).__name__}")
    if a.dtype != dtype or a.ndim != 2 or a.shape[0] != m or a.shape[1] < 1:
        width = "L" if dtype == np.uint64 else "nbytes"
        raise OTError(
            f"{role}: {step}: {what} must be a {np.dtype(dtype)} array of shape ({m}, {width}), "
            f"not {a.dtype} of shape {a.shape}"
        )
    return a


def cot_sender(sb: SenderBatch, corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 7 at S: (x0, d), both (m, L) uint64; x0 stays at S, d goes to R."""
    _check_batch(sb, SenderBatch, SENDER, "cot")
    corr = _matrix(corr, np.uint64, len(sb), SENDER, "cot", "corr")
    m0, m1 = rot_sender(sb, 8 * corr.shape[1])
    x0 = m0.view(np.uint64)
    d = x0 + corr
    d -= m1.view(np.uint64)
    return x0, d


def cot_receiver(rb: ReceiverBatch, d: np.ndarray) -> np.ndarray:
    """Step 7 at R: x0 + c_j * corr_j, (m, L) uint64, from S's d."""
    _check_batch(rb, ReceiverBatch, RECEIVER, "cot")
    d = _matrix(d, np.uint64, len(rb), RECEIVER, "cot", "d")
    out = rot_receiver(rb, 8 * d.shape[1]).view(np.uint64)
    out += d * rb.choices[:, None].astype(np.uint64)
    return out


def ot_sender(sb: SenderBatch, m0: np.ndarray, m1: np.ndarray) -> np.ndarray:
    """Step 8 at S: d (2, m, nbytes) uint8 for R: both messages under their OT pads."""
    _check_batch(sb, SenderBatch, SENDER, "ot")
    m0 = _matrix(m0, np.uint8, len(sb), SENDER, "ot", "m0")
    m1 = _matrix(m1, np.uint8, len(sb), SENDER, "ot", "m1")
    if m0.shape != m1.shape:
        raise OTError(f"{SENDER}: ot: m0 {m0.shape} and m1 {m1.shape} differ in shape")
    p0, p1 = rot_sender(sb, m0.shape[1])
    return np.stack([p0 ^ m0, p1 ^ m1])


def ot_receiver(rb: ReceiverBatch, d: np.ndarray) -> np.ndarray:
    """Step 8 at R: the chosen messages (m, nbytes) uint8 from S's d."""
    _check_batch(rb, ReceiverBatch, RECEIVER, "ot")
    m = len(rb)
    if not isinstance(d, np.ndarray):
        raise OTError(f"{RECEIVER}: ot: d must be a numpy array, not {type(d).__name__}")
    if d.dtype != np.uint8 or d.ndim != 3 or d.shape[:2] != (2, m) or d.shape[2] < 1:
        raise OTError(
            f"{RECEIVER}: ot: d must be a uint8 array of shape (2, {m}, nbytes), "
            f"not {d.dtype} of shape {d.shape}"
        )
    mask = (np.uint8(0) - rb.choices)[:, None]  # 0xff where c_j = 1
    chosen = d[0] ^ ((d[0] ^ d[1]) & mask)
    return chosen ^ rot_receiver(rb, d.shape[2])
