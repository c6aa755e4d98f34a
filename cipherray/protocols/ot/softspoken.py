"""SoftSpokenOT extension (semi-honest; Roy, CRYPTO 2022): IKNP's correlation
q_j = t_j xor c_j * delta from small-field subfield VOLE, with 128 / k bits of traffic per
OT instead of IKNP's 128.

Parties as in :mod:`.iknp`: S, the extension sender, holds delta in {0,1}^128; R, the
extension receiver, holds choice bits c in {0,1}^m. kappa = 128 is cut into
B = kappa / k blocks of k bits; block b of delta is Delta_b in {0,1}^k (bits b k .. b k + k - 1
of delta, least significant first), read as an integer < 2^k.

Setup: one (2^k - 1)-out-of-2^k punctured OT per block. R knows 2^k seeds s_{b,x}
(x < 2^k, 32-byte AES-256 keys); S knows every s_{b,x} with x != Delta_b and nothing of
s_{b,Delta_b}. Construction used here: 2^k random 1-of-2 base OTs per block (the
Chou--Orlandi OTs of :mod:`.base`, B 2^k of them), R the base-OT sender with keys
(k_{b,x}^0, k_{b,x}^1), s_{b,x} = k_{b,x}^1, and S's choice bit in OT (b, x) is
[x != Delta_b]: S learns k_{b,x}^1 = s_{b,x} for x != Delta_b and only the unrelated
k^0 at x = Delta_b. It keeps the message flow of IKNP's setup (R -> S msg_a, S -> R msg_b);
the GGM-tree construction (k base OTs per block) needs a third message, R's corrected level
sums, after the base OTs (with random base OTs no 3-message variant exists: for k = 2 the
seed at x = 00 would have to be a function of both {k_0^0, k_1^1} and {k_0^1, k_1^0}).
1. R -> S: msg_a (32 bytes, the base-OT sender's point).
2. S: delta <- CSPRNG (16 bytes); for every block and x < 2^k the base-OT choice
   [x != Delta_b]; S -> R: msg_b (B 2^k points of 32 bytes). S keeps delta and the seeds
   s_{b,x} (x != Delta_b; the slot of Delta_b holds zeros).
3. R derives every (k^0, k^1) and keeps s_{b,x} = k_{b,x}^1.
What each learns: R sees only S's base-OT points, independent of the choices (:mod:`.base`),
so nothing about delta. S sees A and learns the seeds of its choices; s_{b,Delta_b} is the
other key of a base OT, pseudo-random to S.

Extension, call number s of the session (OT indices start .. start + m - 1 as in IKNP):
4. R: for every block, G_x = G(s_{b,x}) (m bits; G = AES-256-CTR of
   :mod:`cipherray.protocols.prg` keyed by the seed, the bits of OTs 2^16 i .. 2^16 (i+1)
   from stream s * 2^32 + i, as in IKNP: a fresh stream per seed and call),
   u_b = XOR_x G_x and the k bit-planes v_{b,l} = XOR_{x : bit l of x = 1} G_x. Sends
   c_b = u_b xor c for every block: (B, ceil(m/8)) uint8 to S. The rows v_{b,l}, i.e.
   row b k + l of a 128-row matrix, transposed, are the t_j of R's ReceiverBatch.
5. S: w_{b,l} = XOR_{x != Delta_b} (x_l xor Delta_{b,l}) G_x = v_{b,l} xor Delta_{b,l} u_b
   (the term x = Delta_b has weight 0, so S needs no G_{Delta_b}); then
   w_{b,l} ^= Delta_{b,l} c_b = v_{b,l} xor Delta_{b,l} c. Computed without indexing by
   delta: S folds its seed array as it is (zeros at Delta_b) into planes v'_l and sum u'
   like R, and w_{b,l} = v'_l xor Delta_{b,l} (u' xor c_b), in which the zero seed's
   keystream has weight x_l xor Delta_{b,l} = 0 (one masked transpose, as IKNP's step 5).
   Transposed: q_j = t_j xor c_j delta, IKNP's correlation, so S's SenderBatch and R's
   ReceiverBatch are those of :mod:`.iknp`.
What each learns: S sees c_b = u_b xor c with u_b = XOR_x G_x including G(s_{b,Delta_b}),
a PRG output under a seed S lacks: a one-time pad on c for every block, so c_b is
pseudo-random and independent of c. R receives nothing in the extension and knows nothing
of delta, so the random / correlated / chosen OTs of steps 6-8 of :mod:`.iknp` (TCCR hash
H(q_j xor b delta, start + j)) hide m_{j, 1 - c_j} from R exactly as there; this module
reuses :func:`.iknp.take`, ``rot_*``, ``cot_*`` and ``ot_*`` unchanged. Semi-honest only:
a malicious R could send inconsistent c_b (SoftSpoken's consistency check is not here).

The hot loop (steps 4, 5): 2^k PRG expansions per block and their bit-weighted XORs.
:func:`cipherray.cpu_kernels.vole.planes` reduces them as a binary tree over x (level l: the
sum of the odd members of each pair goes into plane l, the pair sums go up a level), about
2 * 2^k XORs of m-bit vectors per block: natively (``vole_planes.cc``, VAES) a 2 KiB column
tile at a time with the keystreams never leaving L1, else with aes_ctr's keystreams and
numpy, a cache-sized column chunk (2^16 OTs) at a time.

Cost per OT (kappa = 128, B = 128 / k blocks): traffic 16 / k bytes (c; IKNP 16);
PRG B 2^k / 8 = 16 * 2^k / k bytes of AES-CTR keystream at each party (IKNP: 32 at R,
16 at S) and about as many bytes XORed; plus the 128-bit transpose and, for the outputs,
the TCCR hash as in IKNP. k = 2: 8 bytes, 32 B of keystream; k = 4: 4 bytes, 64 B;
k = 8: 2 bytes, 512 B. Setup: B 2^k base OTs (k = 4: 512, msg_b 16 KiB; k = 8: 4096,
128 KiB), a one-time cost per session.

Choice of k (DEFAULT_K = 4), measured with bench/ot_softspoken.py (both parties on one
core of a shared 2-core VAES host, random OTs with 16-byte outputs, m = 2^20 .. 2^22; rough):
IKNP 24-25 M ROT/s, k = 2 23-26 M/s, k = 4 22-24 M/s, k = 8 7.5-8.4 M/s (the keystream
grows as 2^k / k). On the 1 Gbit/s LAN model the link carries 7.8 M OT/s of IKNP, 15.6 M
of k = 2, 31 M of k = 4 and 62 M of k = 8, so k = 4 is the fastest end to end (compute- not
link-bound) at a quarter of IKNP's traffic; k = 8 halves the traffic again but is
compute-bound at a third of k = 4's rate and its setup takes 4096 base OTs (about 1 s).
For `x > y` through OTProvider: 5.1 KB per comparison with IKNP, 1.37 KB with k = 4.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np

from cipherray.cpu_kernels import bit_transpose, vole

from . import base
from .errors import OTError
from .iknp import (
    BLOCK,
    KAPPA,
    RECEIVER,
    SENDER,
    ReceiverBatch,
    SenderBatch,
    _choice_bits,
    _chunks,
    _count,
    _padded_bytes,
    cot_receiver,
    cot_sender,
    ot_receiver,
    ot_sender,
    rot_receiver,
    rot_sender,
    take,
)

DEFAULT_K = 4
KS = (1, 2, 4, 8)  # k must divide 128; k = 8 already needs 4096 base OTs

__all__ = [
    "DEFAULT_K",
    "ReceiverBatch",
    "ReceiverState",
    "SenderBatch",
    "SenderState",
    "bytes_per_ot",
    "check_k",
    "cot_receiver",
    "cot_sender",
    "ot_receiver",
    "ot_sender",
    "receiver_extend",
    "receiver_setup",
    "receiver_setup_finish",
    "rot_receiver",
    "rot_sender",
    "sender_extend",
    "sender_setup",
    "take",
]


def check_k(k: object, role: str = "OT") -> int:
    """``k`` as an int if it is one of KS, else OTError naming ``role`` and the setup."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or int(k) not in KS:
        raise OTError(f"{role}: setup: k must be one of {KS}, not {k!r}")
    return int(k)


