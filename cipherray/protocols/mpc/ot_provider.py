"""`OTProvider`: every kind of correlated randomness for two members, no dealer, from
oblivious transfer (IKNP extension of `cipherray.protocols.ot`, or SoftSpokenOT with
`OTProvider(extension="softspoken")`: the same batches, 16 / k bytes per OT in step 2
instead of 16; k = `softspoken_k`, default 4).

Member 0 and member 1 run two OT-extension instances, one in each direction:
instance d has member d as the extension receiver R (random choice bits) and member
1 - d as the extension sender S (holds delta). Each instance is extended in chunks of
`chunk` OTs (or more when one request needs more) and the chunks are spent in order
with `ot.take`, so every OT index is used once. Every message below is counted by the
engine under "offline/setup" (base OTs) or "offline/<kind>".

1. Setup, once per instance (step "offline/setup"): R -> S base-OT message a,
   S -> R base-OT message b (`ot.receiver_setup`, `ot.sender_setup`,
   `ot.receiver_setup_finish`). R learns nothing about delta, S nothing about R's seeds.
2. Extension (when a request needs more OTs than the current chunk holds): R draws
   random choice bits from a CSPRNG and sends the IKNP matrix u (16 bytes per OT) to
   S. R learns its outputs t_j, S learns q_j = t_j ^ c_j delta and nothing of c_j.
3. Kinds, all from the random choice bits of step 2 (a random operand IS the choice
   bits, so no derandomisation message is needed):

   * "mul" (x_shape, y_shape), "square", "matmul" - Gilboa products over correlated OT
     in Z_2^64. For a cross term u_R * v_S (u held by R, v by S): u_R is made of R's
     choice bits (64 per element), S is the COT sender with correlations
     v_S * 2^j (for element e of u and bit j: L words, the values of v that e
     multiplies: L = 1 for "mul"/"square" without broadcasting, L = n for a
     (m,k) @ (k,n) matmul). S sends d (8 L bytes per COT) and keeps -sum x0; R keeps
     sum x_c; the two sum to u_R * v_S. "mul" and "matmul" have two cross terms,
     a_0 b_1 (R = 0) and a_1 b_0 (R = 1); the operand with fewer elements supplies
     the bits. "square" has one, 2 a_0 a_1. c_i = a_i b_i + its cross shares.
     What a member learns: its own random operand shares and uniformly masked COT
     values; nothing about the other's operand.
   * "and" (shape of uint64 words) - 64 AND triples per word from one random OT per
     cross term: in instance d, R's choice bit is a_R, S's messages (x0, x1) give
     b_S = lsb(x0) ^ lsb(x1) and v_S = lsb(x0); R gets u_R = lsb(x_{a_R}), and
     u_R ^ v_S = a_R b_S. c_i = a_i b_i ^ u_i ^ v_i. No message besides step 2.
   * "and_pair" (shape) - two AND triples per bit sharing the input a, from the same
     two random OTs as one "and" triple: the ROT messages carry 2 bits, bit k giving
     b_S[k] = bit k of (x0 ^ x1), v_S[k] = bit k of x0 and u_R[k] = bit k of x_{a_R};
     c_i[k] = a_i b_i[k] ^ u_i[k] ^ v_i[k]. For the millionaires' tree, whose nodes
     AND one value with two others.
   * "rot_n" ((k, m, d)) - k random 1-out-of-2^m OTs with 2-bit messages, member d
     receiving: m random OTs of instance d per OT with 2^(m+1)-bit messages; the
     sender's mask of index i XORs slice i of the strings m_{j, i_j}, the receiver's
     index is its m choice bits (`millionaire.py` explains why the unchosen masks
     stay hidden and independent). No message besides step 2.
   * "bit" (shape) - r = r_0 ^ r_1 with r_0 R's choice bit (instance 0) and r_1 from
     member 1's CSPRNG; the product r_0 r_1 by one COT (correlation r_1, 1 word), so
     the arithmetic shares are r_i - 2 (r_0 r_1)_i.
   * "wrap" (shape) - each member draws r_i; theta_r = (1-s0)(1-s1)c - s0 s1 (1-c),
     s_i = sign bit of r_i, c = [low63(r_0) + low63(r_1) >= 2^63] (the carry into
     bit 63, computed as bit 63 of the shared sum of the low 63 bits by the engine's
     A2B circuit, `binary.msb_xor`, on AND triples of this provider); then two AND
     layers on bit-packed words and one B2A (random bits of this provider) give
     additive shares of theta_r. See `wrap_count`.

Costs per element (IKNP, 16 bytes of u per OT, plus 8 bytes per COT word):
"mul"/"matmul" 2 * 64 COTs (2 * 64 * (16 + 8 L) bytes), "square" 64 COTs, "and"
2 ROTs per triple (2 * 64 * 16 = 2048 bytes per word), "bit" 1 COT (24 bytes),
"and_pair" 2 ROTs per pair of triples, "rot_n" m ROTs per OT (16 m bytes), "wrap" one
millionaires' comparison (94 ROTs for m = 4) + 4 AND gates + 2 bits. The base OTs of
step 1 are a fixed cost per instance. The provider sets `millionaire_m` (default 4),
so the comparisons of its two members take the millionaires' protocol of
`millionaire.py`: per comparison 4 * 16 = 64 ROTs for the leaves' 1-of-16 OTs and
2 * 15 for the tree's paired ANDs, 94 random OTs in all (about 1.5 KB of IKNP matrix)
instead of the 362 of the bit-sliced A2B carry tree (`binary.py` step 3', still used
with `millionaire_m=None`), itself down from the per-element adder's 1536.
With SoftSpoken (`extension="softspoken"`) every 16 bytes of u above become 16 / k (4 for
k = 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from cipherray.protocols import ot, prg
from cipherray.protocols.mpc import common, messages
from cipherray.protocols.mpc.engine import Engine, PerParty
from cipherray.protocols.mpc.providers import KINDS, Provider, normalise_request
from cipherray.protocols.mpc.ring import broadcast_shape, matmul_shape, matmul_u64

_ONE = np.uint64(1)
_SHIFTS = np.arange(64, dtype=np.uint64)
DEFAULT_CHUNK = 1 << 20
BLOCK_WORDS = 1 << 23  # COT words (x0 / d) per message block: 64 MiB


# ---------------------------------------------------------------- geometry helpers


def _size(shape: tuple) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _pack_bits(choices: np.ndarray) -> np.ndarray:
    """(64 e,) 0/1 choice bits -> (e,) uint64, bit j of element e = choices[64 e + j]."""
    return np.packbits(np.asarray(choices, dtype=np.uint8), bitorder="little").view("<u8")


def _plan(kind: str, shapes: tuple, bits_of: str) -> dict:
    """The geometry of a Gilboa cross term (public). The bits operand U (shape us) is cut
    into G groups of R elements; group g's output is the L-vector
    sum_r U[g, r] * V[g, r, :]. `bits_of` is "x" or "y" (which operand gives the bits)."""
    xs, ys = shapes[0], shapes[-1]
    if kind in ("mul", "square"):
        out = broadcast_shape(xs, ys)
        us = xs if bits_of == "x" else ys
        return {"kind": "mul", "us": us, "vs": ys if bits_of == "x" else xs, "out": out,
                "G": _size(us), "R": 1, "L": _size(out) // max(1, _size(us))}  # fmt: skip
    out = matmul_shape(xs, ys)
    x2 = xs if len(xs) == 2 else (1, xs[0])
    y2 = ys if len(ys) == 2 else (ys[0], 1)
    m, k, n = x2[0], x2[1], y2[1]
    if bits_of == "x":
        return {"kind": "mm_x", "us": xs, "vs": ys, "out": out, "G": m, "R": k, "L": n,
                "x2": x2, "y2": y2}  # fmt: skip
    return {"kind": "mm_y", "us": ys, "vs": xs, "out": out, "G": n, "R": k, "L": m,
            "x2": x2, "y2": y2}  # fmt: skip


def _mul_order(p: dict) -> np.ndarray:
    """For "mul": output positions grouped by the bits-operand element they use."""
    idx = np.arange(_size(p["us"]), dtype=np.int64).reshape(p["us"])
    full = np.broadcast_to(idx, p["out"]).reshape(-1)
    return np.argsort(full, kind="stable")


def _bits_grid(p: dict, u: np.ndarray) -> np.ndarray:
    """The bits operand in (G, R) order."""
    if p["kind"] == "mul":
        return u.reshape(p["G"], 1)
    if p["kind"] == "mm_x":
        return u.reshape(p["x2"])
    return u.reshape(p["y2"]).T  # (n, k)


def _from_grid(p: dict, grid: np.ndarray) -> np.ndarray:
    if p["kind"] == "mm_y":
        return np.ascontiguousarray(grid.T).reshape(p["us"])
    return grid.reshape(p["us"])


def _corr_vectors(p: dict, v: np.ndarray, g0: int, g1: int) -> np.ndarray:
    """V[g, r, :] for groups g0..g1: shape (g1-g0, R, L)."""
    if p["kind"] == "mul":
        full = np.broadcast_to(v, p["out"]).reshape(-1)
        if tuple(p["us"]) != tuple(p["out"]):
            full = full[_mul_order(p)]
        return full.reshape(p["G"], 1, p["L"])[g0:g1]
    if p["kind"] == "mm_x":
        y = v.reshape(p["y2"])  # (k, n)
        return np.broadcast_to(y[None], (g1 - g0, p["R"], p["L"]))
    x = v.reshape(p["x2"])  # (m, k); group g = column j of y, V[g, r, :] = x[:, r]
    return np.broadcast_to(x.T[None], (g1 - g0, p["R"], p["L"]))


def _to_out(p: dict, groups: np.ndarray) -> np.ndarray:
    """(G, L) group outputs -> the product's shape."""
    if p["kind"] == "mul":
        if tuple(p["us"]) == tuple(p["out"]):
            return groups.reshape(p["out"])
        out = np.empty(_size(p["out"]), dtype=np.uint64)
        out[_mul_order(p)] = groups.reshape(-1)
        return out.reshape(p["out"])
    if p["kind"] == "mm_x":
        return groups.reshape(p["out"])
    return np.ascontiguousarray(groups.T).reshape(p["out"])


