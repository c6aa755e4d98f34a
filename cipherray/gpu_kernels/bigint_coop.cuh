// cipherray: cooperative Montgomery arithmetic, TPI threads per number (variant "coop").
//
// One thread per 4096-bit number needs ~130 registers for the accumulator alone, so the
// one-thread kernels of bigint.cuh spill at 128 limbs. Here a group of TPI threads (TPI
// divides 32 and TPI <= N / 2) holds one number: lane l owns limbs [l S, (l + 1) S), S = N / TPI,
// of every operand and of the accumulator, and the lanes exchange single limbs by warp
// shuffles.
//
// The same source runs on the host. Per-lane variables are arrays with one slot per lane
// (crc_slots: TPI on the host, 1 on the GPU, where each thread is its own lane), and
// CRC_FOR_LANES(l) { ... } runs its body for every lane in turn on the host and for this
// thread's lane on the GPU. A shuffle (CRC_SHFL) reads another lane's slot on the host and is
// __shfl_sync on the GPU, so the rule that keeps both the same: a CRC_FOR_LANES block may
// shuffle only values that no lane writes in that same block.
#pragma once
#include "common.cuh"
#include "carry_chain.cuh"
#include "exponent.cuh"

#ifndef CR_TPI
#define CR_TPI 8
#endif

// A group of TPI lanes inside one warp. GPU: lane = this thread's lane in the group, base =
// the group's first lane in the warp; live = whether the group's item is in range (the last
// warp of a launch runs its out-of-range groups too, on item 0 without storing, so that every
// shuffle and ballot has the whole warp: a constant full mask keeps ptxas from wrapping each
// one in divergence checks). Host: live = 1, the rest unused.
struct CrGroup {
  int lane;
  int base;
  int live;
};

#ifdef __CUDA_ARCH__
#define crc_slots(TPI) 1
#define CRC_FOR_LANES(l) for (int l = g.lane, l##_once = 1; l##_once; l##_once = 0)
#define CRC_SLOT(l) 0
// value v (a per-lane slot array, indexed [slot] or [slot][j]) of lane src
#define CRC_SHFL(arr, src) __shfl_sync(0xffffffffu, (arr)[0], (src), TPI)
#define CRC_SHFL2(arr, j, src) __shfl_sync(0xffffffffu, (arr)[0][j], (src), TPI)
#else
#define crc_slots(TPI) (TPI)
#define CRC_FOR_LANES(l) for (int l = 0; l < TPI; l++)
#define CRC_SLOT(l) (l)
#define CRC_SHFL(arr, src) ((arr)[(src)])
#define CRC_SHFL2(arr, j, src) ((arr)[(src)][j])
#endif

// Bit l = pred of lane l, for the TPI lanes of the group.
template <int TPI>
CR_HD uint32_t crc_ballot(const uint32_t* pred, const CrGroup& g) {
#ifdef __CUDA_ARCH__
  const uint32_t all = __ballot_sync(0xffffffffu, pred[0] != 0);
  return TPI == 32 ? all : (all >> g.base) & ((1u << TPI) - 1u);
#else
  (void)g;
  uint32_t bits = 0;
  for (int l = 0; l < TPI; l++) bits |= (pred[l] != 0 ? 1u : 0u) << l;
  return bits;
#endif
}

// Carries between lanes from per-lane generate / propagate bits (G & P = 0): bit l of the
// result = the carry into lane l (lane 0: none), bit TPI = the carry out of the top lane.
// The carry out of lane l is G_l | (P_l & carry into l): the carries of the binary sum
// (G | P) + G, whose bits are (G | P) ^ G ^ carries = P ^ carries.
CR_HD uint64_t crc_carries(uint32_t G, uint32_t P) {
  const uint64_t a = (uint64_t)(G | P), b = (uint64_t)G;
  return (a + b) ^ (a ^ b);
}

// lane l's S limbs (S / 2 words) of the number at p (word-major, words at p[k * ld]).
template <int N, int TPI>
CR_HD void crc_load(uint64_t (*dst)[N / TPI / 2], const uint64_t* p, int ld, const CrGroup& g) {
  constexpr int WL = N / TPI / 2;
  CRC_FOR_LANES(l) {
    CR_UNROLL
    for (int q = 0; q < WL; q++) dst[CRC_SLOT(l)][q] = p[(cr_idx)(l * WL + q) * ld];
  }
}

