"""Boolean (XOR-shared) circuits: AND gates, A2B via a parallel-prefix adder, B2A of bits.

XOR sharing: a uint64 word w is held as w = w_0 ^ w_1 ^ ... ^ w_{n-1}. XOR, shifts
and AND with a public mask are member-local; an AND of two shared words costs one
binary Beaver triple (a, b, c = a & b) and one round.

The sign of an additively shared x (its bit 63) is extracted without revealing x:

1. A2B inputs (local): member i's additive share x_i is a trivially XOR-shared word
   (member i holds x_i, every other member holds 0): n shared words W_0..W_{n-1}
   with x = W_0 + ... + W_{n-1} mod 2^64.
2. Carry-save reduction (n >= 3): a 3:2 compressor replaces (a, b, c) by
   (a ^ b ^ c, maj(a, b, c) << 1), maj = ((a ^ c) & (b ^ c)) ^ c — one AND, one round
   per level, all compressors of a level batched into one AND. Levels L(n): L(2) = 0,
   L(3) = 1, L(4) = 2, L(5) = 3, L(6) = 3, ...
3. Kogge-Stone adder on the last two words A, B: G = A & B (1 round), P = A ^ B;
   then for s = 1, 2, 4, 8, 16, 32: G ^= P & (G << s), P &= P << s — both ANDs of a
   level batched into one round (the last level needs only G): 7 rounds.
4. The sign bit: msb = bit 63 of (A ^ B) ^ (G << 1).
5. B2A (1 round): with a random bit r shared both ways, open c = msb ^ r (XOR-open),
   then msb = c + r - 2cr = c + (1 - 2c) r on the arithmetic shares of r.

3'. Bit-sliced variant of step 3 (when the provider sets `bitsliced_a2b`, as the
   OTProvider does, where every AND triple costs oblivious transfers): the words are
   transposed into 64 bit planes (bit j of every element, 64 elements per word);
   leaves g_j = a_j & b_j, p_j = a_j ^ b_j for j < 63 (1 round), then a log-depth tree
   over the 63 positions, (G, P) = (G_hi ^ P_hi & G_lo, P_hi & P_lo), the lowest range
   needing no P (6 rounds, one batched AND each); msb = a_63 ^ b_63 ^ G. 7 rounds as
   step 3, but 63 + 118 = 181 AND planes per 64 elements (2.8 words per element
   instead of 12). Used from `BITSLICE_MIN` elements on.

1'-4'. Two members whose provider sets `millionaire_m` (the OTProvider: 4) take the
   millionaires' protocol of `millionaire.py` instead of steps 1-4: 1-out-of-2^m OTs
   at the leaves and a tree of paired ANDs, 94 random OTs per element (m = 4) instead
   of the carry tree's 362; 6 rounds instead of 7 (`millionaire.rounds`).

Rounds of `ltz_bit`: L(n) + 7 + 1 (8 for 2 members, 9 for 3). Bytes: an AND of w
words opens 2w words (16w bytes) from every member to every other; per element the
adder ANDs 1 + 5 * 2 + 1 = 12 words, the carry-save levels one word per compressor,
and B2A opens one word: `ltz_bytes(n)` = 8 * (2 * (12 + C(n)) + 1) bytes per element
per ordered pair of members (200 for 2 members, 216 for 3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.protocols.mpc import common
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import PerParty

_ONE = np.uint64(1)
_KS_SHIFTS = (1, 2, 4, 8, 16, 32)
_BIT_SHIFTS = np.arange(64, dtype=np.uint64)
BITSLICE_MIN = 16  # below this many elements the per-element adder needs fewer ANDs


def csa_levels(n: int) -> int:
    """Carry-save levels to reduce n words to 2."""
    levels = 0
    while n > 2:
        n = n - n // 3
        levels += 1
    return levels


def _csa_words(n: int) -> int:
    words = 0
    while n > 2:
        words += n // 3
        n = n - n // 3
    return words


def ltz_bytes(n: int) -> int:
    """Bytes per element sent from one member to one other member by `ltz_bit`."""
    return 8 * (2 * (1 + 2 * (len(_KS_SHIFTS) - 1) + 1 + _csa_words(n)) + 1)


def msb_rounds(n: int) -> int:
    """Rounds of `msb_xor` (A2B of the sign bit)."""
    return csa_levels(n) + 1 + len(_KS_SHIFTS)


def ltz_rounds(n: int, provider: Any = None) -> int:
    """Rounds of `ltz_bit`: A2B sign + B2A (with `provider`: its millionaires' path)."""
    mill = getattr(provider, "millionaire_m", None)
    if mill and n == 2:
        from cipherray.protocols.mpc import millionaire

        return millionaire.rounds(mill) + 1
    return msb_rounds(n) + 1


# ------------------------------------------------------------ member-local steps


@common.member_step
def _xmask2(i: int, x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple:
    return (x ^ a, y ^ b)


@common.member_step
def _beaver_and(i: int, opened: tuple, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """z_i = c_i ^ (e & b_i) ^ (d & a_i) (^ e & d at member 0)."""
    e, d = opened
    z = c ^ (e & b) ^ (d & a)
    if i == 0:
        z = z ^ (e & d)
    return z


@common.member_step
def _a2b_inputs(i: int, x: np.ndarray, n: int) -> np.ndarray:
    """Step 1: rows W_0..W_{n-1}; member i holds its share in row i, zeros elsewhere."""
    out = np.zeros((n,) + np.shape(x), dtype=np.uint64)
    out[i] = x
    return out


@common.member_step
def _csa_prepare(i: int, w: np.ndarray, q: int) -> tuple:
    a, b, c = w[:q], w[q : 2 * q], w[2 * q : 3 * q]
    return a ^ c, b ^ c


@common.member_step
def _csa_finish(i: int, w: np.ndarray, q: int, m: np.ndarray) -> np.ndarray:
    a, b, c = w[:q], w[q : 2 * q], w[2 * q : 3 * q]
    maj = m ^ c
    return np.concatenate([a ^ b ^ c, maj << _ONE, w[3 * q :]])


@common.member_step
def _ks_start(i: int, w: np.ndarray) -> tuple:
    return w[0], w[1]


@common.member_step
def _xor(i: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a ^ b


@common.member_step
def _ks_level_prepare(i: int, g: np.ndarray, p: np.ndarray, s: int, last: bool) -> tuple:
    s64 = np.uint64(s)
    if last:
        return p, g << s64
    return np.stack([p, p]), np.stack([g << s64, p << s64])


@common.member_step
def _ks_level_finish(i: int, g: np.ndarray, res: np.ndarray, last: bool) -> tuple:
    if last:
        return g ^ res, None
    return g ^ res[0], res[1]


@common.member_step
def _sign(i: int, p0: np.ndarray, g: np.ndarray) -> np.ndarray:
    return ((p0 ^ (g << _ONE)) >> np.uint64(63)) & _ONE


@common.member_step
def _b2a_finish(i: int, c: np.ndarray, ra: np.ndarray) -> np.ndarray:
    """Step 5: c + (1 - 2c) r (member 0 adds c)."""
    c = c & _ONE
    out = (_ONE - np.uint64(2) * c) * ra
    if i == 0:
        out = out + c
    return out


# ------------------------------------------------------------------ protocols


def and_(ctx: MPCContext, x: PerParty, y: PerParty, *, shape: Any) -> PerParty:
    """x & y on XOR-shared uint64 words of public `shape`: 1 round (default tag "and").

    1. (a, b, c) = provider.and_triple(shape), c = a & b.
    2. e_i = x_i ^ a_i, d_i = y_i ^ b_i.  3. XOR-open (e, d) together (1 round).
    4. z_i = c_i ^ (e & b_i) ^ (d & a_i) (^ e & d at member 0)."""
    ctx = ctx.with_default_tag("and")
    engine = ctx.engine
    a, b, c = ctx.provider.and_triple(engine, shape)
    masked = engine.local(_xmask2, x, y, a, b, step=ctx.step("mask"))
    opened = engine.open(masked, step=ctx.step("open"), op="xor")
    return engine.local(_beaver_and, opened, a, b, c, step=ctx.step("combine"))


@common.member_step
def _xmask_pair(i: int, x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple:
    return (x ^ a, y ^ b)


@common.member_step
def _beaver_and_pair(
    i: int, opened: tuple, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> np.ndarray:
    """z_i[k] = c_i[k] ^ (e & b_i[k]) ^ (d[k] & a_i) (^ e & d[k] at member 0)."""
    e, d = opened
    z = c ^ (e[None] & b) ^ (d & a[None])
    if i == 0:
        z = z ^ (e[None] & d)
    return z


def and_pair(ctx: MPCContext, x: PerParty, y: PerParty, *, shape: Any) -> PerParty:
    """(x & y[0], x & y[1]) on XOR-shared uint64 words, x of public `shape`, y of
    (2,) + shape: 1 round (default tag "and2"), three words opened per position instead
    of four. Uses the provider's "and_pair": (a, b, c) with c[k] = a & b[k]."""
    ctx = ctx.with_default_tag("and2")
    engine = ctx.engine
    a, b, c = ctx.provider.request(engine, "and_pair", (shape,))
    masked = engine.local(_xmask_pair, x, y, a, b, step=ctx.step("mask"))
    opened = engine.open(masked, step=ctx.step("open"), op="xor")
    return engine.local(_beaver_and_pair, opened, a, b, c, step=ctx.step("combine"))


def _carry_save(ctx: MPCContext, w: PerParty, s: tuple) -> PerParty:
    """Step 2: 3:2 compressors, one batched AND per level, until two words remain."""
    m, level = ctx.n, 0
    while m > 2:
        q = m // 3
        t, u = ctx.engine.local(_csa_prepare, w, q, num_returns=2, step=ctx.step("csa"))
        prod = and_(ctx.scoped(f"csa{level}"), t, u, shape=(q,) + s)
        w = ctx.engine.local(_csa_finish, w, q, prod, step=ctx.step("csa"))
        m, level = m - q, level + 1
    return w


def _kogge_stone(ctx: MPCContext, w: PerParty, s: tuple) -> tuple[PerParty, PerParty]:
    """Step 3 on the last two words: (P0 = A ^ B, the carries G)."""
    local = ctx.engine.local
    a, b = local(_ks_start, w, num_returns=2, step=ctx.step("ks"))
    g = and_(ctx.scoped("ks0"), a, b, shape=s)
    p0 = local(_xor, a, b, step=ctx.step("ks"))
    p = p0
    for s_ in _KS_SHIFTS:
        last = s_ == _KS_SHIFTS[-1]
        left, right = local(_ks_level_prepare, g, p, s_, last, num_returns=2, step=ctx.step("ks"))
        res = and_(ctx.scoped(f"ks{s_}"), left, right, shape=s if last else (2,) + s)
        g, p = local(_ks_level_finish, g, res, last, num_returns=2, step=ctx.step("ks"))
    return p0, g


@common.member_step
def _planes(i: int, w: np.ndarray, words: int) -> tuple:
    """Step 3': bit planes of the last two words, (63, words) leaf operands and the
    sign plane a_63 ^ b_63 (elements padded with zeros to 64 * words)."""
    count = int(np.prod(w.shape[1:], dtype=np.int64))
    flat = w[:2].reshape(2, count)
    bits = np.zeros((2, 64, 64 * words), dtype=np.uint8)
    bits[:, :, :count] = (flat[:, None, :] >> _BIT_SHIFTS[None, :, None]) & _ONE
    planes = np.packbits(bits, axis=2, bitorder="little").view("<u8")  # (2, 64, words)
    a, b = planes[0], planes[1]
    return a[:63], b[:63], a[:63] ^ b[:63], a[63] ^ b[63]


@common.member_step
def _tree_prepare(i: int, g: np.ndarray, p: np.ndarray) -> tuple:
    """One tree level: the pairs (lo, hi) = (2t, 2t+1); operands of P_hi & G_lo (all
    pairs) and P_hi & P_lo (pairs t >= 1: the lowest range needs no P)."""
    q = g.shape[0] // 2
    lo_g, hi_p, lo_p = g[0 : 2 * q : 2], p[1 : 2 * q : 2], p[0 : 2 * q : 2]
    return np.concatenate([hi_p, hi_p[1:]]), np.concatenate([lo_g, lo_p[1:]])


@common.member_step
def _tree_finish(i: int, g: np.ndarray, p: np.ndarray, res: np.ndarray) -> tuple:
    q = g.shape[0] // 2
    new_g = g[1 : 2 * q : 2] ^ res[:q]
    new_p = np.concatenate([p[:1], res[q:]])  # row 0: unused placeholder
    if g.shape[0] % 2:
        new_g = np.concatenate([new_g, g[-1:]])
        new_p = np.concatenate([new_p, p[-1:]])
    return new_g, new_p


@common.member_step
def _plane_sign(i: int, top: np.ndarray, g: np.ndarray, shape: tuple) -> np.ndarray:
    sign = top ^ g[0]
    count = int(np.prod(shape, dtype=np.int64))
    bits = np.unpackbits(np.ascontiguousarray(sign).view(np.uint8), bitorder="little")
    return bits[:count].astype(np.uint64).reshape(shape)


def _carry_tree(ctx: MPCContext, w: PerParty, s: tuple) -> PerParty:
    """Step 3' and 4 on bit planes: XOR shares (0/1 words) of the sign bit."""
    local = ctx.engine.local
    words = max(1, (int(np.prod(s, dtype=np.int64)) + 63) // 64)
    a, b, p, top = local(_planes, w, words, num_returns=4, step=ctx.step("planes"))
    g = and_(ctx.scoped("tree0"), a, b, shape=(63, words))
    k, level = 63, 1
    while k > 1:
        q = k // 2
        left, right = local(_tree_prepare, g, p, num_returns=2, step=ctx.step("tree"))
        res = and_(ctx.scoped(f"tree{level}"), left, right, shape=(2 * q - 1, words))
        g, p = local(_tree_finish, g, p, res, num_returns=2, step=ctx.step("tree"))
        k, level = k - q, level + 1
    return local(_plane_sign, top, g, s, step=ctx.step("sign"))


def msb_xor(ctx: MPCContext, x: PerParty, *, shape: Any = None) -> PerParty:
    """XOR shares (0/1 words) of bit 63 of additively shared x: steps 1-4, msb_rounds(n).
    Default tag "a2b"."""
    ctx = ctx.with_default_tag("a2b")
    s = common.shape_of(ctx.engine, x, shape, "x")
    mill = getattr(ctx.provider, "millionaire_m", None)
    if mill and ctx.n == 2:
        from cipherray.protocols.mpc import millionaire

        return millionaire.msb_xor(ctx, x, shape=s, m=mill)  # 1'-4'
    w = ctx.engine.local(_a2b_inputs, x, ctx.n, step=ctx.step("inputs"))  # 1
    w = _carry_save(ctx, w, s)  # 2
    count = int(np.prod(s, dtype=np.int64))
    if getattr(ctx.provider, "bitsliced_a2b", False) and count >= BITSLICE_MIN:
        return _carry_tree(ctx, w, s)  # 3', 4
    p0, g = _kogge_stone(ctx, w, s)  # 3
    return ctx.engine.local(_sign, p0, g, step=ctx.step("sign"))  # 4


def b2a(ctx: MPCContext, bits: PerParty, *, shape: Any) -> PerParty:
    """Arithmetic shares (integers 0/1) of XOR-shared bits (0/1 words): step 5, 1 round.
    Default tag "b2a"."""
    ctx = ctx.with_default_tag("b2a")
    engine = ctx.engine
    ra, rb = ctx.provider.random_bit(engine, shape)
    masked = engine.local(_xor, bits, rb, step=ctx.step("mask"))
    c = engine.open(masked, step=ctx.step("open"), op="xor")
    return engine.local(_b2a_finish, c, ra, step=ctx.step("finish"))


def ltz_bit(ctx: MPCContext, x: PerParty, *, shape: Any = None) -> PerParty:
    """Arithmetic shares of the integer bit [x < 0] (x read as signed int64).

    Rounds: ltz_rounds(n) = L(n) + 8 (8 for 2 members, 9 for 3). Default tag "ltz";
    steps "<tag>/a2b/..." and "<tag>/b2a/..."."""
    ctx = ctx.with_default_tag("ltz")
    s = common.shape_of(ctx.engine, x, shape, "x")
    bits = msb_xor(ctx.scoped("a2b"), x, shape=s)
    return b2a(ctx.scoped("b2a"), bits, shape=s)