def _check_slice(batch: Any, lo: int, hi: int, who: str) -> Any:
    size = len(batch.choices) if isinstance(batch, ot.ReceiverBatch) else len(batch.q)
    if not 0 <= lo <= hi <= size:
        raise ot.OTError(
            f"{who}: take: OTs {lo}..{hi} asked but the extended batch holds {size} "
            "(more correlations asked than prepared)"
        )
    return ot.take(batch, lo, hi)


# ------------------------------------------------------------ member-side steps


EXTENSIONS = ("iknp", "softspoken")
# R's base-OT point as S expects it (32 bytes, a point of the group)
_MSG_A = partial(ot.base.check_point, role="OT sender", what="msg_a")


def _ext(state: Any) -> Any:
    """The OT-extension module a setup state belongs to (the states differ in type)."""
    soft = isinstance(state, ot.softspoken.ReceiverState | ot.softspoken.SenderState)
    return ot.softspoken if soft else ot


@common.member_step
def _setup_r(k: int | None = None) -> tuple:
    return ot.receiver_setup() if k is None else ot.softspoken.receiver_setup(k)


@common.member_step
def _setup_s(msg_a: Any, k: int | None = None) -> tuple:
    return ot.sender_setup(msg_a) if k is None else ot.softspoken.sender_setup(msg_a, k)


