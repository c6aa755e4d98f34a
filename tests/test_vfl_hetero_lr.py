"""Hetero logistic regression with Paillier (workloads/vfl/hetero_lr.py): both forms
against the NumPy reference, accuracy against scikit-learn, two hosts, what the hosts
receive, input checks, and a party dying mid-training on Ray."""

from __future__ import annotations

import numpy as np
import pytest

import cipherray as cr
from cipherray.protocols.paillier import CipherArray
from cipherray.workloads.vfl import hetero_lr as hl

KEY = {"key_bits": 1024, "insecure": True}
ALL = ["guest", "host", "arbiter"]


def _data(n=48, dg=3, dh=(4,), seed=1):
    rng = np.random.default_rng(seed)
    xg = rng.normal(size=(n, dg))
    xhs = [rng.normal(size=(n, d)) for d in dh]
    score = xg[:, 0] - 0.5 * xg[:, 1] + sum(x[:, 0] for x in xhs) + 0.3 * rng.normal(size=n)
    return xg, (score > 0).astype(np.float64), xhs


def _at(p, v):
    return p(lambda: v)()


def _inline(parties=ALL, driver_as=ALL):
    return cr.init(parties, backend="inline", driver_as=driver_as)


def _train(rt, xg, y, xhs, hosts, **kw):
    g = rt.party("guest")
    return hl.train(
        rt, g, hosts, _at(g, xg), _at(g, y), [_at(h, x) for h, x in zip(hosts, xhs)], **kw
    )


@pytest.mark.parametrize("form", ["arbiter", "guest_key"])
def test_equals_plaintext_reference(form):
    xg, y, xhs = _data()
    hyper = dict(epochs=3, batch_size=16, lr=0.15, l2=0.01, feature_bits=8, seed=7, tol=0.0)
    with _inline() as rt:
        host = rt.party("host")
        arb = rt.party("arbiter") if form == "arbiter" else None
        m = _train(rt, xg, y, xhs, [host], arbiter=arb, **hyper, **KEY)
        losses: list = []
        wg, b, (wh,) = hl.fit_plaintext(xg, y, xhs, losses=losses, **hyper)
        got_g = rt.get(m.weights_at("guest"))
        got_h = rt.get(m.weights_at(host))
        np.testing.assert_allclose(got_g[:-1], wg, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got_g[-1], b, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got_h, wh, rtol=1e-6, atol=1e-9)
        assert m.epochs_run == 3 and not m.converged and len(m.seconds_per_epoch) == 3
        assert [r["epoch"] for r in m.history] == [0, 1, 2]
        # the Taylor loss of every epoch, as the plaintext algorithm computes it
        np.testing.assert_allclose([r["loss"] for r in m.history], losses, rtol=1e-9)
        assert losses[-1] < losses[0] < np.log(2) + 0.1
        assert m.bytes_sent > 0
        # prediction: sigmoid of the joint score, at the guest
        p = rt.get(m.predict(rt, _at(rt.party("guest"), xg), [_at(host, xhs[0])]))
        np.testing.assert_allclose(p, 1 / (1 + np.exp(-(xg @ wg + b + xhs[0] @ wh))), rtol=1e-6)


def test_two_hosts_and_convergence():
    xg, y, xhs = _data(n=40, dh=(2, 3))
    parties = ["guest", "h1", "h2", "arbiter"]
    hyper = dict(epochs=200, batch_size=40, lr=0.5, feature_bits=6, seed=1, tol=1e-3)
    wg, b, whs = hl.fit_plaintext(xg, y, xhs, **hyper)
    for arb in ("arbiter", None):
        with _inline(parties, parties) as rt:
            hosts = [rt.party("h1"), rt.party("h2")]
            m = _train(rt, xg, y, xhs, hosts, arbiter=arb, **hyper, **KEY)
            assert m.converged and m.epochs_run < 200
            assert all(r["loss"] is None for r in m.history)  # cross-host terms: not computed
            assert m.history[-1]["weight_change"] < 1e-3 <= m.history[-2]["weight_change"]
            np.testing.assert_allclose(rt.get(m.weights_at("guest")), [*wg, b], rtol=1e-6)
            for h, w in zip(hosts, whs):
                np.testing.assert_allclose(rt.get(m.weights_at(h)), w, rtol=1e-6)


def test_accuracy_close_to_sklearn_on_breast_cancer():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y.astype(np.float64), test_size=0.2, random_state=0)
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    l2 = 1e-3
    sk = LogisticRegression(C=1 / (l2 * len(ytr)), max_iter=10_000).fit(xtr, ytr)
    sk_acc = sk.score(xte, yte)
    with _inline(driver_as="guest") as rt:
        g, h = rt.party("guest"), rt.party("host")
        m = _train(
            rt, xtr[:, :10], ytr, [xtr[:, 10:]], [h], arbiter="arbiter",
            epochs=50, batch_size=32, lr=0.15, l2=l2, feature_bits=8, seed=0, **KEY,
        )  # fmt: skip
        p = rt.get(m.predict(rt, _at(g, xte[:, :10]), [_at(h, xte[:, 10:])]))
    acc = float(((p > 0.5) == yte).mean())
    assert acc > 0.94
    assert abs(acc - sk_acc) <= 0.01


