"""The sign bit of a two-member shared value by the millionaires' protocol of CrypTFlow2
(Rathee et al., CCS 2020): 1-out-of-2^m OTs at the leaves and a log-depth AND tree.

x = x_0 + x_1 mod 2^64 (member i holds x_i). With A = low63(x_1) (at member 1) and
B = 2^63 - 1 - low63(x_0) (at member 0), the carry into bit 63 is
c = [low63(x_0) + low63(x_1) >= 2^63] = [A > B], so

    msb(x) = msb(x_0) ^ msb(x_1) ^ [A > B],

a comparison of two private 63-bit integers, one per member: member 0 is the receiver
R (holds B) and member 1 the sender S (holds A). The roles alternate by element: on
the second half of the elements member 1 is R, with B = 2^63 - 1 - low63(x_1) and
A = low63(x_0) (the same carry), so that the OT traffic (and the work) is split
evenly between the two directions and the two members; both halves travel together.

1. Chunks (local): A and B are cut into q = ceil(63 / m) chunks of m bits from the low
   end, chunk j = bits [j m, (j + 1) m) (the top chunk is shorter; it is padded with zero
   bits, so every leaf is a 1-of-2^m OT).
2. Leaves (2 rounds): for each chunk j, R learns XOR shares of gt_j = [A_j > B_j] and
   eq_j = [A_j == B_j] from one 1-out-of-2^m OT with 2-bit messages, on a random OT of
   the provider's kind "rot_n" (S holds 2^m random 2-bit masks M[0..2^m), R a random
   index r and M[r]):
   a. R -> S: e = B_j ^ r (m bits; one byte).
   b. S draws random bits (g_S, e_S) (CSPRNG), sets T[v] = (g_S ^ [A_j > v],
      e_S ^ [A_j == v]) for every v < 2^m and sends the 2^m entries T[w ^ e] ^ M[w],
      2^(m+1) bits packed in one word ("a permuted table"). The permuted T is one
      lookup in a public table of 2^(2m+2) words indexed by (A_j, e, g_S, e_S).
   c. R keeps entry r: T[r ^ e] ^ M[r] ^ M[r] = T[B_j], its shares (g_R, e_R).
   R learns nothing beyond its output: every entry but r's is masked by an M[w],
   w != r, which it does not know (see "rot_n" below). S sees only e, B_j one-time
   padded by the uniform r.
3. Tree (ceil(log2 q) rounds): ranges merged pairwise (lo = 2t, hi = 2t + 1), all
   pairs and elements of a level at once, their bits packed densely into uint64 words
   (ceil(pairs * count / 64) per operand, so few elements waste no triples):
   gt = gt_hi ^ (eq_hi & gt_lo) (the two terms are exclusive), eq = eq_hi & eq_lo.
   Both ANDs of a node share the input eq_hi, so each node takes ONE pair of AND
   triples with a common first input (kind "and_pair": (a, b1, c1 = a b1),
   (a, b2, c2 = a b2), 2 random OTs per pair from the OT provider) and opens
   three words (e = eq_hi ^ a, d1, d2) instead of four. An odd range moves up as it is.
   The root's eq is not needed (nor that of any range holding chunk 0); it is made
   anyway, as a pair of triples costs the same 2 random OTs as a single one.
4. msb: member i's XOR share is msb(x_i) ^ its share of gt (0/1 words of x's shape).

Rounds: 2 + ceil(log2 q) (6 for m = 4 or 5); `binary.ltz_bit` adds 1 (B2A): 7, one
less than the A2B adder's 8.

Costs per comparison, q = ceil(63 / m): m q random OTs for the leaves (the top leaf
pads to m bits) and 2 (q - 1) for the tree: 94 random OTs for m = 4 (16 bytes of IKNP
matrix each: 1504 bytes), 89 for m = 5, against 362 for the bit-sliced A2B carry tree
(181 AND triples). Online: q m-bit indices R -> S (one byte each), q tables S -> R
(2^(m+1) bits each: 64 bytes for m = 4), and 3 bits per tree node each way. `ltz_bit`'s
B2A adds one random bit (one COT, 24 bytes) and one word each way. In all, for
m = 4: 95 OTs x 16 + 8 + 107 online = 1,635 bytes per `x > y` (5,923 with the carry
tree). m = 4 is the default by measurement (10^5 comparisons in process): m = 5 needs
3% fewer bytes (1,590) at about the same time, m = 3 more bytes (1,766) and a round
more; m <= 5 keeps a leaf's table in one word.

"rot_n" from m random 1-out-of-2 OTs (Naor-Pinkas style; `ot_provider`): the OT
provider's ROTs j < m of the instance where R receives give S the strings
(m_{j,0}, m_{j,1}) and R its random choice bit c_j and m_{j,c_j}; each string has
2^(m+1) bits, i.e. 2^m 2-bit slices.
S's mask of index i (bits i_0 .. i_{m-1}) is M[i] = XOR_j slice_i(m_{j, i_j}) - slice
number i, a position that depends on i, of every string on i's path. R's index is
r = (c_0 .. c_{m-1}); it computes M[r] = slice_r(XOR_j m_{j, c_j}). For i != r some
bit i_j differs from c_j, so M[i] contains slice i of a string R never learns (the ROT
hides m_{j, 1-c_j}); and two indices i != i' that share that unknown string use
different slices of it, so the masks of all indices R did not choose are uniform and
independent of each other given R's view. S learns nothing of r (the extension hides
the choice bits).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from cipherray.protocols import prg
from cipherray.protocols.mpc import common, messages
from cipherray.protocols.mpc.engine import PerParty

DEFAULT_M = 4
MAX_M = 5  # the 2^(m+1) mask bits of a leaf fit one uint64 word
BITS = 63
_ONE = np.uint64(1)
_THREE = np.uint64(3)
_LOW63 = np.uint64((1 << 63) - 1)


# ------------------------------------------------------------ public geometry


def check_m(m: Any) -> int:
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or not 1 <= m <= MAX_M:
        raise ValueError(f"the leaf width m must be an integer in 1..{MAX_M}, got {m!r}")
    return int(m)


def chunks(m: int) -> int:
    """q = ceil(63 / m) leaves per comparison."""
    return -(-BITS // check_m(m))


def rounds(m: int = DEFAULT_M) -> int:
    """Rounds of `msb_xor`: 2 (leaves) + ceil(log2 q) (tree)."""
    return 2 + max(0, (chunks(m) - 1).bit_length())


def rots_per_compare(m: int = DEFAULT_M) -> int:
    """Random 1-out-of-2 OTs per comparison: m q (leaves) + 2 (q - 1) (tree pairs)."""
    q = chunks(m)
    return m * q + 2 * (q - 1)


def field_mask(m: int) -> np.uint64:
    """The 2^(m+1) low bits that hold a leaf's 2^m 2-bit entries."""
    return np.uint64((1 << (2 << m)) - 1)