@common.member_step
def _setup_finish(r_state: Any, msg_b: Any) -> Any:
    return _ext(r_state).receiver_setup_finish(r_state, msg_b)


@common.member_step
def _extend_r(r_state: Any, m: int) -> tuple:
    return _ext(r_state).receiver_extend(r_state, int(m))


@common.member_step
def _extend_s(s_state: Any, u: Any, m: int) -> tuple:
    return _ext(s_state).sender_extend(s_state, u, int(m))


@common.member_step
def _draw(shape: tuple) -> np.ndarray:
    return prg.fresh_ring(shape)


@common.member_step
def _gilboa_send(sb: Any, lo: int, p: dict, v: np.ndarray, g0: int, g1: int) -> tuple:
    """At S: COT correlations V[g, r, :] * 2^j for groups g0..g1; returns (d, S's share
    of the groups' outputs, -sum x0)."""
    gb = g1 - g0
    count = gb * p["R"] * 64
    batch = _check_slice(sb, lo, lo + count, "OT sender")
    vv = _corr_vectors(p, v, g0, g1)  # (gb, R, L)
    corr = (vv[:, :, None, :] << _SHIFTS[None, None, :, None]).reshape(count, p["L"])
    x0, d = ot.cot_sender(batch, corr)
    share = np.negative(x0.reshape(gb, p["R"] * 64, p["L"]).sum(axis=1, dtype=np.uint64))
    return d, share


@common.member_step
def _gilboa_recv(rb: Any, lo: int, p: dict, d: np.ndarray, g0: int, g1: int) -> tuple:
    """At R: (the bits operand's groups g0..g1 as (gb, R), R's share sum x_c)."""
    gb = g1 - g0
    batch = _check_slice(rb, lo, lo + gb * p["R"] * 64, "OT receiver")
    xc = ot.cot_receiver(batch, d)
    share = xc.reshape(gb, p["R"] * 64, p["L"]).sum(axis=1, dtype=np.uint64)
    u = _pack_bits(batch.choices).reshape(gb, p["R"])
    return u, share


@common.member_step
def _gilboa_assemble_r(p: dict, *parts: np.ndarray) -> tuple:
    """At R: the bits operand (its shape) and R's cross share (the product's shape)."""
    half = len(parts) // 2
    u = np.concatenate(parts[:half]) if half else np.zeros((0, p["R"]), np.uint64)
    s = np.concatenate(parts[half:]) if half else np.zeros((0, p["L"]), np.uint64)
    return _from_grid(p, u), _to_out(p, s)