@pytest.mark.parametrize("form", ["arbiter", "guest_key"])
def test_hosts_never_receive_labels_or_plain_scores(form):
    xg, y, xhs = _data(n=32)
    with _inline(driver_as=None) as rt:
        g, host = rt.party("guest"), rt.party("host")
        arb = rt.party("arbiter") if form == "arbiter" else None
        with rt.record_messages() as msgs:
            m = _train(rt, xg, y, xhs, [host], arbiter=arb, epochs=2, batch_size=16, seed=0, **KEY)
        assert msgs
        kinds = set()
        for src, dst, tag, payload in msgs:
            assert tag.startswith("hetero_lr/"), tag
            msg = tag.rsplit("/", 1)[-1]
            kinds.add((dst, msg))
            if msg in ("batch_rows",):
                assert sorted(np.asarray(payload).tolist()) == list(range(32))
            elif msg.endswith("_plain"):  # masked: 224-bit uniform masks dominate
                w = hl._WIRE
                vals = [
                    int.from_bytes(payload[i : i + w], "big") for i in range(0, len(payload), w)
                ]
                assert vals and all(v > 2**160 for v in vals), tag
            elif msg in ("weight_change",):
                assert np.ndim(payload) == 0 and dst in ("guest", "arbiter")
            elif msg != "public_key":
                assert isinstance(payload, CipherArray), tag
            if dst == "guest" and src == "host":  # per-row host scores only encrypted
                allowed = {
                    "enc_u_host", "masked_cross_plain", "masked_gradient", "weight_change",
                    "enc_loss_host", "masked_loss_plain",
                }  # fmt: skip
                assert msg in allowed, msg
        assert ("host", "enc_d") in kinds or ("host", "enc_partial_d") in kinds
        # the host's weights stay there: the guest cannot read them without a grant
        with pytest.raises(cr.DisclosureError):
            m.weights_at(host).reveal_to(g)
        with pytest.raises(cr.DisclosureError):
            rt.send(m.weights_at(host), to=g, tag="hetero_lr_other/weights")
        with pytest.raises(cr.DisclosureError):
            rt.get(m.weights_at(host))


def test_bad_inputs_raise_named_value_errors():
    xg, y, xhs = _data(n=20)
    with _inline() as rt:
        g, host = rt.party("guest"), rt.party("host")
        xg_r, y_r, xh_r = _at(g, xg), _at(g, y), _at(host, xhs[0])

        def train(**kw):
            args = dict(x_guest=xg_r, y=y_r, x_hosts=[xh_r], epochs=1, batch_size=8, **KEY)
            args.update(kw)
            return hl.train(rt, g, [host], **args)

        for kw, match in [
            ({"epochs": 0}, "epochs"),
            ({"batch_size": 0}, "batch_size"),
            ({"batch_size": -3}, "batch_size"),
            ({"feature_bits": 0}, "feature_bits"),
            ({"feature_bits": 17}, "feature_bits"),
            ({"lr": -1.0}, "lr"),
            ({"y": _at(g, y * 2)}, "party 'guest'.*0/1"),
            ({"y": _at(g, y[:-1])}, "party 'guest'.*y has 19 rows"),
            ({"x_hosts": [_at(host, xhs[0][:-2])]}, "party 'host'.*18 rows"),
            ({"x_hosts": [_at(g, xhs[0])]}, "party 'host'"),
            ({"arbiter": "host"}, "party 'host'"),
        ]:
            with pytest.raises(ValueError, match=match):
                train(**kw)


# ---------------------------------------------------------------- Ray (one start)


@pytest.fixture(scope="module")
def ray_rt():
    rt = cr.init(ALL, backend="ray", timeout_s=20, driver_as=ALL)
    yield rt
    rt.shutdown()


def test_ray_training_then_dead_host_is_a_party_error(ray_rt):
    rt = ray_rt
    xg, y, xhs = _data(n=32)
    g, host, arb = rt.parties
    hyper = dict(epochs=2, batch_size=16, seed=3, tol=0.0)
    m = _train(rt, xg, y, xhs, [host], arbiter=arb, **hyper, **KEY)
    wg, b, (wh,) = hl.fit_plaintext(xg, y, xhs, **hyper)
    np.testing.assert_allclose(rt.get(m.weights_at(host)), wh, rtol=1e-6)
    np.testing.assert_allclose(rt.get(m.weights_at(g)), [*wg, b], rtol=1e-6)

    def kill_after_first(epoch, record):
        if epoch == 0:
            rt.kill_worker(host)

    with pytest.raises(cr.PartyError) as info:
        _train(rt, xg, y, xhs, [host], arbiter=None, epochs=3, batch_size=16,
               progress=kill_after_first, **KEY)  # fmt: skip
    assert info.value.party == "host"
