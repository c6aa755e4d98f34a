"""Products with one operand private to one member (two members, OT, no dealer)."""

from __future__ import annotations

import numpy as np
import pytest

from cipherray.protocols.mpc import private_product
from cipherray.protocols.mpc.engine import _H, PerParty
from cipherray.protocols.mpc.ot_provider import OTProvider
from cipherray.protocols.mpc.providers import DealerProvider
from cipherray.protocols.mpc.ring import matmul_u64
from cipherray.protocols.mpc.testing import local_context

RNG = np.random.default_rng(2323)  # test data only


def _ctx(ext: str = "softspoken", chunk: int = 1 << 14):
    return local_context(2, provider=OTProvider(chunk=chunk, extension=ext), has_dealer=False)


def _trivial(owner: int, x: np.ndarray) -> PerParty:
    return PerParty(_H(x if i == owner else np.zeros_like(x), i) for i in range(2))


def _ring(shape) -> np.ndarray:
    return RNG.integers(0, 2**64, size=shape, dtype=np.uint64)


CASES = [
    ("matmul", (7, 5), (5,)),
    ("matmul", (7, 5), (5, 3)),
    ("matmul", (5,), (5, 4)),
    ("matmul", (5,), (5,)),
    ("matmul", (4, 9), (9, 1)),
    ("mul", (6,), (6,)),
    ("mul", (3, 4), (4,)),
    ("mul", (4,), (3, 4)),
    ("mul", (), (5,)),
    ("mul", (2, 3), ()),
]


@pytest.mark.parametrize("owner", [0, 1])
@pytest.mark.parametrize("kind,xs,ys", CASES)
def test_exact_ring_product(owner, kind, xs, ys):
    ctx = _ctx()
    e = ctx.engine
    for _ in range(4):  # many draws, exact equality in Z_2^64
        x, y = _ring(xs), _ring(ys)
        z = private_product.product(
            ctx, kind, owner, _trivial(owner, x), e.share(y), x_shape=xs, y_shape=ys,
            truncate=False,
        )  # fmt: skip
        want = matmul_u64(x, y) if kind == "matmul" else np.multiply(x, y)
        np.testing.assert_array_equal(e.reconstruct(z), want)


def test_iknp_and_small_chunks_span_batches():
    ctx = _ctx("iknp", chunk=128)  # many extension batches, several spans
    e = ctx.engine
    x, y = _ring((6, 40)), _ring((40,))
    z = private_product.product(
        ctx, "matmul", 1, _trivial(1, x), e.share(y), x_shape=x.shape, y_shape=y.shape,
        truncate=False,
    )  # fmt: skip
    np.testing.assert_array_equal(e.reconstruct(z), matmul_u64(x, y))


def test_fixed_point_truncated_and_cost():
    ctx = _ctx()
    e = ctx.engine
    f = ctx.frac_bits
    xr = RNG.normal(0, 2, (30, 8))
    yr = RNG.normal(0, 2, (8,))
    enc = lambda a: np.rint(a * 2**f).astype(np.int64).view(np.uint64)  # noqa: E731
    z = private_product.product(
        ctx, "matmul", 0, _trivial(0, enc(xr)), e.share(enc(yr)), x_shape=xr.shape,
        y_shape=yr.shape,
    )  # fmt: skip
    got = e.reconstruct(z).view(np.int64) / 2**f
    np.testing.assert_allclose(got, xr @ yr, atol=1e-3)
    steps = e.by_step()
    ots = 64 * 8  # 64 per element of y
    assert steps["private_matmul/choose"]["bytes"] == ots // 8
    assert steps["private_matmul/cot"]["bytes"] == ots * 8 * 30
    assert steps["private_matmul/choose"]["messages"] == 1
    assert steps["private_matmul/cot"]["messages"] == 1
    assert e.rounds("private_matmul/") == private_product.rounds()
    assert not any(s.endswith("/open") for s in steps)


def test_needs_ot_provider_with_two_members():
    ctx = local_context(2, provider=DealerProvider(), has_dealer=True)
    x = _ring((3,))
    assert not private_product.supported(ctx)
    with pytest.raises(ValueError, match="OT provider"):
        private_product.product(ctx, "mul", 0, _trivial(0, x), ctx.engine.share(x))
    with pytest.raises(ValueError, match="kind"):
        private_product.product(_ctx(), "square", 0, _trivial(0, x), ctx.engine.share(x))


