"""What a receiving member expects of a provider's correlated randomness and of an HE
location's messages: each check is made from the receiver's own parameters (the shapes it
requested, the number of OTs, the key it holds), runs before any step uses the message,
and names the sender and the tag (`WireError`) when the message is not that. The OT
layer's own length checks are the ones used."""

from __future__ import annotations

import numpy as np
import pytest

import cipherray as cr
from cipherray.protocols import he_conversions as hc
from cipherray.protocols import ot
from cipherray.protocols.mpc import messages, ot_provider, providers
from cipherray.protocols.mpc.engine import LocalEngine
from cipherray.protocols.paillier import keygen
from cipherray.protocols.paillier.cipher_array import serialised_nbytes
from cipherray.runtime.silo.expect import Check, check_value, resolve


# -- the protocols' checks ----------------------------------------------------------------------
def test_message_checks_name_what_is_wrong():
    ok = np.zeros((3, 2), np.uint64)
    messages.ring((3, 2), "d")(ok)
    for bad, match in [
        (ok[:2], r"d: expected a uint64 array of shape \(3, 2\), not uint64 of shape \(2, 2\)"),
        (ok.view(np.int64), "not int64"),
        (ok.tobytes(), "not bytes"),
    ]:
        with pytest.raises(ValueError, match=match):
            messages.ring((3, 2), "d")(bad)
    messages.nbytes(32, "seed")(b"s" * 32)
    with pytest.raises(ValueError, match="seed: expected 32 bytes, not 31"):
        messages.nbytes(32, "seed")(b"s" * 31)
    pair = messages.tuple_of(messages.nbytes(2), None, what="pair")
    pair((b"ab", object()))
    with pytest.raises(ValueError, match="pair: expected a tuple of 2 values, not 3"):
        pair((b"ab", 1, 2))


def test_dealer_corrections_have_the_requested_shape():
    providers.correction_check("matmul", ((2, 3), (3, 4)))(np.zeros((2, 4), np.uint64))
    providers.correction_check("and_pair", ((5,),))(np.zeros((2, 5), np.uint64))
    providers.correction_check("rot_n", ((7, 2, 1),))(np.zeros(7, np.uint8))
    with pytest.raises(ValueError, match=r"dealer correction for 'mul'.*shape \(4,\)"):
        providers.correction_check("mul", ((4,), (1,)))(np.zeros(3, np.uint64))


def test_ot_provider_checks_are_the_ot_layers_own():
    soft, iknp = ot_provider.OTProvider(), ot_provider.OTProvider(extension="iknp")
    _, msg_a = ot.receiver_setup()
    ot_provider._MSG_A(msg_a)
    with pytest.raises(ot.OTError, match="OT sender: setup: msg_a must be 32 bytes, not 31"):
        ot_provider._MSG_A(msg_a[:-1])
    iknp._msg_b_check()(b"\0" * 32 * 128)
    with pytest.raises(ot.OTError, match=r"msg_b must be 4096 bytes \(128 points\), not 4064"):
        iknp._msg_b_check()(b"\0" * 32 * 127)
    soft._msg_b_check()(b"\0" * 32 * ot.softspoken.base_ots(4))
    iknp._u_check(1024)(np.zeros((128, 128), np.uint8))
    soft._u_check(1024)(np.zeros((32, 128), np.uint8))
    with pytest.raises(ot.OTError, match=r"c must be a uint8 array of shape \(32, 128\)"):
        soft._u_check(1024)(np.zeros((32, 129), np.uint8))
    with pytest.raises(ot.OTError, match=r"u must be a uint8 array of shape \(128, 128\)"):
        iknp._u_check(1024)(np.zeros((128, 128), np.uint16))


def test_paillier_provider_checks_the_key_and_the_ciphertext_lengths():
    pk, _ = keygen(512, insecure=True)
    prov = providers.PaillierProvider(key_bits=512, insecure=True)
    prov._key_check()(pk)
    with pytest.raises(ValueError, match="expected a Paillier key of 1024 bits, not 512"):
        providers.PaillierProvider(key_bits=1024, insecure=True)._key_check()(pk)
    enc = pk.encrypt(np.arange(6, dtype=object).reshape(2, 3)).to_bytes()
    assert len(enc) == serialised_nbytes(512, (2, 3))
    prov._enc_check("square", ((2, 3),))((enc, b""))
    with pytest.raises(ValueError, match="expected"):
        prov._enc_check("mul", ((2, 3), (2, 3)))((enc[:-1], enc))
    # the whole provider, in one process: honest messages pass their checks
    eng = LocalEngine(2, has_dealer=False)
    a, b, c = prov.mul_triple(eng, (3,), (3,))
    total = [sum(h.value for h in x) for x in (a, b, c)]
    np.testing.assert_array_equal(total[2], total[0] * total[1])


def test_a_local_engine_runs_the_check_at_send():
    eng = LocalEngine(2, has_dealer=True)
    h = eng.run_at(0, lambda: np.zeros(3, np.uint64))
    assert eng.send(h, 0, 1, expect=messages.ring((3,), "x")).value.shape == (3,)
    with pytest.raises(ValueError, match=r"x: expected a uint64 array of shape \(4,\)"):
        eng.send(h, 0, 1, expect=messages.ring((4,), "x"))


