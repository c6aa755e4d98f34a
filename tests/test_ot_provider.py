"""OTProvider: two members, no dealer, every kind of correlated randomness from OT."""

from __future__ import annotations

import numpy as np
import pytest

import cipherray as cr
from cipherray.protocols import ot
from cipherray.protocols.mpc import arithmetic, binary, compare, truncation
from cipherray.protocols.mpc import functions as F
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import LocalEngine, PerParty
from cipherray.protocols.mpc.ot_provider import OTProvider, _check_slice, wrap_count
from cipherray.protocols.mpc.providers import count_wraps
from cipherray.protocols.mpc.ring import matmul_u64
from cipherray.protocols.mpc.testing import encoded, local_context, reveal, share

RNG = np.random.default_rng(23)  # test data only


EXTS = ["iknp", "softspoken"]
U_BYTES = {"iknp": 16, "softspoken": 16 // ot.softspoken.DEFAULT_K}  # extension bytes per OT


@pytest.fixture(params=EXTS)
def ext(request) -> str:
    """The OT extension under the provider (IKNP, or SoftSpoken with its default k)."""
    return request.param


def _ctx(chunk: int = 1 << 16, ext: str = "iknp") -> MPCContext:
    return local_context(2, provider=OTProvider(chunk=chunk, extension=ext), has_dealer=False)


def _rec(e: LocalEngine, h: PerParty) -> np.ndarray:
    return e.reconstruct(h)


def _xor(h: PerParty) -> np.ndarray:
    return h[0].value ^ h[1].value


# ------------------------------------------------------------------ the kinds


@pytest.mark.parametrize(
    "sx,sy", [((2000,), (2000,)), ((30, 4), (4,)), ((5, 1), (1, 6)), ((), (7,)), ((3,), (1,))]
)
def test_mul_triples(sx, sy, ext):
    ctx = _ctx(chunk=4096, ext=ext)  # the 2000-element request travels in blocks
    e, p = ctx.engine, ctx.provider
    for _ in range(3):
        a, b, c = p.mul_triple(e, sx, sy)
        A, B, C = _rec(e, a), _rec(e, b), _rec(e, c)
        assert A.shape == sx and B.shape == sy
        assert np.array_equal(C, A * B)
    # shares are not degenerate: member 0's share alone is not the product
    assert not np.array_equal(c[0].value, C)


@pytest.mark.parametrize(
    "sx,sy", [((8, 5), (5, 3)), ((2, 9), (9, 12)), ((6,), (6, 4)), ((4, 6), (6,)), ((1, 1), (1, 1))]
)
def test_matmul_triples(sx, sy, ext):
    ctx = _ctx(ext=ext)
    e, p = ctx.engine, ctx.provider
    a, b, c = p.matmul_triple(e, sx, sy)
    A, B = _rec(e, a), _rec(e, b)
    assert A.shape == sx and B.shape == sy
    assert np.array_equal(_rec(e, c), matmul_u64(A, B))


def test_square_and_and_triples_and_bits(ext):
    ctx = _ctx(chunk=2048, ext=ext)  # several extensions and blocks per request
    e, p = ctx.engine, ctx.provider
    a, c = p.square_pair(e, (3000,))
    A = _rec(e, a)
    assert np.array_equal(_rec(e, c), A * A)
    a, b, c = p.and_triple(e, (40, 3))  # 7680 AND triples
    A, B = _xor(a), _xor(b)
    assert np.array_equal(_xor(c), A & B)
    # the bits are balanced (a broken OT would give constant words)
    ones = sum(bin(int(w)).count("1") for w in A.reshape(-1))
    assert abs(ones / (64 * A.size) - 0.5) < 0.03
    ar, xr = p.random_bit(e, (5000,))
    arith, bits = _rec(e, ar), _xor(xr)
    assert set(np.unique(bits)) == {0, 1}
    assert np.array_equal(arith, bits)
    assert abs(bits.mean() - 0.5) < 0.05


def test_wrap_pairs_match_count_wraps(ext):
    ctx = _ctx(ext=ext)
    e, p = ctx.engine, ctx.provider
    r, theta = p.wrap_pair(e, (3000,))
    want = count_wraps([r[0].value, r[1].value])
    got = _rec(e, theta).view(np.int64)
    assert np.array_equal(got, want)
    assert set(np.unique(want)) == {-1, 0, 1}


def test_wrap_count_edge_shares():
    """Chosen shares around 0 and +-2^63 (every sign/carry case of the formula)."""
    ctx = _ctx()
    e = ctx.engine
    edge = np.array(
        [0, 1, -1, 2**62, -(2**62), 2**63 - 1, -(2**63), -(2**63) + 1, 2**63 - 2],
        dtype=np.int64,
    )
    r0 = np.repeat(edge, edge.size)
    r1 = np.tile(edge, edge.size)
    rnd = RNG.integers(-(2**63), 2**63 - 1, size=(2, 2000), dtype=np.int64)
    r0, r1 = np.concatenate([r0, rnd[0]]), np.concatenate([r1, rnd[1]])
    shares = PerParty(e.local(lambda i: (r0 if i == 0 else r1).view(np.uint64), step="local"))
    theta = wrap_count(ctx.scoped("w"), shares, r0.shape)
    want = count_wraps([r0.view(np.uint64), r1.view(np.uint64)])
    assert np.array_equal(_rec(e, theta).view(np.int64), want)


def test_ledger_counts_offline_ot_traffic(ext):
    """With a chunk equal to the need, a mul of N costs exactly 2 * 64 N * (16 + 8)
    bytes under offline/mul (IKNP u and COT d; SoftSpoken: 4 bytes of c instead of 16),
    plus the base OTs under offline/setup."""
    ctx = _ctx(chunk=128, ext=ext)
    u = U_BYTES[ext]
    e, p = ctx.engine, ctx.provider
    n = 100
    p.mul_triple(e, (n,), (n,))
    steps = e.by_step()
    assert steps["offline/setup"]["bytes"] > 0
    assert steps["offline/mul"]["bytes"] == 2 * 64 * n * (u + 8)
    assert p.ots_extended == 2 * 64 * n
    p.and_triple(e, (2,))  # 128 ROTs each way: only the extension's u travels
    assert e.by_step()["offline/and"]["bytes"] == 2 * 128 * u
    # batches are spent to the end: requests that straddle a batch take its leftover
    p = OTProvider(chunk=1024, extension=ext)
    e = LocalEngine(2, has_dealer=False)
    for _ in range(10):
        a, b, c = p.and_triple(e, (3,))  # 192 ROTs each way
        assert np.array_equal(_xor(c), _xor(a) & _xor(b))
    assert p.ots_extended == 2 * 2048  # 1,920 used per instance


def test_strict_pool_and_short_batch_are_named_errors():
    ctx = _ctx()
    e = ctx.engine
    p = OTProvider(strict=True)
    assert p.preprocess(e, [("mul", [(10,), (10,)]), ("and", [(4,)])]) == 2
    a, b, c = p.mul_triple(e, (10,), (10,))
    assert np.array_equal(_rec(e, c), _rec(e, a) * _rec(e, b))
    with pytest.raises(LookupError, match="'mul'"):
        p.mul_triple(e, (10,), (10,))  # more than prepared
    # at the OT layer: slicing more OTs than a batch holds names the role
    r_state, msg_a = ot.receiver_setup()
    s_state, msg_b = ot.sender_setup(msg_a)
    r_state = ot.receiver_setup_finish(r_state, msg_b)
    r_state, rb, u = ot.receiver_extend(r_state, 128)
    s_state, sb = ot.sender_extend(s_state, u, 128)
    with pytest.raises(ot.OTError, match="OT sender.*more correlations asked than prepared"):
        _check_slice(sb, 100, 200, "OT sender")
    with pytest.raises(ot.OTError, match="OT receiver"):
        _check_slice(rb, 0, 129, "OT receiver")
    with pytest.raises(ValueError, match="two-member"):
        OTProvider().mul_triple(LocalEngine(3, has_dealer=False), (2,), (2,))
    with pytest.raises(ValueError, match="extension must be one of"):
        OTProvider(extension="kos")
    with pytest.raises(ot.OTError, match="OTProvider: setup: k must be one of"):
        OTProvider(extension="softspoken", softspoken_k=3)


# ------------------------------------------------- every shared operation, no dealer

_FUNCS = [
    ("sigmoid", F.sigmoid, np.linspace(-12, 12, 241), lambda x: 1 / (1 + np.exp(-x)),
     lambda x: 1e-3),
    ("tanh", F.tanh, np.linspace(-8, 8, 161), np.tanh, lambda x: 2e-3),
    ("exp", F.exp, np.linspace(-16, 4, 201), np.exp, lambda x: 2e-3 * np.maximum(1, np.exp(x))),
    ("reciprocal", F.reciprocal,
     np.concatenate([np.linspace(0.05, 2, 100), np.geomspace(2, 1000, 100)]),
     lambda x: 1 / x, lambda x: 1e-3 * np.maximum(1, 1 / x)),
    ("sqrt", F.sqrt,
     np.concatenate([np.linspace(0, 0.05, 50), np.linspace(0.05, 2, 100),
                     np.geomspace(2, 1000, 100)]),
     np.sqrt, lambda x: np.where(x >= 0.05, 2e-4, 5e-3)),
]  # fmt: skip


@pytest.mark.parametrize("case", _FUNCS, ids=[c[0] for c in _FUNCS])
def test_functions_without_dealer_within_documented_bound(case, ext):
    name, fn, xs, ref, bound = case
    ctx = _ctx(ext=ext)
    got = reveal(ctx, fn(ctx, share(ctx, xs)))
    x = encoded(xs)
    err = np.abs(got - ref(x))
    assert np.all(err <= bound(x)), f"{name}: worst {err.max():.3g} at x={x[np.argmax(err)]}"
    assert any(s.startswith("offline/") for s in ctx.engine.by_step())


def test_products_comparisons_relu_truncation_without_dealer(ext):
    ctx = _ctx(ext=ext)
    e = ctx.engine
    x = np.round(RNG.normal(size=300) * 10, 1)
    y = np.round(RNG.normal(size=300) * 10, 1)
    y[:30] = x[:30]
    xs, ys = share(e, x), share(e, y)
    ex, ey = encoded(x), encoded(y)
    ulp = 2.0**-16
    assert np.abs(reveal(e, arithmetic.mul(ctx, xs, ys)) - ex * ey).max() <= 2 * ulp
    assert np.abs(reveal(e, arithmetic.square(ctx, xs)) - ex * ex).max() <= 2 * ulp
    m1, m2 = RNG.normal(size=(6, 5)), RNG.normal(size=(5, 4))
    got = reveal(e, arithmetic.matmul(ctx, share(e, m1), share(e, m2)))
    assert np.abs(got - encoded(m1) @ encoded(m2)).max() <= 1e-3
    for name, want in {"lt": ex < ey, "gt": ex > ey, "le": ex <= ey, "ge": ex >= ey,
                       "eq": ex == ey}.items():  # fmt: skip
        assert np.array_equal(reveal(e, getattr(compare, name)(ctx, xs, ys)), want), name
    assert np.array_equal(reveal(e, compare.relu(ctx, xs)), np.maximum(ex, 0))
    # the wrap-count truncation (not the 2-member default) with OT wrap pairs
    v = RNG.integers(-(2**32), 2**32, size=2000).astype(np.int64)
    z = truncation.truncate(ctx, e.share(v.view(np.uint64)), 16, method="wrap")
    assert np.abs(e.reconstruct(z).view(np.int64) - v / 2.0**16).max() <= 1
    # the A2B circuit exactly (full ring)
    w = RNG.integers(-(2**63), 2**63 - 1, size=500, dtype=np.int64)
    w[:4] = [0, -1, -(2**63), 2**63 - 1]
    bit = binary.ltz_bit(ctx, e.share(w.view(np.uint64)))
    assert np.array_equal(e.reconstruct(bit), (w < 0).astype(np.uint64))
    assert not ctx.has_dealer


def test_opaque_pickling_engine_every_kind(ext):
    """Step functions and public arguments pickle (as in Ray actors); shapes are passed."""
    prov = OTProvider(chunk=4096, extension=ext)
    ctx = local_context(2, opaque=True, provider=prov, has_dealer=False)
    e, p = ctx.engine, ctx.provider
    inner = e.inner
    for kind, shapes in [("mul", ((40,), (40,))), ("matmul", ((3, 4), (4, 2))),
                         ("square", ((9,),)), ("wrap", ((70,),))]:  # fmt: skip
        out = p.request(e, kind, shapes)
        vals = [inner.reconstruct(h) for h in out]
        if kind == "mul":
            assert np.array_equal(vals[2], vals[0] * vals[1])
        elif kind == "matmul":
            assert np.array_equal(vals[2], matmul_u64(vals[0], vals[1]))
        elif kind == "square":
            assert np.array_equal(vals[1], vals[0] * vals[0])
        else:
            want = count_wraps([out[0][0].value, out[0][1].value])
            assert np.array_equal(vals[1].view(np.int64), want)
    x = share(ctx, np.linspace(-3, 3, 50))
    got = reveal(ctx, compare.gt(ctx, x, 0.5, x_shape=(50,)))
    assert np.array_equal(got, (encoded(np.linspace(-3, 3, 50)) > 0.5).astype(float))


@pytest.mark.parametrize("n", [2, 3])
def test_bitsliced_a2b_exact_same_rounds_fewer_bytes(n):
    """The bit-sliced carry tree (any provider that asks for it) on the full ring."""
    from cipherray.protocols.mpc.providers import DealerProvider

    v = RNG.integers(-(2**63), 2**63 - 1, size=3000, dtype=np.int64)
    v[:8] = [0, -1, 1, -(2**63), 2**63 - 1, -(2**62), 2**62, -2]
    out = {}
    for sliced in (False, True):
        prov = DealerProvider()
        prov.bitsliced_a2b = sliced
        ctx = local_context(n, provider=prov)
        e = ctx.engine
        b = binary.ltz_bit(ctx, e.share(v.view(np.uint64)))
        assert np.array_equal(e.reconstruct(b), (v < 0).astype(np.uint64))
        assert e.rounds("ltz") == binary.ltz_rounds(n)
        out[sliced] = e.bytes("ltz")
    assert out[True] * 3 < out[False]


# ---------------------------------------------------------------- on the runtime


@pytest.fixture(scope="module")
def rt():
    runtime = cr.init(["a", "b"], backend="inline", timeout_s=60, driver_as=["a", "b"])
    for p in ("a", "b"):
        runtime.policy.grant(owner=p, to="*", allow="plaintext")
    yield runtime
    runtime.shutdown()


def test_runtime_two_parties_no_dealer_default_is_ot(rt):
    a, b = rt.parties
    mpc = rt.mpc(a, b)
    assert isinstance(mpc.provider, OTProvider)
    xa, xb = RNG.normal(0, 2, 50), RNG.normal(0, 2, 50)
    x, y = a(lambda: xa)().to(mpc), b(lambda: xb)().to(mpc)
    np.testing.assert_allclose(rt.get((x * y).reveal_to(b)), xa * xb, atol=2e-3)
    got = rt.get((x > y).reveal_to(a))
    np.testing.assert_array_equal(got, (encoded(xa) > encoded(xb)).astype(float))
    np.testing.assert_allclose(rt.get(x.sigmoid().reveal_to(a)), 1 / (1 + np.exp(-xa)), atol=2e-3)
    by_tag = rt.ledger.by_tag().set_index("tag")
    assert by_tag.loc["offline/setup", "bytes"] > 0
    assert by_tag.loc["offline/mul", "bytes"] >= 2 * 64 * 50 * (16 + 8)
    # the comparison's random bits (COT messages; its AND triples came out of batches
    # already extended, and ROT-based triples send nothing else)
    assert by_tag.loc["offline/bit", "bytes"] >= 8 * 50
    with pytest.raises(cr.ConfigError, match="unknown provider"):
        _ = rt.mpc(a, b, provider="nope").provider


def test_vertical_lr_two_parties_no_dealer_matches_dealer():
    """Vertical LR (member 0: 15 features; member 1: 15 and the labels) on 120 rows of
    breast cancer: the same accuracy with OT randomness as with a dealer's."""
    datasets = pytest.importorskip("sklearn.datasets")
    from cipherray.protocols.mpc import logreg
    from cipherray.protocols.mpc.providers import DealerProvider

    x, y = datasets.load_breast_cancer(return_X_y=True)
    keep = np.concatenate([np.flatnonzero(y == 0)[:60], np.flatnonzero(y == 1)[:60]])
    x, y = x[keep], y[keep].astype(np.float64)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    acc = {}
    for name, has_dealer, prov in (("ot", False, OTProvider()), ("dealer", True, DealerProvider())):
        ctx = local_context(2, provider=prov, has_dealer=has_dealer)
        w, b = logreg.train_logreg(ctx, share(ctx, x), share(ctx, y), epochs=3, lr=1.0)
        w, b = reveal(ctx, w), float(reveal(ctx, b)[0])
        acc[name] = float((((x @ w + b) > 0) == (y > 0.5)).mean())
        if name == "ot":
            steps = ctx.engine.by_step()
            # the sigmoid's comparisons: the millionaires' leaves (rot_n) and tree
            # (and_pair), from OTs the extensions of matmul and the rest made
            assert {"rot_n", "and_pair"} <= {kind for kind, _ in prov.log}
            assert steps["offline/matmul"]["bytes"] > 0
    w_ref, b_ref = logreg.train_logreg_plaintext(x, y, epochs=3, lr=1.0)
    ref = float((((x @ w_ref + b_ref) > 0) == (y > 0.5)).mean())
    assert ref > 0.9
    assert abs(acc["ot"] - acc["dealer"]) <= 0.01 and abs(acc["ot"] - ref) <= 0.01


def test_party_that_stops_mid_extension_is_a_named_party_error(ext):
    with cr.init(["a", "b"], backend="inline", timeout_s=20, driver_as=["a", "b"]) as rt:
        for p in ("a", "b"):
            rt.policy.grant(owner=p, to="*", allow="plaintext")
        a, b = rt.parties
        mpc = rt.mpc(a, b, provider=OTProvider(chunk=128, extension=ext))
        # a sum of both members' inputs: a general sharing, so x * x takes a triple
        x = a(lambda: np.arange(4.0))().to(mpc) + b(lambda: np.zeros(4))().to(mpc)
        rt.get((x * x).reveal_to(a))  # set up and extended once
        rt.kill_worker("b")
        with pytest.raises(cr.PartyError) as info:
            rt.get((x * x).reveal_to(a))  # the next extension needs b
        assert info.value.party == "b"
        assert "party 'b'" in str(info.value)
        # the offline step whose message b could not send, not a bare 'send'
        assert info.value.step == "offline/mul"
