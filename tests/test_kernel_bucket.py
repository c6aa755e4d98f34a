"""Bucket products (protocols.paillier.histogram): the AVX-512 IFMA kernel and the GPU path
(gpu_kernels.buckets on the host build of the same kernels) agree bit for bit with the gmpy2
reference, and the results decrypt to the plaintext bucket sums."""

from __future__ import annotations

import numpy as np
import pytest

import cipherray.protocols.paillier as P
from cipherray.cpu_kernels import bucket
from cipherray.gpu_kernels import buckets
from cipherray.protocols.paillier import backend
from cipherray.protocols.paillier.histogram import (
    bucket_products,
    bucket_products_reference,
    choose_kernel,
)

needs_ifma = pytest.mark.skipif(
    not bucket.available(), reason="CPU without AVX-512 IFMA, or no C++ compiler"
)
RNG = np.random.default_rng(20261205)  # test data only


@pytest.fixture(scope="module")
def key1024():
    pk, sk = P.keygen(1024, insecure=True)
    x = RNG.integers(-50, 100, 700)
    return pk, sk, x, pk.encrypt(x)


@pytest.fixture(scope="module")
def key2048():
    pk, sk = P.keygen(2048)
    x = RNG.integers(-50, 100, 60)
    return pk, sk, x, pk.encrypt(x)


def _layout(n: int, d: int, nbuckets: int, nslots: int, taken: int | None, dtype=np.int32):
    keys = RNG.integers(0, nbuckets, (d, n)).astype(dtype)
    rows = None if taken is None else np.sort(RNG.choice(n, taken, replace=False))
    size = n if taken is None else taken
    slots = None if nslots == 1 else RNG.integers(0, nslots, size).astype(np.int32)
    return keys, rows, slots


def _plain(x, keys, nbuckets, rows, slots, nslots, weighted):
    rows = np.arange(x.size) if rows is None else rows
    slots = np.zeros(rows.size, dtype=np.int64) if slots is None else slots
    d = keys.shape[0]
    H = np.zeros((nslots, d, nbuckets), dtype=np.int64)
    for j in range(d):
        np.add.at(H, (slots, j, keys[j, rows].astype(np.int64)), x[rows])
    return (H * np.arange(nbuckets)).sum(axis=2) if weighted else H


def _run(path: str, c, keys, nbuckets, rows, slots, nslots, weighted, threads=1):
    """(result, reference) as lists of ciphertexts for one path."""
    pk = c.public_key
    cts = c.ciphertexts().ravel().tolist()
    n = len(cts)
    r = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    s = np.zeros(r.size, dtype=np.int32) if slots is None else slots
    ref = bucket_products_reference(cts, keys, nbuckets, pk.nsquare, r, s, nslots, weighted)
    if path == "ifma":
        got = bucket.bucket_products(
            cts, keys, nbuckets, pk.nsquare, r, s, nslots, weighted, threads
        )
    else:
        got = buckets.bucket_products(
            int(pk.nsquare), cts, keys, nbuckets, r, s, nslots, weighted, "host"
        )
    return got, ref


PATHS = [pytest.param("ifma", marks=needs_ifma), "gpu-host"]
# rows, columns, buckets, slots, taken rows (None: all), weighted, key dtype
CASES = [
    (200, 11, 5, 1, None, False, np.int32),
    (200, 8, 32, 3, 150, False, np.uint8),  # many empty buckets
    (120, 3, 13, 2, 0, False, np.uint16),  # no rows taken: every bucket is 1
    (200, 17, 6, 4, 77, True, np.uint8),
    (64, 5, 1, 2, None, True, np.int32),  # one bucket: weighted sum is 0
    (700, 3, 9, 1, 650, False, np.uint16),  # two threads split rows (few column groups)
    (700, 2, 16, 2, None, True, np.uint8),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}b{c[2]}s{c[3]}w{int(c[5])}")
def test_matches_reference_1024(key1024, path, case):
    pk, sk, x, c = key1024
    n, d, nb, ns, taken, weighted, dtype = case
    keys, rows, slots = _layout(n, d, nb, ns, taken, dtype)
    c = c[:n]
    got, ref = _run(path, c, keys, nb, rows, slots, ns, weighted, threads=2)
    assert got == ref
    # and through the public function, decrypted
    kernel = "ifma" if path == "ifma" else "reference"
    out = bucket_products(
        c, keys, nb, rows=rows, slots=slots, nslots=ns, weighted=weighted, kernel=kernel
    )
    np.testing.assert_array_equal(
        sk.decrypt(out), _plain(x[:n], keys, nb, rows, slots, ns, weighted)
    )


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_reference_2048(key2048, path, weighted):
    pk, sk, x, c = key2048
    keys, rows, slots = _layout(x.size, 10, 7, 2, 50, np.uint8)
    got, ref = _run(path, c, keys, 7, rows, slots, 2, weighted)
    assert got == ref


@needs_ifma
def test_threads_agree(key1024):
    pk, sk, x, c = key1024
    keys, rows, slots = _layout(x.size, 20, 32, 2, None)
    one, _ = _run("ifma", c, keys, 32, rows, slots, 2, False, threads=1)
    two, ref = _run("ifma", c, keys, 32, rows, slots, 2, False, threads=2)
    assert one == two == ref


