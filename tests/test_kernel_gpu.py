"""GPU kernels against the host build (same source) -- skipped without CuPy and a GPU."""

from __future__ import annotations

import random

import numpy as np
import pytest

from cipherray import gpu_kernels

if not gpu_kernels.available():
    pytest.skip("no CuPy-usable GPU on this machine", allow_module_level=True)

import cupy  # noqa: E402

from cipherray.gpu_kernels import bigint as bi  # noqa: E402
from cipherray.gpu_kernels import paillier as P  # noqa: E402
from cipherray.gpu_kernels import ring64 as R  # noqa: E402

RNG = random.Random(7)


@pytest.mark.parametrize("bits", [2048, 4096])
def test_mulmod_modexp_fixed_base_equal_host(bits):
    m = RNG.getrandbits(bits) | 1 | (1 << (bits - 1))
    a = [0, 1, m - 1] + [RNG.randrange(m) for _ in range(61)]
    b = [m - 1, m - 1, m - 1] + [RNG.randrange(m) for _ in range(61)]
    for f in (bi.mulmod_ints, bi.montmul_ints):
        assert list(f(m, a, b, backend="gpu")) == list(f(m, a, b, backend="host"))
    e = [RNG.getrandbits(64) for _ in range(8)]
    assert list(bi.powmod_ints(m, a[:8], e, backend="gpu")) == [pow(x, y, m) for x, y in zip(a, e)]
    e = [RNG.getrandbits(448) for _ in range(8)]
    got = bi.fixed_base_pow_ints(m, a[5], e, backend="gpu")
    assert list(got) == [pow(a[5], y, m) for y in e]


def test_paillier_gpu_equals_host():
    gmpy2 = pytest.importorskip("gmpy2")
    p = int(gmpy2.next_prime(RNG.getrandbits(1024) | (3 << 1022)))
    q = int(gmpy2.next_prime(RNG.getrandbits(1024) | (3 << 1022)))
    n, nsq = p * q, p * p * q * q
    hs = pow(RNG.randrange(n), 2 * n, nsq)
    ms = [RNG.randrange(n) for _ in range(16)]
    a = [RNG.getrandbits(448) for _ in ms]
    c = P.encrypt(n, hs, ms, a, 448, backend="gpu")
    assert list(c) == list(P.encrypt(n, hs, ms, a, 448, backend="host"))
    assert list(P.decrypt_crt(p, q, c, backend="gpu")) == ms
    k = [RNG.randrange(-(2**63), 2**63) for _ in ms]
    assert list(P.scalar_mul(nsq, c, k, backend="gpu")) == list(
        P.scalar_mul(nsq, c, k, backend="host")
    )
    X = np.array([[RNG.randrange(-(2**62), 2**62) for _ in range(3)] for _ in ms], dtype=np.int64)
    assert list(P.matvec(nsq, X, c, backend="gpu")) == list(P.matvec(nsq, X, c, backend="host"))


@pytest.mark.parametrize("method", ["int8", "fp64", "native"])
def test_ring_matmul_exact(method):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**64, size=(300, 257), dtype=np.uint64)
    b = rng.integers(0, 2**64, size=(257, 130), dtype=np.uint64)
    got = cupy.asnumpy(R.matmul(cupy.asarray(a), cupy.asarray(b), method=method))
    assert np.array_equal(got, a @ b)


def test_prg_gpu_equals_host():
    key = R.new_key()
    nonce = bytes(range(12))
    g = cupy.asnumpy(R.prg_uint64(key, 100003, nonce, 5, backend="gpu"))
    assert np.array_equal(g, R.prg_uint64(key, 100003, nonce, 5, backend="host"))


@pytest.mark.parametrize("bits", [2048, 4096])
def test_cooperative_kernels_equal_host(bits):
    """bigint_coop.cuh on the GPU (shuffles, ballots, the last warp's idle groups) against
    its host build (the lanes one after another), with batches that leave warps part-empty."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from coop_model import COOP_VECTORS_256

    from cipherray.gpu_kernels import multiexp

    n = bits // 32
    m = (1 << bits) - 1 - 2 * RNG.getrandbits(16)
    a = [0, 1, m - 1, m - 2] + [RNG.randrange(m) for _ in range(33)]
    b = [m - 1] * 4 + [RNG.randrange(m) for _ in range(33)]
    e = [RNG.getrandbits(64) for _ in a]
    X = np.array([[RNG.randrange(0, 2 ** RNG.choice([3, 40])) for _ in range(3)] for _ in a])
    gpu, host = bi.MontContext(m, "gpu"), bi.MontContext(m, "host")
    for tpi in bi.coop_group_sizes(n):
        mm, mx = [], []
        for ctx in (gpu, host):
            mm.append(list(ctx.get(ctx.mont_mul(ctx.put(a), ctx.put(b), coop=tpi))))
            mx.append(list(ctx.get(ctx.modexp(ctx.put(a), ctx.put32(e, 2), 64, coop=tpi))))
        assert mm[0] == mm[1] and mx[0] == mx[1] == [pow(x, y, m) for x, y in zip(a, e)], tpi
        gpu.montmul_coop = host.montmul_coop = tpi
        pos = [list(ctx.get(multiexp.matvec(ctx, ctx.put(a), X)[0])) for ctx in (gpu, host)]
        assert pos[0] == pos[1], tpi
        gpu.montmul_coop = host.montmul_coop = 0
    for mv, x, y, _ in COOP_VECTORS_256:
        ctx = bi.MontContext(mv, "gpu")
        for tpi in bi.coop_group_sizes(8):
            got = ctx.get(ctx.mont_mul(ctx.put([x, y]), ctx.put([y, x]), coop=tpi))
            assert list(got) == [x * y * pow(1 << 256, -1, mv) % mv] * 2
