"""The millionaires' comparison (CrypTFlow2) for two members: its 1-out-of-2^m random OTs
("rot_n"), paired AND triples ("and_pair"), and the sign bit against plaintext, with the
OT provider and with a dealer."""

from __future__ import annotations

import numpy as np
import pytest

from cipherray.protocols.mpc import binary, compare, millionaire
from cipherray.protocols.mpc import functions as F
from cipherray.protocols.mpc.engine import LocalEngine, PerParty
from cipherray.protocols.mpc.ot_provider import OTProvider
from cipherray.protocols.mpc.providers import DealerProvider
from cipherray.protocols.mpc.testing import encoded, local_context, reveal, share

RNG = np.random.default_rng(2020)  # test data only


def _dealer(m: int = 4) -> DealerProvider:
    p = DealerProvider()
    p.millionaire_m = m
    return p


def _ctx(provider, has_dealer: bool):
    return local_context(2, provider=provider, has_dealer=has_dealer)


def _providers(m: int = 4):
    return [("ot", OTProvider(chunk=1 << 14, millionaire_m=m), False), ("dealer", _dealer(m), True)]


def _entries(words: np.ndarray, m: int) -> np.ndarray:
    """(k,) uint64 -> (k, 2^m) 2-bit entries."""
    pos = np.uint64(2) * np.arange(1 << m, dtype=np.uint64)
    return ((words[:, None] >> pos[None, :]) & np.uint64(3)).astype(np.uint8)


# ------------------------------------------------------------------ the kinds


@pytest.mark.parametrize("m,d", [(1, 0), (2, 1), (3, 0), (4, 0), (4, 1), (5, 1)])
@pytest.mark.parametrize("which", ["ot", "dealer"])
def test_rot_n_receiver_gets_the_chosen_mask(m, d, which):
    prov, has_dealer = (
        (OTProvider(chunk=4096), False) if which == "ot" else (DealerProvider(), True)
    )
    e = LocalEngine(2, has_dealer=has_dealer)
    k = 3001  # several extensions for the OT provider
    idx, mask = prov.rot_n(e, k, m, receiver=d)
    r, masks, mr = idx[d].value, idx[1 - d].value, mask[d].value
    assert mask[1 - d].value.size == 0
    assert r.dtype == np.uint8 and r.shape == (k,) and masks.shape == (k,)
    assert int(r.max()) < (1 << m) and int(masks.max()) <= int(millionaire.field_mask(m))
    table = _entries(masks, m)
    assert np.array_equal(table[np.arange(k), r], mr)
    # the index is uniform (every value comes up about equally often)
    counts = np.bincount(r, minlength=1 << m)
    assert counts.min() > 0.4 * k / (1 << m)  # 6 sigma below the mean for m = 5


def test_rot_n_masks_of_unchosen_indices_look_independent():
    """Fix the receiver's view (choice bits and its chosen ROT strings) and redraw the
    strings it does not hold: M[r] stays put, every other entry is uniform, and any two
    of them are jointly uniform (the slice positions differ)."""
    m, trials = 4, 20000
    choices = RNG.integers(0, 2, size=(1, m)).astype(np.uint8)
    wc = RNG.integers(0, 2**64, size=(1, m), dtype=np.uint64)
    r, mr = millionaire.rot_n_choice(choices, wc, m)
    other = RNG.integers(0, 2**64, size=(trials, m), dtype=np.uint64)
    c = choices.astype(bool)
    w0 = np.where(c, other, wc)  # the receiver holds w_{c_j}; the other string varies
    w1 = np.where(c, wc, other)
    table = _entries(millionaire.rot_n_masks(w0, w1, m), m)
    r = int(r[0])
    assert np.all(table[:, r] == mr[0])
    rest = [i for i in range(1 << m) if i != r]
    freq = np.stack([np.bincount(table[:, i], minlength=4) for i in rest]) / trials
    assert np.abs(freq - 0.25).max() < 0.02
    for i, j in [(rest[0], rest[1]), (rest[2], rest[-1]), (r ^ 1, r ^ 2), (r ^ 3, r ^ 12)]:
        joint = np.bincount(4 * table[:, i] + table[:, j], minlength=16) / trials
        assert np.abs(joint - 1 / 16).max() < 0.012, (i, j)