def test_gpu_dispatch_through_host_build(key1024, monkeypatch):
    pk, sk, x, c = key1024
    monkeypatch.setattr(backend, "KERNEL", "host")
    monkeypatch.setattr(backend, "_backend", "gpu")
    monkeypatch.delenv("CIPHERRAY_BUCKET_KERNEL", raising=False)
    assert choose_kernel(pk.nsquare, 100) == "gpu"
    keys, rows, slots = _layout(100, 4, 6, 2, 80)
    got = bucket_products(c[:100], keys, 6, rows=rows, slots=slots, nslots=2, weighted=True)
    want = bucket_products(
        c[:100], keys, 6, rows=rows, slots=slots, nslots=2, weighted=True, kernel="reference"
    )
    assert list(got.ciphertexts().ravel()) == list(want.ciphertexts().ravel())


def test_choose_kernel(key1024, monkeypatch):
    pk = key1024[0]
    monkeypatch.setattr(backend, "_backend", "cpu")
    monkeypatch.delenv("CIPHERRAY_BUCKET_KERNEL", raising=False)
    assert choose_kernel(pk.nsquare, 1000) == ("ifma" if bucket.available() else "reference")
    assert choose_kernel((1 << 8000) + 1, 1000) == "reference"  # n^2 beyond the kernel's sizes
    monkeypatch.setenv("CIPHERRAY_BUCKET_KERNEL", "reference")
    assert choose_kernel(pk.nsquare, 1000) == "reference"
    monkeypatch.setenv("CIPHERRAY_BUCKET_KERNEL", "tpu")
    with pytest.raises(ValueError, match="bucket kernel"):
        choose_kernel(pk.nsquare, 1000)


def test_bad_input(key1024):
    c = key1024[3][:10]
    ok = np.zeros((3, 10), dtype=np.int32)
    with pytest.raises(ValueError, match="keys must lie"):
        bucket_products(c, ok + 4, 4)
    with pytest.raises(ValueError, match="keys must lie"):
        bucket_products(c, ok - 1, 4)
    with pytest.raises(ValueError, match="shape"):
        bucket_products(c, np.zeros((3, 9), dtype=np.int32), 4)
    with pytest.raises(ValueError, match="shape"):
        bucket_products(c, np.zeros(10, dtype=np.int32), 4)
    with pytest.raises(TypeError, match="integers"):
        bucket_products(c, ok.astype(float), 4)
    with pytest.raises(ValueError, match="rows"):
        bucket_products(c, ok, 4, rows=np.array([0, 10]))
    with pytest.raises(ValueError, match="slots"):
        bucket_products(c, ok, 4, rows=np.array([0, 1]), slots=np.array([0, 2]), nslots=2)
    with pytest.raises(ValueError, match="one entry"):
        bucket_products(c, ok, 4, rows=np.array([0, 1]), slots=np.array([0]), nslots=2)
    with pytest.raises(ValueError, match="1-d"):
        bucket_products(c.reshape(2, 5), ok, 4)


def test_gpu_segments_in_several_levels(key1024, monkeypatch):
    pk, sk, x, c = key1024
    monkeypatch.setattr(buckets, "CHUNK", 3)  # runs of 3 rows: products over three levels
    keys, rows, slots = _layout(x.size, 3, 4, 1, 500)
    got, ref = _run("gpu-host", c, keys, 4, rows, slots, 1, False)
    assert got == ref


def test_device_script_dry_run(tmp_path):
    """bench/gpu_buckets.py (step 3 of bench/device_check.sh) on the host build."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    cmd = [sys.executable, "bench/gpu_buckets.py", "--host-dry-run", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads((tmp_path / "gpu_buckets.json").read_text())
    assert res["checks_ok"] and res["backend"] == "host"


@pytest.mark.parametrize("path", ["reference", pytest.param("ifma", marks=needs_ifma), "gpu"])
@pytest.mark.parametrize("fixture,k,w", [("key1024", 7, 23), ("key2048", 5, 91)])
def test_horner_pack(request, path, fixture, k, w, monkeypatch):
    """horner_pack: every path gives the reference's ciphertexts, which decrypt to the
    packed sums (inputs padded with encryptions of 0 to a multiple of k)."""
    from cipherray.protocols.paillier.histogram import horner_pack, horner_pack_reference

    pk, sk, x, c = request.getfixturevalue(fixture)
    vals = np.abs(x) % (1 << min(w, 20))
    cv = pk.encrypt(vals)
    if path == "gpu":
        monkeypatch.setattr(backend, "use_gpu", lambda count: False)
    got = horner_pack(cv, k, w, kernel=path)
    nout = -(-vals.size // k)
    padded = cv.ciphertexts().tolist() + [1] * (nout * k - vals.size)
    assert got.ciphertexts().tolist() == horner_pack_reference(padded, k, w, pk.nsquare)
    want = [
        sum(int(v) << (w * (k - 1 - j)) for j, v in enumerate(vals[o * k : (o + 1) * k]))
        for o in range(nout)
    ]
    assert [int(v) for v in sk.decrypt(got)] == want
    with pytest.raises(ValueError, match="k >= 1"):
        horner_pack(cv, 0, w, kernel=path)