def bytes_per_ot(k: int = DEFAULT_K) -> float:
    """Bytes R sends per OT in the extension (16 / k; IKNP: 16)."""
    return KAPPA / check_k(k, "OT") / 8


def _blocks(k: int) -> int:
    return KAPPA // k


# -- state ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceiverState:
    """R's state: the base-OT secret until setup finishes, then every seed
    s_{b,x}: (128 / k, 2^k, 32) uint8."""

    k: int
    secret: bytes | None = None
    msg_a: bytes | None = None
    seeds: np.ndarray | None = None
    calls: int = 0
    start: int = 0


@dataclass(frozen=True)
class SenderState:
    """S's state: delta (16,) uint8 and the seeds s_{b,x} (128 / k, 2^k, 32) uint8 it
    knows; the slot x = Delta_b of block b holds zeros (S never learns that seed)."""

    k: int
    delta: np.ndarray
    seeds: np.ndarray
    calls: int = 0
    start: int = 0


def _delta_blocks(delta: np.ndarray, k: int) -> np.ndarray:
    """(128 / k,) int64: Delta_b = bits b k .. b k + k - 1 of delta (LSB first)."""
    bits = np.unpackbits(delta, bitorder="little").reshape(_blocks(k), k).astype(np.int64)
    return (bits << np.arange(k, dtype=np.int64)).sum(axis=1)