@pytest.mark.parametrize("which", ["ot", "dealer"])
def test_and_pair_triples(which):
    prov, has_dealer = (
        (OTProvider(chunk=2048), False) if which == "ot" else (DealerProvider(), True)
    )
    e = LocalEngine(2, has_dealer=has_dealer)
    a, b, c = prov.and_pair(e, (7, 5))
    A, B, C = (h[0].value ^ h[1].value for h in (a, b, c))
    assert A.shape == (7, 5) and B.shape == C.shape == (2, 7, 5)
    assert np.array_equal(C, A[None] & B)
    ones = sum(bin(int(w)).count("1") for w in B.reshape(-1))
    assert abs(ones / (64 * B.size) - 0.5) < 0.05


def test_permute_is_xor_of_the_index():
    m = 4
    words = RNG.integers(0, 2**32, size=200, dtype=np.uint64)
    e = RNG.integers(0, 16, size=200, dtype=np.uint64)
    got = _entries(millionaire.permute(words, e, m), m)
    want = _entries(words, m)[
        np.arange(200)[:, None], np.arange(16)[None, :] ^ e[:, None].astype(np.int64)
    ]
    assert np.array_equal(got, want)


# ------------------------------------------------------------ the sign bit


def _edge_pairs() -> tuple[np.ndarray, np.ndarray]:
    """Share pairs around every boundary: low63 sums just below, at and above 2^63
    (A == B is low63(x0) + low63(x1) = 2^63 - 1), signs of either share, and 0."""
    top = 2**63 - 1
    edge = [0, 1, 2, 15, 16, 2**62, top - 1, top, -(2**63), -(2**63) + 1, -1, -2]
    x0 = np.repeat(np.array(edge, dtype=np.int64), len(edge))
    x1 = np.tile(np.array(edge, dtype=np.int64), len(edge))
    low = RNG.integers(0, 2**63, size=300, dtype=np.int64)
    eq = np.int64(top) - low  # low63(x0) + low63(x1) = 2^63 - 1: every chunk equal
    near = [eq, eq + 1, eq - 1]
    x0 = np.concatenate([x0, low, low, low])
    x1 = np.concatenate([x1, *near])
    # chunks equal except the lowest bit (the deepest tree path)
    x0 = np.concatenate([x0, np.array([0, 1, 2**62], dtype=np.int64)])
    x1 = np.concatenate([x1, np.array([top, top - 1, 2**62 - 1], dtype=np.int64)])
    return x0, x1


def _shares(e: LocalEngine, x0: np.ndarray, x1: np.ndarray) -> PerParty:
    return e.local(lambda i: (x0 if i == 0 else x1).view(np.uint64).copy(), step="local")


@pytest.mark.parametrize("m", [3, 4, 5])
def test_millionaire_sign_on_edge_shares_and_random(m):
    x0, x1 = _edge_pairs()
    rnd = RNG.integers(-(2**63), 2**63 - 1, size=(2, 5000), dtype=np.int64)
    x0, x1 = np.concatenate([x0, rnd[0]]), np.concatenate([x1, rnd[1]])
    want = ((x0.view(np.uint64) + x1.view(np.uint64)) >> np.uint64(63)).astype(np.uint64)
    for name, prov, has_dealer in _providers(m):
        ctx = _ctx(prov, has_dealer)
        e = ctx.engine
        xs = _shares(e, x0, x1)
        bits = millionaire.msb_xor(ctx.scoped("m"), xs, shape=x0.shape, m=m)
        assert np.array_equal(bits[0].value ^ bits[1].value, want), name
        got = binary.ltz_bit(ctx, xs, shape=x0.shape)
        assert np.array_equal(e.reconstruct(got), want), name
        assert e.rounds("ltz") == binary.ltz_rounds(2, prov) == millionaire.rounds(m) + 1
        assert e.rounds("m/") == millionaire.rounds(m)


def test_millionaire_many_random_draws_and_shapes():
    prov = OTProvider(chunk=1 << 16)
    ctx = _ctx(prov, False)
    e = ctx.engine
    for shape in [(1,), (63,), (64,), (65,), (7, 9), (), (0,), (20000,)]:
        v = RNG.integers(-(2**63), 2**63 - 1, size=shape, dtype=np.int64)
        b = binary.ltz_bit(ctx.scoped(f"s{len(shape)}"), e.share(v.view(np.uint64)), shape=shape)
        assert np.array_equal(e.reconstruct(b), (v < 0).astype(np.uint64)), shape
    # small magnitudes (the fixed-point case): the high chunks are all equal
    v = RNG.integers(-(2**20), 2**20, size=5000).astype(np.int64)
    v[:3] = [0, -1, 1]
    b = binary.ltz_bit(ctx.scoped("small"), e.share(v.view(np.uint64)), shape=v.shape)
    assert np.array_equal(e.reconstruct(b), (v < 0).astype(np.uint64))


