"""The HE location: Paillier ciphertexts as refs, conversions to and from shares."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import cipherray as cr

BITS = 1024  # insecure=True: test speed only; the default is 2048


@pytest.fixture(scope="module", params=["inline", "ray"])
def rt(request):
    runtime = cr.init(
        {"g": {"workers": 2}, "h": {}, "x": {}},
        backend=request.param,
        timeout_s=120,
        driver_as=["g", "h", "x"],
    )
    runtime.policy.grant(owner="g", to="h", allow="encrypted")  # g's ciphertexts may go to h
    runtime.policy.grant(owner="h", to="g", allow="plaintext", tag="open")
    runtime.policy.grant(owner="g", to="h", allow="plaintext", tag="open")
    yield runtime
    runtime.shutdown()


@pytest.fixture(scope="module")
def he(rt):
    return rt.he(keyholder="g", bits=BITS, insecure=True)


@pytest.fixture
def opened(rt):
    """Under the tag 'open' g and h let each other see their values: these tests check
    the arithmetic, test_disclosure_rules the policy."""
    with rt.scope("open"):
        yield


def test_encrypt_evaluate_decrypt_matches_plaintext(rt, he, opened):
    g, h, _ = rt.parties
    resid = np.array([0.5, -1.0, 2.0, 0.25, 3.5])
    X = np.arange(15.0).reshape(5, 3) - 4
    enc = g(lambda: resid)().to(he)  # the keyholder encrypts its residuals
    assert isinstance(enc, cr.EncryptedRef) and enc.holder is g
    at_h = enc.to(h)  # ciphertexts travel to the host
    grad = he(lambda c, x: x.T @ c)(at_h, h(lambda: X)())
    assert grad.holder is h
    np.testing.assert_allclose(rt.get(grad.reveal_to(g)), X.T @ resid, atol=1e-6)
    doubled = he(lambda c, k: c * k + 1)(at_h, 2)
    np.testing.assert_allclose(rt.get(doubled.reveal_to("g")), resid * 2 + 1, atol=1e-6)
    # the ledger counts the ciphertexts that crossed at their wire size (to_bytes)
    wire = 31 + 8 + resid.size * (2 * BITS // 8)  # header, 1-d shape, ciphertexts mod n^2
    rt.ledger.edges()  # pulls the workers' measurements
    assert wire in [m.nbytes for m in rt.ledger.messages.values() if (m.src, m.dst) == ("g", "h")]


def test_parallel_encrypt_over_workers(rt, he, opened):
    g = rt.party("g")  # two workers: the array is split, encrypted in parallel, joined
    x = np.arange(11, dtype=np.int64) - 5
    enc = g(lambda: x)().to(he)
    np.testing.assert_array_equal(rt.get(enc.reveal_to(g)), x)


def test_he_to_shares_and_back(rt, he, opened):
    g, h, _ = rt.parties
    mpc = rt.mpc(g, h)
    v = np.array([[1.5, -2.25], [1000.125, -7.0e6]])
    enc = g(lambda: v)().to(he).to(h)
    shared = enc.to(mpc)
    np.testing.assert_allclose(rt.get(shared.reveal_to(h)), v, atol=2**-16)
    back = (shared * 0.5 + 1).to(he)
    assert back.holder is h
    np.testing.assert_allclose(rt.get(back.reveal_to(g)), v * 0.5 + 1, atol=1e-4)
    ints = h(lambda: np.arange(-3, 3))().to(mpc).to(he)
    np.testing.assert_allclose(rt.get(ints.reveal_to(g)), np.arange(-3, 3), atol=1e-9)


def test_disclosure_rules(rt, he):
    g, h, x = rt.parties
    enc = h(lambda: np.ones(3))().to(he)
    with pytest.raises(cr.DisclosureError, match="use .reveal_to"):
        enc.to(g)  # moving ciphertexts to the keyholder = decrypting them
    with pytest.raises(cr.DisclosureError, match="only the keyholder"):
        enc.reveal_to(x)
    with pytest.raises(cr.DisclosureError):
        rt.get(enc)
    with pytest.raises(cr.LocationError, match="held by"):
        he(lambda a, b: a + b)(enc, g(lambda: np.ones(3))().to(he))
    with pytest.raises(cr.LocationError, match="plaintext of 'g'"):
        he(lambda a, b: a + b)(enc, g(lambda: np.ones(3))())
    with pytest.raises(cr.LocationError, match="must be a member"):
        enc.to(rt.mpc(h, x))
    with pytest.raises(cr.DisclosureError, match="owner 'h'"):
        enc.reveal_to(g)  # h's own values, decrypted for g: h granted nothing outside "open"
    n0 = len(rt.audit)
    with rt.scope("open"):
        enc.reveal_to(g)
    assert rt.audit[-1].source == "he(g)" and len(rt.audit) == n0 + 1
    assert rt.audit[-1].rule == "grant h->g: plaintext, tag='open'"


def test_he_step_must_return_ciphertexts(rt, he, opened):
    h = rt.party("h")
    enc = h(lambda: np.ones(2))().to(he)
    with pytest.raises(cr.StepError, match="must return a CipherArray"):
        rt.get(he(lambda c: 5)(enc).reveal_to("g"))


def test_private_key_never_crosses_the_channel():
    from cipherray.protocols.paillier import PrivateKey

    with cr.init(["g", "h"], backend="inline", driver_as="g") as rt, rt.record_messages() as sent:
        rt.policy.grant(owner="g", to="h", allow="encrypted")
        he = rt.he(keyholder="g", bits=BITS, insecure=True)
        g, h = rt.parties
        mpc = rt.mpc(g, h)
        enc = g(lambda: np.array([1.0, 2.0]))().to(he).to(h)
        s = enc.to(mpc)
        rt.get((s + 1).to(he).reveal_to(g))
        payloads = list(sent)
        tags = {tag for _, _, tag, _ in payloads}
        assert {"he/send", "he/h2a", "he/a2h_open", "he/a2h_return", "reveal"} <= tags
        sk = rt.get(he.private_key())  # the driver runs as the keyholder: it may read it
        assert isinstance(sk, PrivateKey)
        p_bytes = int(sk.p).to_bytes((int(sk.p).bit_length() + 7) // 8, "big")
        for _, _, tag, value in payloads:
            blob = pickle.dumps(value)
            assert b"PrivateKey" not in blob, tag
            assert p_bytes not in blob and str(int(sk.p)).encode() not in blob, tag