# -- setup (punctured OTs from base OTs) ---------------------------------------------------------
def receiver_setup(k: int = DEFAULT_K) -> tuple[ReceiverState, bytes]:
    """Step 1 at R: its state and msg_a (32 bytes) for S. ``k`` must match S's."""
    k = check_k(k, RECEIVER)
    secret, msg_a = base.sender_first()
    return ReceiverState(k=k, secret=secret, msg_a=msg_a), msg_a


def sender_setup(msg_a: bytes, k: int = DEFAULT_K) -> tuple[SenderState, bytes]:
    """Step 2 at S: a fresh delta (CSPRNG) and the base OTs with choices [x != Delta_b];
    returns S's state and msg_b ((128 / k) 2^k * 32 bytes) for R."""
    k = check_k(k, SENDER)
    a_point = base.check_point(msg_a, SENDER, "msg_a")
    delta = np.frombuffer(os.urandom(BLOCK), dtype=np.uint8).copy()
    n = 1 << k
    dl = _delta_blocks(delta, k)
    choose = (np.arange(n)[None, :] != dl[:, None]).astype(np.uint8)  # (B, 2^k)
    keys, msg_b = base.receiver_choose(a_point, choose.reshape(-1))
    # keep k^1 = s_{b,x} where chosen; the slot of Delta_b (S holds k^0 there) is zeroed
    seeds = (keys.reshape(_blocks(k), n, base.KEY_BYTES) * choose[:, :, None]).astype(np.uint8)
    return SenderState(k=k, delta=delta, seeds=seeds), msg_b


def receiver_setup_finish(state: ReceiverState, msg_b: bytes) -> ReceiverState:
    """Step 3 at R: every seed s_{b,x} from S's msg_b."""
    if not isinstance(state, ReceiverState) or state.secret is None or state.msg_a is None:
        raise OTError(f"{RECEIVER}: setup: receiver_setup_finish needs receiver_setup's state")
    k = state.k
    keys = base.sender_keys(state.secret, state.msg_a, msg_b, _blocks(k) << k)
    seeds = np.ascontiguousarray(keys[:, 1].reshape(_blocks(k), 1 << k, base.KEY_BYTES))
    return ReceiverState(k=k, seeds=seeds)