@functools.cache
def _patterns(m: int) -> np.ndarray:
    """(m,) uint64: pattern j has both bits of entry i set where bit j of i is 1."""
    out = np.zeros(m, dtype=np.uint64)
    for j in range(m):
        out[j] = sum(3 << (2 * i) for i in range(1 << m) if (i >> j) & 1)
    return out


@functools.cache
def _table(m: int) -> np.ndarray:
    """(2^m,) uint64: entry v of word a holds ([a > v], [a == v]) as bits (2v, 2v + 1)."""
    out = np.zeros(1 << m, dtype=np.uint64)
    for a in range(1 << m):
        out[a] = sum(1 << (2 * v) for v in range(a)) | (1 << (2 * a + 1))
    return out


def _rep(m: int) -> tuple[np.uint64, np.uint64]:
    """Words with bit 0 (resp. bit 1) of every entry set."""
    lo = sum(1 << (2 * v) for v in range(1 << m))
    return np.uint64(lo), np.uint64(lo << 1)


def wire_dtype(m: int) -> type:
    """The narrowest unsigned type that holds a leaf's 2^(m+1) table bits."""
    bits = 2 << m
    return {8: np.uint8, 16: np.uint16, 32: np.uint32}.get(max(8, bits), np.uint64)


def permute(words: np.ndarray, e: np.ndarray, m: int) -> np.ndarray:
    """out[v] = words[v ^ e] for the 2^m 2-bit entries of every word (e per word): for
    each set bit j of e, the blocks of 2^j entries swap pairwise."""
    out = np.array(words, dtype=np.uint64)
    e = np.asarray(e, dtype=np.uint64)
    fmask = field_mask(m)
    for j, pat in enumerate(_patterns(m)):
        s = np.uint64(2 << j)
        swapped = (out & pat) >> s
        swapped |= ((out & ~pat) << s) & fmask
        swapped ^= out
        swapped &= np.uint64(0) - ((e >> np.uint64(j)) & _ONE)  # all ones where bit j of e
        out ^= swapped
    return out


