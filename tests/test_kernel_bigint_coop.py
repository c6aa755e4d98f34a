"""Host build of the cooperative kernels (bigint_coop.cuh: a group of threads per number, the
lanes run one after another on the host) against Python ints and the one-thread kernels."""

from __future__ import annotations

import math
import random

import coop_model
import numpy as np
import pytest

from cipherray.gpu_kernels import bigint as bi

RNG = random.Random(202611271)


@pytest.fixture(autouse=True)
def integer_defaults(monkeypatch):
    """The cooperative kernels' radix is 2^(32 L): contexts made here take an integer variant
    and the fused modexp by default, whatever the GPU-measured defaults are (4096-bit: f64s,
    whose radix turns the cooperative single multiplications off)."""
    for limbs in bi.SIZES:
        monkeypatch.setitem(bi.DEFAULT_VARIANT, limbs, "ptx")
        monkeypatch.setitem(bi.MODEXP_STEPS, limbs, False)
        monkeypatch.setitem(bi.MODEXP_COOP, limbs, 0)
        monkeypatch.setitem(bi.MONTMUL_COOP, limbs, 0)


def _moduli(bits: int) -> list[int]:
    """A random modulus; one just below 2^bits (all-ones limbs: the overflow limb and long
    carry / borrow runs between lanes); one just above 2^(bits - 1); one whose limbs alternate
    all ones and zeros."""
    limbs = bits // 32
    alternating = sum(0xFFFFFFFF << (64 * k) for k in range(limbs // 2)) | (1 << (bits - 1)) | 1
    return [
        RNG.getrandbits(bits) | 1 | (1 << (bits - 1)),
        (1 << bits) - 1 - 2 * RNG.getrandbits(12),
        (1 << (bits - 1)) + 1 + 2 * RNG.getrandbits(20),
        alternating,
    ]


def _sizes():
    return [(bits, t) for bits in (256, 2048, 4096) for t in bi.coop_group_sizes(bits // 32)]


@pytest.mark.parametrize("bits,tpi", _sizes())
def test_coop_montmul_matches_python_ints(bits, tpi):
    for m in _moduli(bits):
        ctx = bi.MontContext(m, "host")
        R = 1 << bits
        rinv = pow(R, -1, m)
        edge = [0, 1, 2, m - 1, m - 2, (1 << (bits - 32)) - 1]
        a = edge + [RNG.randrange(m) for _ in range(20)] + [m - 1] * 6
        b = [m - 1] * 6 + [RNG.randrange(m) for _ in range(20)] + edge
        # x = (r + m) R mod m, y = 1: the unreduced Montgomery sum is exactly m + r, so the
        # final subtraction leaves lanes of zeros (its borrow passes through them) and, where m
        # is close to 2^bits, m + r carries into the overflow limb
        for r in (0, 1, 2, 3, 2**32 - 1, 2**32, 2**64 + 5):
            a.append((r + m) * R % m)
            b.append(1)
        got = ctx.get(ctx.mont_mul(ctx.put(a), ctx.put(b), coop=tpi))
        assert list(got) == [x * y * rinv % m for x, y in zip(a, b)], hex(m)
        # operands swapped, one broadcast
        got = ctx.get(ctx.mont_mul(ctx.put(a[:1])[:, 0], ctx.put(b), coop=tpi))
        assert list(got) == [a[0] * y * rinv % m for y in b]


def test_coop_model_takes_every_rare_path():
    """The Python model of the cooperative rows agrees with Montgomery multiplication, and
    the carry vectors take every rare path it names (top-limb carries of each chain, carries
    and borrows between lanes, the overflow limb)."""
    taken: set[str] = set()
    for m, a, b, tpi in coop_model.COOP_VECTORS_256:
        got = coop_model.mont_coop(a, b, m, 8, tpi, taken)
        assert got == a * b * pow(1 << 256, -1, m) % m
    assert taken == coop_model.PATHS


def test_coop_carry_vectors_on_the_host_build():
    for m, a, b, tpi in coop_model.COOP_VECTORS_256:
        ctx = bi.MontContext(m, "host")
        want = a * b * pow(1 << 256, -1, m) % m
        for t in bi.coop_group_sizes(8):  # the vector's own group size takes its paths
            got = ctx.get(ctx.mont_mul(ctx.put([a, b]), ctx.put([b, a]), coop=t))
            assert list(got) == [want, want], (hex(m), t, tpi)


@pytest.mark.parametrize("bits,tpi", [s for s in _sizes() if s[0] != 256])
def test_coop_modexp_matches_pow_and_the_one_thread_kernel(bits, tpi):
    m = _moduli(bits)[RNG.randrange(4)]
    ctx = bi.MontContext(m, "host")
    bases = [0, 1, 2, m - 1] + [RNG.randrange(m) for _ in range(12)]
    exps = [0, 1, 2**64 - 1, 3] + [RNG.getrandbits(64) for _ in range(12)]
    b_l = ctx.put(bases)
    e_l = ctx.put32(exps, limbs=2)
    for w in (1, 3, 4, 5):
        got = ctx.get(ctx.modexp(b_l, e_l, 64, w=w, coop=tpi))
        assert list(got) == [pow(x, e, m) for x, e in zip(bases, exps)], w
    one_thread = ctx.get(ctx.modexp(b_l, e_l, 64, coop=0))
    assert list(ctx.get(ctx.modexp(b_l, e_l, 64, coop=tpi))) == list(one_thread)
    # a long exponent broadcast to every base, and one base broadcast to every exponent
    e = RNG.getrandbits(bits // 2)
    got = ctx.get(ctx.modexp(b_l, ctx.put32([e], limbs=bits // 64)[:, 0], bits // 2, coop=tpi))
    assert list(got) == [pow(x, e, m) for x in bases]
    got = ctx.get(ctx.modexp(np.ascontiguousarray(b_l[:, 5]), e_l, 64, coop=tpi))
    assert list(got) == [pow(bases[5], x, m) for x in exps]


def test_coop_modexp_in_chunks_and_under_an_fp64_variant():
    """The cooperative kernel keeps radix 2^(32 limbs) when the context's variant has another
    (f64: 2^(52 k)); chunked batches give the same values."""
    m = _moduli(2048)[0]
    ctx = bi.MontContext(m, "host", variant="f64")
    assert ctx.R != 1 << 2048
    bases = [RNG.randrange(m) for _ in range(9)]
    exps = [RNG.getrandbits(64) for _ in range(9)]
    got = ctx.get(ctx.modexp(ctx.put(bases), ctx.put32(exps, 2), 64, coop=8, chunk=4))
    assert list(got) == [pow(x, e, m) for x, e in zip(bases, exps)]
    rinv = pow(1 << 2048, -1, m)
    got = ctx.get(ctx.mont_mul(ctx.put(bases), ctx.put(bases), coop=8))
    assert list(got) == [x * x * rinv % m for x in bases]


def test_modexp_coop_default_and_environment(monkeypatch):
    m = _moduli(2048)[0]
    bases = [RNG.randrange(m) for _ in range(5)]
    exps = [RNG.getrandbits(64) for _ in range(5)]
    monkeypatch.setitem(bi.MODEXP_COOP, 64, 16)
    ctx = bi.MontContext(m, "host")
    assert ctx.modexp_coop == 16
    got = ctx.get(ctx.modexp(ctx.put(bases), ctx.put32(exps, 2), 64))
    assert list(got) == [pow(x, e, m) for x, e in zip(bases, exps)]
    monkeypatch.setenv(bi.COOP_ENV, "4")
    assert bi.MontContext(m, "host").modexp_coop == 4
    monkeypatch.setenv(bi.COOP_ENV, "0")
    assert bi.MontContext(m, "host").modexp_coop == 0
    monkeypatch.setenv(bi.COOP_ENV, "128:8,64:32")  # per limb count
    assert bi.MontContext(m, "host").modexp_coop == 32
    assert bi.MontContext(m * m, "host").modexp_coop == 8
    assert bi.MontContext((1 << 255) + 19, "host").modexp_coop == 0  # 8 limbs: not named
    monkeypatch.setenv(bi.COOP_ENV, "64")
    with pytest.raises(ValueError, match="cooperative group of 64 threads"):
        bi.MontContext(m, "host")
    monkeypatch.setenv(bi.COOP_ENV, "64=8")
    with pytest.raises(ValueError, match="write 8 or 128:8,64:0"):
        bi.MontContext(m, "host")


def test_coop_group_sizes_and_bad_group_size():
    assert bi.coop_group_sizes(128) == (8, 16, 32)
    assert bi.coop_group_sizes(64) == (4, 8, 16, 32)
    assert bi.coop_group_sizes(8) == (2, 4)
    for limbs in bi.SIZES:
        for t in bi.coop_group_sizes(limbs):
            assert limbs % t == 0 and (limbs // t) % 2 == 0 and limbs // t <= 16
    m = _moduli(4096)[0]
    ctx = bi.MontContext(m, "host")
    x = ctx.put([3, 4])
    for bad in (3, 4, 64):
        with pytest.raises(ValueError, match="threads per number"):
            ctx.mont_mul(x, x, coop=bad)
    rinv = pow(1 << 4096, -1, m)
    assert list(ctx.get(ctx.mont_mul(x, x, coop=0))) == [9 * rinv % m, 16 * rinv % m]


def test_paillier_scalar_mul_on_the_cooperative_kernel(monkeypatch):
    """protocols' GPU class with MODEXP_COOP set: c^k mod n^2 runs on the cooperative kernel
    and gives pow's bits (negative scalars through the batch inversion)."""
    import gmpy2

    from cipherray.gpu_kernels import paillier as P

    p = int(gmpy2.next_prime(RNG.getrandbits(256) | (1 << 255)))
    q = int(gmpy2.next_prime(RNG.getrandbits(256) | (1 << 255)))
    n = p * q
    nsq = n * n
    monkeypatch.setitem(bi.MODEXP_COOP, bi.limbs_for_bits(nsq.bit_length()), 4)
    key = P.PaillierGpu(n, hs=pow(7, 2 * n, nsq), rand_bits=64, backend="host")
    assert key.ctx.modexp_coop == 4
    cs = [RNG.randrange(1, nsq) for _ in range(7)]  # units mod n^2 (p, q: 256-bit primes)
    ks = np.array([0, 1, -1, 2**63 - 1, -(2**63), 12345, -777], dtype=np.int64)
    got = key.scalar_mul(cs, [int(k) for k in ks])
    assert list(got) == [pow(c, int(k), nsq) for c, k in zip(cs, ks)]
    c_l = key.ctx.put(cs)
    got = key.ctx.get(key.scalar_mul_int64_limbs(c_l, ks))
    assert list(got) == [pow(c, int(k), nsq) for c, k in zip(cs, ks)]


def test_single_multiplications_on_the_cooperative_kernel(monkeypatch):
    """MONTMUL_COOP routes mont_mul, mont_sqr (hence invert and the product trees) to the
    cooperative kernel; under an fp64 variant (another radix) it stays off."""
    m = _moduli(4096)[0]
    monkeypatch.setitem(bi.MONTMUL_COOP, 128, 16)
    ctx = bi.MontContext(m, "host")
    assert ctx.montmul_coop == 16
    xs = [x for x in (RNG.randrange(1, m) for _ in range(40)) if math.gcd(x, m) == 1][:9]
    rinv = pow(1 << 4096, -1, m)
    x = ctx.put(xs)
    assert list(ctx.get(ctx.mont_mul(x, x[:, ::-1].copy()))) == [
        a * b * rinv % m for a, b in zip(xs, xs[::-1])
    ]
    assert list(ctx.get(ctx.mont_sqr(x))) == [a * a * rinv % m for a in xs]
    assert list(ctx.get(ctx.invert(x))) == [pow(a, -1, m) for a in xs]
    assert list(ctx.get(ctx.mulmod(x, x))) == [a * a % m for a in xs]
    assert bi.MontContext(m, "host", variant="f64").montmul_coop == 0
    monkeypatch.setenv(bi.MONTMUL_COOP_ENV, "128:8")
    assert bi.MontContext(m, "host").montmul_coop == 8


@pytest.mark.parametrize("tpi", [8, 16])
def test_fixed_base_comb_on_the_cooperative_kernel(monkeypatch, tpi):
    m = _moduli(4096)[1]
    monkeypatch.setitem(bi.MONTMUL_COOP, 128, tpi)
    ctx = bi.MontContext(m, "host")
    g = RNG.randrange(2, m)
    exps = [0, 1, 2**448 - 1] + [RNG.getrandbits(448) for _ in range(6)]
    tab = ctx.fixed_base_table(g, 448, w=8)
    got = ctx.get(ctx.fixed_base_pow(tab, ctx.put32(exps, 14)))
    assert list(got) == [pow(g, e, m) for e in exps]
    mulin = [RNG.randrange(m) for _ in exps]
    got = ctx.get(ctx.fixed_base_pow(tab, ctx.put32(exps, 14), ctx.put(mulin)))
    assert list(got) == [pow(g, e, m) * x % m for e, x in zip(exps, mulin)]
    tab1 = ctx.fixed_base_table(g, 8, w=8)  # a single window: only the mulin step
    got = ctx.get(ctx.fixed_base_pow(tab1, ctx.put32([5, 255], 1)))
    assert list(got) == [pow(g, 5, m), pow(g, 255, m)]


def test_paillier_encrypt_and_decrypt_on_the_cooperative_kernels(monkeypatch):
    import gmpy2

    from cipherray.gpu_kernels import paillier as P

    p = int(gmpy2.next_prime(RNG.getrandbits(512) | (1 << 511)))
    q = int(gmpy2.next_prime(RNG.getrandbits(512) | (1 << 511)))
    n = p * q
    nsq = n * n
    monkeypatch.setitem(bi.MONTMUL_COOP, 64, 8)  # n^2: 2048 bits
    monkeypatch.setitem(bi.MODEXP_COOP, 32, 4)  # p^2, q^2: 1024 bits (decryption)
    hs = pow(RNG.randrange(2, n), 2 * n, nsq)
    key = P.PaillierGpu(n, hs=hs, rand_bits=128, p=p, q=q, backend="host")
    assert key.ctx.montmul_coop == 8 and key.ctx_p.modexp_coop == 4
    ms = [0, 1, n - 1] + [RNG.randrange(n) for _ in range(6)]
    a = [RNG.getrandbits(128) for _ in ms]
    c = key.encrypt(ms, a)
    assert list(c) == [(1 + m * n) * pow(hs, ai, nsq) % nsq for m, ai in zip(ms, a)]
    assert list(key.decrypt(c)) == ms
