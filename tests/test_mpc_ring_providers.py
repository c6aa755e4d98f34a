"""Exact Z_2^64 matmul and the correlated-randomness providers."""

from __future__ import annotations

import numpy as np
import pytest

from cipherray.protocols.mpc import arithmetic
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import DEALER, LocalEngine
from cipherray.protocols.mpc.providers import DealerProvider, count_wraps
from cipherray.protocols.mpc.ring import matmul_u64
from cipherray.protocols.mpc.testing import share

RNG = np.random.default_rng(20261127)  # test data only


def _rand(*shape):
    return RNG.integers(0, 2**64, size=shape, dtype=np.uint64)


@pytest.mark.parametrize(
    "m,k,n", [(3, 5, 7), (64, 1024, 33), (65, 1025, 17), (40, 2500, 9), (1, 5000, 1), (200, 300, 1)]
)
def test_matmul_u64_exact_random(m, k, n):
    a, b = _rand(m, k), _rand(k, n)
    assert np.array_equal(matmul_u64(a, b), a @ b)


@pytest.mark.parametrize(
    "v", [0, 1, 2**64 - 1, 2**63, 2**63 - 1, 2**21, 2**22 - 1, 2**43 + 2**42, 2**21 + 2**42]
)
def test_matmul_u64_exact_extremes(v):
    a = np.full((16, 2048), v, np.uint64)
    for w in (v, 2**64 - 1 - v, 2**63 + 2**20):
        b = np.full((2048, 16), w, np.uint64)
        assert np.array_equal(matmul_u64(a, b), a @ b)


def test_matmul_u64_vectors_int64_and_errors():
    a, b = _rand(300), _rand(300, 200)
    assert np.array_equal(matmul_u64(a, b), a @ b)
    assert np.array_equal(matmul_u64(b.T, a), b.T @ a)
    assert matmul_u64(a, a) == a @ a
    assert np.array_equal(matmul_u64(a.view(np.int64), b), a @ b)
    with pytest.raises(ValueError, match=r"\(300,\) @ \(299, 200\)"):
        matmul_u64(a, b[:299])
    with pytest.raises(TypeError, match="float64"):
        matmul_u64(a.astype(float), b)


def test_count_wraps():
    vals = [_rand(1000) for _ in range(4)]
    theta = count_wraps(vals)
    for j in range(0, 1000, 97):
        exact = sum(int(v[j].view(np.int64)) for v in vals)
        total = int(np.sum([v[j] for v in vals], dtype=np.uint64).view(np.int64))
        assert exact == total + int(theta[j]) * 2**64


def _xor(engine, h):
    return np.bitwise_xor.reduce([engine.value(q) for q in h])


@pytest.mark.parametrize("n", [2, 3, 4])
def test_dealer_kinds_are_correct(n):
    e, p = LocalEngine(n), DealerProvider()
    a, b, c = p.mul_triple(e, (3, 4), (4,))
    assert np.array_equal(e.reconstruct(a) * e.reconstruct(b), e.reconstruct(c))
    a, c = p.square_pair(e, (10,))
    assert np.array_equal(e.reconstruct(a) ** 2, e.reconstruct(c))
    a, b, c = p.matmul_triple(e, (3, 4), (4, 5))
    assert np.array_equal(e.reconstruct(a) @ e.reconstruct(b), e.reconstruct(c))
    a, b, c = p.and_triple(e, (7,))
    assert np.array_equal(_xor(e, a) & _xor(e, b), _xor(e, c))
    r, t = p.wrap_pair(e, (500,))
    shares = [e.value(h) for h in r]
    assert np.array_equal(count_wraps(shares), e.reconstruct(t).view(np.int64))
    ra, rb = p.random_bit(e, (300,))
    bits = _xor(e, rb)
    assert set(np.unique(bits)) <= {0, 1} and 50 < bits.sum() < 250
    assert np.array_equal(e.reconstruct(ra), bits)


def test_seed_compression_counts():
    n = 3
    e, p = LocalEngine(n), DealerProvider()
    p.mul_triple(e, (10, 4), (4,))
    p.matmul_triple(e, (10, 4), (4, 2))
    steps = e.by_step()
    # setup: one 32-byte seed to each member, once
    assert steps["offline/setup"] == {"messages": n, "bytes": 32 * n, "rounds": 1}
    # each request: only member 0's correction of c travels (one array)
    assert steps["offline/mul"] == {"messages": 1, "bytes": 8 * 40, "rounds": 1}
    assert steps["offline/matmul"] == {"messages": 1, "bytes": 8 * 20, "rounds": 1}
    assert all(
        src == DEALER and dst == 0 for s, src, dst, _, _ in e.messages if s != "offline/setup"
    )
    # fresh randomness per request
    a1, _, _ = p.mul_triple(e, (8,), (8,))
    a2, _, _ = p.mul_triple(e, (8,), (8,))
    assert not np.array_equal(e.reconstruct(a1), e.reconstruct(a2))


