// cipherray: Montgomery multiplication on the fp64 units (variant "f64", -DCR_F64).
//
// The 32-bit-limb kernels (bigint.cuh) run on the integer multiply pipe as carry chains (each
// madc waits for the previous carry). Here a 52 x 52-bit product costs the fp64 pipe (64 lanes
// per SM on H100/H200) two FMAs and one add, the products of a row are independent of each
// other, and the same modular multiplication needs (32/52)^2 = 0.38 times as many of them
// (the idea of Emmart, Zheng and Weems, "Faster modular exponentiation using double precision
// floating point arithmetic on the GPU", ARITH 2018; this is our own code).
//
// Numbers stay in the word layout of bigint.cuh (N 32-bit limbs as N/2 uint64 words) in
// memory; inside mont_mul they are L = ceil(32 N / 52) limbs of 52 bits held exactly in
// doubles. Montgomery radix R = 2^(52 L) (not 2^(32 N): bigint.py's mont_r_bits).
//
// Product of two limbs x, y < 2^52 (both exact integers in doubles):
//   hi = fma_rz(x, y, 2^104)            = 2^104 + H 2^52, H = floor(x y / 2^52)
//   lo = fma(x, y, (2^104 + 2^52) - hi) = 2^52 + (x y - H 2^52)     (exact: < 2^53)
// and the bit patterns of hi and lo, read as integers, are H and x y mod 2^52 plus the
// constants BH and BL (their exponent fields). Columns are summed as uint64 bit patterns; the
// constants are multiples of 2^52 and are taken out where a column is read (the reduction
// digit, the carry out of column 0, the final normalisation), so no instruction is spent
// removing them per product.
//
// The host build computes fma_rz's value from an exact 128-bit integer product (the host has no
// per-instruction rounding mode; tests/test_kernel_f64_rounding.py checks the emulation against
// the CPU's FMA under FE_TOWARDZERO); everything else is the same code.
#pragma once
#include "common.cuh"

#ifndef __CUDA_ARCH__
#include <math.h>
#include <string.h>
#endif

#define CR_F52_MASK 0xFFFFFFFFFFFFFull
#define CR_F52_BL 0x4330000000000000ull  // bit pattern of 2^52
#define CR_F52_BH 0x4670000000000000ull  // bit pattern of 2^104

template <int N>
struct F52 {
  static constexpr int L = (32 * N + 51) / 52;  // 52-bit limbs of an N-limb number
};

CR_HD uint64_t f52_bits(double x) {
#ifdef __CUDA_ARCH__
  return (uint64_t)__double_as_longlong(x);
#else
  uint64_t u;
  memcpy(&u, &x, sizeof u);
  return u;
#endif
}

