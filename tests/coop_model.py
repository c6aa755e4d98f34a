"""A Python model of the cooperative Montgomery multiplication (coop_mont_mul in
cipherray/gpu_kernels/bigint_coop.cuh): the same lanes, passes, carry chains, lane exchanges
and carry / borrow resolution, on lists of 32-bit limbs, recording which of the rarely taken
paths were taken. Used to find, and to check, inputs that take every one of them:
COOP_VECTORS_256, which tests/test_kernel_bigint_coop.py runs on the host build and
bench/gpu.py on the GPU."""

from __future__ import annotations

from pairs_model import M32, carry_into, fused, odd

# (m, a, b, threads per number), 256-bit (8 limbs), found with mont_coop below by searches
# over near-maximal operands (python3 tests/coop_model.py). Together they take every top-limb
# carry of a lane's chains that the bounds leave possible and every resolution path: a
# carry passed through an all-ones lane, the carry out of the top lane, a borrow passed
# through a lane of zeros (PATHS).
COOP_VECTORS_256: list[tuple[int, int, int, int]] = [
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF1CC0A51D,
        0x00000000000000000000000000000000000000000000000000000000E33F5AE2,
        0x00000000000000000000000000000000000000000000000000000000E33E78D4,
        2,
    ),
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFAAB66791,
        0x000000000000000000000000000000000000000000000000FFFFFFFF00000001,
        0xFFFFFFFE2E361E5EFFFFB33C88B850EBFFFFFFF53326F2ABFFFFBA35AAB66791,
        4,
    ),
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF321483DAB9E776E9,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE5D00D1FC1B8E86FA3674CAEED5AEFCF,
        4,
    ),
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFB3E9B1E617A74F7D,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA126F7AEF251C683,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF315C83E9097723E070F4E5B09C1D6480,
        2,
    ),
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF14D9E614,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF496C1514C59DFB6E,
        4,
    ),
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFD,
        0x000000000000000000000000000000000000000000000000FFFFFFFF00000001,
        0xFFFFAECAFFFFFFF6FFFFFFFB00000001FFFFFFFFFFFFFFFCFFFFFFFAFFFFFFFD,
        4,
    ),
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000001,
        0xFFFFFFFBFFFFFFFEFFFFFFFFFFFFFFFEFFFFFFFFFFFF8C8AFFFF8C8AFFFFFFFF,
        2,
    ),
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEF,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE8185456,
        0x0000000000000000000000000000000000000000000000000000000000000010,
        4,
    ),
]

PATHS = frozenset(
    {
        "A:S",
        "B:S+1",
        "C:S",
        "C:S+1",
        "D:S+1",
        "E:S+2",
        "F:S+1",
        "F:S+2",
        "G:S+1",
        "G:S+2",
        "exchange:S",
        "resolve:generate",
        "resolve:propagate",
        "resolve:carry_out",
        "resolve:lazy_overflow",
        "subtract:borrow",
        "subtract:through_zero",
        "subtract:kept",
    }
)


def _limbs(v: int, n: int) -> list[int]:
    return [(v >> (32 * i)) & M32 for i in range(n)]