template <int N, int TPI>
CR_HD void crc_store(uint64_t* p, int ld, const uint64_t (*src)[N / TPI / 2], const CrGroup& g) {
  constexpr int WL = N / TPI / 2;
  if (!g.live) return;
  CRC_FOR_LANES(l) {
    CR_UNROLL
    for (int q = 0; q < WL; q++) p[(cr_idx)(l * WL + q) * ld] = src[CRC_SLOT(l)][q];
  }
}

template <int N, int TPI>
CR_HD void crc_copy(uint64_t (*dst)[N / TPI / 2], const uint64_t (*src)[N / TPI / 2],
                    const CrGroup& g) {
  CRC_FOR_LANES(l) {
    CR_UNROLL
    for (int q = 0; q < N / TPI / 2; q++) dst[CRC_SLOT(l)][q] = src[CRC_SLOT(l)][q];
  }
}

// r = x * y * 2^(-32 N) mod m, fully reduced when x * y < 2^(32 N) m (r may alias x or y).
// Operands are per-lane word slots (S / 2 words of 32-bit limb pairs); mm holds m the same way.
//
// 1. Passes, one word (y_l, y_h) of y per pass, words from the bottom (two CIOS rows each),
//    on an accumulator of S + 3 limbs per lane:
//    a. the word of y and lane 0's two low accumulator limbs T reach every lane (shuffles);
//       every lane computes the two row factors itself from T and lane 0's low words X, M
//       of x and m (fetched once): u1 = (T + X y_l) minv mod 2^32, and from limb 1 of
//       V = T + X y_l + M u1 mod 2^64, u2 = (V_1 + X y_h) minv mod 2^32.
//    b. each lane adds x y_l + m u1 + (x y_h + m u2) 2^32 to its limbs in the eight carry
//       chains of the "pairs" core (bigint_pairs.cuh: A-H), the last written one pair down
//       (the division by 2^64); its low pair before that shift is what moves down a lane.
//    c. each lane adds the next lane's low pair (a shuffle; none for the top lane) at its
//       limbs S - 2, S - 1, carrying into limb S. Limb S is a lazy carry (< 8) at the next
//       lane's limb 0: carries never cross lanes inside the loop, the value being
//       sum_l (t_l + t_l[S] 2^(32 S)) 2^(32 S l).
// 2. Carry resolution: lane l adds limb S of lane l - 1 (the top lane's limb S is limb N,
//    the overflow); the carries this makes between lanes come from one ballot of generate /
//    propagate bits.
// 3. Final subtraction: d = t - m per lane with its borrow chain resolved the same way;
//    r = d where t >= m (or limb N is set), else t.
// Bounds: a lane's limbs plus its lazy carry stay below 2^(32 S + 3) between passes and below
// 2^(32 S + 66) within one, so S + 3 limbs hold them and each chain's carry out goes into the
// limbs named after it, no further.
template <int N, int TPI>
CR_HD void coop_mont_mul(uint64_t (*r)[N / TPI / 2], const uint64_t (*x)[N / TPI / 2],
                         const uint64_t (*y)[N / TPI / 2], const uint64_t (*mm)[N / TPI / 2],
                         uint32_t minv, const CrGroup& g) {
  constexpr int S = N / TPI, WL = S / 2;
  constexpr int NS = crc_slots(TPI);
  static_assert(TPI >= 2 && TPI <= 32 && (TPI & (TPI - 1)) == 0, "TPI: 2, 4, 8, 16 or 32");
  static_assert(S >= 2 && S % 2 == 0, "TPI <= N / 2");
  uint32_t t[NS][S + 3], lo0[NS], lo1[NS];
  uint64_t x0w[NS], m0w[NS];
  CRC_FOR_LANES(l) {
    CR_UNROLL
    for (int k = 0; k < S + 3; k++) t[CRC_SLOT(l)][k] = 0;
    const uint32_t xl = CRC_SHFL2(x, 0, 0) & 0xffffffffu, xh = CRC_SHFL2(x, 0, 0) >> 32;
    const uint32_t ml = CRC_SHFL2(mm, 0, 0) & 0xffffffffu, mh = CRC_SHFL2(mm, 0, 0) >> 32;
    x0w[CRC_SLOT(l)] = ((uint64_t)xh << 32) | xl;
    m0w[CRC_SLOT(l)] = ((uint64_t)mh << 32) | ml;
  }
  // 1. passes
  CR_NOUNROLL
  for (int owner = 0; owner < TPI; owner++) {
    CR_UNROLL
    for (int j = 0; j < WL; j++) {
      uint32_t yl[NS], yh[NS], u1[NS], u2[NS];
      CRC_FOR_LANES(l) {  // a.
        const int s = CRC_SLOT(l);
        yl[s] = CRC_SHFL2(y, j, owner) & 0xffffffffu;
        yh[s] = CRC_SHFL2(y, j, owner) >> 32;
        const uint64_t T = ((uint64_t)CRC_SHFL2(t, 1, 0) << 32) | CRC_SHFL2(t, 0, 0);
        u1[s] = ((uint32_t)T + (uint32_t)x0w[s] * yl[s]) * minv;
        const uint64_t V = T + x0w[s] * yl[s] + m0w[s] * u1[s];
        u2[s] = ((uint32_t)(V >> 32) + (uint32_t)x0w[s] * yh[s]) * minv;
      }
      CRC_FOR_LANES(l) {  // b.
        const int s = CRC_SLOT(l);
        CRP_CC_STATE;
        // A: x_e y_l at limbs 2k (limb S is small: the carry stops there)
        CRP_FUSED_RANGE(t[s], 0, x[s], 1, 0, yl[s], 0, WL);
        CRP_ADDC(t[s][S], t[s][S], 0u);
        // B: x_o y_l at 2k + 1
        CRP_ODD_RANGE(t[s], x[s], 1, 1, yl[s], 0, WL);
        CRP_ADDC(t[s][S + 1], t[s][S + 1], 0u);
        // C: m_e u1 at 2k
        CRP_FUSED_RANGE(t[s], 0, mm[s], 1, 0, u1[s], 0, WL);
        CRP_ADDC_CC(t[s][S], t[s][S], 0u);
        CRP_ADDC(t[s][S + 1], t[s][S + 1], 0u);
        // D: m_o u1 at 2k + 1
        CRP_ODD_RANGE(t[s], mm[s], 1, 1, u1[s], 0, WL);
        CRP_ADDC(t[s][S + 1], t[s][S + 1], 0u);
        // E: x_o y_h at 2k + 2
        CRP_FUSED_RANGE(t[s], 1, x[s], 1, 1, yh[s], 0, WL);
        CRP_ADDC(t[s][S + 2], t[s][S + 2], 0u);
        // F: x_e y_h at 2k + 1
        CRP_ODD_RANGE(t[s], x[s], 1, 0, yh[s], 0, WL);
        CRP_ADDC_CC(t[s][S + 1], t[s][S + 1], 0u);
        CRP_ADDC(t[s][S + 2], t[s][S + 2], 0u);
        // G: m_e u2 at 2k + 1
        CRP_ODD_RANGE(t[s], mm[s], 1, 0, u2[s], 0, WL);
        CRP_ADDC_CC(t[s][S + 1], t[s][S + 1], 0u);
        CRP_ADDC(t[s][S + 2], t[s][S + 2], 0u);
        // H: m_o u2 at 2k + 2, written one pair down; the low pair leaves first
        lo0[s] = t[s][0];
        lo1[s] = t[s][1];
        CRP_MADLO_CC(t[s][0], CRP_LIMB(mm[s], 1, 0, 1), u2[s], t[s][2]);
        CRP_MADCHI_CC(t[s][1], CRP_LIMB(mm[s], 1, 0, 1), u2[s], t[s][3]);
        CR_UNROLL
        for (int k = 1; k < WL; k++) {
          const uint32_t mk = CRP_LIMB(mm[s], 1, k, 1);
          CRP_MADCLO_CC(t[s][2 * k], mk, u2[s], t[s][2 * k + 2]);
          CRP_MADCHI_CC(t[s][2 * k + 1], mk, u2[s], t[s][2 * k + 3]);
        }
        CRP_ADDC(t[s][S], t[s][S + 2], 0u);
        t[s][S + 1] = 0;
        t[s][S + 2] = 0;
      }
      CRC_FOR_LANES(l) {  // c.
        const int s = CRC_SLOT(l);
        const int src = l + 1 < TPI ? l + 1 : l;
        const uint32_t n0s = CRC_SHFL(lo0, src), n1s = CRC_SHFL(lo1, src);  // every lane shuffles
        const uint32_t n0 = l + 1 < TPI ? n0s : 0u, n1 = l + 1 < TPI ? n1s : 0u;
        CRP_CC_STATE;
        CRP_ADD_CC(t[s][S - 2], t[s][S - 2], n0);
        CRP_ADDC_CC(t[s][S - 1], t[s][S - 1], n1);
        CRP_ADDC(t[s][S], t[s][S], 0u);
      }
    }
  }
  // 2. carry resolution
  uint32_t cin[NS], gen[NS], prop[NS], ovf[NS];
  CRC_FOR_LANES(l) {
    const uint32_t below = CRC_SHFL2(t, S, l > 0 ? l - 1 : l);
    cin[CRC_SLOT(l)] = l > 0 ? below : 0u;
    ovf[CRC_SLOT(l)] = CRC_SHFL2(t, S, TPI - 1);
  }
  CRC_FOR_LANES(l) {
    const int s = CRC_SLOT(l);
    uint64_t c = cin[s];
    uint32_t ones = 0xffffffffu;
    CR_UNROLL
    for (int k = 0; k < S; k++) {
      const uint64_t v = (uint64_t)t[s][k] + c;
      t[s][k] = (uint32_t)v;
      c = v >> 32;
      ones &= t[s][k];
    }
    gen[s] = (uint32_t)c;
    prop[s] = ones == 0xffffffffu ? 1u : 0u;
  }
  const uint64_t carries = crc_carries(crc_ballot<TPI>(gen, g), crc_ballot<TPI>(prop, g));
  uint32_t bo[NS], zero[NS];
  uint32_t d[NS][S];
  CRC_FOR_LANES(l) {
    const int s = CRC_SLOT(l);
    uint64_t c = (carries >> l) & 1u;
    CR_UNROLL
    for (int k = 0; k < S; k++) {
      const uint64_t v = (uint64_t)t[s][k] + c;
      t[s][k] = (uint32_t)v;
      c = v >> 32;
    }
    // 3. d = t - m with no borrow in; zero: a borrow in would pass through
    uint32_t br = 0, any = 0;
    CR_UNROLL
    for (int k = 0; k < S; k++) {
      const uint64_t v = (uint64_t)t[s][k] - CRP_LIMB(mm[s], 1, k / 2, k % 2) - br;
      d[s][k] = (uint32_t)v;
      br = (uint32_t)(v >> 63);
      any |= d[s][k];
    }
    bo[s] = br;
    zero[s] = any == 0 ? 1u : 0u;
  }
  const uint64_t borrows = crc_carries(crc_ballot<TPI>(bo, g), crc_ballot<TPI>(zero, g));
  const bool overflow_bit = ((carries >> TPI) & 1u) != 0;
  CRC_FOR_LANES(l) {
    const int s = CRC_SLOT(l);
    const bool sub = ovf[s] != 0 || overflow_bit || ((borrows >> TPI) & 1u) == 0;
    uint32_t br = (uint32_t)((borrows >> l) & 1u);
    CR_UNROLL
    for (int k = 0; k < WL; k++) {
      const uint64_t v0 = (uint64_t)d[s][2 * k] - br;
      br = (uint32_t)(v0 >> 63);
      const uint64_t v1 = (uint64_t)d[s][2 * k + 1] - br;
      br = (uint32_t)(v1 >> 63);
      r[s][k] = sub ? (uint64_t)(uint32_t)v0 | ((uint64_t)(uint32_t)v1 << 32)
                    : (uint64_t)t[s][2 * k] | ((uint64_t)t[s][2 * k + 1] << 32);
    }
  }
}