CR_HD double f52_from_bits(uint64_t u) {
#ifdef __CUDA_ARCH__
  return __longlong_as_double((long long)u);
#else
  double x;
  memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// integer v < 2^52 -> the double with that value (exact)
CR_HD double f52_double(uint64_t v) { return f52_from_bits(CR_F52_BL | v) - 0x1p52; }

// integer-valued double 0 <= x < 2^52 -> its value (exact)
CR_HD uint64_t f52_int(double x) { return f52_bits(x + 0x1p52) - CR_F52_BL; }

// 2^104 + floor(x y / 2^52) 2^52 for integers 0 <= x, y < 2^52.
CR_HD double f52_hi(double x, double y) {
#ifdef __CUDA_ARCH__
  return __fma_rz(x, y, 0x1p104);
#else
  const unsigned __int128 p = (unsigned __int128)(uint64_t)x * (uint64_t)y;
  return f52_from_bits(CR_F52_BH + (uint64_t)(p >> 52));
#endif
}

// 2^52 + (x y mod 2^52), given hi = f52_hi(x, y). (2^104 + 2^52) - hi = (1 - H) 2^52 is exact,
// and so is the sum, which lies in [2^52, 2^53).
CR_HD double f52_lo(double x, double y, double hi) { return fma(x, y, (0x1p104 + 0x1p52) - hi); }

// 52-bit limb k (bits [52 k, 52 k + 52)) of an N-limb number in word layout.
template <int N>
CR_HD uint64_t f52_limb(const uint64_t* w, int ld, int k) {
  const int W = N / 2;
  const int pos = 52 * k, wi = pos >> 6, o = pos & 63;
  uint64_t v = wi < W ? w[(cr_idx)wi * ld] >> o : 0;
  if (o > 12 && wi + 1 < W) v |= w[(cr_idx)(wi + 1) * ld] << (64 - o);
  return v & CR_F52_MASK;
}

// -m^-1 mod 2^52 for odd m0 (Newton: correct bits 3, 6, 12, 24, 48, 96).
CR_HD uint64_t f52_minv(uint64_t m0) {
  uint64_t x = m0;
  for (int i = 0; i < 5; i++) x *= 2 - m0 * x;
  return (0 - x) & CR_F52_MASK;
}

#ifndef CR_F64_ROWS
#define CR_F64_ROWS 1  // rows of b per pass over a and m (1 or 2; variant "f64x2" = 2)
#endif

// A product's two halves as bit patterns: hi = BH + H, lo = BL + (x y mod 2^52).
struct F52Prod {
  uint64_t hi, lo;
};

CR_HD F52Prod f52_mul(double x, double y) {
  const double h = f52_hi(x, y);
  return {f52_bits(h), f52_bits(f52_lo(x, y, h))};
}

constexpr uint64_t CR_F52_ROW_BIAS = 2 * CR_F52_BL + 2 * CR_F52_BH;  // one row, one column

// The reduction step of the column about to be shifted out. t: its sum without u m_0; bias:
// the constants in t + lo(u m_0) (multiples of 2^52, so they do not change the digit).
// u = t (-m^-1) mod 2^52, q = u m_0, carry = (t + lo(q) - bias) / 2^52 (exact).
struct F52Digit {
  double u;
  F52Prod q;
  uint64_t carry;
};

CR_HD F52Digit f52_reduce(uint64_t t, double m0, uint64_t minv, uint64_t bias) {
  const double u = f52_double(((t & CR_F52_MASK) * minv) & CR_F52_MASK);
  const F52Prod q = f52_mul(m0, u);
  return {u, q, (uint64_t)((int64_t)(t + q.lo - bias) >> 52)};
}

// One row: acc = (acc + a b_r + u m) / 2^52 after r rows. Column k - 1 of the result is built
// from the low halves of products k and the high halves of products k - 1. acc[0] carries the
// bias r B (B = CR_F52_ROW_BIAS) here; the carry out of column 0 is taken without it.
template <int L, int AS>
CR_HD void f52_row(uint64_t* acc, const double* A, const double* M, double br, uint64_t minv,
                   int r) {
  const F52Prod p0 = f52_mul(A[0], br);
  const F52Digit d = f52_reduce(acc[0] + p0.lo, M[0], minv,
                                (uint64_t)r * CR_F52_ROW_BIAS + 2 * CR_F52_BL);
  const double u = d.u;
  uint64_t h1 = p0.hi + d.carry, h2 = d.q.hi;  // high halves of products k - 1
  CR_UNROLL
  for (int k = 1; k < L; k++) {
    const F52Prod p = f52_mul(A[k * AS], br), q = f52_mul(M[k], u);
    // five terms: two 3-input 64-bit adds (IADD3 pairs) on the GPU
    acc[k - 1] = acc[k] + p.lo + q.lo + h1 + h2;
    h1 = p.hi;
    h2 = q.hi;
  }
  acc[L - 1] = h1 + h2;
}

// Two rows (r, r + 1) in one pass: every a_k and m_k loaded once for four products. Column
// k - 2 of the result takes products k of row r (low halves) and k - 1 (high halves), and
// products k - 1 of row r + 1 (low) and k - 2 (high). Needs r + 1 < L.
template <int L, int AS>
CR_HD void f52_row2(uint64_t* acc, const double* A, const double* M, double b0, double b1,
                    uint64_t minv, int r) {
  constexpr uint64_t B = CR_F52_ROW_BIAS;
  // column 0: row r's digit
  const double a0 = A[0], m0 = M[0];
  const F52Prod p0 = f52_mul(a0, b0);
  const F52Digit d0 = f52_reduce(acc[0] + p0.lo, m0, minv, (uint64_t)r * B + 2 * CR_F52_BL);
  const double u0 = d0.u;
  // column 1: row r + 1's digit (bias r B of acc[1], plus 4 low and 2 high halves)
  const double a1 = A[AS], m1 = M[1];
  const F52Prod p1 = f52_mul(a1, b0), q1 = f52_mul(m1, u0), s0 = f52_mul(a0, b1);
  const F52Digit d1 = f52_reduce(acc[1] + p1.lo + q1.lo + p0.hi + d0.q.hi + d0.carry + s0.lo,
                                 m0, minv, (uint64_t)r * B + B + 2 * CR_F52_BL);
  const double u1 = d1.u;
  uint64_t h1 = p1.hi + d1.carry, h2 = q1.hi;  // row r, products k - 1
  uint64_t g1 = s0.hi, g2 = d1.q.hi;           // row r + 1, products k - 2
  double ap = a1, mp = m1;               // a_(k-1), m_(k-1)
  CR_UNROLL
  for (int k = 2; k < L; k++) {
    const double ak = A[k * AS], mk = M[k];
    const F52Prod p = f52_mul(ak, b0), q = f52_mul(mk, u0);
    const F52Prod s = f52_mul(ap, b1), v = f52_mul(mp, u1);
    // nine terms: four IADD3 pairs
    acc[k - 2] = acc[k] + p.lo + q.lo + s.lo + v.lo + h1 + h2 + g1 + g2;
    h1 = p.hi;
    h2 = q.hi;
    g1 = s.hi;
    g2 = v.hi;
    ap = ak;
    mp = mk;
  }
  const F52Prod s = f52_mul(ap, b1), v = f52_mul(mp, u1);
  acc[L - 2] = s.lo + v.lo + h1 + h2 + g1 + g2;
  acc[L - 1] = s.hi + v.hi;
}

// out = a * b * 2^(-52 L) mod m, fully reduced for a, b < m (out may alias a or b).
// GPU: a (as doubles) sits in this thread's column of a shared block, m (as doubles) in a
// per-warp shared row; the accumulator (L uint64) is in registers.
template <int N>
CR_HD_NOINLINE void mont_mul(uint64_t* out, int ldo, const uint64_t* a, int lda,
                             const uint64_t* b, int ldb, const uint64_t* __restrict__ m,
                             uint32_t /* minv: the 32-bit digit of the other variants */) {
  constexpr int L = F52<N>::L;
  constexpr uint64_t B = CR_F52_ROW_BIAS;
#ifdef __CUDA_ARCH__
  __shared__ double s_a[L * CR_MM_BLOCK];
  __shared__ double s_m[CR_MM_BLOCK / 32][L];
  double* A = s_a + threadIdx.x;
  constexpr int AS = CR_MM_BLOCK;
  double* M = s_m[threadIdx.x >> 5];
  const unsigned lanes = __activemask();
#else
  double A[L], M[L];
  constexpr int AS = 1;
#endif
  CR_NOUNROLL
  for (int k = 0; k < L; k++) {
    A[k * AS] = f52_double(f52_limb<N>(a, lda, k));
    M[k] = f52_double(f52_limb<N>(m, 1, k));
  }
#ifdef __CUDA_ARCH__
  __syncwarp(lanes);
#endif
  const uint64_t minv = f52_minv(f52_limb<N>(m, 1, 0));
  uint64_t acc[L];
  CR_UNROLL
  for (int k = 0; k < L; k++) acc[k] = 0;
  // A and M are re-derived every pass (cr_opaque_zero): otherwise ptxas hoists the loads of
  // later passes and spills the accumulator (sm_90, N = 128: 2 KB of spills; none like this).
  // b's limbs are loaded one pass ahead (bn0, bn1: limbs r, r + 1), so that a pass does not
  // start by waiting on a global load; limbs past the top read as 0 without a load.
  int r = 0;
  uint64_t bn0 = f52_limb<N>(b, ldb, 0), bn1 = f52_limb<N>(b, ldb, 1);
  if constexpr (CR_F64_ROWS == 2) {
    CR_NOUNROLL
    for (; r + 1 < L; r += 2) {
      const uint32_t z = cr_opaque_zero();
      const double b0 = f52_double(bn0), b1 = f52_double(bn1);
      bn0 = f52_limb<N>(b, ldb, r + 2);
      bn1 = f52_limb<N>(b, ldb, r + 3);
      f52_row2<L, AS>(acc, A + z, M + z, b0, b1, minv, r);
    }
  }
  CR_NOUNROLL
  for (; r < L; r++) {
    const uint32_t z = cr_opaque_zero();
    const double b0 = f52_double(bn0);
    bn0 = bn1;
    bn1 = f52_limb<N>(b, ldb, r + 2);
    f52_row<L, AS>(acc, A + z, M + z, b0, minv, r);
  }
  // Remove the biases (column j went through L - 1 - j full rows and one top-column row),
  // normalise to 52-bit limbs (the value t is < 2m < 2^(52 L): no carry out of the top) and
  // find the borrow of t - m; then subtract m unless t < m (branch-free). m's limbs come
  // back from the doubles in M.
  const double* Mr = M + cr_opaque_zero();
  uint64_t c = 0, br = 0;
  CR_UNROLL
  for (int j = 0; j < L; j++) {
    const uint64_t v = acc[j] - ((uint64_t)(L - 1 - j) * B + 2 * CR_F52_BH) + c;
    acc[j] = v & CR_F52_MASK;
    c = v >> 52;
    br = (acc[j] - f52_int(Mr[j]) - br) >> 63;
  }
  const uint64_t keep = (br != 0) ? CR_F52_MASK : 0;  // t < m: keep t
  Mr = M + cr_opaque_zero();
  br = 0;
  CR_UNROLL
  for (int j = 0; j < L; j++) {
    const uint64_t d = acc[j] - (f52_int(Mr[j]) & ~keep) - br;
    acc[j] = d & CR_F52_MASK;
    br = d >> 63;
    // words complete once limb j is final: at most one more per limb (52 < 64), the last one
    // at j = L - 1; written at once so that the limbs below it can die. All indices are
    // compile-time after unrolling (no loop-carried word counter: that kept ptxas from
    // unrolling this loop in the two-row build and put acc in local memory).
    constexpr int W = N / 2;
    const int c1 = j == L - 1 ? W : ((52 * (j + 1)) / 64 < W ? (52 * (j + 1)) / 64 : W);
    const int c0 = j == 0 ? 0 : ((52 * j) / 64 < W ? (52 * j) / 64 : W);
    if (c1 > c0) {
      const int k0 = (64 * c0) / 52, o = 64 * c0 - 52 * k0;
      uint64_t v = acc[k0] >> o;
      CR_UNROLL
      for (int t = 1; t <= 2; t++)
        if (k0 + t <= j && 52 * t - o < 64) v |= acc[k0 + t] << (52 * t - o);
      out[(cr_idx)c0 * ldo] = v;
    }
  }
#ifdef __CUDA_ARCH__
  __syncwarp(lanes);  // no lane rewrites M (next call) while another still reads it
#endif
}
