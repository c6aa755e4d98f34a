"""Joint pseudonyms across parties and authorised re-identification (inline backend)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

import cipherray as cr
from cipherray.protocols.deid import joint, new_key_file
from cipherray.protocols.psi.curve import blind
from cipherray.workloads.analytics.pseudonyms import (
    joint_pseudonyms,
    reidentify,
    reidentify_joint,
    siv_pseudonyms,
)

ROOT = Path(__file__).resolve().parents[1]
BANK = ["alice", "bob", "carol", None, "dave"]
INSURER = ["erin", "bob", "alice", "frank"]
HOSPITAL = ["carol", "bob", "gina"]


def _ids(values: list) -> list:
    return list(values)


@pytest.fixture
def rt():
    with cr.init(["bank", "insurer", "hospital"], backend="inline",
                 driver_as=["bank", "insurer", "hospital"]) as runtime:  # fmt: skip
        yield runtime


# -- the protocol, in one process ----------------------------------------------------------


def test_multiply_divides_by_a_scalar_on_curve_and_twist_points():
    points = joint.step2_blind(joint.hash_ids([b"%d" % i for i in range(64)], os.urandom(32)),
                               joint.JointKey.generate())  # fmt: skip
    twist = joint.on_twist(points)
    assert 0 < twist.sum() < len(points)  # both groups occur
    k = joint.JointKey.generate()
    blinded = joint.step2_blind(points, k)
    assert list(joint.step_strip(blinded, k)) == list(points)


def test_clamped_pair_multiplies_to_the_target():
    for order in (joint.L_CURVE, joint.L_TWIST):
        s = int.from_bytes(os.urandom(32), "little") % order
        c1, c2 = joint.clamped_pair(s, order)
        a, b = (int.from_bytes(c, "little") for c in (c1, c2))
        assert a == joint.clamp(c1) and b == joint.clamp(c2)  # X25519 leaves them as they are
        assert a * b % order == s


# -- on the runtime ----------------------------------------------------------------------


def test_joint_tokens_agree_for_common_ids_only(rt):
    bank, insurer, hospital = rt.parties
    ids = {bank: bank(_ids)(BANK), insurer: insurer(_ids)(INSURER)}
    with rt.record_messages() as sent:
        tokens = joint_pseudonyms(rt, ids, tag="run1")
    tb, ti = (rt.get(tokens[p]) for p in (bank, insurer))
    assert len(tb) == len(BANK) and len(ti) == len(INSURER) and tb[3] is None
    assert all(re.fullmatch(r"[0-9a-f]{64}", t) for t in [*tb[:3], tb[4], *ti])
    assert tb[1] == ti[1] and tb[0] == ti[2]  # bob, alice
    assert len({tb[0], tb[1], tb[2], tb[4], ti[0], ti[3]}) == 6
    # only blinded points crossed: no identifier, and no final token, in any message
    payloads = b"".join(np.asarray(p).tobytes() for _, _, _, p in sent if isinstance(p, np.ndarray))
    for t in [*tb[:3], *ti]:
        assert bytes.fromhex(t) not in payloads
    assert {tag.split("/")[-1] for _, _, tag, _ in sent} <= {"salt", "masked"}
    assert set(rt.audit.to_frame()["rule"]) <= {"protocol deid_joint/salt",
                                                "protocol deid_joint/masked"}  # fmt: skip


def test_three_parties_in_a_ring_and_a_token_is_not_one_partys_blinding(rt):
    bank, insurer, hospital = rt.parties
    refs = {p: p(_ids)(v) for p, v in zip(rt.parties, (BANK, INSURER, HOSPITAL))}
    tokens = joint_pseudonyms(rt, refs)
    tb, ti, th = (rt.get(tokens[p]) for p in rt.parties)
    assert tb[1] == ti[1] == th[1] and tb[2] == th[0] and ti[0] not in (*tb, *th)
    # a single party's blinding of "bob" with its own scalar is not the joint token
    salt, key = rt.get(tokens.salts["bank"]), rt.get(tokens.keys["bank"])
    single = blind(joint.hash_ids([b"bob"], salt), key.blinding_key)[0].tobytes().hex()
    assert single != tb[1]
    # fresh scalars: another run gives other tokens
    again = joint_pseudonyms(rt, refs)
    assert rt.get(again[bank])[1] != tb[1]


def test_joint_reidentification_needs_the_owners_grant_and_is_audited(rt):
    bank, insurer, _ = rt.parties
    tokens = joint_pseudonyms(rt, {bank: bank(_ids)(BANK), insurer: insurer(_ids)(INSURER)})
    with pytest.raises(cr.DisclosureError, match="owner 'bank'.*'insurer'.*deid/reidentify"):
        reidentify_joint(rt, tokens, tokens[insurer], owner=bank, to=insurer)
    rt.policy.grant(owner=bank, to=insurer, allow="plaintext", tag="deid/reidentify")
    found = reidentify_joint(rt, tokens, tokens[insurer], owner=bank, to=insurer)
    assert found.party == insurer
    assert list(rt.get(found)) == [None, "bob", "alice", None]  # only ids the bank holds
    last = rt.audit.to_frame().iloc[-1]
    assert last["to"] == "insurer" and last["step"] == "deid/reidentify/reveal"
    assert "grant bank->insurer: plaintext" in last["rule"]


def test_joint_reidentification_for_the_owner_needs_the_token_holders_grant(rt):
    bank, insurer, _ = rt.parties
    tokens = joint_pseudonyms(rt, {bank: bank(_ids)(BANK), insurer: insurer(_ids)(INSURER)})
    with pytest.raises(cr.DisclosureError, match="owner 'insurer'.*'bank'"):
        reidentify_joint(rt, tokens, tokens[insurer], owner=bank, to=bank)
    rt.policy.grant(owner=insurer, to=bank, allow="plaintext", tag="deid/reidentify")
    found = reidentify_joint(rt, tokens, tokens[insurer], owner=bank, to=bank)
    assert list(rt.get(found)) == [None, "bob", "alice", None]
    assert "grant insurer->bank" in rt.audit.to_frame().iloc[-1]["rule"]


def test_keyed_reidentification_by_the_key_holder(rt, tmp_path):
    bank, insurer, _ = rt.parties
    key_file = str(new_key_file(tmp_path / "bank.key", "siv"))
    pseudonyms = bank(siv_pseudonyms)(bank(_ids)(BANK), key_file, "customer")
    rt.policy.grant(owner=bank, to=insurer, allow="plaintext", tag="release")
    released = rt.send(pseudonyms, to=insurer, tag="release/pseudonyms")
    assert not set(rt.get(released)) & set(BANK[:3])
    with pytest.raises(cr.DisclosureError, match="owner 'bank'.*'insurer'.*deid/reidentify"):
        reidentify(rt, released, key_holder=bank, to=insurer, key_file=key_file,
                   context="customer")  # fmt: skip
    rt.policy.grant(owner=bank, to=insurer, allow="plaintext", tag="deid/reidentify")
    found = reidentify(rt, released, key_holder=bank, to=insurer, key_file=key_file,
                       context="customer")  # fmt: skip
    assert list(rt.get(found)) == BANK
    audit = rt.audit.to_frame()
    assert "deid_joint/keyed_tokens" in set(audit["step"])  # the bank's own tokens, back
    last = audit.iloc[-1]
    assert last["to"] == "insurer" and "grant bank->insurer" in last["rule"]
    assert last["tag"].startswith("deid/reidentify")


def test_readme_deid_example_runs_inline(tmp_path):
    """The README's joint pseudonyms example, on the inline backend."""
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S)
                 if "joint_pseudonyms" in b)  # fmt: skip
    assert "cr.init([" in block
    block = block.replace("cr.init([", 'cr.init(backend="inline", parties=[', 1)
    script = tmp_path / "deid_example.py"
    script.write_text(block)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "['bob', None]" in out.stdout