// One entry point per kernel body, TPI threads per work item. `count` is the number of
// threads (items * TPI), so whole groups are in range or out of it; the GPU launches blocks
// of a multiple of 32 threads (see CrGroup.live). The host loops over items, each running
// all its lanes.
#ifdef CR_DEVICE_BUILD
#define CRC_ENTRY(name, PARAMS, ARGS)                                                      \
  extern "C" __global__ void name PARAMS {                                                 \
    const cr_idx tid = (cr_idx)blockIdx.x * blockDim.x + threadIdx.x;                      \
    if (tid - (cr_idx)(threadIdx.x & 31u) >= count) return; /* the whole warp is out */    \
    CrGroup g;                                                                             \
    g.lane = (int)(threadIdx.x % CR_TPI);                                                  \
    g.base = (int)(threadIdx.x & 31u) & ~(CR_TPI - 1);                                     \
    g.live = tid < count;                                                                  \
    const cr_idx idx = g.live ? tid / CR_TPI : 0;                                          \
    name##_body ARGS;                                                                      \
  }
#else
#define CRC_ENTRY(name, PARAMS, ARGS)                                                      \
  extern "C" void name PARAMS {                                                            \
    const CrGroup g = {0, 0, 1};                                                           \
    _Pragma("omp parallel for schedule(dynamic, 4)")                                       \
    for (cr_idx idx = 0; idx < count / CR_TPI; idx++) name##_body ARGS;                    \
  }
