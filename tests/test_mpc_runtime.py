"""The secret-sharing engine on the runtime: SharedRef operations on both backends,
round counts in the ledger, bad input, and the vertical logistic-regression example."""

from __future__ import annotations

import numpy as np
import pytest

import cipherray as cr
from cipherray.protocols.mpc.providers import PaillierProvider

GEN = np.random.default_rng(5)  # test data only
XA = GEN.normal(0, 2, (4, 3))
XB = GEN.normal(0, 2, (4, 3))
W = GEN.normal(0, 1, (3, 2))


@pytest.fixture(scope="module", params=["inline", "ray"])
def rt(request):
    names = ["a", "b", "c", "t"]
    runtime = cr.init(names, backend=request.param, timeout_s=120, driver_as=names)
    for p in names:  # these tests check arithmetic on row values, not the policy
        runtime.policy.grant(owner=p, to="*", allow="plaintext")
    yield runtime
    runtime.shutdown()


def _put(p, v):
    return p(lambda: v)()


@pytest.mark.parametrize("members", [2, 3])
def test_secure_operations_match_numpy(rt, members):
    a, b, c, t = rt.parties
    mpc = rt.mpc(*[a, b, c][:members], dealer=t)
    x, y, w = _put(a, XA).to(mpc), _put(b, XB).to(mpc), _put(b, W).to(mpc)

    def check(sref, want, tol=2e-3):
        np.testing.assert_allclose(rt.get(sref.reveal_to(a)), want, atol=tol)

    check(x * y, XA * XB)
    check(x @ w, XA @ W)
    check(x @ W, XA @ W)
    check(W.T @ x.T, W.T @ XA.T)
    check(x > y, (XA > XB).astype(float), 0)
    check(x <= 0.5, (XA <= 0.5).astype(float), 0)
    check(x.relu(), np.maximum(XA, 0))
    check(x.sigmoid(), 1 / (1 + np.exp(-XA)))
    check((x * 0.3) * y, XA * 0.3 * XB)  # a pending public scale is truncated first
    check(y / (x * x + 1), XB / (XA * XA + 1))
    check((x / 7).exp(), np.exp(XA / 7), 5e-3)
    check((x * x + 0.1).sqrt(), np.sqrt(XA * XA + 0.1), 5e-3)
    check(cr.concatenate([x, y], axis=1), np.concatenate([XA, XB], axis=1), 1e-4)


@pytest.mark.parametrize("members, rounds", [(2, 1), (3, 2)])
def test_ledger_rounds_equal_documented_rounds(rt, members, rounds):
    from cipherray.protocols.mpc import arithmetic

    a, b, c, t = rt.parties
    mpc = rt.mpc(*[a, b, c][:members], dealer=t)
    x, y = _put(a, XA).to(mpc), _put(b, XB).to(mpc)
    plan = [("mul", [(4, 3), (4, 3)])] + ([("wrap", [(4, 3)])] if members > 2 else [])
    mpc.preprocess(plan)  # the triple (and the truncation's wrap pair) are made offline
    with rt.scope(f"roundcheck{members}"):
        z = x * y
    rt.get(z.reveal_to(a))
    tags = rt.ledger.by_tag().set_index("tag")
    online = tags[tags.index.str.startswith(f"roundcheck{members}/")]
    # rounds of one multiplication as each protocol's docstring states them
    depths = {
        m.round for m in rt.ledger.messages.values() if m.tag.startswith(f"roundcheck{members}/")
    }
    assert len(depths) == rounds == arithmetic.rounds(members)
    opened = tags.loc[f"roundcheck{members}/mul/open"]
    assert opened.messages == members * (members - 1)  # one message per ordered pair
    assert opened.bytes == members * (members - 1) * 8 * (XA.size + XB.size)
    assert not any("offline" in t for t in online.index)


def test_bad_input_is_refused(rt):
    a, b, c, t = rt.parties
    mpc = rt.mpc(a, b, dealer=t)
    x = _put(a, XA).to(mpc)
    y = _put(b, np.ones((5, 2))).to(mpc)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5, 2\)|\(5, 2\).*\(4, 3\)"):
        x * y
    with pytest.raises(ValueError):
        x @ y
    other = rt.mpc(b, c, dealer=t)
    with pytest.raises(cr.LocationError, match="cannot be mixed"):
        x * _put(b, XB).to(other)
    with pytest.raises(cr.ConfigError, match="must not be a member"):
        rt.mpc(a, b, dealer=a)
    with pytest.raises(TypeError):
        _ = x > np.array(["a", "b", "c"])


def test_two_party_paillier_triples_without_dealer(rt):
    a, b, _, _ = rt.parties
    mpc = rt.mpc(a, b, provider=PaillierProvider(key_bits=1024, insecure=True))
    x, y = _put(a, XA).to(mpc), _put(b, XB).to(mpc)
    np.testing.assert_allclose(rt.get((x * y).reveal_to(b)), XA * XB, atol=2e-3)
    tags = set(rt.ledger.by_tag()["tag"])
    assert any(t.startswith("offline/") for t in tags)
    with pytest.raises(cr.ConfigError, match="dealer"):
        _ = x > y  # comparisons need binary triples: a dealer


def test_products_beyond_the_domain_raise_when_checked(rt):
    a, b, t = rt.party("a"), rt.party("b"), rt.party("t")
    checked = rt.mpc(a, b, dealer=t, check_overflow=True)
    x = _put(a, np.array([2.0**20, 3.0])).to(checked)
    y = _put(b, np.array([2.0**20, 4.0])).to(checked)
    with pytest.raises(cr.RangeError, match="beyond the product domain"):
        rt.wait(x * y)
    small = _put(b, np.array([0.5, 4.0])).to(checked)
    np.testing.assert_allclose(rt.get((x * small).reveal_to(a)), [2.0**19, 12.0], atol=1e-3)
