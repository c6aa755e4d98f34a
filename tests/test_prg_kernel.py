"""The fast paths of sharing (issue 21 part 5): the PRG's ring elements from the AES-NI
kernel equal `cryptography`'s bit for bit, the owner's share is made in place, the
fixed-point encoding is the same as before in one pass, and consecutive steps of a
party use the value its worker holds (no copy between them)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from cipherray.cpu_kernels import _native, aes_ctr
from cipherray.protocols import fixedpoint, prg, sharing

SEED = bytes(range(32))
SHAPES = [0, 1, 3, 17, (4, 5), (2, 0, 3), 100_003]
STREAMS = [0, 1, 2**63 + 5]


@pytest.fixture(params=["vaes", "aes-ni", "cryptography"])
def path(request):
    """Each build of the kernel (VAES, AES-NI) where it runs, and the fallback."""
    _native.set_enabled(request.param != "cryptography")
    aes_ctr.set_vaes(request.param == "vaes")
    try:
        if aes_ctr.kernel() != request.param:
            pytest.skip(f"no {request.param} build on this machine (CPU or compiler)")
        yield request.param
    finally:
        _native.set_enabled(True)
        aes_ctr.set_vaes(True)


def _reference_ring(seed: bytes, shape, stream: int = 0) -> np.ndarray:
    """The PRG's definition: the AES-256-CTR keystream read as little-endian uint64."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(prg.random_bytes(seed, 8 * n, stream), dtype="<u8").reshape(shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stream", STREAMS)
def test_random_ring_is_the_keystream(path, shape, stream):
    got = prg.random_ring(SEED, shape, stream)
    want = _reference_ring(SEED, shape, stream)
    assert got.dtype == np.uint64 and got.shape == want.shape
    assert got.tobytes() == want.tobytes()
    assert got.flags.c_contiguous and got.flags.writeable


@pytest.mark.parametrize("nbytes", [0, 8, 16, 504, 512, 520, 4096 + 24])
@pytest.mark.parametrize("stream", STREAMS)
def test_kernel_builds_equal_cryptography(path, nbytes, stream):
    seeds = aes_ctr.as_seeds([prg.new_seed() for _ in range(3)])
    ks = aes_ctr.keystreams(seeds, nbytes, stream)
    for i in range(3):
        assert ks[i].tobytes() == prg.random_bytes(seeds[i].tobytes(), nbytes, stream)
    for bits, dtype in ((32, "<u4"), (64, "<u8")):
        length = nbytes // (bits // 8)
        rows = [np.frombuffer(k.tobytes(), dtype)[:length] for k in ks]
        got = aes_ctr.masked_sum(seeds, [1, -1, 1], length, bits, stream)
        assert np.array_equal(got, rows[0] - rows[1] + rows[2])


def test_random_ring_same_on_both_paths():
    if not aes_ctr.available():
        pytest.skip("CPU without AES-NI, or no C++ compiler")
    seeds = [prg.new_seed() for _ in range(4)]
    fast = [prg.random_ring(s, (1000, 3), stream=k) for k, s in enumerate(seeds)]
    _native.set_enabled(False)
    try:
        slow = [prg.random_ring(s, (1000, 3), stream=k) for k, s in enumerate(seeds)]
    finally:
        _native.set_enabled(True)
    for f, s in zip(fast, slow):
        assert np.array_equal(f, s)


def test_random_ring_checks_the_seed(path):
    with pytest.raises(ValueError):
        prg.random_ring(b"short", 4)
    with pytest.raises(ValueError):
        prg.add_ring(np.zeros(4, np.uint64), [b"short"], [1])


@pytest.mark.parametrize("shape", [(0,), (1,), (37,), (6, 7), (100_003,)])
def test_add_ring_adds_and_subtracts_in_place(path, shape):
    seeds = [prg.new_seed() for _ in range(3)]
    signs = [1, -1, 0]
    x = np.arange(int(np.prod(shape)), dtype=np.uint64).reshape(shape) * np.uint64(2**40 + 3)
    want = x + _reference_ring(seeds[0], shape, 9) - _reference_ring(seeds[1], shape, 9)
    out = x.copy()
    assert prg.add_ring(out, seeds, signs, stream=9) is out
    assert np.array_equal(out, want)


def test_add_ring_rejects(path):
    with pytest.raises(ValueError):
        prg.add_ring(np.zeros(4, np.int64), [SEED], [1])  # not uint64
    with pytest.raises(ValueError):
        prg.add_ring(np.zeros((4, 4), np.uint64).T, [SEED], [1])  # not contiguous
    with pytest.raises(ValueError):
        prg.add_ring(np.zeros(4, np.uint64), [SEED], [2])
    with pytest.raises(ValueError):
        prg.add_ring(np.zeros(4, np.uint64), [SEED, SEED], [1])


@pytest.mark.parametrize("overwrite", [False, True])
def test_own_share_in_place(path, overwrite):
    x = fixedpoint.encode(np.random.default_rng(0).normal(0, 100, (50, 9)))
    keep = x.copy()
    seeds = [prg.new_seed() for _ in range(2)]
    own = sharing.own_share(x, seeds, overwrite=overwrite)
    want = keep - prg.random_ring(seeds[0], x.shape) - prg.random_ring(seeds[1], x.shape)
    assert np.array_equal(own, want)
    assert (own is x) is overwrite
    if not overwrite:
        assert np.array_equal(x, keep)
    shares = [own] + [sharing.share_from_seed(s, x.shape) for s in seeds]
    assert np.array_equal(sharing.reconstruct(shares), keep)