#endif

// ---------------------------------------------------------------------------------------
// Kernel bodies (the arguments as the one-thread kernels of bigint.cuh).
// ---------------------------------------------------------------------------------------

// out = a * b * R^-1 mod m
template <int N, int TPI>
CR_HD void coop_montmul_kbody(cr_idx idx, const CrGroup& g, uint64_t* out, int ldo,
                              const uint64_t* a, int lda, int sa, const uint64_t* b, int ldb,
                              int sb, const uint64_t* m, uint32_t minv) {
  constexpr int S = N / TPI, NS = crc_slots(TPI);
  uint64_t x[NS][S / 2], y[NS][S / 2], mm[NS][S / 2];
  crc_load<N, TPI>(x, a + idx * sa, lda, g);
  crc_load<N, TPI>(y, b + idx * sb, ldb, g);
  crc_load<N, TPI>(mm, m, 1, g);
  coop_mont_mul<N, TPI>(x, x, y, mm, minv, g);
  crc_store<N, TPI>(out + idx, ldo, x, g);
}

// out = base^e mod m, fixed window of w bits: modexp_kbody's algorithm, table and arguments
// (consts: [r2 | one_m = R mod m | unit = 1]; tbl: scratch (2^w, N / 2, count)). The
// accumulator stays in the group's registers. Every multiplication, table, squaring or
// window, is the one inlined coop_mont_mul(acc, acc, y) of a single loop over the steps, each
// step choosing what goes into acc and y first (a copy of the multiplication per kind of step
// made the kernel's code 151 KiB at 4096 bits on 8 threads, its hot loop beyond the SM's
// instruction caches):
//   first (no step):     t[0] = R mod m
//   step 0:              acc = base, y = R^2         -> t[1] = base R
//   steps 1 .. 2^w - 2:  d = step + 1: even d: acc = y = t[d / 2]; odd d: y = t[1] (acc = t[d - 1])
//   then per window from the top but one, w squarings (the first from acc = t[top digit])
//   and one multiplication by t[digit];
//   last step:           y = 1 (out of Montgomery form).
template <int N, int TPI>
CR_HD void coop_modexp_kbody(cr_idx idx, const CrGroup& g, uint64_t* out, int ldo,
                             const uint64_t* base, int ldb, int sb, const uint32_t* e, int lde,
                             int se, int elimbs, int ebits, const uint64_t* m, uint32_t minv,
                             const uint64_t* consts, uint64_t* tbl, int ldt, int w) {
  constexpr int S = N / TPI, NS = crc_slots(TPI), W = N / 2;
  uint64_t acc[NS][S / 2], y[NS][S / 2], mm[NS][S / 2];
  const uint32_t* ex = e + idx * se;
  uint64_t* tb = tbl + idx;
  const cr_idx tstep = (cr_idx)W * ldt;
  const int nt = 1 << w;
  const int nwin = ebits > 0 ? (ebits + w - 1) / w : 1;
  const int top = (int)exp_digit(ex, lde, elimbs, nwin - 1, w);
  const int table_end = nt - 1;                       // steps [0, table_end): the table
  const int win_end = table_end + (nwin - 1) * (w + 1);  // then the windows; then the last
  crc_load<N, TPI>(mm, m, 1, g);
  crc_load<N, TPI>(acc, consts + W, 1, g);  // t[0] = R mod m (digit 0)
  crc_store<N, TPI>(tb, ldt, acc, g);
  CR_NOUNROLL
  for (int st = 0; st <= win_end; st++) {
    int store = -1;  // table entry this step writes
    if (st == 0) {
      crc_load<N, TPI>(acc, base + idx * sb, ldb, g);
      crc_load<N, TPI>(y, consts, 1, g);
      store = 1;
    } else if (st < table_end) {
      const int d = st + 1;
      if (d % 2 == 0) {
        crc_load<N, TPI>(acc, tb + (d / 2) * tstep, ldt, g);
        crc_copy<N, TPI>(y, acc, g);
      } else {
        crc_load<N, TPI>(y, tb + tstep, ldt, g);
      }
      store = d;
    } else if (st < win_end) {
      const int j = st - table_end, pos = j % (w + 1), win = nwin - 2 - j / (w + 1);
      if (j == 0) crc_load<N, TPI>(acc, tb + top * tstep, ldt, g);
      if (pos < w)
        crc_copy<N, TPI>(y, acc, g);
      else
        crc_load<N, TPI>(y, tb + exp_digit(ex, lde, elimbs, win, w) * tstep, ldt, g);
    } else {
      if (nwin == 1) crc_load<N, TPI>(acc, tb + top * tstep, ldt, g);
      crc_load<N, TPI>(y, consts + 2 * W, 1, g);
    }
    coop_mont_mul<N, TPI>(acc, acc, y, mm, minv, g);
    if (store >= 0) crc_store<N, TPI>(tb + store * tstep, ldt, acc, g);
  }
  crc_store<N, TPI>(out + idx, ldo, acc, g);
}

