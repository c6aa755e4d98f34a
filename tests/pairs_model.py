"""A Python model of the "pairs" Montgomery rows (cipherray/gpu_kernels/bigint_pairs.cuh):
the same eight carry chains per word of b, on a list of 32-bit limbs, recording which of the
carries into the accumulator's top limbs were taken. Used to find, and to check, inputs that
take every such carry: CARRY_VECTORS_256, which tests/test_kernel_bigint.py runs on the host
build and bench/gpu.py on the GPU."""

from __future__ import annotations

M32 = (1 << 32) - 1

# (m, a, b), 256-bit (n = 8 limbs), under which each carry into the top limbs of the "pairs"
# accumulator is taken (found with mont_pairs below, by searches over near-maximal operands):
# into t[N] in passes A and C, into t[N + 1] in B, C, D, F, G, into t[N + 2] in E, F and G.
# Random operands rarely take them; the last vector (E) needs m = 2^256 - 1, a with every limb
# but the lowest all ones, and b's first word chosen so that the second word's u1 is maximal.
CARRY_VECTORS_256 = [
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFB2C3E5901AB16437,
        0xF8937DC56ACE67A2A2623607E7E717EE76D06FD42DC0F7DBA038B65D0E54E466,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF90FC98A5E9FF5CA5F666AF27C9098A33,
    ),
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF1,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEF,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF0,
    ),
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEDBB1334FC3B0BC7F,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA0AA8DFCCFE7AF3938215E0831764915,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF77E12E9D51D14EAB80EAFADBCB464A20,
    ),
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE461F3,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFCDE3AD6994273989A92FAF3298844E8B,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA250EF92,
    ),
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000001,
        0x00000000000000000000000000000000FFFFFFFFFFFFFFFEFFFFFFFFFFFF6E48,
    ),
]


def fused(t: list[int], words: int, pair0: int, x: list[int], off: int, y: int) -> int:
    """t += x[2k + off] * y onto the aligned pairs (2 (k + pair0), 2 (k + pair0) + 1),
    k < words, as one carry chain; returns its carry out."""
    c = 0
    for k in range(words):
        lo, hi = 2 * (k + pair0), 2 * (k + pair0) + 1
        s = x[2 * k + off] * y + (t[lo] | (t[hi] << 32)) + c
        t[lo], t[hi], c = s & M32, (s >> 32) & M32, s >> 64
    return c


def odd(t: list[int], words: int, x: list[int], off: int, y: int) -> int:
    """t += x[2k + off] * y at the odd positions 2k + 1, k < words (mul.wide, then the two
    halves on one add chain); returns the carry out."""
    c = 0
    for k in range(words):
        p = x[2 * k + off] * y
        s = t[2 * k + 1] + (p & M32) + c
        t[2 * k + 1], c = s & M32, s >> 32
        s = t[2 * k + 2] + (p >> 32) + c
        t[2 * k + 2], c = s & M32, s >> 32
    return c


def carry_into(t: list[int], i: int, c: int, name: str, last: bool, taken: set[str]) -> int:
    """Adds a chain's carry c at limb i (recording `name` in taken when c is 1); with `last`,
    a carry out of limb i would be lost, which the bounds rule out."""
    if c:
        taken.add(name)
    s = t[i] + c
    t[i] = s & M32
    if last and s >> 32:
        raise AssertionError(f"carry lost above limb {i} ({name})")
    return s >> 32


def mont_pairs(a: int, b: int, m: int, n: int, taken: set[str]) -> int:
    """a * b * 2^(-32 n) mod m, not fully reduced (< 2m), as the pairs rows compute it; the
    names of the top-limb carries that were 1 are added to `taken` (pass letter, limb)."""
    w = n // 2
    minv = (-pow(m, -1, 1 << 32)) % (1 << 32)
    al = [(a >> (32 * i)) & M32 for i in range(n)]
    bl_ = [(b >> (32 * i)) & M32 for i in range(n)]
    ml = [(m >> (32 * i)) & M32 for i in range(n)]
    t = [0] * (n + 4)

    def fused_(pair0: int, x: list[int], off: int, y: int) -> int:
        return fused(t, w, pair0, x, off, y)

    def odd_(x: list[int], off: int, y: int) -> int:
        return odd(t, w, x, off, y)

    def carry_(i: int, c: int, name: str, last: bool) -> int:
        return carry_into(t, i, c, name, last, taken)

    for ib in range(w):
        bl, bh = bl_[2 * ib], bl_[2 * ib + 1]
        carry_(n, fused_(0, al, 0, bl), "A:N", True)
        carry_(n + 1, odd_(al, 1, bl), "B:N+1", True)
        u1 = t[0] * minv & M32
        c = carry_(n, fused_(0, ml, 0, u1), "C:N", False)
        carry_(n + 1, c, "C:N+1", True)
        carry_(n + 1, odd_(ml, 1, u1), "D:N+1", True)
        carry_(n + 2, fused_(1, al, 1, bh), "E:N+2", True)
        c = carry_(n + 1, odd_(al, 0, bh), "F:N+1", False)
        carry_(n + 2, c, "F:N+2", True)
        u2 = t[1] * minv & M32
        c = carry_(n + 1, odd_(ml, 0, u2), "G:N+1", False)
        carry_(n + 2, c, "G:N+2", True)
        assert t[0] == 0 and t[1] == 0
        c = 0
        for k in range(w):
            s = ml[2 * k + 1] * u2 + (t[2 * k + 2] | (t[2 * k + 3] << 32)) + c
            t[2 * k], t[2 * k + 1], c = s & M32, (s >> 32) & M32, s >> 64
        t[n], t[n + 1], t[n + 2] = t[n + 2] + c, 0, 0
        assert t[n] <= M32 and t[n + 3] == 0
    return sum(x << (32 * i) for i, x in enumerate(t))