# ------------------------------------------------------------------ on the runtime


@pytest.fixture(scope="module")
def rt():
    import cipherray as cr

    names = ["a", "b", "t"]
    runtime = cr.init(names, backend="inline", timeout_s=120, driver_as=names)
    for p in names:  # these tests check arithmetic, not the policy
        runtime.policy.grant(owner=p, to="*", allow="plaintext")
    yield runtime
    runtime.shutdown()


def _tags(rt) -> set:
    return set(rt.ledger.by_tag()["tag"])


def test_runtime_flags_and_products(rt):
    import cipherray as cr

    a, b, _ = rt.parties
    mpc = rt.mpc(a, b, provider="ot")
    gen = np.random.default_rng(7)  # test data only
    xa, xb = gen.normal(0, 2, (6, 3)), gen.normal(0, 2, (6, 2))
    w, e = gen.normal(0, 1, (6,)), gen.normal(0, 1, (6,))
    sa, sb = a(lambda: xa)().to(mpc), b(lambda: xb)().to(mpc)
    assert sa.private_to == "a" and sb.private_to == "b"
    x = cr.concatenate([sa, sb, mpc.public(np.ones((6, 1)))], axis=1)
    assert x.private_blocks == (1, ((0, 3, "a"), (3, 5, "b"), (5, 6, "a")))
    assert x.private_to is None
    assert x[1:4].private_blocks == x.private_blocks
    assert x.T.private_blocks == (0, x.private_blocks[1])
    assert (
        x[:, 1:3].private_blocks is None and x[:, 1:3].private_to is None
    )  # column selections drop the blocks
    assert sa.T.private_to == "a" and sa[2].private_to == "a"
    ws, es = b(lambda: w)().to(mpc), a(lambda: e)().to(mpc)
    r = ws + es  # a sum of two members' inputs: general sharing
    assert r.private_to is None and (-sa).private_to is None
    assert (sa * 2.0).private_to is None
    xf = np.concatenate([xa, xb, np.ones((6, 1))], axis=1)

    def check(sref, want):
        np.testing.assert_allclose(rt.get(sref.reveal_to(a)), want, atol=2e-3)

    check(x @ r, xf @ (w + e))  # column blocks, summed over the owners
    check(x.T @ r, xf.T @ (w + e))  # row blocks, scattered
    check(x[2:5] @ r, xf[2:5] @ (w + e))
    check(sb @ r[:2], xb @ (w + e)[:2])  # owner 1
    check(sa.T @ r, xa.T @ (w + e))
    check(sa * r[:3], xa * (w + e)[:3])  # broadcasting
    check(r[:3] * sa, xa * (w + e)[:3])  # y private: swapped
    tags = _tags(rt)
    assert any("private_matmul/cot" in t for t in tags)
    assert any("private_mul/cot" in t for t in tags)
    assert not any(t.endswith("matmul/open") and "private" not in t for t in tags)


def test_runtime_dealer_path_unchanged(rt):
    a, b, t = rt.parties
    mpc = rt.mpc(a, b, dealer=t)
    gen = np.random.default_rng(8)  # test data only
    xa, w = gen.normal(0, 2, (5, 3)), gen.normal(0, 1, (3,))
    sa = a(lambda: xa)().to(mpc)
    assert sa.private_to is None  # random shares with a dealer
    sw = b(lambda: w)().to(mpc)
    np.testing.assert_allclose(rt.get((sa @ sw).reveal_to(a)), xa @ w, atol=2e-3)
    assert not any("private" in tg for tg in _tags(rt) if tg.startswith("matmul"))


def test_runtime_overflow_check_falls_back(rt):
    a, b, _ = rt.parties
    mpc = rt.mpc(a, b, provider="ot", check_overflow=True)
    gen = np.random.default_rng(9)  # test data only
    xa, w = gen.normal(0, 2, (5, 3)), gen.normal(0, 1, (3,))
    sa, sw = a(lambda: xa)().to(mpc), b(lambda: w)().to(mpc)
    assert sa.private_to == "a"
    np.testing.assert_allclose(rt.get((sa @ sw).reveal_to(a)), xa @ w, atol=2e-3)