def test_pool_preprocess_then_online_has_no_offline_traffic():
    e, p = LocalEngine(2), DealerProvider()
    plan = [("mul", ((5,), (5,))), ("mul", ((5,), (5,)))]
    assert p.preprocess(e, plan) == 2 and p.pooled() == 2
    before = len(e.messages)
    x, y = share(e, np.arange(5.0)), share(e, np.ones(5))
    arithmetic.mul(MPCContext(e, p), x, y)
    arithmetic.mul(MPCContext(e, p), x, y)
    online = e.messages[before:]
    assert p.pooled() == 0
    assert all(not s.startswith("offline") for s, *_ in online)


def test_pool_strict_and_plan_from_log():
    e, p = LocalEngine(2), DealerProvider()
    x = share(e, np.arange(6.0).reshape(2, 3))
    w = share(e, np.ones((3, 4)))
    arithmetic.matmul(MPCContext(e, p), x, w)
    plan = list(p.log)
    assert plan == [("matmul", ((2, 3), (3, 4)))]
    e2, p2 = LocalEngine(2), DealerProvider(strict=True)
    p2.preprocess(e2, plan)
    x2, w2 = share(e2, np.arange(6.0).reshape(2, 3)), share(e2, np.ones((3, 4)))
    ctx2 = MPCContext(e2, p2)
    arithmetic.matmul(ctx2, x2, w2)
    with pytest.raises(LookupError, match="matmul"):
        arithmetic.matmul(ctx2, x2, w2)


def test_provider_errors():
    with pytest.raises(ValueError, match="dealer"):
        DealerProvider().mul_triple(LocalEngine(2, has_dealer=False), (2,), (2,))
    p = DealerProvider()
    p.mul_triple(LocalEngine(2), (2,), (2,))
    with pytest.raises(ValueError, match="another engine"):
        p.mul_triple(LocalEngine(2), (2,), (2,))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4,\)"):
        DealerProvider().mul_triple(LocalEngine(2), (2, 3), (4,))
    with pytest.raises(ValueError, match="unknown"):
        DealerProvider().request(LocalEngine(2), "xor", ((2,),))


# ------------------------------------------------------------ Paillier provider


def test_paillier_provider_triples_and_products():
    from cipherray.protocols.mpc.providers import PaillierProvider
    from cipherray.protocols.mpc.testing import encoded, reveal

    e = LocalEngine(2, has_dealer=False)
    p = PaillierProvider(key_bits=1024, insecure=True)  # small key: tests only
    a, b, c = p.mul_triple(e, (3, 4), (4,))
    assert np.array_equal(e.reconstruct(a) * e.reconstruct(b), e.reconstruct(c))
    a, c = p.square_pair(e, (5,))
    assert np.array_equal(e.reconstruct(a) ** 2, e.reconstruct(c))
    a, b, c = p.matmul_triple(e, (3, 7), (7, 2))
    assert np.array_equal(e.reconstruct(a) @ e.reconstruct(b), e.reconstruct(c))
    steps = e.by_step()
    assert steps["offline/mul"]["messages"] == 2 and steps["offline/mul"]["rounds"] == 2
    x, w = RNG.normal(size=(6, 3)), RNG.normal(size=(3,))
    ctx = MPCContext(e, p)
    z = arithmetic.matmul(ctx, share(e, x), share(e, w))
    assert np.abs(reveal(e, z) - encoded(x) @ encoded(w)).max() <= 2.0**-16
    z = arithmetic.mul(ctx, share(e, x), share(e, x))
    assert np.abs(reveal(e, z) - encoded(x) ** 2).max() <= 2.0**-16


def test_paillier_provider_limits():
    from cipherray.protocols.mpc import compare
    from cipherray.protocols.mpc.providers import PaillierProvider

    with pytest.raises(ValueError, match="two-member"):
        PaillierProvider(1024, insecure=True).mul_triple(LocalEngine(3), (2,), (2,))
    e = LocalEngine(2, has_dealer=False)
    paillier = MPCContext(e, PaillierProvider(1024, insecure=True))
    with pytest.raises(ValueError, match="DealerProvider"):
        compare.ltz(paillier, share(e, np.ones(2)))
    with pytest.raises(ValueError, match="AND triples"):
        arithmetic.mul(paillier, share(e, np.ones(2)), share(e, np.ones(2)), check_overflow=True)
    with pytest.raises(ValueError, match="2048"):
        PaillierProvider(1024).mul_triple(e, (2,), (2,))


def test_protocols_never_use_numpy_random(monkeypatch):
    """Shares, masks and triples come from the AES-CTR PRG, never NumPy's generators."""
    from cipherray.protocols.mpc import compare, functions

    x_data = RNG.normal(size=20)

    def forbidden(*args, **kwargs):
        raise AssertionError("numpy.random used by a protocol")

    for name in ("default_rng", "random", "randint", "rand", "randn", "integers", "bytes"):
        if hasattr(np.random, name):
            monkeypatch.setattr(np.random, name, forbidden)
    monkeypatch.setattr(np.random, "Generator", forbidden)
    for n in (2, 3):
        e, p = LocalEngine(n), DealerProvider()
        ctx = MPCContext(e, p)
        x = share(e, x_data)
        arithmetic.mul(ctx, x, x)
        compare.relu(ctx, x)
        functions.sigmoid(ctx, x)
