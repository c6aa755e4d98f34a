"""Provenance-aware disclosure: grants, the default rule, laundering, the driver as a
principal, the public message API and what a step may be given."""

from __future__ import annotations

import numpy as np
import pytest

import cipherray as cr


@pytest.fixture(params=["inline", "ray"], scope="module")
def rt(request):
    runtime = cr.init(["a", "b", "t"], backend=request.param, timeout_s=60)
    yield runtime
    runtime.shutdown()


def rows(k):
    return np.arange(12.0).reshape(6, 2) * k


def test_laundering_through_shares_or_ciphertexts_is_refused(rt):
    a, b, _ = rt.parties
    xb = b(rows)(2.0)
    with pytest.raises(cr.DisclosureError) as info:
        xb.to(rt.mpc(a, b)).reveal_to(a)
    msg = str(info.value)
    assert "owner 'b'" in msg and "reach 'a'" in msg and "step 'reveal'" in msg
    he = rt.he(keyholder=a, bits=512, insecure=True)
    with pytest.raises(cr.DisclosureError, match="owner 'b'.*reach 'a'"):
        xb.to(he).reveal_to(a)
    assert xb.provenance == {"b"}


def test_joint_aggregates_reach_members_row_values_do_not(rt):
    a, b, t = rt.parties
    mpc = rt.mpc(a, b, dealer=t)
    xa, xb = a(rows)(1.0).to(mpc), b(rows)(3.0).to(mpc)
    gram = xa.T @ xb  # contracts the rows: an aggregate of 6 rows from a and b
    assert gram.meta.kind == "aggregate" and gram.meta.rows == 6
    with pytest.raises(cr.DisclosureError, match="row value from a,b"):
        (xa * xb).reveal_to(a)  # row-level products would tell a b's rows
    with pytest.raises(cr.DisclosureError, match="owner 'a'"):
        gram.reveal_to(t)  # not a member of the computation
    got = gram.reveal_to(a)
    assert got.provenance == {"a", "b"}
    assert rt.audit[-1].rule == "members-may-learn-joint-aggregates"


def test_aggregate_grant_needs_enough_rows_and_compare_grant_covers_comparisons(rt):
    a, b, t = rt.parties
    mpc = rt.mpc(a, b, dealer=t)
    xb = b(rows)(1.0).to(mpc)
    rt.policy.grant(owner="b", to="a", allow="aggregate", min_rows=10, tag="agg10")
    with rt.scope("agg10"), pytest.raises(cr.DisclosureError):
        xb.sum(axis=0).reveal_to(a)  # 6 rows < 10
    rt.policy.grant(owner="b", to="a", allow="aggregate", min_rows=5, tag="agg5")
    with rt.scope("agg5"):
        total = xb.sum(axis=0).reveal_to(a)
        with pytest.raises(cr.DisclosureError):
            xb.reveal_to(a)  # rows are not an aggregate
    assert "min_rows=5" in rt.audit[-1].rule
    flags = xb > 5.0
    assert flags.meta.kind == "compare"
    with pytest.raises(cr.DisclosureError):
        flags.reveal_to(a)
    rt.policy.grant(owner="b", to="a", allow="compare", tag="cmp")
    with rt.scope("cmp"):
        flags.reveal_to(a)
    assert total.provenance == {"b"}


def test_grant_arguments_are_checked(rt):
    with pytest.raises(cr.ConfigError, match="allow"):
        rt.policy.grant(owner="a", to="b", allow="everything")
    with pytest.raises(cr.ConfigError, match="unknown party"):
        rt.policy.grant(owner="zz", to="b", allow="plaintext")
    with pytest.raises(cr.ConfigError, match="min_rows"):
        rt.policy.grant(owner="a", to="b", allow="aggregate", min_rows=0)