@common.member_step
def _gilboa_assemble_s(p: dict, *parts: np.ndarray) -> np.ndarray:
    s = np.concatenate(parts) if parts else np.zeros((0, p["L"]), np.uint64)
    return _to_out(p, s)


@common.member_step
def _finish_product(kind: str, a: np.ndarray, b: np.ndarray, *cross: np.ndarray) -> np.ndarray:
    """c_i = a_i * b_i (or a_i @ b_i) + the member's cross shares."""
    own = matmul_u64(a, b) if kind == "matmul" else np.multiply(a, b)
    for c in cross:
        own = own + c
    return own


@common.member_step
def _finish_square(a: np.ndarray, cross: np.ndarray) -> np.ndarray:
    return np.multiply(a, a) + cross


@common.member_step
def _and_recv(rb: Any, lo: int, hi: int) -> tuple:
    """At R: a_R (its choice bits, packed) and u_R = lsb of the chosen ROT message."""
    batch = _check_slice(rb, lo, hi, "OT receiver")
    mc = ot.rot_receiver(batch, nbytes=1)
    return _pack_bits(batch.choices), _pack_bits(mc[:, 0] & 1)


@common.member_step
def _and_send(sb: Any, lo: int, hi: int) -> tuple:
    """At S: b_S = lsb(m0) ^ lsb(m1) and v_S = lsb(m0), packed."""
    batch = _check_slice(sb, lo, hi, "OT sender")
    m0, m1 = ot.rot_sender(batch, nbytes=1)
    return _pack_bits((m0[:, 0] ^ m1[:, 0]) & 1), _pack_bits(m0[:, 0] & 1)


@common.member_step
def _and_finish(shape: tuple, counts: list, *parts: np.ndarray) -> tuple:
    """c_i = a_i b_i ^ u_i ^ v_i over the request's blocks (parts: the a, u, b, v lists,
    counts[k] blocks each; a, u from this member's receiver role, b, v from its sender
    role, each in word order)."""
    edges = np.cumsum([0, *counts])
    a, u, b, v = (np.concatenate(parts[edges[k] : edges[k + 1]]) for k in range(4))
    c = (a & b) ^ u ^ v
    return a.reshape(shape), b.reshape(shape), c.reshape(shape)


@common.member_step
def _and2_recv(rb: Any, lo: int, hi: int) -> tuple:
    """At R ("and_pair"): a_R (choice bits) and u_R = the 2 low bits of the chosen ROT
    message, (2, words)."""
    batch = _check_slice(rb, lo, hi, "OT receiver")
    mc = ot.rot_receiver(batch, nbytes=1)[:, 0]
    return _pack_bits(batch.choices), np.stack([_pack_bits(mc & 1), _pack_bits((mc >> 1) & 1)])


@common.member_step
def _and2_send(sb: Any, lo: int, hi: int) -> tuple:
    """At S ("and_pair"): b_S[k] = bit k of m0 ^ m1 and v_S[k] = bit k of m0, (2, words)."""
    batch = _check_slice(sb, lo, hi, "OT sender")
    m0, m1 = ot.rot_sender(batch, nbytes=1)
    m0, x = m0[:, 0], m0[:, 0] ^ m1[:, 0]
    b = np.stack([_pack_bits(x & 1), _pack_bits((x >> 1) & 1)])
    return b, np.stack([_pack_bits(m0 & 1), _pack_bits((m0 >> 1) & 1)])


@common.member_step
def _and2_finish(shape: tuple, counts: list, *parts: np.ndarray) -> tuple:
    """c_i[k] = a_i b_i[k] ^ u_i[k] ^ v_i[k] (as `_and_finish`; u, b, v are (2, words))."""
    edges = np.cumsum([0, *counts])
    a = np.concatenate(parts[edges[0] : edges[1]])
    u, b, v = (np.concatenate(parts[edges[k] : edges[k + 1]], axis=1) for k in (1, 2, 3))
    c = (a[None] & b) ^ u ^ v
    pair = (2, *shape)
    return a.reshape(shape), b.reshape(pair), c.reshape(pair)