def test_check_of_the_receivers_own_value():
    pk, sk = keygen(512, insecure=True)
    other_pk, other_sk = keygen(512, insecure=True)
    c = pk.encrypt(np.arange(3, dtype=object))
    want = resolve(Check(hc.check_under_key, of=0), [sk, c])
    assert check_value(c, want, "h", "he/h2a#3") is c
    with pytest.raises(cr.WireError, match="different key") as e:
        check_value(c, resolve(Check(hc.check_under_key, of=0), [other_sk, c]), "h", "he/h2a#3")
    assert e.value.party == "h" and e.value.step == "he/h2a#3"
    mask = np.zeros(3, np.uint64)
    check_value(c, resolve(Check(hc.check_like_mask, of=1), [c, mask]), "g", "t")
    with pytest.raises(cr.WireError, match=r"shape \(2,\), not \(3,\)"):
        check_value(c, resolve(Check(hc.check_like_mask, of=1), [c, mask[:2]]), "g", "t")


# -- in one runtime: a provider that sends what the receiver does not expect ---------------------
def _product(rt, dealer: str | None = None, refs: dict | None = None):
    bank, insurer = rt.party("bank"), rt.party("insurer")
    mpc = rt.mpc(bank, insurer, dealer=dealer) if dealer else rt.mpc(bank, insurer)
    kept = insurer(np.arange)(5)
    if refs is not None:
        refs["kept"] = kept
    x = bank(np.array)([1.0, 2.0, 3.0, 4.0]).to(mpc)
    y = insurer(np.array)([0.5, 0.25, 2.0, 1.0]).to(mpc)
    return kept, ((x + y) * (x - y)).reveal_to(insurer)


def _runtime():
    rt = cr.init(["bank", "insurer", "dealer"], backend="inline", driver_as="insurer")
    rt.policy.grant(owner="bank", to="insurer", allow="plaintext")
    return rt


def test_honest_providers_pass_their_checks():
    with _runtime() as rt:
        for dealer in (None, "dealer"):
            _, z = _product(rt, dealer)
            np.testing.assert_allclose(rt.get(z), [0.75, 3.9375, 5.0, 15.0], atol=1e-3)


def test_a_truncated_dealer_correction_is_named(monkeypatch):
    honest = providers._dealer_correction
    monkeypatch.setattr(providers, "_dealer_correction", lambda *a: honest(*a)[:-1])
    with _runtime() as rt:
        refs: dict = {}
        with pytest.raises(cr.WireError, match=r"dealer correction for 'mul'") as e:
            rt.get(_product(rt, "dealer", refs)[1])
        assert e.value.party == "dealer" and e.value.step.startswith("offline/mul#")
        assert rt.get(refs["kept"]).tolist() == list(range(5))  # insurer's state intact


def test_a_mistyped_cot_correction_is_named(monkeypatch):
    honest = ot_provider._gilboa_send.__wrapped__ if hasattr(
        ot_provider._gilboa_send, "__wrapped__") else ot_provider._gilboa_send  # fmt: skip

    def send(*args):
        d, share = honest(*args)
        return d.view(np.int64), share

    monkeypatch.setattr(ot_provider, "_gilboa_send", send)
    with _runtime() as rt:
        refs: dict = {}
        with pytest.raises(cr.WireError, match="COT d: expected a uint64 array") as e:
            rt.get(_product(rt, None, refs)[1])
        # instance 0's COT sender is insurer (member 1), the first to send one
        assert e.value.party == "insurer" and e.value.step.startswith("offline/mul#")
        assert rt.get(refs["kept"]).tolist() == list(range(5))


def test_h2a_under_another_key_is_named(monkeypatch):
    from cipherray.protocols.paillier import CipherArray

    other, _ = keygen(512, insecure=True)
    honest = hc.h2a_mask

    def mask(c, f):
        masked, own = honest(c, f)  # the same values, under a key the keyholder lacks
        return CipherArray.from_ciphertexts(other, masked.ciphertexts() % other.nsquare,
                                            masked.exponent, "float"), own  # fmt: skip

    monkeypatch.setattr(hc, "h2a_mask", mask)
    with cr.init(["g", "h"], backend="inline", driver_as=["g", "h"]) as rt:
        g, h = rt.parties
        rt.policy.grant(owner="g", to="h", allow="encrypted")
        rt.policy.grant(owner="g", to="h", allow="plaintext")
        he = rt.he(keyholder="g", bits=512, insecure=True)
        mpc = rt.mpc(g, h)
        with pytest.raises(cr.WireError, match="different key") as e:
            rt.get(g(np.array)([1.0, 2.0]).to(he).to(h).to(mpc).reveal_to(h))
        assert e.value.party == "h" and e.value.step.startswith("he/h2a#")


def test_millionaire_leaf_tables_of_another_length_are_refused(monkeypatch):
    from cipherray.protocols.mpc import millionaire
    from cipherray.protocols.mpc.context import MPCContext

    honest = millionaire._leaf_table

    def table(i, *args):
        out, shares = honest(i, *args)
        return (out[:-1] if i == 1 else out), shares

    monkeypatch.setattr(millionaire, "_leaf_table", table)
    eng = LocalEngine(2, has_dealer=True)
    ctx = MPCContext(eng, providers.DealerProvider())
    x = eng.local(lambda i: np.arange(6, dtype=np.uint64) * np.uint64(i + 1))
    with pytest.raises(ValueError, match=r"leaf tables: expected a uint\d+ array of shape"):
        millionaire.msb_xor(ctx, x, shape=(6,), m=4)