def test_ciphertexts_move_only_under_an_encrypted_grant(rt):
    a, b, t = rt.parties
    he = rt.he(keyholder=a, bits=512, insecure=True)
    enc = a(rows)(1.0).to(he)
    with pytest.raises(cr.DisclosureError, match="encrypted"):
        enc.to(t)
    rt.policy.grant(owner="a", to="t", allow="encrypted")
    moved = enc.to(t)
    assert moved.holder is t and rt.audit[-1].form == "encrypted"
    with pytest.raises(cr.DisclosureError):  # encrypted only: never in the clear
        a(rows)(1.0).reveal_to(t)


def test_driver_reads_only_what_was_revealed_or_its_own_party():
    with cr.init(["a", "b"], backend="inline") as rt:
        a, b = rt.parties
        raw = a(rows)(1.0)
        with pytest.raises(cr.DisclosureError, match="driver may not read"):
            rt.get(raw)
        shared = raw.to(rt.mpc(a, b))
        with pytest.raises(cr.DisclosureError, match="hidden"):
            rt.get(shared)
        back = shared.reveal_to(a)  # its own data back: allowed, and revealed to a party
        np.testing.assert_array_equal(rt.get(back), rows(1.0))
        derived = a(lambda v: v + 1)(back)
        with pytest.raises(cr.DisclosureError):
            rt.get(derived)  # computed at a after the reveal: a's value, not revealed
        published = a(lambda v: v.shape, declare="public")(raw)
        assert rt.get(published) == (6, 2)
    with cr.init(["a", "b"], backend="inline", driver_as="a") as rt:
        a, b = rt.parties
        assert rt.get(a(lambda: 5)()) == 5
        with pytest.raises(cr.DisclosureError, match="driver_as='b'"):
            rt.get(b(lambda: 6)())
    with pytest.raises(cr.ConfigError, match="driver_as"):
        cr.init(["a"], backend="inline", driver_as="zz")


def test_protocol_messages_pass_when_declared_and_are_counted(rt):
    a, b, _ = rt.parties
    v = a(lambda: np.ones(4))()
    with pytest.raises(cr.DisclosureError):
        rt.send(v, to=b, tag="toy/blinded")
    rt.protocol("toy", {"blinded": "a's values under a key only a holds"})
    rt.ledger.reset()
    got = rt.send(v, to=b, tag="toy/blinded")
    assert got.party is b and got.provenance == {"a"}
    assert rt.audit[-1].rule == "protocol toy/blinded"
    by_tag = rt.ledger.by_tag().set_index("tag")
    assert by_tag.loc["toy/blinded", "messages"] == 1
    assert by_tag.loc["toy/blinded", "bytes"] == 32
    with pytest.raises(cr.DisclosureError):
        rt.send(v, to=b, tag="toy/undeclared")
    with pytest.raises(cr.LocationError):
        rt.send(v.to(rt.mpc(a, b)), to=b, tag="toy/blinded")
    same = v.send_to(a, tag="toy/blinded")
    assert same is v


def test_unknown_objects_are_refused_not_forwarded(rt):
    a, b, _ = rt.parties
    with pytest.raises(cr.LocationError, match="internal"):
        a(lambda p: p)(b)  # a Party object is not data
    if rt.backend == "ray":
        import ray

        with pytest.raises(cr.LocationError, match="internal"):
            a(lambda r: r)(ray.put(1))  # a raw Ray object ref is not a ref of ours
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(a(lambda: 1)())


def test_dropped_values_are_freed_at_the_party():
    with cr.init({"a": {"workers": 1}}, backend="inline") as rt:
        a = rt.party("a")
        before = rt.held("a")
        refs = [a(lambda i=i: np.zeros(10) + i)() for i in range(20)]
        assert rt.held("a") >= before + 20
        del refs
        import gc

        gc.collect()
        assert rt.held("a") <= before + 2


def test_error_messages_do_not_carry_party_data(rt):
    a, b, _ = rt.parties
    mpc = rt.mpc(a, b)
    secret = 123456789.0e9
    with pytest.raises(cr.RangeError) as info:
        rt.wait(a(lambda: np.array([secret]))().to(mpc))
    assert "1.23e+17" not in str(info.value) and "123456789" not in str(info.value)
    assert "party 'a'" in str(info.value) and "fixed-point range" in str(info.value)
