"""Hidden query protocols (protocols/query): lookups against a plaintext dict, updates,
unlinkability, what the holder sees, bad messages, the joint blacklist's counts."""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest

from cipherray.cpu_kernels import x25519
from cipherray.protocols.query import (
    DuplicateKeyError,
    HolderTable,
    JointHolder,
    JointQuerier,
    LabelWidthError,
    OprfError,
    OprfKey,
    Querier,
    QuerierTable,
    combine,
    joint,
    oprf,
)

W = 32


def _table(n: int = 400):
    keys = [f"id-{secrets.token_hex(6)}" for _ in range(n)]
    labels = {k: os.urandom(1 + secrets.randbelow(W)) for k in keys}
    holder = HolderTable(width=W)
    q = Querier(QuerierTable(holder.setup(keys, [labels[k] for k in keys])))
    return holder, q, keys, labels


def _ask(holder, q, keys):
    state, msg = q.blind(keys)
    return q.finish(state, holder.answer(msg))


def test_lookup_equals_a_plaintext_dict():
    holder, q, keys, labels = _table()
    asked = keys[::3] + [f"absent-{i}" for i in range(60)] + keys[:2]
    found, got = _ask(holder, q, asked)
    for k, f, lab in zip(asked, found, got, strict=True):
        assert f == (k in labels)
        want = labels.get(k, b"")
        assert bytes(lab) == want + b"\0" * (W - len(want))


def test_setup_is_sorted_by_tag_and_carries_no_plaintext():
    keys = [f"holder-key-{i}" for i in range(200)]
    labels = [f"label-{i}".encode() for i in range(200)]
    msg = HolderTable(width=16).setup(keys, labels)
    assert msg.nbytes - 16 == 200 * (12 + 16)
    t = msg.tags
    assert all(bytes(t[i]) < bytes(t[i + 1]) for i in range(len(t) - 1))
    blob = msg.tags.tobytes() + msg.labels.tobytes()
    assert b"label-" not in blob and b"holder-key" not in blob


def test_updates_ship_only_changes_and_never_reuse_a_pad():
    holder, q, keys, labels = _table(100)
    old = q.table.labels[q.table._find(_tags_of(holder, [keys[0]]))[0]].copy()
    new_label = os.urandom(W)
    up = holder.update([keys[0], "new-key"], [new_label, b"fresh"], deletes=[keys[1]])
    assert len(up) == 2 and len(up.deleted) == 1
    q.table.apply(up)
    assert len(q.table) == 100  # +1 new, -1 deleted, 1 replaced
    found, got = _ask(holder, q, [keys[0], "new-key", keys[1], keys[2]])
    assert found.tolist() == [True, True, False, True]
    assert bytes(got[0]) == new_label and bytes(got[1]).rstrip(b"\0") == b"fresh"
    assert bytes(got[3]).rstrip(b"\0") == labels[keys[2]].rstrip(b"\0")
    # the changed row is under a new pad: old XOR new ciphertexts != old XOR new labels
    row = q.table._find(_tags_of(holder, [keys[0]]))[0]
    old_plain = np.frombuffer(labels[keys[0]].ljust(W, b"\0"), np.uint8)
    new_plain = np.frombuffer(new_label, np.uint8)
    assert not np.array_equal(old ^ q.table.labels[row], old_plain ^ new_plain)
    holder.update(["x"], [b"y"])  # generation 2, lost
    with pytest.raises(ValueError, match="update 3 after 1: one is missing"):
        q.table.apply(holder.update(["x"], [b"z"]))


def _tags_of(holder, keys):
    from cipherray.protocols.query.table import tags_of

    return tags_of(oprf.evaluate_own(oprf._as_bytes(keys), holder.key), holder.tag_bytes)