# -- extension -----------------------------------------------------------------------------------
def receiver_extend(
    state: ReceiverState, choices: np.ndarray | int
) -> tuple[ReceiverState, ReceiverBatch, np.ndarray]:
    """Step 4 at R: (new state, its batch, c (128 / k, ceil(m/8)) uint8 for S).
    ``choices`` is an (m,) uint8 array of 0/1, or a count m for CSPRNG choice bits."""
    if not isinstance(state, ReceiverState) or state.seeds is None:
        raise OTError(f"{RECEIVER}: extend: setup is not finished (receiver_setup_finish)")
    bits, m = _choice_bits(choices)
    k, nblocks = state.k, _blocks(state.k)
    width = _padded_bytes(m)
    packed = np.zeros(width, dtype=np.uint8)
    packed[: -(-m // 8)] = np.packbits(bits, bitorder="little")
    t = np.empty((8 * width, BLOCK), dtype=np.uint8)
    c = np.empty((nblocks, width), dtype=np.uint8)
    for lo, hi, stream in _chunks(width, state.calls, RECEIVER):
        rows, u = vole.planes(state.seeds, k, hi - lo, stream)  # v_{b,l} at row b k + l; u_b
        np.bitwise_xor(u, packed[lo:hi], out=c[:, lo:hi])
        bit_transpose.transpose(rows, out=t[8 * lo : 8 * hi])
    batch = ReceiverBatch(t=t[:m], choices=bits, start=state.start)
    new = replace(state, calls=state.calls + 1, start=state.start + m)
    return new, batch, np.ascontiguousarray(c[:, : -(-m // 8)])


def check_c(c: object, m: int, k: int) -> None:
    """R's extension message for `m` OTs as S expects it: a (128 / k, ceil(m/8)) uint8
    array; else OTError (S checks it before using it, and so may a transport)."""
    m = _count(m, SENDER, "extend")
    nblocks, nbytes = _blocks(k), -(-m // 8)
    if not isinstance(c, np.ndarray):
        raise OTError(f"{SENDER}: extend: c must be a numpy array, not {type(c).__name__}")
    if c.dtype != np.uint8 or c.shape != (nblocks, nbytes):
        raise OTError(
            f"{SENDER}: extend: c must be a uint8 array of shape ({nblocks}, {nbytes}) for "
            f"{m} OTs (k = {k}), not {c.dtype} of shape {c.shape}"
        )


def base_ots(k: int) -> int:
    """The number of base OTs of the setup (the points in S's msg_b): (128 / k) 2^k."""
    return _blocks(k) << k


def sender_extend(state: SenderState, c: np.ndarray, m: int) -> tuple[SenderState, SenderBatch]:
    """Step 5 at S: (new state, its batch of m OTs) from R's c."""
    if not isinstance(state, SenderState):
        raise OTError(f"{SENDER}: extend: the state must come from softspoken.sender_setup")
    m = _count(m, SENDER, "extend")
    k = state.k
    nbytes = -(-m // 8)
    check_c(c, m, k)
    width = _padded_bytes(m)
    if nbytes != width:
        c = np.pad(c, ((0, 0), (0, width - nbytes)))
    # planes and sum of S's seeds as they are (the slot of Delta_b holds zeros, whose
    # keystream is garbage): w_l = v'_l xor Delta_{b,l} (u'_b xor c_b) gives that garbage
    # the weight x_l xor Delta_{b,l} = 0, so no step indexes or branches on delta
    mask = np.uint8(0) - np.unpackbits(state.delta, bitorder="little")  # 0xff where delta_i
    q = np.empty((8 * width, BLOCK), dtype=np.uint8)
    for lo, hi, stream in _chunks(width, state.calls, SENDER):
        rows, u = vole.planes(state.seeds, k, hi - lo, stream)
        np.bitwise_xor(u, c[:, lo:hi], out=u)
        # rows of v' xor Delta_{b,l} (u' xor c_b) = v xor delta_i * c, transposed
        bit_transpose.transpose_xor(rows, np.repeat(u, k, axis=0), mask, out=q[8 * lo : 8 * hi])
    batch = SenderBatch(q=q[:m], delta=state.delta, start=state.start)
    return replace(state, calls=state.calls + 1, start=state.start + m), batch