def test_own_share_copies_what_it_cannot_overwrite(path):
    x = fixedpoint.encode(np.arange(12.0)).reshape(3, 4).T  # not contiguous
    seeds = [prg.new_seed()]
    own = sharing.own_share(x, seeds, overwrite=True)
    assert own is not x
    assert np.array_equal(own + prg.random_ring(seeds[0], x.shape), x)


def _old_encode(x, f=16):
    """The encoding before the one-pass version (checks apart)."""
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        return (arr.astype(np.int64) << np.int64(f)).view(np.uint64)
    scaled = np.empty(arr.shape, dtype=np.float64)
    np.multiply(arr, float(2**f), out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.int64).view(np.uint64)


RNG = np.random.default_rng(7)
ENCODE_CASES = [
    RNG.normal(0, 1e6, 300_001),  # several blocks and a partial one
    RNG.normal(0, 1, (3, 7)).astype(np.float32),
    RNG.normal(0, 1, (50, 1000)).T,  # not contiguous
    np.array([0.5, 1.5, 2.5, -2.5, -1.5, -0.5, -0.0]),  # ties round to even
    np.array([7.0e13, -7.0e13]),  # near the limit
    np.array(2.5),
    np.zeros(0),
    np.zeros((0, 3)),
    np.arange(-50, 50),
    RNG.integers(-(2**40), 2**40, 1000, dtype=np.int64),
    np.array([True, False]),
    np.array([7], dtype=np.uint8),
    [1.5, 2.25],
    3.0,
]


@pytest.mark.parametrize("x", ENCODE_CASES, ids=range(len(ENCODE_CASES)))
def test_encode_unchanged(x):
    got = fixedpoint.encode(x)
    want = _old_encode(x)
    assert got.dtype == np.uint64 and got.shape == want.shape
    assert np.array_equal(got, want)
    assert not np.shares_memory(got, np.asarray(x))


@pytest.mark.parametrize(
    "x, error, words",
    [
        (np.r_[np.zeros(100_000), np.nan], ValueError, "NaN"),
        (np.r_[np.zeros(100_000), np.inf], ValueError, "infinity"),
        (np.array([-np.inf], dtype=np.float32), ValueError, "infinity"),
        (np.r_[np.zeros(100_000), 1e30, -1e30, 5.0], OverflowError, "2 value(s)"),
        (np.array([2.0**46]), OverflowError, "1 value(s)"),
        (np.array([-(2.0**46)]), OverflowError, "1 value(s)"),
        (np.array([2**50]), OverflowError, "1 value(s)"),
        (np.array([3e38], dtype=np.float32), OverflowError, "1 value(s)"),
        (np.array([1 + 2j]), TypeError, "real"),
        (np.array(["a"]), TypeError, "numeric"),
    ],
)
def test_encode_errors(x, error, words):
    with pytest.raises(error, match=None) as e:
        fixedpoint.encode(x, what="value sent to MPC")
    assert words in str(e.value) and "value sent to MPC" in str(e.value)


def test_keep_freed_memory_in_a_process_of_its_own():
    code = "from cipherray.runtime.worker import keep_freed_memory; print(keep_freed_memory())"
    env = dict(os.environ)
    for flag, want in (("1", "True"), ("0", "False")):
        env["CIPHERRAY_KEEP_FREED"] = flag
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        if flag == "1" and out.stdout.strip() == "False":  # pragma: no cover - not glibc
            pytest.skip("the C library is not glibc")
        assert out.stdout.strip() == want


# -- consecutive steps of a party: the next step gets the value its worker holds


def _make() -> np.ndarray:
    return np.arange(1000, dtype=np.float64)


def _bump(x: np.ndarray) -> int:
    x += 1.0  # in place: only a step that got the stored value itself changes it
    return 0


def _total(x: np.ndarray) -> float:
    return float(x.sum())


def test_consecutive_steps_share_the_stored_value(rt):
    a = rt.party("a")
    x = a(_make)()
    rt.get(a(_bump)(x))  # the same worker: the value comes from its store, not a copy
    assert rt.get(a(_total)(x)) == float(np.arange(1000).sum() + 1000)


def test_secure_sum_of_seeded_shares(rt):
    a, b, c = (rt.party(p) for p in "abc")
    mpc = rt.mpc(a, b, c)
    xs = [np.random.default_rng(i).normal(100.0, 25.0, 10_001) for i in range(3)]
    shared = [p(lambda v=v: v)().to(mpc) for p, v in zip((a, b, c), xs)]
    total = (shared[0] + shared[1] + shared[2]).sum()
    got = float(rt.get(total.reveal_to(b)))
    assert abs(got - float(np.sum(np.concatenate(xs)))) < 1e-2
    diff = float(rt.get((shared[0] - shared[2]).sum().reveal_to(c)))
    assert abs(diff - float(np.sum(xs[0]) - np.sum(xs[2]))) < 1e-2