def _rot_bytes(m: int) -> int:
    """ROT message bytes for "rot_n": 2^(m+1) bits (at least one byte)."""
    return max(1, (2 << m) // 8)


def _words(blocks: np.ndarray, nb: int) -> np.ndarray:
    """(N, 16) uint8 hash blocks -> (N,) uint64: each block's first `nb` in (1, 2, 4, 8)
    bytes, little-endian (the hash truncated to `nb` bytes, without copying the blocks)."""
    return np.ascontiguousarray(blocks).view(f"<u{nb}")[:, 0].astype(np.uint64)


@common.member_step
def _rotn_recv(rb: Any, lo: int, hi: int, m: int) -> tuple:
    """At R (the receiver, "rot_n"): r from its m choice bits per OT and M[r]."""
    from cipherray.protocols.mpc import millionaire

    batch = _check_slice(rb, lo, hi, "OT receiver")
    wc = _words(ot.rot_receiver(batch, nbytes=16), _rot_bytes(m)).reshape(-1, m)
    return millionaire.rot_n_choice(batch.choices.reshape(-1, m), wc, m)


@common.member_step
def _rotn_send(sb: Any, lo: int, hi: int, m: int) -> np.ndarray:
    """At S (the sender, "rot_n"): the 2^m masks of each OT, one word."""
    from cipherray.protocols.mpc import millionaire

    batch = _check_slice(sb, lo, hi, "OT sender")
    m0, m1 = (_words(w, _rot_bytes(m)).reshape(-1, m) for w in ot.rot_sender(batch, nbytes=16))
    return millionaire.rot_n_masks(m0, m1, m)


@common.member_step
def _concat(dtype: str, *parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


@common.member_step
def _bit_send(sb: Any, lo: int, hi: int) -> tuple:
    """At member 1 (S of instance 0): r_1 from its CSPRNG; COT with correlation r_1."""
    batch = _check_slice(sb, lo, hi, "OT sender")
    r1 = prg.fresh_ring((hi - lo,)) & _ONE
    x0, d = ot.cot_sender(batch, r1.reshape(-1, 1))
    arith = r1 + np.uint64(2) * x0[:, 0]  # r_1 - 2 * (-x0)
    return d, arith, r1


@common.member_step
def _bit_recv(rb: Any, lo: int, hi: int, d: np.ndarray) -> tuple:
    """At member 0 (R of instance 0): r_0 = its choice bit; product share x_c."""
    batch = _check_slice(rb, lo, hi, "OT receiver")
    xc = ot.cot_receiver(batch, d)[:, 0]
    r0 = batch.choices.astype(np.uint64)
    arith = r0 - np.uint64(2) * xc
    return arith, r0


@common.member_step
def _join_pairs(shape: tuple, *parts: np.ndarray) -> tuple:
    """(arithmetic, XOR) shares of the request from its blocks' (arith, xor) pairs."""
    arith = np.concatenate(parts[0::2]) if parts else np.zeros(0, np.uint64)
    bits = np.concatenate(parts[1::2]) if parts else np.zeros(0, np.uint64)
    return arith.reshape(shape), bits.reshape(shape)


# ------------------------------------------------------------------- wrap (theta)


_LOW63 = np.uint64((1 << 63) - 1)


@common.member_step
def _low63(i: int, r: np.ndarray) -> np.ndarray:
    return np.asarray(r, dtype=np.uint64) & _LOW63


@common.member_step
def _sign_inputs(i: int, r: np.ndarray, words: int) -> tuple:
    """XOR-shared packed words of ((1-s0), s0) and ((1-s1), s1): member i's own sign
    bits in its rows, zeros in the other member's rows."""
    s = (np.asarray(r, dtype=np.uint64).reshape(-1) >> np.uint64(63)).astype(np.uint8)
    packed = _pack_flat(np.stack([1 - s, s]), words)
    zero = np.zeros_like(packed)
    return (packed, zero) if i == 0 else (zero, packed)


def _pack_flat(bits: np.ndarray, words: int) -> np.ndarray:
    """(rows, N) 0/1 -> (rows, words) uint64 (zero-padded)."""
    rows = bits.shape[0]
    pad = np.zeros((rows, 64 * words), dtype=np.uint8)
    pad[:, : bits.shape[1]] = bits
    return np.packbits(pad, axis=1, bitorder="little").view("<u8").reshape(rows, words)


@common.member_step
def _carry_words(i: int, c: np.ndarray, t: np.ndarray, words: int) -> np.ndarray:
    """Round-2 operands (c, ~c) packed; member 0 flips its share for ~c."""
    bits = (np.asarray(c, dtype=np.uint64).reshape(1, -1) & _ONE).astype(np.uint8)
    packed = _pack_flat(bits, words)[0]
    nc = packed ^ np.uint64(0xFFFFFFFFFFFFFFFF) if i == 0 else packed
    return np.stack([packed, nc])


@common.member_step
def _unpack(i: int, e: np.ndarray, count: int) -> np.ndarray:
    bits = np.unpackbits(np.ascontiguousarray(e).view(np.uint8), axis=1, bitorder="little")
    return bits[:, :count].astype(np.uint64)


@common.member_step
def _theta(i: int, arith: np.ndarray, shape: tuple) -> np.ndarray:
    return (arith[0] - arith[1]).reshape(shape)


def wrap_count(ctx: Any, r: PerParty, shape: Sequence[int]) -> PerParty:
    """Additive shares of theta_r (count_wraps of the two members' signed shares r_i):
    theta_r = (1-s0)(1-s1) c - s0 s1 (1-c), s_i the sign bit of r_i and c the carry
    out of low63(r_0) + low63(r_1). Uses ctx.provider's "and" and "bit" kinds."""
    from cipherray.protocols.mpc import binary

    engine = ctx.engine
    shape = tuple(int(d) for d in shape)
    count = _size(shape)
    words = max(1, (count + 63) // 64)
    low = engine.local(_low63, r, step=ctx.step("low"))
    c = binary.msb_xor(ctx.scoped("carry"), low, shape=shape)  # XOR shares of c
    x, y = engine.local(_sign_inputs, r, words, num_returns=2, step=ctx.step("signs"))
    t = binary.and_(ctx.scoped("signs"), x, y, shape=(2, words))  # (1-s0)(1-s1), s0 s1
    cc = engine.local(_carry_words, c, t, words, step=ctx.step("carry"))
    e = binary.and_(ctx.scoped("terms"), t, cc, shape=(2, words))  # e1, e2
    bits = engine.local(_unpack, e, count, step=ctx.step("terms"))
    arith = binary.b2a(ctx.scoped("b2a"), bits, shape=(2, count))
    return engine.local(_theta, arith, shape, step=ctx.step("theta"))


class _Inner(Provider):
    """Routes the wrap circuit's own requests straight to the outer provider's
    generator (not through its pool or strict check)."""

    bitsliced_a2b = True

    def __init__(self, outer: OTProvider):
        self.millionaire_m = outer.millionaire_m
        super().__init__(strict=False)
        self.outer = outer

    def request(self, engine: Engine, kind: str, shapes: Sequence[Any]) -> tuple:
        return self.outer._generate(engine, *normalise_request(kind, shapes))


# ---------------------------------------------------------------------- provider


class _Instance:
    """Driver-side bookkeeping of one extension instance (handles live at members)."""

    def __init__(self, receiver: int):
        self.r = receiver
        self.s = 1 - receiver
        self.r_state: Any = None
        self.s_state: Any = None
        self.rb: Any = None
        self.sb: Any = None
        self.size = 0
        self.used = 0
        self.extended = 0  # OTs extended in all


class OTProvider(Provider):
    """Two-member correlated randomness from OT extension, no dealer (module docstring)."""

    # AND triples cost OTs here: comparisons of two members take the millionaires'
    # protocol (millionaire.py: 94 random OTs per element for m = 4); with
    # millionaire_m = None the bit-sliced carry tree (binary.py, step 3': 362)
    bitsliced_a2b = True

    def __init__(
        self,
        strict: bool = False,
        chunk: int = DEFAULT_CHUNK,
        extension: str = "softspoken",
        softspoken_k: int = ot.softspoken.DEFAULT_K,
        millionaire_m: int | None = 4,
    ):
        super().__init__(strict)
        if millionaire_m is not None:
            from cipherray.protocols.mpc import millionaire

            millionaire_m = millionaire.check_m(millionaire_m)
        self.millionaire_m = millionaire_m
        if int(chunk) < 128:
            raise ValueError(f"chunk must be >= 128 OTs, got {chunk}")
        if extension not in EXTENSIONS:
            raise ValueError(f"extension must be one of {EXTENSIONS}, got {extension!r}")
        self.chunk = int(chunk)
        self.extension = extension
        # SoftSpoken's k (public, both members use it); None: IKNP
        soft = extension == "softspoken"
        self._k = ot.softspoken.check_k(softspoken_k, "OTProvider") if soft else None
        self._inst: list[_Instance] | None = None

    def supports(self, kind: str) -> bool:
        return kind in KINDS

    def _check_engine(self, engine: Engine) -> None:
        if engine.n != 2:
            raise ValueError(f"OTProvider is a two-member protocol, got {engine.n} members")

    @property
    def ots_extended(self) -> int:
        """OTs extended so far in both instances (a public count)."""
        return sum(i.extended for i in self._inst or [])

    # -- what each member expects of the other's messages (the OT layer's own checks)
    def _msg_b_check(self) -> messages.Check:
        n = ot.base.KAPPA if self._k is None else ot.softspoken.base_ots(self._k)
        return partial(ot.base.check_msg_b, n=n)

    def _u_check(self, m: int) -> messages.Check:
        if self._k is None:
            return partial(ot.iknp.check_u, m=m)
        return partial(ot.softspoken.check_c, m=m, k=self._k)

    # -- steps 1 and 2
    def _setup(self, engine: Engine) -> None:
        step = "offline/setup"
        insts = []
        for d in (0, 1):
            inst = _Instance(d)
            r_state, msg_a = engine.run_at(inst.r, _setup_r, self._k, num_returns=2, step=step)
            msg_a = engine.send(msg_a, inst.r, inst.s, step=step, expect=_MSG_A)
            inst.s_state, msg_b = engine.run_at(
                inst.s, _setup_s, msg_a, self._k, num_returns=2, step=step
            )
            msg_b = engine.send(msg_b, inst.s, inst.r, step=step, expect=self._msg_b_check())
            inst.r_state = engine.run_at(inst.r, _setup_finish, r_state, msg_b, step=step)
            insts.append(inst)
        self._inst = insts

    def _spans(self, engine: Engine, d: int, units: int, per: int, most: int, step: str):
        """Cover `units` units of `per` OTs each from instance d, in order: yields
        (receiver batch, sender batch, offset, u0, u1) with OTs offset .. offset +
        (u1 - u0) * per of that batch for units u0 .. u1 (at most `most` units at a
        time). The current batch's leftover is spent first; a new batch holds
        max(chunk, per) OTs, so memory stays bounded and at most per - 1 OTs of a batch
        go unused."""
        if self._inst is None:
            self._setup(engine)
        inst = self._inst[d]
        u = 0
        while u < units:
            avail = (inst.size - inst.used) // per
            if avail == 0:
                size = (max(self.chunk, per) + 127) // 128 * 128
                inst.r_state, inst.rb, msg = engine.run_at(
                    inst.r, _extend_r, inst.r_state, size, num_returns=3, step=step
                )
                msg = engine.send(msg, inst.r, inst.s, step=step, expect=self._u_check(size))
                inst.s_state, inst.sb = engine.run_at(
                    inst.s, _extend_s, inst.s_state, msg, size, num_returns=2, step=step
                )
                inst.size, inst.used = size, 0
                inst.extended += size
                avail = size // per
            k = min(units - u, avail, max(1, most))
            lo = inst.used
            inst.used += k * per
            yield inst.rb, inst.sb, lo, u, u + k
            u += k

    # -- step 3
    def _generate(self, engine: Engine, kind: str, shapes: tuple) -> tuple[PerParty, ...]:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self._bind(engine)
        step = f"offline/{kind}"
        if kind in ("mul", "matmul"):
            return self._product(engine, kind, shapes, step)
        if kind == "square":
            return self._square(engine, shapes, step)
        if kind in ("and", "and_pair"):
            return self._and(engine, shapes[0], step, pair=kind == "and_pair")
        if kind == "rot_n":
            return self._rot_n(engine, shapes[0], step)
        if kind == "bit":
            return self._bit(engine, shapes[0], step)
        return self._wrap(engine, shapes[0], step)

    def _cross(self, engine: Engine, d: int, p: dict, v: Any, step: str) -> tuple:
        """A Gilboa cross term u_R * v_S with R = member d: returns (u at R, R's share,
        S's share). `v` is S's operand handle. Large requests travel in blocks."""
        R, S = d, 1 - d
        per = 64 * p["R"]
        most = BLOCK_WORDS // (per * max(1, p["L"]))
        us, rs, ss = [], [], []
        for rb, sb, lo, g0, g1 in self._spans(engine, d, p["G"], per, most, step):
            dmsg, s_part = engine.run_at(
                S, _gilboa_send, sb, lo, p, v, g0, g1, num_returns=2, step=step
            )
            shape = ((g1 - g0) * per, p["L"])
            dmsg = engine.send(dmsg, S, R, step=step, expect=messages.ring(shape, "COT d"))
            u_part, r_part = engine.run_at(
                R, _gilboa_recv, rb, lo, p, dmsg, g0, g1, num_returns=2, step=step
            )
            us.append(u_part)
            rs.append(r_part)
            ss.append(s_part)
        u, r_share = engine.run_at(R, _gilboa_assemble_r, p, *us, *rs, num_returns=2, step=step)
        s_share = engine.run_at(S, _gilboa_assemble_s, p, *ss, step=step)
        return u, r_share, s_share

    def _product(self, engine: Engine, kind: str, shapes: tuple, step: str) -> tuple:
        xs, ys = shapes
        bits_of = "x" if _size(xs) <= _size(ys) else "y"
        p = _plan(kind, shapes, bits_of)
        # each member draws its operand that is not made of choice bits
        v = engine.local(_draw_i, p["vs"], step=step)
        u0, r0, s1 = self._cross(engine, 0, p, v[1], step)  # u_0 * v_1
        u1, r1, s0 = self._cross(engine, 1, p, v[0], step)  # u_1 * v_0
        u = PerParty((u0, u1))
        a, b = (u, v) if bits_of == "x" else (v, u)
        c = PerParty(
            (
                engine.run_at(0, _finish_product, kind, a[0], b[0], r0, s0, step=step),
                engine.run_at(1, _finish_product, kind, a[1], b[1], r1, s1, step=step),
            )
        )
        return a, b, c

    def _square(self, engine: Engine, shapes: tuple, step: str) -> tuple:
        (s,) = shapes
        p = _plan("square", (s, s), "x")
        a1 = engine.run_at(1, _draw, s, step=step)
        v1 = engine.run_at(1, _double, a1, step=step)
        u0, r0, s1 = self._cross(engine, 0, p, v1, step)  # a_0 * (2 a_1)
        a = PerParty((u0, a1))
        c = PerParty(
            (
                engine.run_at(0, _finish_square, u0, r0, step=step),
                engine.run_at(1, _finish_square, a1, s1, step=step),
            )
        )
        return a, c

    def _and(self, engine: Engine, shape: tuple, step: str, pair: bool = False) -> tuple:
        words = _size(shape)
        recv, send, finish = (_and2_recv, _and2_send, _and2_finish) if pair else (
            _and_recv, _and_send, _and_finish)  # fmt: skip
        parts: list[list[list[Any]]] = [[[], [], [], []], [[], [], [], []]]  # a, u, b, v
        for d in (0, 1):
            R, S = d, 1 - d
            for rb, sb, lo, w0, w1 in self._spans(engine, d, words, 64, words, step):
                hi = lo + 64 * (w1 - w0)
                a, u = engine.run_at(R, recv, rb, lo, hi, num_returns=2, step=step)
                b, v = engine.run_at(S, send, sb, lo, hi, num_returns=2, step=step)
                parts[R][0].append(a)
                parts[R][1].append(u)
                parts[S][2].append(b)
                parts[S][3].append(v)
        res = []
        for i in (0, 1):
            counts = [len(lst) for lst in parts[i]]
            flat = [h for lst in parts[i] for h in lst]
            res.append(engine.run_at(i, finish, shape, counts, *flat, num_returns=3, step=step))
        return tuple(PerParty((res[0][k], res[1][k])) for k in range(3))

    def _rot_n(self, engine: Engine, shape: tuple, step: str) -> tuple:
        """k random 1-out-of-2^m OTs from m ROTs each of instance d (member d receives)."""
        k, m, d = shape
        R, S = d, 1 - d
        rs: list[Any] = []
        ms: list[Any] = []
        ws: list[Any] = []
        for rb, sb, lo, k0, k1 in self._spans(engine, d, k, m, k, step):
            hi = lo + m * (k1 - k0)
            r, mr = engine.run_at(R, _rotn_recv, rb, lo, hi, m, num_returns=2, step=step)
            ws.append(engine.run_at(S, _rotn_send, sb, lo, hi, m, step=step))
            rs.append(r)
            ms.append(mr)
        idx = [None, None]
        mask = [None, None]
        idx[R] = engine.run_at(R, _concat, "u1", *rs, step=step)
        idx[S] = engine.run_at(S, _concat, "u8", *ws, step=step)
        mask[R] = engine.run_at(R, _concat, "u1", *ms, step=step)
        mask[S] = engine.run_at(S, _concat, "u1", step=step)
        return PerParty(idx), PerParty(mask)

    def _bit(self, engine: Engine, shape: tuple, step: str) -> tuple:
        total = _size(shape)
        p0: list[Any] = []
        p1: list[Any] = []
        for rb, sb, lo, k0, k1 in self._spans(engine, 0, total, 1, total, step):
            hi = lo + (k1 - k0)
            dmsg, arith1, xor1 = engine.run_at(1, _bit_send, sb, lo, hi, num_returns=3, step=step)
            dmsg = engine.send(dmsg, 1, 0, step=step, expect=messages.ring((hi - lo, 1), "COT d"))
            arith0, xor0 = engine.run_at(0, _bit_recv, rb, lo, hi, dmsg, num_returns=2, step=step)
            p0 += [arith0, xor0]
            p1 += [arith1, xor1]
        out = [engine.run_at(i, _join_pairs, shape, *ps, num_returns=2, step=step)
               for i, ps in ((0, p0), (1, p1))]  # fmt: skip
        return PerParty((out[0][0], out[1][0])), PerParty((out[0][1], out[1][1]))

    def _wrap(self, engine: Engine, shape: tuple, step: str) -> tuple:
        from cipherray.protocols.mpc.context import MPCContext

        r = engine.local(_draw_i, shape, step=step)
        ctx = MPCContext(engine, _Inner(self), tag=step)
        return r, wrap_count(ctx, r, shape)


@common.member_step
def _draw_i(i: int, shape: tuple) -> np.ndarray:
    return prg.fresh_ring(shape)


@common.member_step
def _double(a: np.ndarray) -> np.ndarray:
    return a * np.uint64(2)
