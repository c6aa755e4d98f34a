"""The runtime's public API, run on both backends (inline and Ray)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cipherray as cr


def make(x):
    return np.asarray(x, dtype=np.float64)


def test_party_call_returns_partyref_and_get(rt):
    a, b, c = rt.parties
    ref = a(make)([1, 2, 3])
    assert isinstance(ref, cr.PartyRef)
    assert ref.party is a
    np.testing.assert_array_equal(rt.get(ref), [1.0, 2.0, 3.0])
    doubled = a(lambda v, k=2: v * k)(ref, k=3)
    np.testing.assert_array_equal(rt.get(doubled), [3.0, 6.0, 9.0])
    # refs nested in containers resolve too
    total = a(lambda xs: sum(x.sum() for x in xs))([ref, doubled])
    assert rt.get(total) == 24.0
    assert rt.get([ref, doubled])[1][2] == 9.0


def test_party_lookup_and_order(rt):
    assert [p.name for p in rt.parties] == ["a", "b", "c"]
    assert rt.party("b") is rt.parties[1]
    with pytest.raises(cr.ConfigError, match="unknown party 'zz'"):
        rt.party("zz")


def test_num_returns(rt):
    a = rt.party("a")
    x, y = a(lambda: (np.ones(2), np.zeros(3)), num_returns=2)()
    assert rt.get(x).shape == (2,) and rt.get(y).shape == (3,)


def test_ref_at_wrong_party_raises_location_error(rt):
    a, b, _ = rt.parties
    x = a(make)([1.0])
    with pytest.raises(cr.LocationError, match="lives at party 'a'"):
        b(lambda v: v)(x)
    with pytest.raises(cr.LocationError):
        b(lambda v: v)([x])  # nested


def test_plaintext_never_moves_to_another_party(rt):
    a, b, _ = rt.parties
    x = a(make)([1.0, 2.0])
    assert x.to(a) is x
    with pytest.raises(cr.DisclosureError, match="cannot move to party 'b'"):
        x.to(b)
    with pytest.raises(cr.DisclosureError, match="owner 'a' did not allow"):
        x.reveal_to(b)


def test_owner_grant_allows_a_transfer_and_is_audited(rt):
    a, b, _ = rt.parties
    x = a(make)([4.0, 5.0])
    rt.policy.grant(owner="a", to="b", allow="plaintext", tag="model")
    with pytest.raises(cr.DisclosureError):
        x.reveal_to(b)  # outside the granted tag
    with rt.scope("model"):
        with pytest.raises(cr.DisclosureError):
            x.reveal_to("c")  # not the granted receiver
        before = len(rt.audit)
        moved = x.reveal_to(b)
    assert moved.party is b and moved.provenance == {"a"}
    np.testing.assert_array_equal(rt.get(moved), [4.0, 5.0])
    assert len(rt.audit) == before + 1
    rec = rt.audit[-1]
    assert (rec.form, rec.source, rec.to, rec.tag, rec.owners) == (
        "plaintext", "a", "b", "model/reveal", "a",
    )  # fmt: skip
    assert rec.rule == "grant a->b: plaintext, tag='model'"


@pytest.fixture
def granted(rt):
    """Every party lets every other see its values under the tag 'open' (the tests
    below check arithmetic, not the policy)."""
    if not any(g.tag == "open" for g in rt.policy.grants):
        for p in ("a", "b", "c"):
            rt.policy.grant(owner=p, to="*", allow="plaintext", tag="open")
    with rt.scope("open"):
        yield


def test_share_and_reveal_equals_plaintext(rt, granted):
    a, b, c = rt.parties
    mpc = rt.mpc(a, b, c)
    data = np.array([[1.5, -2.25, 3.0], [1e6, -7.0, 0.0]])
    x = a(make)(data).to(mpc)
    assert isinstance(x, cr.SharedRef)
    for p in (a, b, c):
        np.testing.assert_allclose(rt.get(x.reveal_to(p)), data, atol=2**-16)
    ints = a(lambda: np.arange(-5, 5))().to(mpc)
    np.testing.assert_array_equal(rt.get(ints.reveal_to(b)), np.arange(-5, 5))


def test_linear_operations_match_numpy(rt, granted):
    a, b, c = rt.parties
    mpc = rt.mpc(a, b, c)
    xa = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, -6.0]])
    xb = np.array([[0.5, -1.0, 2.0], [3.0, 0.25, 8.0]])
    x = a(make)(xa).to(mpc)
    y = b(make)(xb).to(mpc)

    @mpc
    def combo(u, v):
        return (u + v, u - v, 3 * u, u * 0.5, -v, v / 4, 2.0 - u, u + 10, u / 3)

    outs = combo(x, y)
    expect = (xa + xb, xa - xb, 3 * xa, xa * 0.5, -xb, xb / 4, 2.0 - xa, xa + 10, xa / 3)
    for got, want in zip(outs, expect):
        np.testing.assert_allclose(rt.get(got.reveal_to(c)), want, atol=1e-4)
    np.testing.assert_allclose(rt.get(x.sum().reveal_to(a)), xa.sum(), atol=1e-4)
    np.testing.assert_allclose(rt.get(x.sum(axis=0).reveal_to(a)), xa.sum(0), atol=1e-4)
    np.testing.assert_allclose(rt.get(x.mean(axis=1).reveal_to(a)), xa.mean(1), atol=1e-4)
    np.testing.assert_allclose(rt.get(x.mean().reveal_to(a)), xa.mean(), atol=1e-4)
    np.testing.assert_allclose(rt.get(x[1].reveal_to(a)), xa[1], atol=1e-4)
    np.testing.assert_allclose(rt.get(x[:, 1:].reveal_to(a)), xa[:, 1:], atol=1e-4)
    np.testing.assert_allclose(rt.get(x.T.reveal_to(a)), xa.T, atol=1e-4)
    np.testing.assert_allclose(rt.get(x.reshape(3, 2).reveal_to(a)), xa.reshape(3, 2))
    np.testing.assert_allclose(
        rt.get(cr.concatenate([x, y], axis=0).reveal_to(b)), np.concatenate([xa, xb]), atol=1e-4
    )
    np.testing.assert_allclose(
        rt.get((x * np.array([1.0, 0.1, -2.0])).reveal_to(b)),
        xa * np.array([1.0, 0.1, -2.0]),
        atol=1e-4,
    )
    assert x.shape == (2, 3) and len(x) == 2 and x.ndim == 2


def test_two_party_mpc_and_non_member_owner(rt):
    a, b, c = rt.parties
    mpc_ab = rt.mpc(a, b)
    z = c(make)([7.0, 8.0]).to(mpc_ab)  # c deals shares to a and b, keeps nothing
    np.testing.assert_allclose(rt.get(z.reveal_to(c)), [7.0, 8.0])  # its own data back
    # nothing computed only from c's inputs reaches another party by default
    with pytest.raises(cr.DisclosureError, match="owner 'c'"):
        z.reveal_to(a)


def test_mixing_mpc_locations_and_wrong_arguments(rt):
    a, b, c = rt.parties
    m1, m2 = rt.mpc(a, b), rt.mpc(b, c)
    x = a(make)([1.0]).to(m1)
    y = b(make)([1.0]).to(m2)
    with pytest.raises(cr.LocationError, match="cannot be mixed"):
        x + y
    with pytest.raises(cr.LocationError, match="cannot be mixed"):
        m2(lambda u: u)(x)
    with pytest.raises(cr.LocationError, match="convert it first"):
        m1(lambda u: u)(a(make)([1.0]))
    with pytest.raises(cr.LocationError):
        a(lambda v: v)(x)
    with pytest.raises(cr.LocationError):
        x.to(a)
    m3 = rt.mpc(a, b, c)  # three members and no dealer: no source of Beaver triples
    z = a(make)([1.0]).to(m3)
    with pytest.raises(cr.ConfigError, match="dealer"):
        z * z


def test_get_refuses_shared_values(rt):
    a, b, _ = rt.parties
    x = a(make)([1.0]).to(rt.mpc(a, b))
    with pytest.raises(cr.DisclosureError, match="hidden"):
        rt.get(x)


def test_joint_aggregate_reveal_is_audited(rt):
    a, b, _ = rt.parties
    mpc = rt.mpc(a, b)
    n0 = len(rt.audit)
    x = a(make)([1.0, 2.0, 3.0]).to(mpc)
    y = b(make)([4.0, 5.0, 6.0]).to(mpc)
    with rt.scope("stats"):
        total = (x + y).sum()  # rows of a and b, summed over the rows: a joint aggregate
        np.testing.assert_allclose(rt.get(total.reveal_to(b)), 21.0, atol=1e-4)
    rec = rt.audit[-1]
    assert len(rt.audit) == n0 + 1
    assert (rec.form, rec.source, rec.to, rec.tag) == ("plaintext", "mpc(a,b)", "b", "stats/reveal")
    assert (rec.owners, rec.what) == ("a,b", "aggregate of 3 rows value from a,b")
    assert rec.rule == "members-may-learn-joint-aggregates"
    assert rec.time > 0


def test_ledger_counts_messages_bytes_and_rounds(rt, granted):
    a, b, c = rt.parties
    mpc = rt.mpc(a, b, c)
    rt.ledger.reset()
    with rt.scope("ledgertest"):
        x = a(lambda: np.zeros(1000))().to(mpc)
        out = x.reveal_to(b)
        rt.get(out)
    by_tag = rt.ledger.by_tag().set_index("tag")
    share = by_tag.loc["open/ledgertest/share"]
    reveal = by_tag.loc["open/ledgertest/reveal"]
    assert (share.rounds, share.messages) == (1, 2)
    assert share.bytes < 200  # seeds, not arrays
    assert (reveal.rounds, reveal.messages) == (1, 2)
    assert reveal.bytes == 2 * 8000
    edges = rt.ledger.edges().set_index(["from", "to"])
    assert edges.loc[("c", "b"), "bytes"] == 8000
    summary = rt.ledger.summary()
    assert summary.iloc[-1]["from"] == "total"
    assert "rounds" in rt.ledger.report()
    assert rt.ledger.total_rounds == 2  # share, then the dependent reveal


def test_task_graph_exports(rt, tmp_path):
    a, b, _ = rt.parties
    mpc = rt.mpc(a, b)
    rt.get(a(make)([1.0, 2.0]).to(mpc).reveal_to(a))
    data = json.loads(rt.graph.to_json(tmp_path / "g.json"))
    steps = {s["step"] for s in data["steps"]}
    assert "share" in steps and "reveal" in steps
    assert any(t["nbytes"] for t in data["transfers"])
    assert all(s["compute_s"] is not None for s in data["steps"][-3:])
    dot = rt.graph.to_dot(tmp_path / "g.dot")
    assert dot.startswith("digraph") and "style=dashed" in dot
    assert (tmp_path / "g.dot").read_text() == dot


def test_party_map_is_ordered_and_bounded(rt):
    a = rt.party("a")
    pulled = []

    def items():
        for i in range(20):
            pulled.append(i)
            yield i

    window = 3
    outs = []
    for k, ref in enumerate(a.map(lambda i: i * i, items(), window=window)):
        # never more than `window` items taken ahead of the ones handed out
        assert len(pulled) <= k + 1 + window
        outs.append(rt.get(ref))
    assert outs == [i * i for i in range(20)]
    with pytest.raises(ValueError):
        list(a.map(abs, [1], workers=5))
    refs = list(a.map(abs, [-1, -2, -3], progress=True))  # with a progress bar
    assert rt.get(refs) == [1, 2, 3]


def test_step_errors_name_party_and_step(rt):
    a = rt.party("a")

    def broken(x):
        raise RuntimeError("boom")

    with pytest.raises(cr.StepError, match=r"party 'a' failed at step 'broken'.*boom"):
        rt.get(a(broken)(1))


def test_bad_input_into_mpc(rt):
    a, b, _ = rt.parties
    mpc = rt.mpc(a, b)
    with pytest.raises(cr.InputError, match="NaN"):
        rt.get(a(make)([1.0, np.nan]).to(mpc).reveal_to(a))
    with pytest.raises(cr.InputError, match="numeric"):
        rt.get(a(lambda: np.array(["x", "y"]))().to(mpc).reveal_to(a))
    with pytest.raises(cr.RangeError, match="fixed-point range"):
        rt.get(a(make)([1e15]).to(mpc).reveal_to(a))
    with pytest.raises(cr.InputError, match="infinity"):
        rt.get(a(make)([np.inf]).to(mpc).reveal_to(a))
