"""Host build of the bigint kernels (same source as the GPU) against Python ints."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import gmpy2
import numpy as np
import pairs_model
import pytest

from cipherray.gpu_kernels import bigint as bi

RNG = random.Random(20261127)


def _modulus(bits: int) -> int:
    return RNG.getrandbits(bits) | 1 | (1 << (bits - 1))


def test_limb_conversion_roundtrip():
    vals = [0, 1, 2**32 - 1, 2**32, 2**2048 - 1, RNG.getrandbits(1500)]
    limbs = bi.ints_to_limbs(np.array(vals, dtype=object), 64)
    assert limbs.shape == (6, 64) and limbs.dtype == np.uint32
    assert limbs[3, 0] == 0 and limbs[3, 1] == 1
    assert list(bi.limbs_to_ints(limbs)) == vals
    with pytest.raises(ValueError):
        bi.ints_to_limbs([2**2048], 64)
    with pytest.raises(ValueError):
        bi.ints_to_limbs([-1], 64)
    # mpz, NumPy integers and ints in one batch; mpz out
    mixed = [gmpy2.mpz(2**100 + 7), np.int64(5), np.uint64(2**64 - 1), 3, True]
    got = bi.limbs_to_ints(bi.ints_to_limbs(mixed, 8), as_mpz=True)
    assert list(got) == [2**100 + 7, 5, 2**64 - 1, 3, 1]
    assert all(type(x) is type(gmpy2.mpz(0)) for x in got)
    assert list(bi.ints_to_limbs((v for v in vals), 64).ravel()) == list(limbs.ravel())
    with pytest.raises(ValueError):
        bi.ints_to_limbs([gmpy2.mpz(-1)], 8)
    with pytest.raises(ValueError):
        bi.ints_to_limbs([gmpy2.mpz(2) ** 256], 8)


@pytest.mark.parametrize("bits", [256, 2048, 4096])
def test_montmul_and_mulmod(bits):
    m = _modulus(bits)
    edge = [0, 1, 2, m - 1, m - 2]
    a = edge + [RNG.randrange(m) for _ in range(40)] + [m - 1] * 5
    b = [m - 1] * 5 + [RNG.randrange(m) for _ in range(40)] + edge
    rinv = pow(bi.MontContext(m, "host").R, -1, m)  # the default variant's radix
    got = bi.montmul_ints(m, a, b, backend="host")
    assert list(got) == [x * y * rinv % m for x, y in zip(a, b)]
    got = bi.mulmod_ints(m, a, b, backend="host")
    assert list(got) == [x * y % m for x, y in zip(a, b)]


@pytest.mark.parametrize("bits", [2048, 4096])
def test_modexp(bits):
    m = _modulus(bits)
    bases = [0, 1, m - 1, 2] + [RNG.randrange(m) for _ in range(4)]
    exps = [5, 0, 3, 2**64 - 1] + [RNG.getrandbits(RNG.choice([1, 17, 64, 200])) for _ in range(4)]
    got = bi.powmod_ints(m, bases, exps, backend="host")
    assert list(got) == [pow(x, e, m) for x, e in zip(bases, exps)]


def test_modexp_broadcast_exponent_and_windows():
    m = _modulus(2048)
    ctx = bi.MontContext(m, "host")
    bases = [RNG.randrange(m) for _ in range(5)]
    e = RNG.getrandbits(300)
    ex = ctx.backend.asarray(bi.ints_to_limbs([e], 10)[0])
    for w in (1, 4, 6):
        got = ctx.get(ctx.modexp(ctx.put(bases), ex, 300, w=w))
        assert list(got) == [pow(x, e, m) for x in bases]


@pytest.mark.parametrize("variant", ["fios", "pairs_sqr", "f64x2s"])
def test_modexp_in_steps_equals_the_fused_kernel(variant, monkeypatch):
    """modexp as one launch per multiplication (montsqr, montmul_digit) gives the fused
    kernel's bits: per-element and broadcast exponents and bases, windows, chunks, the
    exponent lengths that leave a short top window, and the per-size switch."""
    for bits in (2048, 4096):
        m = _modulus(bits)
        monkeypatch.setitem(bi.MODEXP_STEPS, bi.limbs_for_bits(bits), False)
        monkeypatch.setitem(bi.MODEXP_COOP, bi.limbs_for_bits(bits), 0)
        ctx = bi.MontContext(m, "host", variant=variant)
        a = [0, 1, m - 1] + [RNG.randrange(m) for _ in range(9)]
        for ebits, w in ((64, None), (64, 3), (1, None), (0, None), (130, 5)):
            e = [RNG.getrandbits(ebits) if ebits else 0 for _ in a]
            if ebits == 64:
                e[:2] = [2**64 - 1, 2**63]
            ex = ctx.put32(e, limbs=max(1, -(-ebits // 32)))
            want = [pow(x, y, m) for x, y in zip(a, e)]
            for steps in (False, True):
                got = ctx.get(ctx.modexp(ctx.put(a), ex, ebits, w=w, steps=steps, chunk=5))
                assert list(got) == want, (bits, ebits, w, steps)
        e1 = RNG.getrandbits(70)
        ex1 = ctx.backend.asarray(bi.ints_to_limbs([e1], 3)[0])
        got = ctx.get(ctx.modexp(ctx.put(a), ex1, 70, steps=True))
        assert list(got) == [pow(x, e1, m) for x in a]
        b1 = ctx.backend.asarray(bi._words(bi.ints_to_limbs([a[5]], ctx.limbs)[0]))
        got = ctx.get(ctx.modexp(b1, ex, 130, steps=True))  # ex: the last (130-bit) exponents
        assert list(got) == [pow(a[5], y, m) for y in e]
    monkeypatch.setitem(bi.MODEXP_STEPS, ctx.limbs, True)
    stepped = bi.MontContext(m, "host", variant=variant)
    assert stepped.modexp_steps and not ctx.modexp_steps
    launches = []
    real_launch = stepped.launch
    monkeypatch.setattr(
        stepped, "launch", lambda k, *rest: launches.append(k) or real_launch(k, *rest)
    )
    got = stepped.get(stepped.modexp(stepped.put(a), ex, 130))
    assert list(got) == [pow(x, y, m) for x, y in zip(a, e)]
    assert "modexp" not in launches and launches.count("montmul_digit") == 26  # 130 bits, w=5


@pytest.mark.parametrize("bits,w", [(2048, 8), (4096, 8), (4096, 5)])
def test_fixed_base_comb(bits, w):
    m = _modulus(bits)
    g = RNG.randrange(2, m)
    exps = [0, 1, 2**448 - 1, 2**447] + [RNG.getrandbits(448) for _ in range(6)]
    got = bi.fixed_base_pow_ints(m, g, exps, backend="host", w=w)
    assert list(got) == [pow(g, e, m) for e in exps]


def test_reduce_wide():
    m = _modulus(2048)
    ctx = bi.MontContext(m, "host")
    cs = [0, 1, m, 2**4096 - 1] + [RNG.getrandbits(4096) for _ in range(6)]
    got = ctx.get(ctx.reduce_wide(ctx.put(cs, limbs=2 * ctx.limbs)))
    assert list(got) == [c % m for c in cs]


def test_product_tree():
    m = _modulus(4096)
    ctx = bi.MontContext(m, "host")
    K, M = 7, 3
    vals = [RNG.randrange(m) for _ in range(K * M)]
    x = ctx.to_mont(ctx.put(vals))
    got = ctx.get(ctx.from_mont(ctx.prod_tree(x, K)))
    want = []
    for j in range(M):
        acc = 1
        for k in range(K):
            acc = acc * vals[k * M + j] % m
        want.append(acc)
    assert list(got) == want


@pytest.mark.parametrize(("bits", "variant"), [(256, "auto"), (2048, "f64"), (4096, "f64x2")])
def test_batch_inverse(bits, variant):
    """One host inversion per batch (product tree): odd and even levels, 1 to 37 values."""
    m = int(gmpy2.next_prime(_modulus(bits)))  # prime: every value in [1, m) is a unit
    ctx = bi.MontContext(m, "host", variant=variant)
    for count in (1, 2, 3, 5, 8, 37):
        vals = [1, m - 1][:count] + [RNG.randrange(2, m) for _ in range(count - 2)]
        got = ctx.get(ctx.invert(ctx.put(vals)))
        assert [g * v % m for g, v in zip(got, vals)] == [1] * count
        assert list(got) == [pow(v, -1, m) for v in vals]
    assert ctx.invert(ctx.empty(0)).shape[1] == 0


def test_batch_inverse_names_non_units():
    p, q = 1000003, 999983
    ctx = bi.MontContext(p * q, "host")
    with pytest.raises(ValueError, match=r"columns \[1, 3\]"):
        ctx.invert(ctx.put([2, p * 5, 7, q]))


def test_strided_columns_rejected():
    m = _modulus(256)
    ctx = bi.MontContext(m, "host")
    x = ctx.put([RNG.randrange(m) for _ in range(6)])
    with pytest.raises(ValueError, match="contiguous columns"):
        ctx.mont_mul(x[:, ::2], x[:, ::2])


def test_get_bytes_big_endian():
    m = _modulus(2048)
    ctx = bi.MontContext(m, "host")
    vals = [0, 1, m - 1, RNG.randrange(m), 2**2040 + 5]
    arr = ctx.put(vals)
    assert ctx.get_bytes(arr, 256) == b"".join(v.to_bytes(256, "big") for v in vals)
    assert ctx.get_bytes(arr[:, :2], 3) == b"\x00\x00\x00\x00\x00\x01"
    with pytest.raises(ValueError, match="do not fit in 255 bytes"):
        ctx.get_bytes(arr, 255)


def test_rejects_bad_moduli():
    with pytest.raises(ValueError):
        bi.MontContext(2**100, "host")
    with pytest.raises(ValueError):
        bi.MontContext(2**4097 + 1, "host")


@pytest.mark.parametrize("variant", sorted(bi._VARIANTS))
def test_variants_agree(variant):
    # on the host "ptx" compiles to the portable core ("fios"); "pairs*" and "f64*" are their
    # own code
    for bits in (2048, 4096):
        m = _modulus(bits)
        ctx = bi.MontContext(m, "host", variant=variant)
        a = [0, 1, m - 1] + [RNG.randrange(m) for _ in range(13)]
        b = [m - 1] * 3 + [RNG.randrange(m) for _ in range(13)]
        got = ctx.get(ctx.mulmod(ctx.put(a), ctx.put(b)))
        assert list(got) == [x * y % m for x, y in zip(a, b)]
        rinv = pow(1 << bi.mont_r_bits(ctx.limbs, variant), -1, m)
        got = ctx.get(ctx.mont_mul(ctx.put(a), ctx.put(b)))
        assert list(got) == [x * y * rinv % m for x, y in zip(a, b)]
        got = ctx.get(ctx.mont_sqr(ctx.put(a)))
        assert list(got) == [x * x * rinv % m for x in a]
    with pytest.raises(ValueError):
        bi.MontContext(m, "host", variant="nope")


def test_carry_vectors_take_every_top_carry():
    """The model of the pairs rows agrees with Montgomery multiplication, and under the
    carry vectors it takes every top-limb carry the kernel propagates."""
    taken: set[str] = set()
    for m, a, b in pairs_model.CARRY_VECTORS_256:
        got = pairs_model.mont_pairs(a, b, m, 8, taken)
        assert got < 2 * m and got % m == a * b * pow(1 << 256, -1, m) % m
    assert taken == {
        "A:N",
        "B:N+1",
        "C:N",
        "C:N+1",
        "D:N+1",
        "E:N+2",
        "F:N+1",
        "F:N+2",
        "G:N+1",
        "G:N+2",
    }


@pytest.mark.parametrize("variant", ["fios", "pairs", "pairs_sqr", "f64x2"])
def test_variants_at_the_carry_bounds(variant):
    """Moduli and operands at the edges of the carry bounds: m = 2^bits - 1 (every limb all
    ones), m just above 2^(bits-1), and a, b = m - 1, where the accumulator's top limbs and
    every carry chain are at their largest; plus the pairs carry vectors (256-bit)."""
    for m, a, b in pairs_model.CARRY_VECTORS_256:
        ctx = bi.MontContext(m, "host", variant=variant)
        rinv = pow(1 << bi.mont_r_bits(ctx.limbs, variant), -1, m)
        got = ctx.get(ctx.mont_mul(ctx.put([a, b]), ctx.put([b, a])))
        assert list(got) == [a * b * rinv % m] * 2
    for bits in (256, 2048, 4096):
        for m in ((1 << bits) - 1, (1 << (bits - 1)) + 1, (1 << bits) - 3):
            ctx = bi.MontContext(m, "host", variant=variant)
            a = [m - 1, m - 1, m - 2, 1, 0] + [RNG.randrange(m) for _ in range(11)]
            b = [m - 1, m - 2, m - 1, m - 1, m - 1] + [RNG.randrange(m) for _ in range(11)]
            rinv = pow(1 << bi.mont_r_bits(ctx.limbs, variant), -1, m)
            got = ctx.get(ctx.mont_mul(ctx.put(a), ctx.put(b)))
            assert list(got) == [x * y * rinv % m for x, y in zip(a, b)], (bits, hex(m)[:12])
            e = [2**64 - 1] * 4 + [RNG.getrandbits(64) for _ in range(12)]
            got = ctx.get(ctx.modexp(ctx.put(a), ctx.put32(e, limbs=2), 64))
            assert list(got) == [pow(x, k, m) for x, k in zip(a, e)]


def test_auto_variant_device_class(monkeypatch):
    """ "auto": an fp64 default gives way to the integer kernels on a GPU with slow fp64; the
    environment override wins and is validated."""

    class SlowFp64Gpu:  # stands in for a consumer GPU backend (only the attribute is read)
        fp64_full_rate = False

    class FullFp64Gpu:
        fp64_full_rate = True

    monkeypatch.delenv(bi.VARIANT_ENV, raising=False)
    monkeypatch.setitem(bi.DEFAULT_VARIANT, 128, "f64x2s")
    monkeypatch.setitem(bi.DEFAULT_VARIANT, 64, "ptx")
    assert bi.auto_variant(128, FullFp64Gpu()) == "f64x2s"
    assert bi.auto_variant(128, SlowFp64Gpu()) == bi.INTEGER_FALLBACK_VARIANT
    assert bi.auto_variant(64, SlowFp64Gpu()) == "ptx"
    m = _modulus(4096)
    ctx = bi.MontContext(m, "host")  # the host build counts as full rate: takes the default
    assert ctx.variant == "f64x2s" and ctx.R == 1 << bi.mont_r_bits(128, "f64x2s")
    a = [RNG.randrange(m) for _ in range(5)]
    assert list(ctx.get(ctx.mulmod(ctx.put(a), ctx.put(a)))) == [x * x % m for x in a]
    monkeypatch.setenv(bi.VARIANT_ENV, "fios")
    assert bi.auto_variant(128, FullFp64Gpu()) == "fios"
    assert bi.MontContext(m, "host").variant == "fios"
    monkeypatch.setenv(bi.VARIANT_ENV, "f65")
    with pytest.raises(ValueError, match=bi.VARIANT_ENV):
        bi.MontContext(m, "host")


def test_gpu_backend_fp64_class():
    from cipherray.gpu_kernels import _build

    assert {"80", "90"} <= _build.FP64_FULL_RATE_CC
    assert not {"75", "86", "89", "120"} & _build.FP64_FULL_RATE_CC  # consumer parts
    assert _build.HostBackend.fp64_full_rate is True


@pytest.mark.parametrize("variant", ["f64", "f64x2", "f64s", "f64x2s"])
@pytest.mark.parametrize("bits", [256, 512, 1024, 2048, 3000, 4096])
def test_kernel_f64_montgomery(bits, variant):
    """fp64-limb variants: every size (odd and even 52-bit limb counts), extreme operands,
    moduli close to R, squaring, modexp and the wide reduction."""
    for m in (_modulus(bits), (1 << bits) - 1 - 2 * RNG.getrandbits(32), (1 << (bits - 1)) + 1):
        ctx = bi.MontContext(m, "host", variant=variant)
        assert ctx.R == 1 << (52 * -(-32 * ctx.limbs // 52))
        a = [0, 1, 2, m - 1, m - 2, (1 << 52) - 1, 1 << 52] + [RNG.randrange(m) for _ in range(9)]
        b = [m - 1, m - 1, m - 2, m - 1, 1 << 51, (1 << 52) - 1, 3] + [
            RNG.randrange(m) for _ in range(9)
        ]
        rinv = pow(ctx.R, -1, m)
        got = ctx.get(ctx.mont_mul(ctx.put(a), ctx.put(b)))
        assert list(got) == [x * y * rinv % m for x, y in zip(a, b)]
        # squares: limbs with bit 51 set make the squaring's diagonal terms negative
        sq = a + b + [((1 << bits) - 1) % m, int("10" * (bits // 2), 2) % m]
        got = ctx.get(ctx.mont_sqr(ctx.put(sq)))
        assert list(got) == [x * x * rinv % m for x in sq]
        e = [0, 1, 2**64 - 1] + [RNG.getrandbits(64) for _ in range(len(a) - 3)]
        got = ctx.get(ctx.modexp(ctx.put(a), ctx.put32(e, 2), 64))
        assert list(got) == [pow(x, y, m) for x, y in zip(a, e)]
    c = [RNG.randrange(m * m) for _ in range(4)]
    got = ctx.get(ctx.reduce_wide(ctx.put(c, limbs=2 * ctx.limbs)))
    assert list(got) == [x % m for x in c]


def test_every_variant_can_be_a_default():
    """The library keeps a Montgomery variant only if it is a default somewhere or one that
    bench/gpu.py times and may write into the tuning file (CIPHERRAY_KERNEL_TUNING); "fios" is
    the portable core, the host build of "ptx"."""
    gpu_py = (Path(__file__).resolve().parents[1] / "bench" / "gpu.py").read_text()
    (line,) = [ln for ln in gpu_py.splitlines() if ln.startswith("TIMED_VARIANTS = ")]
    timed = set(ast.literal_eval(line.split("=", 1)[1].strip()))
    defaults = {*bi.DEFAULT_VARIANT.values(), bi.INTEGER_FALLBACK_VARIANT, "fios"}
    assert set(bi._VARIANTS) == timed | defaults