def _xor_columns(w: np.ndarray) -> np.ndarray:
    """(k, m) -> (k,): the XOR of each row (column by column: a reduction along the short
    axis is slow in numpy)."""
    out = w[:, 0].copy()
    for j in range(1, w.shape[1]):
        out ^= w[:, j]
    return out


def rot_n_masks(w0: np.ndarray, w1: np.ndarray, m: int) -> np.ndarray:
    """S's masks (k,) uint64 from its ROT strings w0, w1 (k, m) uint64 (2^(m+1) bits
    used): M[i] = XOR_j slice_i(w_{i_j}[:, j])."""
    pats = _patterns(m)[None, :]
    sel = w0 ^ ((w0 ^ w1) & pats)
    return _xor_columns(sel) & field_mask(m)


def rot_n_choice(choices: np.ndarray, wc: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """R's (index r, mask M[r]) (k,) uint8 from its choice bits (k, m) and chosen ROT
    strings wc (k, m) uint64."""
    shifts = np.arange(m, dtype=np.uint8)[None, :]
    r = (np.asarray(choices, dtype=np.uint8) << shifts).sum(axis=1, dtype=np.uint8)
    x = _xor_columns(wc)
    mask = (x >> (np.uint64(2) * r.astype(np.uint64))) & _THREE
    return r, mask.astype(np.uint8)


# ------------------------------------------------------------ member-side steps


def _halves(count: int) -> tuple[slice, slice]:
    """Elements [0, h) have member 0 as the leaves' receiver, [h, count) member 1."""
    h = count // 2
    return slice(0, h), slice(h, count)


@common.member_step
def _inputs(i: int, x: np.ndarray, m: int) -> tuple:
    """Step 1: member i's chunks (q, count) uint8 - B = 2^63 - 1 - low63(x_i) on the
    half where it receives, A = low63(x_i) on the other - and msb(x_i) (count,)."""
    flat = np.asarray(x, dtype=np.uint64).reshape(-1)
    low = flat & _LOW63
    val = low.copy()
    mine = _halves(flat.size)[i]
    val[mine] = _LOW63 - low[mine]
    q = chunks(m)
    shifts = (np.arange(q, dtype=np.uint64) * np.uint64(m))[:, None]
    ch = ((val[None, :] >> shifts) & np.uint64((1 << m) - 1)).astype(np.uint8)
    return ch, flat >> np.uint64(63)


@common.member_step
def _leaf_shift(i: int, ch: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Step 2a as receiver (its half): e = B_j ^ r."""
    return ch[:, _halves(ch.shape[1])[i]].reshape(-1) ^ r


@functools.cache
def _leaf_lut(m: int) -> np.ndarray:
    """(2^(2m+2),) words: entry (a << (m+2)) | (e << 2) | s is the table T of step 2b
    for chunk a and random bits s = (g_S, e_S), permuted by e (entry w holds T[w ^ e])."""
    n = 1 << m
    rep_g, rep_e = _rep(m)
    a = np.repeat(np.arange(n), n * 4)
    e = np.tile(np.repeat(np.arange(n), 4), n).astype(np.uint64)
    s = np.tile(np.arange(4, dtype=np.uint64), n * n)
    t = _table(m)[a] ^ ((s & _ONE) * rep_g) ^ ((s >> _ONE) * rep_e)
    return permute(t, e, m).astype(wire_dtype(m))


@common.member_step
def _leaf_table(i: int, ch: np.ndarray, masks: np.ndarray, e: np.ndarray, m: int) -> tuple:
    """Step 2b as sender (the other half): the permuted, masked tables and this
    member's shares (2, q, half) uint8."""
    a = ch[:, _halves(ch.shape[1])[1 - i]]
    flat = a.reshape(-1)
    bits = np.frombuffer(prg.random_bytes(prg.new_seed(), flat.size), dtype=np.uint8) & 3
    idx = flat.astype(np.uint16) << np.uint16(m + 2)
    idx |= np.asarray(e, dtype=np.uint16) << np.uint16(2)
    idx |= bits
    wire = wire_dtype(m)
    out = _leaf_lut(m)[idx]
    out ^= np.asarray(masks).astype(wire)
    shares = np.stack([bits & 1, bits >> 1]).reshape((2,) + a.shape)
    return out, shares


@common.member_step
def _leaf_receive(
    i: int,
    ch: np.ndarray,
    r: np.ndarray,
    tables: np.ndarray,
    mask_r: np.ndarray,
    s_shares: np.ndarray,
) -> np.ndarray:
    """Step 2c as receiver: entry r of each table, unmasked; with this member's shares
    as sender, its leaf shares (2, q, count) uint8 in element order."""
    mine, other = _halves(ch.shape[1])[i], _halves(ch.shape[1])[1 - i]
    shape = ch[:, mine].shape
    tables = np.asarray(tables)
    shift = (np.asarray(r, dtype=tables.dtype) << tables.dtype.type(1)).reshape(-1)
    f = ((tables >> shift) & tables.dtype.type(3)).astype(np.uint8)
    f ^= mask_r
    out = np.empty((2,) + ch.shape, dtype=np.uint8)
    out[:, :, mine] = np.stack([f & 1, f >> 1]).reshape((2,) + shape)
    out[:, :, other] = s_shares
    return out


def level_words(half: int, count: int) -> int:
    """uint64 words of one tree level's operand rows: half * count bits, packed densely."""
    return max(1, -(-half * count // 64))


def _pack_rows(bits: np.ndarray, words: int) -> np.ndarray:
    """(r, ...) 0/1 uint8 -> (r, words) uint64, each row's bits flat and zero-padded."""
    flat = bits.reshape(bits.shape[0], -1)
    pad = np.zeros((flat.shape[0], 64 * words), dtype=np.uint8)
    pad[:, : flat.shape[1]] = flat
    return np.packbits(pad, axis=1, bitorder="little").view("<u8")


@common.member_step
def _split(i: int, shares: np.ndarray) -> tuple:
    """Leaf shares (2, q, count) -> the rows of gt and eq, (q, count) 0/1 each."""
    return shares[0], shares[1]


@common.member_step
def _tree_prepare(i: int, g: np.ndarray, e: np.ndarray) -> tuple:
    """One level: x = eq_hi, y = (gt_lo, eq_lo) for the pairs (2t, 2t + 1), the level's
    (pair, element) bits packed densely: (words,) and (2, words)."""
    q = g.shape[0] // 2
    words = level_words(q, g.shape[1])
    x = _pack_rows(e[None, 1 : 2 * q : 2], words)[0]
    y = _pack_rows(np.stack([g[0 : 2 * q : 2], e[0 : 2 * q : 2]]), words)
    return x, y


@common.member_step
def _tree_finish(i: int, g: np.ndarray, e: np.ndarray, z: np.ndarray) -> tuple:
    q, count = g.shape[0] // 2, g.shape[1]
    bits = np.unpackbits(np.ascontiguousarray(z).view(np.uint8), axis=1, bitorder="little")
    z = bits[:, : q * count].reshape(2, q, count)
    new_g, new_e = g[1 : 2 * q : 2] ^ z[0], z[1]
    if g.shape[0] % 2:
        new_g = np.concatenate([new_g, g[-1:]])
        new_e = np.concatenate([new_e, e[-1:]])
    return new_g, new_e


@common.member_step
def _sign(i: int, msb: np.ndarray, g: np.ndarray, shape: tuple) -> np.ndarray:
    return (g[0].astype(np.uint64) ^ msb).reshape(shape)


# ------------------------------------------------------------------ protocol


def msb_xor(ctx: Any, x: PerParty, *, shape: tuple, m: int | None = None) -> PerParty:
    """XOR shares (0/1 words of `shape`) of bit 63 of two-member shared x: steps 1-4,
    `rounds(m)` rounds. Needs the provider's "rot_n" and "and_pair" kinds."""
    from cipherray.protocols.mpc import binary

    engine = ctx.engine
    if engine.n != 2:
        raise ValueError(f"the millionaires' comparison is for 2 members, got {engine.n}")
    m = check_m(DEFAULT_M if m is None else m)
    q = chunks(m)
    s = tuple(int(d) for d in shape)
    count = int(np.prod(s, dtype=np.int64))
    local, send, step = engine.local, engine.send, ctx.step("leaf")
    ch, msb = local(_inputs, x, m, num_returns=2, step=ctx.step("inputs"))  # 1
    h0, h1 = _halves(count)
    ots = [  # member d receives on half d: (its r, the other's masks), its M[r]
        ctx.provider.request(engine, "rot_n", ((q * (sl.stop - sl.start), m, d),))
        for d, sl in enumerate((h0, h1))
    ]
    r = PerParty((ots[0][0][0], ots[1][0][1]))
    masks = PerParty((ots[1][0][0], ots[0][0][1]))
    mask_r = PerParty((ots[0][1][0], ots[1][1][1]))
    e = local(_leaf_shift, ch, r, step=step)  # 2a, both directions in one round
    # what each member expects of the other's leaf messages: one entry per (chunk,
    # element) of the half it receives on (e) or sends on (tables), from public sizes
    n = (q * (h0.stop - h0.start), q * (h1.stop - h1.start))
    shifts = [messages.array(np.uint8, (n[d],), "leaf shifts e") for d in (0, 1)]
    rows = [messages.array(wire_dtype(m), (n[d],), "leaf tables") for d in (0, 1)]
    e = PerParty((send(e[1], 1, 0, step=step, expect=shifts[1]),
                  send(e[0], 0, 1, step=step, expect=shifts[0])))  # fmt: skip
    tables, s_shares = local(_leaf_table, ch, masks, e, m, num_returns=2, step=step)  # 2b
    tables = PerParty((send(tables[1], 1, 0, step=step, expect=rows[0]),
                       send(tables[0], 0, 1, step=step, expect=rows[1])))  # fmt: skip
    shares = local(_leaf_receive, ch, r, tables, mask_r, s_shares, step=step)  # 2c
    g, eq = local(_split, shares, num_returns=2, step=ctx.step("tree"))
    k, level = q, 0
    while k > 1:  # 3
        half = k // 2
        xs, ys = local(_tree_prepare, g, eq, num_returns=2, step=ctx.step("tree"))
        words = level_words(half, count)
        z = binary.and_pair(ctx.scoped(f"tree{level}"), xs, ys, shape=(words,))
        g, eq = local(_tree_finish, g, eq, z, num_returns=2, step=ctx.step("tree"))
        k, level = k - half, level + 1
    return local(_sign, msb, g, s, step=ctx.step("sign"))  # 4