def test_random_ots_per_comparison():
    """94 random OTs per comparison for m = 4 (+ one COT for B2A), against 362 for the
    bit-sliced carry tree; the online traffic is small beside them."""
    assert millionaire.rots_per_compare(4) == 94 and millionaire.rots_per_compare(5) == 89
    n = 64 * 40
    v = RNG.integers(-(2**40), 2**40, size=n).astype(np.int64)
    used = {}
    for mill in (4, None):
        prov = OTProvider(chunk=1 << 20, millionaire_m=mill)
        ctx = _ctx(prov, False)
        e = ctx.engine
        binary.msb_xor(ctx, e.share(v.view(np.uint64)), shape=(n,))
        used[mill] = sum(i.used for i in prov._inst)
        online = e.bytes("a2b/")
        if mill == 4:
            # leaves: one byte R -> S and a 4-byte table S -> R per leaf; tree: 3 words
            # of 64 elements each way per node
            assert online == n * 16 * (1 + 4) + 2 * 3 * 8 * 15 * (n // 64)
    assert used[4] == 94 * n
    assert used[None] == 362 * n
    # few elements: each tree level's bits share words (4 levels, one word each here)
    for n, want in (
        (1, 64 + 4 * 2 * 64),
        (3, 3 * 64 + 4 * 2 * 64),
        (100, 100 * 64 + 2 * 64 * (13 + 7 + 4 + 2)),
    ):
        prov = OTProvider(chunk=1 << 16)
        ctx = _ctx(prov, False)
        v = RNG.integers(-(2**62), 2**62, size=n, dtype=np.int64)
        bits = binary.msb_xor(ctx, ctx.engine.share(v.view(np.uint64)), shape=(n,))
        assert np.array_equal(bits[0].value ^ bits[1].value, (v < 0).astype(np.uint64))
        assert sum(i.used for i in prov._inst) == want, n


# ------------------------------------------------------- operations built on it


@pytest.mark.parametrize("which", ["ot", "dealer"])
def test_comparisons_relu_sigmoid_through_millionaire(which):
    name, prov, has_dealer = next(p for p in _providers() if p[0] == which)
    ctx = _ctx(prov, has_dealer)
    e = ctx.engine
    x = np.round(RNG.normal(size=400) * 10, 1)
    y = np.round(RNG.normal(size=400) * 10, 1)
    y[:40] = x[:40]
    xs, ys = share(e, x), share(e, y)
    ex, ey = encoded(x), encoded(y)
    for op, want in {"lt": ex < ey, "gt": ex > ey, "le": ex <= ey, "ge": ex >= ey,
                     "eq": ex == ey}.items():  # fmt: skip
        assert np.array_equal(reveal(e, getattr(compare, op)(ctx, xs, ys)), want), op
        assert e.rounds(f"{op}/") == binary.ltz_rounds(2, prov), op
    assert np.array_equal(reveal(e, compare.relu(ctx, xs)), np.maximum(ex, 0))
    assert np.array_equal(reveal(e, compare.gt(ctx, xs, 0.5)), ex > 0.5)
    xs2 = np.linspace(-12, 12, 241)
    got = reveal(ctx, F.sigmoid(ctx, share(ctx, xs2)))
    assert np.abs(got - 1 / (1 + np.exp(-encoded(xs2)))).max() <= 1e-3
    steps = e.by_step()
    assert any("offline/rot_n" in s for s in steps) and any("offline/and_pair" in s for s in steps)


def test_three_members_keep_the_adder():
    prov = _dealer()
    ctx = local_context(3, provider=prov)
    e = ctx.engine
    v = RNG.integers(-(2**62), 2**62, size=500, dtype=np.int64)
    b = binary.ltz_bit(ctx, e.share(v.view(np.uint64)))
    assert np.array_equal(e.reconstruct(b), (v < 0).astype(np.uint64))
    assert e.rounds("ltz") == binary.ltz_rounds(3, prov) == binary.ltz_rounds(3)
    assert not any("rot_n" in s for s in e.by_step())


def test_bad_leaf_width_and_request_are_named():
    with pytest.raises(ValueError, match="leaf width"):
        OTProvider(millionaire_m=6)
    for bad in ((10, 7), (10, 4, 2), (10,)):
        with pytest.raises(ValueError, match="rot_n"):
            DealerProvider().request(LocalEngine(2), "rot_n", (bad,))
