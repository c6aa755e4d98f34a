"""Oblivious transfer (cipherray.protocols.ot): base OTs, IKNP extension, ROT / COT /
chosen-message OT, batches split with take, transcript statistics, bad input, and the
native kernels (bit transpose, TCCR hash) against their numpy / cryptography fallbacks.

Statistical tests use a fixed 6-sigma threshold on binomial counts / correlations, so a
correct implementation fails one of them with probability below 10^-7 per check."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from nacl import bindings as sodium

from cipherray.cpu_kernels import _native, bit_transpose, ot_hash
from cipherray.protocols import ot
from cipherray.protocols.ot import OTError, base, iknp

SIGMA = 6.0


def _bits(m: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(os.urandom(-(-m // 8)), np.uint8), count=m)


def _ring(shape) -> np.ndarray:
    n = int(np.prod(shape))
    return np.frombuffer(os.urandom(8 * n), np.uint64).reshape(shape).copy()


def _session():
    r, msg_a = ot.receiver_setup()
    s, msg_b = ot.sender_setup(msg_a)
    return ot.receiver_setup_finish(r, msg_b), s


def _extend(r, s, choices):
    r, rb, u = ot.receiver_extend(r, choices)
    s, sb = ot.sender_extend(s, u, len(rb))
    return r, s, rb, sb, u


@pytest.fixture
def session():
    return _session()


def _pick(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(c.astype(bool)[:, None], b, a)


# -- base OT and the extension's correlation ------------------------------------------------------
def test_base_ots_give_the_receiver_one_key_of_each_pair():
    r, s = _session()
    bits = np.unpackbits(s.delta, bitorder="little")
    idx = np.arange(128)
    np.testing.assert_array_equal(r.seeds[idx, bits], s.seeds)
    assert not (r.seeds[idx, 1 - bits] == s.seeds).all(axis=1).any()
    assert len({bytes(k) for k in r.seeds.reshape(256, 32)}) == 256


@pytest.mark.parametrize(
    "m", [1, 13, 128, 1000, 4099, (1 << 16) + 1000]
)  # the last: two PRG chunks
def test_extension_correlation_q_is_t_xor_c_delta(session, m):
    r, s = session
    c = _bits(m)
    r, s, rb, sb, u = _extend(r, s, c)
    assert u.shape == (128, -(-m // 8)) and u.dtype == np.uint8
    assert rb.t.shape == sb.q.shape == (m, 16) and rb.start == sb.start == 0
    np.testing.assert_array_equal(rb.choices, c)
    np.testing.assert_array_equal(sb.q, rb.t ^ (c[:, None] * sb.delta))
    assert r.start == s.start == m and r.calls == s.calls == 1


# -- ROT / COT / OT correctness -------------------------------------------------------------------
@pytest.mark.parametrize("nbytes", [1, 8, 16, 17, 40])
def test_random_ot_gives_the_chosen_message_only(session, nbytes):
    r, s = session
    r, s, rb, sb, _ = _extend(r, s, 3001)  # random choice bits from the CSPRNG
    m0, m1 = ot.rot_sender(sb, nbytes)
    mc = ot.rot_receiver(rb, nbytes)
    assert m0.shape == m1.shape == mc.shape == (3001, nbytes) and mc.dtype == np.uint8
    np.testing.assert_array_equal(mc, _pick(rb.choices, m0, m1))
    if nbytes >= 8:  # a collision of 64+ random bits would be a bug, not chance
        assert not (mc == _pick(rb.choices, m1, m0)).all(axis=1).any()
    c = rb.choices
    assert 0.4 < c.mean() < 0.6


def test_longer_messages_extend_the_16_byte_ones(session):
    r, s = session
    r, s, rb, sb, _ = _extend(r, s, 100)
    np.testing.assert_array_equal(ot.rot_receiver(rb, 40)[:, :16], ot.rot_receiver(rb, 16))
    np.testing.assert_array_equal(ot.rot_receiver(rb, 40)[:, :5], ot.rot_receiver(rb, 5))


@pytest.mark.parametrize("L", [1, 3, 64])
def test_correlated_ot_over_z2_64(session, L):
    r, s = session
    m = 777
    c = _bits(m)
    r, s, rb, sb, _ = _extend(r, s, c)
    corr = _ring((m, L))
    x0, d = ot.cot_sender(sb, corr)
    assert x0.dtype == d.dtype == np.uint64 and x0.shape == d.shape == (m, L)
    xc = ot.cot_receiver(rb, d)
    np.testing.assert_array_equal(xc, x0 + c[:, None].astype(np.uint64) * corr)
    # OTs with c = 0 give x0 exactly, c = 1 give x0 + corr: both happen
    assert 0 < c.sum() < m


def test_chosen_message_ot(session):
    r, s = session
    m, n = 500, 33
    c = _bits(m)
    r, s, rb, sb, _ = _extend(r, s, c)
    msg0 = np.frombuffer(os.urandom(m * n), np.uint8).reshape(m, n)
    msg1 = np.frombuffer(os.urandom(m * n), np.uint8).reshape(m, n)
    d = ot.ot_sender(sb, msg0, msg1)
    assert d.shape == (2, m, n)
    np.testing.assert_array_equal(ot.ot_receiver(rb, d), _pick(c, msg0, msg1))


def test_all_zero_and_all_one_choices(session):
    r, s = session
    for c in (np.zeros(200, np.uint8), np.ones(200, np.uint8)):
        r, s, rb, sb, _ = _extend(r, s, c)
        m0, m1 = ot.rot_sender(sb)
        np.testing.assert_array_equal(ot.rot_receiver(rb), m1 if c[0] else m0)


def test_empty_extension(session):
    r, s = session
    r, s, rb, sb, u = _extend(r, s, 0)
    assert u.shape == (128, 0) and len(rb) == len(sb) == 0
    assert ot.rot_receiver(rb).shape == (0, 16)


# -- batches, take, tweaks ------------------------------------------------------------------------
def test_take_pieces_equal_the_whole_batch(session):
    r, s = session
    r, s, rb, sb, _ = _extend(r, s, 1000)
    m0, m1 = ot.rot_sender(sb)
    mc = ot.rot_receiver(rb)
    for lo, hi in [(0, 300), (300, 1000), (999, 1000), (500, 500)]:
        ps, pr = ot.take(sb, lo, hi), ot.take(rb, lo, hi)
        assert ps.start == pr.start == lo and len(ps) == len(pr) == hi - lo
        p0, p1 = ot.rot_sender(ps)
        np.testing.assert_array_equal(p0, m0[lo:hi])
        np.testing.assert_array_equal(p1, m1[lo:hi])
        np.testing.assert_array_equal(ot.rot_receiver(pr), mc[lo:hi])
    # a piece spent as COT still works after slicing
    corr = _ring((100, 2))
    x0, d = ot.cot_sender(ot.take(sb, 100, 200), corr)
    xc = ot.cot_receiver(ot.take(rb, 100, 200), d)
    np.testing.assert_array_equal(xc, x0 + rb.choices[100:200, None].astype(np.uint64) * corr)


def test_batches_get_fresh_indices_and_unrelated_outputs(session):
    r, s = session
    c = np.zeros(512, np.uint8)
    r, s, rb1, sb1, u1 = _extend(r, s, c)
    r, s, rb2, sb2, u2 = _extend(r, s, c)
    assert (rb1.start, rb2.start, sb2.start) == (0, 512, 512)
    assert not np.array_equal(u1, u2)  # a fresh PRG stream per extension
    out1 = np.concatenate(ot.rot_sender(sb1))
    out2 = np.concatenate(ot.rot_sender(sb2))
    rows = {bytes(x) for x in out1}
    assert len(rows) == 1024 and not rows & {bytes(x) for x in out2}
    # the same q hashed under another OT index gives another output (the tweak binds)
    same = ot.SenderBatch(q=sb1.q, delta=sb1.delta, start=sb2.start)
    assert not (ot.rot_sender(same)[0] == ot.rot_sender(sb1)[0]).all(axis=1).any()


def test_states_and_batches_pickle(session):
    r, s = session
    r, s, rb, sb, _ = _extend(r, s, 64)
    r2, s2, rb2, sb2 = (pickle.loads(pickle.dumps(x)) for x in (r, s, rb, sb))
    np.testing.assert_array_equal(ot.rot_receiver(rb2), ot.rot_receiver(rb))
    _, _, rb3, sb3, _ = _extend(r2, s2, 64)
    m0, m1 = ot.rot_sender(sb3)
    np.testing.assert_array_equal(ot.rot_receiver(rb3), _pick(rb3.choices, m0, m1))


# -- transcripts: what each side sees ------------------------------------------------------------
def _z(count: float, n: int) -> float:
    """z-score of a count of ones among n fair bits."""
    return (count - n / 2) / np.sqrt(n / 4)


def test_sender_view_u_is_independent_of_the_choices(session):
    """u is balanced and uncorrelated with c for structured and random choice vectors: for
    every one of the 128 rows, |corr(u^i, c)| * sqrt(m) < 6 and the share of ones is within
    6 sigma of 1/2; all-zero and all-one choices give rows just as balanced."""
    r, s = session
    m = 1 << 15
    patterns = {
        "random": _bits(m),
        "alternating": (np.arange(m) % 2).astype(np.uint8),
        "zeros": np.zeros(m, np.uint8),
        "ones": np.ones(m, np.uint8),
    }
    for name, c in patterns.items():
        r, s, rb, sb, u = _extend(r, s, c)
        bits = np.unpackbits(u, axis=1, count=m, bitorder="little").astype(np.float64)
        ones = bits.sum(axis=1)
        assert np.abs(_z(ones, m)).max() < SIGMA, name
        assert abs(_z(ones.sum(), 128 * m)) < SIGMA, name
        if c.min() != c.max():  # correlation is defined for non-constant c
            cc = c - c.mean()
            uu = bits - bits.mean(axis=1, keepdims=True)
            corr = (uu @ cc) / np.sqrt((uu**2).sum(axis=1) * (cc**2).sum())
            assert np.abs(corr).max() * np.sqrt(m) < SIGMA, name
        # the receiver's rows t_j and the sender's q_j relate only through c_j * delta
        np.testing.assert_array_equal(sb.q ^ rb.t, c[:, None] * sb.delta)


def test_receiver_learns_nothing_about_the_other_message(session):
    """From its view (t, c, the COT message d) the receiver's natural guesses at
    m_{1-c} -- its own output, and the hash of t_j xor any fixed block under the same tweak
    -- agree with m_{1-c} on a fair coin's share of bits (6 sigma), never on a whole row;
    m_{1-c} itself is balanced."""
    r, s = session
    m = 1 << 14
    r, s, rb, sb, _ = _extend(r, s, m)
    m0, m1 = ot.rot_sender(sb)
    other = _pick(rb.choices, m1, m0)
    n = other.size * 8
    assert abs(_z(np.unpackbits(other).sum(), n)) < SIGMA
    ones = np.full(16, 0xFF, np.uint8)
    guesses = {
        "own output": ot.rot_receiver(rb),
        "t xor 1s": iknp._hash(rb.t ^ ones, rb.start, 16),
        "t, next tweak": iknp._hash(rb.t, rb.start + 1, 16),
    }
    for name, g in guesses.items():
        agree = np.unpackbits(~(g ^ other)).sum()
        assert abs(_z(agree, n)) < SIGMA, name
        assert not (g == other).all(axis=1).any(), name
    # COT: with c_j = 0 the receiver holds x0_j and d_j = x0_j + corr_j - m1_j; the
    # correlation it would need is hidden by m1: d - x0 is balanced whatever corr is
    corr = np.zeros((m, 1), np.uint64)  # the most structured correlation
    x0, d = ot.cot_sender(sb, corr)
    seen = (d - x0)[rb.choices == 0]
    assert abs(_z(np.unpackbits(seen.view(np.uint8)).sum(), seen.size * 64)) < SIGMA


# -- bad input ------------------------------------------------------------------------------------
def _small_order_point() -> bytes:
    return bytes([1]) + bytes(31)  # the identity


def _outside_subgroup() -> bytes:
    p = sodium.crypto_scalarmult_ed25519_base_noclamp(base.random_scalar())
    t = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
    return sodium.crypto_core_ed25519_add(p, t)  # a valid point plus one of order 8


@pytest.mark.parametrize(
    "msg_a, what",
    [
        (b"short", "32 bytes"),
        ("x" * 32, "must be bytes"),
        (b"\xff" * 32, "not a valid point"),
        (_small_order_point(), "not a valid point"),
        (_outside_subgroup(), "not a valid point"),
    ],
)
def test_bad_msg_a(msg_a, what):
    with pytest.raises(OTError, match=f"OT sender: setup: .*{what}"):
        ot.sender_setup(msg_a)


def test_bad_msg_b():
    r, msg_a = ot.receiver_setup()
    _, msg_b = ot.sender_setup(msg_a)
    with pytest.raises(OTError, match="OT receiver: setup: msg_b must be 4096 bytes"):
        ot.receiver_setup_finish(r, msg_b[:-1])
    with pytest.raises(OTError, match="OT receiver: setup: msg_b must be bytes"):
        ot.receiver_setup_finish(r, np.frombuffer(msg_b, np.uint8))
    bad = msg_b[: 32 * 5] + _outside_subgroup() + msg_b[32 * 6 :]
    with pytest.raises(OTError, match="OT receiver: setup: msg_b point 5 is not a valid"):
        ot.receiver_setup_finish(r, bad)
    with pytest.raises(OTError, match="OT receiver: setup: .*receiver_setup's state"):
        ot.receiver_setup_finish(ot.receiver_setup_finish(r, msg_b), msg_b)


def test_extend_before_setup_finished():
    r, _ = ot.receiver_setup()
    with pytest.raises(OTError, match="OT receiver: extend: setup is not finished"):
        ot.receiver_extend(r, 10)


@pytest.mark.parametrize(
    "choices, what",
    [
        (np.zeros(10, np.int64), "1-D uint8"),
        (np.zeros((2, 5), np.uint8), "1-D uint8"),
        (np.array([0, 1, 2], np.uint8), "0 or 1"),
        ([0, 1, 1], "uint8 array or a count"),
        (-1, "integer >= 0"),
        (True, "uint8 array or a count"),
    ],
)
def test_bad_choices(session, choices, what):
    r, _ = session
    with pytest.raises(OTError, match=f"OT receiver: extend: .*{what}"):
        ot.receiver_extend(r, choices)


def test_bad_u(session):
    r, s = session
    r, rb, u = ot.receiver_extend(r, 100)
    for bad, what in [
        (u[:, :-1], r"shape \(128, 13\)"),
        (u[:-1], r"shape \(128, 13\)"),
        (u.astype(np.uint16), "uint8 array"),
        (u.tobytes(), "numpy array"),
    ]:
        with pytest.raises(OTError, match=f"OT sender: extend: u must be .*{what}"):
            ot.sender_extend(s, bad, 100)
    with pytest.raises(OTError, match="OT sender: extend"):
        ot.sender_extend(s, u, 120)  # u was made for 100 OTs (13 bytes a row, not 15)
    with pytest.raises(OTError, match="OT sender: extend: .*integer"):
        ot.sender_extend(s, u, 100.0)


def test_bad_correlations_and_messages(session):
    r, s = session
    r, s, rb, sb, _ = _extend(r, s, 50)
    with pytest.raises(
        OTError, match=r"OT sender: cot: corr must be a uint64 array of shape \(50, L\)"
    ):
        ot.cot_sender(sb, _ring((49, 2)))
    with pytest.raises(OTError, match="OT sender: cot: corr must be a uint64"):
        ot.cot_sender(sb, _ring((50, 2)).astype(np.int64))
    with pytest.raises(OTError, match="OT sender: cot: corr must be a numpy array"):
        ot.cot_sender(sb, [[1]] * 50)
    with pytest.raises(
        OTError, match=r"OT receiver: cot: d must be a uint64 array of shape \(50, L\)"
    ):
        ot.cot_receiver(rb, _ring((50,)))
    with pytest.raises(OTError, match="OT receiver: cot: expected a ReceiverBatch"):
        ot.cot_receiver(sb, _ring((50, 1)))
    msg = np.zeros((50, 4), np.uint8)
    with pytest.raises(OTError, match="OT sender: ot: .*differ in shape"):
        ot.ot_sender(sb, msg, np.zeros((50, 5), np.uint8))
    with pytest.raises(OTError, match=r"OT sender: ot: m1 must be a uint8 array of shape \(50, "):
        ot.ot_sender(sb, msg, np.zeros((51, 4), np.uint8))
    d = ot.ot_sender(sb, msg, msg)
    with pytest.raises(
        OTError, match=r"OT receiver: ot: d must be a uint8 array of shape \(2, 50, "
    ):
        ot.ot_receiver(rb, d[:, :49])
    with pytest.raises(OTError, match="OT receiver: rot: nbytes must be a positive integer"):
        ot.rot_receiver(rb, 0)


def test_take_out_of_range(session):
    r, s = session
    r, s, rb, sb, _ = _extend(r, s, 50)
    for lo, hi in [(0, 51), (10, 5), (-1, 3), (0, 2.0)]:
        with pytest.raises(OTError, match=r"OT sender: take: asked for OTs .* of a batch of 50"):
            ot.take(sb, lo, hi)
        with pytest.raises(OTError, match=r"OT receiver: take: asked for OTs .* of a batch of 50"):
            ot.take(rb, lo, hi)
    piece = ot.take(sb, 40, 50)
    with pytest.raises(OTError, match="OT sender: take: .* a batch of 10"):
        ot.take(piece, 0, 11)


# -- native kernels against their fallbacks -------------------------------------------------------
def _build(name: str, use_wide, kernel, wide: str):
    """Select a kernel build for one test (the wide one or the baseline), skip it where it
    does not run here, restore the default after."""
    use_wide(name == wide)
    try:
        if kernel() != name:
            pytest.skip(f"no {name} build here")
        yield name
    finally:
        use_wide(True)


@pytest.fixture(params=["avx512", "sse2"])
def transpose_build(request):
    yield from _build(request.param, bit_transpose.set_avx512, bit_transpose.kernel, "avx512")


@pytest.fixture(params=["vaes", "aes-ni"])
def hash_build(request):
    yield from _build(request.param, ot_hash.set_vaes, ot_hash.kernel, "vaes")


SHAPES = [(8, 1), (128, 1), (128, 16), (128, 37), (24, 40), (16, 512), (64, 16), (192, 300)]


def test_bit_transpose_kernels_match_numpy(transpose_build):
    for rows, cols in SHAPES:
        x = np.frombuffer(os.urandom(rows * cols), np.uint8).reshape(rows, cols)
        ref = bit_transpose.transpose_numpy(x)
        assert ref.shape == (8 * cols, rows // 8)
        # bit j of row i becomes bit i of row j
        bits = np.unpackbits(x, axis=1, bitorder="little")
        np.testing.assert_array_equal(np.unpackbits(ref, axis=1, bitorder="little"), bits.T)
        np.testing.assert_array_equal(bit_transpose.transpose(x), ref)
        np.testing.assert_array_equal(bit_transpose.transpose(ref), x)
        y = np.frombuffer(os.urandom(rows * cols), np.uint8).reshape(rows, cols)
        mask = np.uint8(0) - _bits(rows)
        np.testing.assert_array_equal(
            bit_transpose.transpose_xor(x, y, mask),
            bit_transpose.transpose_numpy(x ^ (y & mask[:, None])),
        )
        acc = np.frombuffer(os.urandom(rows * cols), np.uint8).reshape(rows, cols).copy()
        row = np.frombuffer(os.urandom(cols), np.uint8)
        want = acc ^ x ^ row
        np.testing.assert_array_equal(bit_transpose.transpose_acc(x, acc, row), ref)
        np.testing.assert_array_equal(acc, want)
    with pytest.raises(ValueError, match="row_mask must hold"):
        bit_transpose.transpose_xor(x, y, np.ones(rows, np.uint8))


def test_tccr_kernels_match_cryptography(hash_build):
    key = os.urandom(16)
    start = (1 << 63) + 12345  # the tweak's full 64 bits
    for m in (1, 7, 16, 33, 1000):
        x = np.frombuffer(os.urandom(16 * m), np.uint8).reshape(m, 16)
        delta = np.frombuffer(os.urandom(16), np.uint8)
        for nblocks in (1, 2, 5):
            for d in (None, delta):
                np.testing.assert_array_equal(
                    ot_hash.tccr(key, x, start, nblocks, d),
                    ot_hash.tccr_numpy(key, x, start, nblocks, d),
                )


def test_native_kernels_available_here():
    """On this CI host (x86 with AES-NI and a compiler) the kernels must build and run:
    otherwise the comparisons above compare the fallback with itself."""
    if not _native.cpu_supported("ot_hash.cc") or os.environ.get("CIPHERRAY_CPU_KERNELS") == "0":
        pytest.skip("no AES-NI / kernels disabled")
    assert bit_transpose.available()
    assert ot_hash.kernel() in ("aes-ni", "vaes")


def test_whole_extension_is_the_same_without_kernels(session):
    r, s = session
    c = _bits(3000)
    _, _, rb, sb, u = _extend(r, s, c)
    m0, m1 = ot.rot_sender(sb, 24)
    _native.set_enabled(False)
    try:
        assert not bit_transpose.available() and ot_hash.kernel() == "cryptography"
        _, _, rb2, sb2, u2 = _extend(r, s, c)
        n0, n1 = ot.rot_sender(sb2, 24)
    finally:
        _native.set_enabled(True)
    np.testing.assert_array_equal(u2, u)
    np.testing.assert_array_equal(rb2.t, rb.t)
    np.testing.assert_array_equal(sb2.q, sb.q)
    np.testing.assert_array_equal(n0, m0)
    np.testing.assert_array_equal(n1, m1)
