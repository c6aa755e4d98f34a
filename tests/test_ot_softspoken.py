"""SoftSpokenOT extension (cipherray.protocols.ot.softspoken): the punctured-OT setup, the
IKNP correlation q = t xor c delta, ROT / COT / OT outputs through the shared batch code,
the receiver's message c against its choices, and bad input.

Statistical tests use the fixed 6-sigma threshold of tests/test_ot.py (a correct
implementation fails one check with probability below 10^-7)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cipherray.cpu_kernels import _native, aes_ctr, vole
from cipherray.protocols.ot import OTError, softspoken

SIGMA = 6.0
KS = [1, 2, 4, 8]


def _bits(m: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(os.urandom(-(-m // 8)), np.uint8), count=m)


def _ring(shape) -> np.ndarray:
    n = int(np.prod(shape))
    return np.frombuffer(os.urandom(8 * n), np.uint64).reshape(shape).copy()


def _pick(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(c.astype(bool)[:, None], b, a)


def _z(count: float, n: int) -> float:
    return (count - n / 2) / np.sqrt(n / 4)


_SESSIONS: dict[int, tuple] = {}


def _session(k: int = softspoken.DEFAULT_K, fresh: bool = False):
    """A finished setup for k (cached per k: k = 8 runs 4096 base OTs). States are
    immutable, so tests that extend from a cached pair do not disturb each other."""
    if fresh or k not in _SESSIONS:
        r, msg_a = softspoken.receiver_setup(k)
        s, msg_b = softspoken.sender_setup(msg_a, k)
        _SESSIONS[k] = (softspoken.receiver_setup_finish(r, msg_b), s, msg_b)
    return _SESSIONS[k]


def _extend(r, s, choices):
    r, rb, c = softspoken.receiver_extend(r, choices)
    s, sb = softspoken.sender_extend(s, c, len(rb))
    return r, s, rb, sb, c


# -- setup: the punctured OTs ---------------------------------------------------------------------
@pytest.mark.parametrize("k", KS)
def test_punctured_ot_sender_has_every_seed_but_the_one_at_delta(k):
    r, s, msg_b = _session(k)
    nb, n = 128 // k, 1 << k
    assert r.seeds.shape == s.seeds.shape == (nb, n, 32)
    assert len(msg_b) == 32 * nb * n
    delta_b = softspoken._delta_blocks(s.delta, k)
    bits = np.unpackbits(s.delta, bitorder="little").reshape(nb, k)
    assert np.array_equal(delta_b, (bits * (1 << np.arange(k))).sum(axis=1))
    known = np.arange(n)[None, :] != delta_b[:, None]
    np.testing.assert_array_equal(s.seeds[known], r.seeds[known])  # all others
    assert not s.seeds[~known].any()  # the slot at Delta_b is empty
    # ... and nothing S holds is the seed at Delta_b (nor any of R's seeds equals another)
    missing = {bytes(x) for x in r.seeds[~known]}
    assert len(missing) == nb and not missing & {bytes(x) for x in s.seeds.reshape(-1, 32)}
    assert len({bytes(x) for x in r.seeds.reshape(-1, 32)}) == nb * n


def test_sender_cannot_compute_the_seed_at_delta(monkeypatch):
    """The seed at Delta_b is R's key k^1 of a base OT in which S chose 0: S's whole
    output of that base OT is k^0, a hash of another group element. Capture everything S's
    base OTs gave it (before the state drops the k^0): it holds R's k^0 at Delta_b and
    k^1 elsewhere, and none of it is a seed at Delta_b."""
    from cipherray.protocols.ot import base

    seen = {}
    choose = base.receiver_choose

    def spy(a_point, choices):
        keys, msg_b = choose(a_point, choices)
        seen["keys"], seen["choices"] = keys.copy(), choices.copy()
        return keys, msg_b

    monkeypatch.setattr(base, "receiver_choose", spy)
    k = 2
    r, msg_a = softspoken.receiver_setup(k)
    s, msg_b = softspoken.sender_setup(msg_a, k)
    n, nb = 1 << k, 128 // k
    pairs = base.sender_keys(r.secret, msg_a, msg_b, nb * n).reshape(nb, n, 2, 32)  # R's
    r = softspoken.receiver_setup_finish(r, msg_b)
    np.testing.assert_array_equal(r.seeds, pairs[:, :, 1])
    delta_b = softspoken._delta_blocks(s.delta, k)
    at_delta = (np.arange(n)[None, :] == delta_b[:, None]).reshape(-1)
    np.testing.assert_array_equal(seen["choices"], 1 - at_delta)
    raw = seen["keys"].reshape(nb, n, 32)
    # S's base-OT output: k^0 at Delta_b (the other key of that pair), k^1 elsewhere
    np.testing.assert_array_equal(raw[np.arange(nb), delta_b], pairs[np.arange(nb), delta_b, 0])
    known = ~at_delta.reshape(nb, n)
    np.testing.assert_array_equal(raw[known], pairs[:, :, 1][known])
    missing = r.seeds[np.arange(nb), delta_b]
    view = {bytes(x) for x in raw.reshape(-1, 32)} | {bytes(x) for x in s.seeds.reshape(-1, 32)}
    assert not view & {bytes(x) for x in missing}
    # the extension works without it: S's expansion of the empty slot is never used
    c = _bits(1000)
    _, _, rb, sb, _ = _extend(r, s, c)
    s2 = softspoken.SenderState(
        k=k,
        delta=s.delta,
        seeds=np.where(s.seeds.any(axis=2, keepdims=True), s.seeds, np.uint8(0xAB)),
    )
    _, sb2 = softspoken.sender_extend(s2, softspoken.receiver_extend(r, c)[2], 1000)
    np.testing.assert_array_equal(sb2.q, sb.q)


# -- the correlation and the outputs ---------------------------------------------------------------
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("m", [1, 13, 128, 1000, (1 << 16) + 1000])  # the last: two chunks
def test_extension_correlation_q_is_t_xor_c_delta(k, m):
    r, s, _ = _session(k)
    c = _bits(m)
    r, s, rb, sb, msg = _extend(r, s, c)
    assert msg.shape == (128 // k, -(-m // 8)) and msg.dtype == np.uint8
    assert msg.nbytes == softspoken.bytes_per_ot(k) * 8 * -(-m // 8)
    assert rb.t.shape == sb.q.shape == (m, 16) and rb.start == sb.start == 0
    np.testing.assert_array_equal(rb.choices, c)
    np.testing.assert_array_equal(sb.q, rb.t ^ (c[:, None] * sb.delta))
    assert r.start == s.start == m and r.calls == s.calls == 1
    # a second call: fresh PRG streams, the next OT indices
    r, s, rb2, sb2, msg2 = _extend(r, s, c)
    np.testing.assert_array_equal(sb2.q, rb2.t ^ (c[:, None] * sb2.delta))
    assert rb2.start == sb2.start == m
    if m >= 128:
        assert not np.array_equal(msg, msg2) and not np.array_equal(rb.t, rb2.t)


@pytest.mark.parametrize("k", KS)
def test_vole_planes_match_the_definition(k):
    """The tree (numpy) and the native kernel against the plain definition: plane l is the
    XOR of the keystreams of the seeds x with bit l set; the sum is the XOR of all."""
    nb, nbytes, stream = 3, 2048 + 4096 + 48, (5 << 32) | 7  # several tiles and a tail
    seeds = np.frombuffer(os.urandom(nb * 32 << k), np.uint8).reshape(nb, 1 << k, 32)
    g = aes_ctr.keystreams(seeds.reshape(-1, 32), nbytes, stream).reshape(nb, 1 << k, nbytes)
    want = np.empty((nb * k, nbytes), np.uint8)
    for lvl in range(k):
        sel = (np.arange(1 << k) >> lvl) & 1 == 1
        want[lvl::k] = np.bitwise_xor.reduce(g[:, sel], axis=1)
    total = np.bitwise_xor.reduce(g, axis=1)
    got = vole.planes_numpy(seeds, k, nbytes, stream, True)
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(got[1], total)
    got = vole.planes(seeds, k, nbytes, stream, True)
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(got[1], total)
    p, none = vole.planes(seeds, k, 16, stream, want_sum=False)
    assert none is None
    np.testing.assert_array_equal(p, want[:, :16])


def test_vole_kernel_available_here():
    if not _native.cpu_supported(vole.SOURCE) or os.environ.get("CIPHERRAY_CPU_KERNELS") == "0":
        pytest.skip("no VAES / kernels disabled")
    assert vole.kernel() == "vaes"


@pytest.mark.parametrize("k", KS)
def test_random_correlated_and_chosen_ot(k):
    r, s, _ = _session(k)
    m = 3001
    r, s, rb, sb, _ = _extend(r, s, m)  # CSPRNG choice bits
    c = rb.choices
    assert 0.4 < c.mean() < 0.6
    for nbytes in (1, 16, 40):
        m0, m1 = softspoken.rot_sender(sb, nbytes)
        mc = softspoken.rot_receiver(rb, nbytes)
        np.testing.assert_array_equal(mc, _pick(c, m0, m1))
        if nbytes >= 8:
            assert not (mc == _pick(c, m1, m0)).all(axis=1).any()
    corr = _ring((m, 3))
    x0, d = softspoken.cot_sender(sb, corr)
    np.testing.assert_array_equal(
        softspoken.cot_receiver(rb, d), x0 + c[:, None].astype(np.uint64) * corr
    )
    msg0 = np.frombuffer(os.urandom(m * 33), np.uint8).reshape(m, 33)
    msg1 = np.frombuffer(os.urandom(m * 33), np.uint8).reshape(m, 33)
    d = softspoken.ot_sender(sb, msg0, msg1)
    np.testing.assert_array_equal(softspoken.ot_receiver(rb, d), _pick(c, msg0, msg1))
    # take() pieces of a SoftSpoken batch behave as IKNP's
    m0, m1 = softspoken.rot_sender(sb)
    ps, pr = softspoken.take(sb, 1000, 2000), softspoken.take(rb, 1000, 2000)
    p0, p1 = softspoken.rot_sender(ps)
    np.testing.assert_array_equal(p0, m0[1000:2000])
    np.testing.assert_array_equal(p1, m1[1000:2000])
    np.testing.assert_array_equal(softspoken.rot_receiver(pr), _pick(c, m0, m1)[1000:2000])


def test_many_ots_chosen_bits():
    """2^20 OTs (16 PRG chunks) with chosen, structured choice bits."""
    r, s, _ = _session()
    m = 1 << 20
    c = ((np.arange(m) * 2654435761) >> 7 & 1).astype(np.uint8)
    r, s, rb, sb, _ = _extend(r, s, c)
    m0, m1 = softspoken.rot_sender(sb, 8)
    np.testing.assert_array_equal(softspoken.rot_receiver(rb, 8), _pick(c, m0, m1))
    assert not (m0 == m1).all(axis=1).any()


def test_empty_extension():
    r, s, _ = _session()
    r, s, rb, sb, c = _extend(r, s, 0)
    assert c.shape == (32, 0) and len(rb) == len(sb) == 0


def test_same_without_native_kernels():
    r, s, _ = _session(2)
    c = _bits(3000)
    _, _, rb, sb, msg = _extend(r, s, c)
    _native.set_enabled(False)
    try:
        assert not aes_ctr.available() and vole.kernel() == "numpy"
        _, _, rb2, sb2, msg2 = _extend(r, s, c)
    finally:
        _native.set_enabled(True)
    np.testing.assert_array_equal(msg2, msg)
    np.testing.assert_array_equal(rb2.t, rb.t)
    np.testing.assert_array_equal(sb2.q, sb.q)


# -- the sender's view ----------------------------------------------------------------------------
@pytest.mark.parametrize("k", [2, 4, 8])
def test_receiver_message_is_uniform_and_independent_of_choices(k):
    """Every row c_b of R's message is balanced and uncorrelated with the choice bits for
    random and structured choices (|z| < 6); rows of different blocks are uncorrelated."""
    r, s, _ = _session(k)
    m = 1 << 15
    patterns = {
        "random": _bits(m),
        "alternating": (np.arange(m) % 2).astype(np.uint8),
        "zeros": np.zeros(m, np.uint8),
        "ones": np.ones(m, np.uint8),
    }
    for name, c in patterns.items():
        r, s, rb, sb, msg = _extend(r, s, c)
        bits = np.unpackbits(msg, axis=1, count=m, bitorder="little").astype(np.float64)
        ones = bits.sum(axis=1)
        assert np.abs(_z(ones, m)).max() < SIGMA, name
        assert abs(_z(ones.sum(), bits.size)) < SIGMA, name
        if c.min() != c.max():
            cc = c - c.mean()
            uu = bits - bits.mean(axis=1, keepdims=True)
            corr = (uu @ cc) / np.sqrt((uu**2).sum(axis=1) * (cc**2).sum())
            assert np.abs(corr).max() * np.sqrt(m) < SIGMA, name
        # blocks' rows are unrelated (the same choice bits under independent pads)
        agree = (bits[0] == bits[1:]).sum(axis=1)
        assert np.abs(_z(agree, m)).max() < SIGMA, name
        np.testing.assert_array_equal(sb.q ^ rb.t, c[:, None] * sb.delta)


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, 3, 16, 4.0, True])
def test_bad_k(k):
    with pytest.raises(OTError, match="OT receiver: setup: k must be one of"):
        softspoken.receiver_setup(k)
    _, msg_a = softspoken.receiver_setup(2)
    with pytest.raises(OTError, match="OT sender: setup: k must be one of"):
        softspoken.sender_setup(msg_a, k)


def test_bad_setup_messages():
    r, msg_a = softspoken.receiver_setup(2)
    with pytest.raises(OTError, match="OT sender: setup: msg_a must be 32 bytes"):
        softspoken.sender_setup(msg_a[:-1], 2)
    with pytest.raises(OTError, match="OT sender: setup: msg_a must be bytes"):
        softspoken.sender_setup("x" * 32, 2)
    _, msg_b = softspoken.sender_setup(msg_a, 4)  # S runs another k than R
    with pytest.raises(OTError, match="OT receiver: setup: msg_b must be 8192 bytes"):
        softspoken.receiver_setup_finish(r, msg_b)
    with pytest.raises(OTError, match="OT receiver: setup: msg_b must be bytes"):
        softspoken.receiver_setup_finish(r, np.frombuffer(msg_b, np.uint8))
    with pytest.raises(OTError, match="OT receiver: setup: .*receiver_setup's state"):
        softspoken.receiver_setup_finish(_session(2)[0], msg_b)
    with pytest.raises(OTError, match="OT receiver: extend: setup is not finished"):
        softspoken.receiver_extend(r, 10)


@pytest.mark.parametrize(
    "choices, what",
    [
        (np.zeros(10, np.int64), "1-D uint8"),
        (np.array([0, 1, 2], np.uint8), "0 or 1"),
        ([0, 1, 1], "uint8 array or a count"),
        (-1, "integer >= 0"),
    ],
)
def test_bad_choices(choices, what):
    r, _, _ = _session()
    with pytest.raises(OTError, match=f"OT receiver: extend: .*{what}"):
        softspoken.receiver_extend(r, choices)


def test_bad_receiver_message():
    r, s, _ = _session()  # k = 4: 32 rows
    _, _, c = softspoken.receiver_extend(r, 100)
    for bad, what in [
        (c[:, :-1], r"shape \(32, 13\)"),
        (c[:-1], r"shape \(32, 13\)"),
        (c.astype(np.uint16), "uint8 array"),
        (c.tobytes(), "numpy array"),
        (np.zeros((128, 13), np.uint8), r"shape \(32, 13\)"),  # an IKNP u
    ]:
        with pytest.raises(OTError, match=f"OT sender: extend: c must be .*{what}"):
            softspoken.sender_extend(s, bad, 100)
    with pytest.raises(OTError, match="OT sender: extend"):
        softspoken.sender_extend(s, c, 120)
    with pytest.raises(OTError, match="OT sender: extend: .*integer"):
        softspoken.sender_extend(s, c, 100.0)
    with pytest.raises(OTError, match="OT sender: extend: the state must come from"):
        softspoken.sender_extend(r, c, 100)