def test_two_queries_of_one_key_are_unlinkable_and_agree():
    key = OprfKey.generate()
    s1, m1 = oprf.blind(["alice"])
    s2, m2 = oprf.blind(["alice"])
    assert m1 != m2
    z1 = oprf.finalize(s1, oprf.evaluate(m1, key))
    z2 = oprf.finalize(s2, oprf.evaluate(m2, key))
    assert np.array_equal(z1, z2)
    assert np.array_equal(z1, oprf.evaluate_own([b"alice"], key))


def test_the_holder_sees_uniform_points():
    """Blinded points of one key repeated and of distinct keys: all distinct, and the bits
    of their y-coordinates balanced as for uniform points (mean 1/2, 6 sigma bounds)."""
    n = 300
    _, same = oprf.blind(["same-key"] * n)
    _, diff = oprf.blind([f"key{i}" for i in range(n)])
    for msg in (same, diff):
        pts = np.frombuffer(msg, np.uint8).reshape(n, 32)
        assert len({bytes(p) for p in pts}) == n
        bits = np.unpackbits(pts, axis=1, bitorder="little")[:, :254]  # y < p < 2^255
        sigma = 0.5 / np.sqrt(bits.size)
        assert abs(bits.mean() - 0.5) < 6 * sigma
        per_bit = bits.mean(axis=0)  # no position is biased either
        assert np.all(np.abs(per_bit - 0.5) < 6 * 0.5 / np.sqrt(n))


def test_the_holder_rows_agree_on_both_scalar_multiplication_paths(monkeypatch):
    key = OprfKey.generate()
    keys = [f"r{i}".encode() for i in range(40)]
    fast = oprf.evaluate_own(keys, key)
    monkeypatch.setattr(x25519, "available", lambda: False)
    assert np.array_equal(oprf.evaluate_own(keys, key), fast)
    s, m = oprf.blind(keys)
    assert np.array_equal(oprf.finalize(s, oprf.evaluate(m, key)), fast)


def test_bad_messages_and_inputs_are_named():
    key = OprfKey.generate()
    with pytest.raises(OprfError, match="holder: blinded query has 31 bytes"):
        oprf.evaluate(b"\1" * 31, key)
    small_order = bytes([1] + [0] * 31)  # the identity
    with pytest.raises(OprfError, match="point 0 is not in the prime-order group"):
        oprf.evaluate(small_order, key)
    s, m = oprf.blind(["a", "b"])
    with pytest.raises(OprfError, match="querier: evaluated reply has 32 bytes, expected 2"):
        oprf.finalize(s, oprf.evaluate(m, key)[:32])
    with pytest.raises(DuplicateKeyError):
        HolderTable(width=4).setup(["a", "b", "a"], [b"1", b"2", b"3"])
    with pytest.raises(LabelWidthError, match="row 1: label of 5 bytes exceeds the width 4"):
        HolderTable(width=4).setup(["a", "b"], [b"1", b"12345"])
    assert "secret" in repr(key) and key._raw.hex() not in repr(key)


def _joint_offline(holders: list) -> list:
    """Steps 1-3 among the holders, in process."""
    msgs = [h.blind_own() for h in holders]
    shares = [h.slot_share() for h in holders]
    for j, h in enumerate(holders):
        replies = (o.evaluate(msgs[j]) for i, o in enumerate(holders) if i != j)
        h.finish_own(*replies, index=j, slot_shares=shares)
    return holders


@pytest.mark.parametrize("kernel", [True, False])
def test_joint_counts_equal_plaintext_counts(kernel, monkeypatch):
    if not kernel:  # the sealing's X25519 through `cryptography`
        monkeypatch.setattr(x25519, "available", lambda: False)
    universe = [f"u{i}" for i in range(120)]
    lists = [[u for u in universe if secrets.randbelow(2)] + [universe[0]] * 2 for _ in range(3)]
    holders = _joint_offline([JointHolder(lst) for lst in lists])
    q = JointQuerier(3)
    size = q.open(combine(*(h.seal(q.public_key) for h in holders)))
    assert size == sum(len(set(lst)) for lst in lists)
    asked = universe + ["nobody"]
    state, msg = q.blind(asked)
    counts = q.counts(state, *(h.evaluate(msg) for h in holders))
    want = [sum(k in set(lst) for lst in lists) for k in asked]
    assert counts.tolist() == want
    assert holders[0].duplicates in (1, 2)