// The largest v over the warp (GPU; the host runs one group at a time: v).
CR_HD int crc_warp_max(int v) {
#ifdef __CUDA_ARCH__
  CR_UNROLL
  for (int off = 16; off > 0; off >>= 1) {
    const int o = __shfl_xor_sync(0xffffffffu, v, off);
    v = o > v ? o : v;
  }
#endif
  return v;
}

// Bucket products (bucket_prod_kbody of bigint.cuh, for multiexp.py): item idx multiplies the
// len[idx] values base[rows[start[idx] + i]] (Montgomery form) into out. The groups of a warp
// all run the warp's longest bucket (every shuffle needs the whole warp); past its own end a
// group multiplies by one_m = R mod m, which leaves its product as it is.
template <int N, int TPI>
CR_HD void coop_bucket_prod_kbody(cr_idx idx, const CrGroup& g, uint64_t* out, int ldo,
                                  const uint64_t* base, int ldb, const int32_t* rows,
                                  const cr_idx* start, const int32_t* len, const uint64_t* m,
                                  uint32_t minv, const uint64_t* one_m) {
  constexpr int S = N / TPI, NS = crc_slots(TPI);
  uint64_t acc[NS][S / 2], y[NS][S / 2], mm[NS][S / 2];
  const int32_t* r = rows + start[idx];
  const int n = len[idx];
  const int steps = crc_warp_max(n);
  crc_load<N, TPI>(mm, m, 1, g);
  crc_load<N, TPI>(acc, base + r[0], ldb, g);
  CR_NOUNROLL
  for (int i = 1; i < steps; i++) {
    const bool in = i < n;
    crc_load<N, TPI>(y, in ? base + r[i] : one_m, in ? ldb : 1, g);
    coop_mont_mul<N, TPI>(acc, acc, y, mm, minv, g);
  }
  crc_store<N, TPI>(out + idx, ldo, acc, g);
}