def mont_coop(a: int, b: int, m: int, n: int, tpi: int, taken: set[str], choose_word=None) -> int:
    """a * b * 2^(-32 n) mod m, fully reduced, as coop_mont_mul computes it with tpi lanes of
    s = n / tpi limbs each; the names of the rare paths taken are added to `taken`.
    choose_word (searches only): called per pass as choose_word(T, x0, minv) -> (y_l, y_h),
    overriding that word of b; the b actually used is then `mont_coop.last_b`."""
    s = n // tpi
    wl = s // 2
    minv = (-pow(m, -1, 1 << 32)) % (1 << 32)
    x = [_limbs(a >> (32 * s * lane), s) for lane in range(tpi)]
    y = [_limbs(b >> (32 * s * lane), s) for lane in range(tpi)]
    mm = [_limbs(m >> (32 * s * lane), s) for lane in range(tpi)]
    t = [[0] * (s + 3) for _ in range(tpi)]
    x0 = x[0][0] | (x[0][1] << 32)
    m0 = mm[0][0] | (mm[0][1] << 32)

    used_b = 0
    for owner in range(tpi):
        for j in range(wl):
            yl, yh = y[owner][2 * j], y[owner][2 * j + 1]
            T = t[0][0] | (t[0][1] << 32)
            if choose_word is not None:
                yl, yh = choose_word(T, x0, minv)
            used_b |= (yl | (yh << 32)) << (32 * (owner * s + 2 * j))
            u1 = ((T & M32) + (x0 & M32) * yl) * minv & M32
            V = (T + x0 * yl + m0 * u1) & ((1 << 64) - 1)
            u2 = ((V >> 32) + (x0 & M32) * yh) * minv & M32
            low = []
            for tl, xl, ml in zip(t, x, mm):
                carry_into(tl, s, fused(tl, wl, 0, xl, 0, yl), "A:S", True, taken)
                carry_into(tl, s + 1, odd(tl, wl, xl, 1, yl), "B:S+1", True, taken)
                c = carry_into(tl, s, fused(tl, wl, 0, ml, 0, u1), "C:S", False, taken)
                carry_into(tl, s + 1, c, "C:S+1", True, taken)
                carry_into(tl, s + 1, odd(tl, wl, ml, 1, u1), "D:S+1", True, taken)
                carry_into(tl, s + 2, fused(tl, wl, 1, xl, 1, yh), "E:S+2", True, taken)
                c = carry_into(tl, s + 1, odd(tl, wl, xl, 0, yh), "F:S+1", False, taken)
                carry_into(tl, s + 2, c, "F:S+2", True, taken)
                c = carry_into(tl, s + 1, odd(tl, wl, ml, 0, u2), "G:S+1", False, taken)
                carry_into(tl, s + 2, c, "G:S+2", True, taken)
                low.append((tl[0], tl[1]))
                c = 0
                for k in range(wl):
                    z = ml[2 * k + 1] * u2 + (tl[2 * k + 2] | (tl[2 * k + 3] << 32)) + c
                    tl[2 * k], tl[2 * k + 1], c = z & M32, (z >> 32) & M32, z >> 64
                z = tl[s + 2] + c
                assert z <= M32
                tl[s], tl[s + 1], tl[s + 2] = z, 0, 0
            assert low[0] == (0, 0)
            for lane, tl in enumerate(t):
                n0, n1 = low[lane + 1] if lane + 1 < tpi else (0, 0)
                z = tl[s - 2] + n0
                tl[s - 2] = z & M32
                z = tl[s - 1] + n1 + (z >> 32)
                tl[s - 1] = z & M32
                carry_into(tl, s, z >> 32, "exchange:S", True, taken)
    mont_coop.last_b = used_b
    # 2. carry resolution
    lazy = [tl[s] for tl in t]
    if lazy[-1]:
        taken.add("resolve:lazy_overflow")
    vals, gen, prop = [], [], []
    for lane, tl in enumerate(t):
        v = sum(tl[k] << (32 * k) for k in range(s)) + (lazy[lane - 1] if lane else 0)
        gen.append(v >> (32 * s))
        v &= (1 << (32 * s)) - 1
        prop.append(v == (1 << (32 * s)) - 1)
        vals.append(v)
    carry, full = 0, []
    for lane in range(tpi):
        if gen[lane]:
            taken.add("resolve:generate")
        if prop[lane] and carry:
            taken.add("resolve:propagate")
        v = vals[lane] + carry
        carry = gen[lane] | (prop[lane] & carry)
        full.append(v & ((1 << (32 * s)) - 1))
    if carry:
        taken.add("resolve:carry_out")
    total = sum(v << (32 * s * lane) for lane, v in enumerate(full))
    overflow = lazy[-1] + carry
    # 3. final subtraction, lane by lane
    borrow = 0
    for lane in range(tpi):
        d = full[lane] - ((m >> (32 * s * lane)) & ((1 << (32 * s)) - 1))
        if d < 0:
            taken.add("subtract:borrow")
        if d == 0 and borrow:
            taken.add("subtract:through_zero")
        borrow = 1 if d - borrow < 0 else 0
    if overflow or not borrow:
        return total + (overflow << (32 * n)) - m
    taken.add("subtract:kept")
    return total


def _search(seconds: float = 60.0) -> None:  # pragma: no cover - a tool, run by hand
    """Print vectors that together take every path in PATHS (256-bit)."""
    import random
    import time

    rng = random.Random()
    n = 8
    found: dict[str, tuple[int, int, int, int]] = {}
    end = time.time() + seconds

    def near_max(bits: int) -> int:
        k = rng.choice([0, 1, 2, 4, 8, 16, 32, 64, 128, 192, 256])
        low = rng.getrandbits(k) if k else 0
        return ((1 << bits) - 1) ^ low

    while time.time() < end and set(found) != PATHS:
        tpi = rng.choice([2, 4])
        m = near_max(256) | 1
        if rng.random() < 0.3:
            m = rng.getrandbits(256) | 1 | (1 << 255)
        a, b = near_max(256) % m, near_max(256) % m
        if rng.random() < 0.3:
            r = rng.getrandbits(rng.choice([1, 8, 40, 70]))
            a, b = (r + m) * (1 << 256) % m, 1
        taken: set[str] = set()
        chooser = None
        if rng.random() < 0.3:
            # b word by word: y_l making u1 maximal, y_h near maximal, with a's low limb 1 and
            # its next all ones (E's carry at limb S + 2 needs all three at once)
            a = ((a | (M32 << 32)) & ~M32 | 1) % m
            minv = (-pow(m, -1, 1 << 32)) % (1 << 32)

            def chooser(T, x0, minv=minv):
                if x0 % 2 == 0 or minv % 2 == 0:
                    return rng.getrandbits(32), rng.getrandbits(32)
                # u1 = (T + x0 y_l) minv = M32 mod 2^32
                yl = ((M32 * pow(minv, -1, 1 << 32) - T) * pow(x0 & M32, -1, 1 << 32)) & M32
                return yl, M32 - rng.getrandbits(rng.choice([0, 4, 16]))

        got = mont_coop(a, b, m, n, tpi, taken, chooser)
        b = mont_coop.last_b
        if b >= m:
            continue
        assert got == a * b * pow(1 << 256, -1, m) % m
        for p in taken - set(found):
            found[p] = (m, a, b, tpi)
    print("missing:", sorted(PATHS - set(found)))
    for vec in dict.fromkeys(found.values()):
        m, a, b, tpi = vec
        print(f"    ({m:#066x}, {a:#066x}, {b:#066x}, {tpi}),")


if __name__ == "__main__":  # pragma: no cover
    _search()