def test_joint_bag_hides_the_holders():
    """The sealed entries from one holder look like another's: no tag in clear, fresh
    nonces, and the combined bag is shuffled (not in holder order)."""
    holders = _joint_offline([JointHolder([f"x{i}" for i in range(50)]) for _ in range(2)])
    q = JointQuerier(2)
    b0, b1 = (h.seal(q.public_key) for h in holders)
    assert not np.array_equal(b0[1], b1[1])  # same keys, different sealed tags
    nonces, _ = combine(b0, b1)
    first = {bytes(n) for n in b0[0]}
    assert [bytes(n) in first for n in nonces] != [True] * 50 + [False] * 50
    other = JointQuerier(2)  # a key other than the querier's opens nothing
    other.open(combine(b0, b1))
    state, msg = other.blind(["x1"])
    assert other.counts(state, *(h.evaluate(msg) for h in holders)).tolist() == [0]
    state, msg = q.blind(["x1"])
    q.open(combine(b0, b1))
    assert q.counts(state, *(h.evaluate(msg) for h in holders)).tolist() == [2]


def test_joint_entries_of_one_key_are_unlinkable_and_slots_are_random():
    """Three holders with the same 300 keys: the querier's opened set has 900 distinct
    slot tags (no tag repeats, so no histogram of counts over the union), each key's
    three holders use three different slots, and the slot a given holder uses varies
    from key to key (about uniform over 0..2)."""
    keys = [f"k{i}" for i in range(300)]
    holders = _joint_offline([JointHolder(keys) for _ in range(3)])
    q = JointQuerier(3)
    assert q.open(combine(*(h.seal(q.public_key) for h in holders))) == 900
    assert len(q._tags) == 900
    state, msg = q.blind(keys[:5])
    assert q.counts(state, *(h.evaluate(msg) for h in holders)).tolist() == [3] * 5
    # holder 0's slot per key, recomputed from its tags against each slot's tags
    seeds = [h._tags for h in holders]
    assert all(len({bytes(t[i]) for t in seeds}) == 3 for i in range(300))
    shares = [secrets.token_bytes(16) for _ in range(3)]
    z = np.frombuffer(secrets.token_bytes(32 * 3000), np.uint8).reshape(3000, 32)
    per = [joint.slots(joint.slot_key(shares), z, 3, j) for j in range(3)]
    assert np.array_equal(np.sort(np.stack(per), axis=0), np.tile(np.arange(3)[:, None], 3000))
    freq = np.bincount(per[0], minlength=3) / 3000
    assert np.abs(freq - 1 / 3).max() < 0.04
    other = joint.slots(joint.slot_key([secrets.token_bytes(16) for _ in range(3)]), z, 3, 0)
    assert 0.25 < np.mean(other == per[0]) < 0.42  # another slot key: unrelated slots


def test_joint_bad_slot_shares_are_refused():
    holders = [JointHolder(["a"]) for _ in range(2)]
    msgs = [h.blind_own() for h in holders]
    shares = [h.slot_share() for h in holders]
    with pytest.raises(ValueError, match="slot share 0 is not this holder's"):
        holders[0].finish_own(holders[1].evaluate(msgs[0]), index=0, slot_shares=shares[::-1])
    with pytest.raises(ValueError, match="1 replies for 4 holders"):
        holders[0].finish_own(holders[1].evaluate(msgs[0]), index=0, slot_shares=shares * 2)
    with pytest.raises(ValueError, match="m >= 2 shares of 16 bytes"):
        joint.slot_key([b"x" * 16])