// Fixed-base comb (fixed_base_kbody of bigint.cuh): out = g^e * mulin mod m, table entry
// (i, d) = g^(d 2^(w i)) R mod m contiguous at table + (i 2^w + d) W; no squarings.
template <int N, int TPI>
CR_HD void coop_fixed_base_kbody(cr_idx idx, const CrGroup& g, uint64_t* out, int ldo,
                                 const uint32_t* e, int lde, int se, int elimbs, int nwin, int w,
                                 const uint64_t* table, const uint64_t* m, uint32_t minv,
                                 const uint64_t* mulin, int ldmi, int smi) {
  constexpr int S = N / TPI, NS = crc_slots(TPI), W = N / 2;
  uint64_t acc[NS][S / 2], y[NS][S / 2], mm[NS][S / 2];
  const uint32_t* ex = e + idx * se;
  const cr_idx nt = (cr_idx)1 << w;
  crc_load<N, TPI>(mm, m, 1, g);
  crc_load<N, TPI>(acc, table + (cr_idx)exp_digit(ex, lde, elimbs, 0, w) * W, 1, g);
  CR_NOUNROLL
  for (int win = 1; win <= nwin; win++) {  // the last step multiplies by mulin
    if (win < nwin)
      crc_load<N, TPI>(y, table + ((cr_idx)win * nt + exp_digit(ex, lde, elimbs, win, w)) * W, 1, g);
    else
      crc_load<N, TPI>(y, mulin + idx * smi, ldmi, g);
    coop_mont_mul<N, TPI>(acc, acc, y, mm, minv, g);
  }
  crc_store<N, TPI>(out + idx, ldo, acc, g);
}
