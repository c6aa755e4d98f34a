// cipherray: Montgomery multiplication on the fp64 units (variant "f64", -DCR_F64).
//
// The 32-bit-limb kernels (bigint.cuh) run on the integer multiply pipe. On H100/H200 the
// fp64 pipe has the same lane count and a 52 x 52-bit product costs it two FMAs and one add,
// so the same modular multiplication needs (32/52)^2 = 0.38 times as many products, each on a
// pipe the integer kernel leaves idle (the idea of Emmart, Zheng and Weems, "Faster modular
// exponentiation using double precision floating point arithmetic on the GPU", ARITH 2018;
// this is our own code).
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
// per-instruction rounding mode); everything else is the same code.
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

// out = a * b * 2^(-52 L) mod m, fully reduced for a, b < m (out may alias a or b).
// GPU: a (as doubles) sits in this thread's column of a shared block, m (as doubles) in a
// per-warp shared row; the accumulator (L uint64) is in registers.
template <int N>
CR_HD_NOINLINE void mont_mul(uint64_t* out, int ldo, const uint64_t* a, int lda,
                             const uint64_t* b, int ldb, const uint64_t* __restrict__ m,
                             uint32_t /* minv: the 32-bit digit of the other variants */) {
  constexpr int L = F52<N>::L;
  constexpr uint64_t B = 2 * CR_F52_BL + 2 * CR_F52_BH;  // bias one row adds to a column
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
  // Row r: acc = (acc + a * b_r + u * m) / 2^52, with column k - 1 of the result built from
  // the low halves of products k and the high halves of products k - 1.
  CR_NOUNROLL
  for (int r = 0; r < L; r++) {
    const double br = f52_double(f52_limb<N>(b, ldb, r));
    const double a0 = A[0];
    const double ha = f52_hi(a0, br);
    uint64_t t0 = acc[0] + f52_bits(f52_lo(a0, br, ha));
    const double u = f52_double(((t0 & CR_F52_MASK) * minv) & CR_F52_MASK);
    const double m0 = M[0];
    const double hm = f52_hi(m0, u);
    t0 += f52_bits(f52_lo(m0, u, hm));
    // t0 = r B (bias of column 0 after r rows) + 2 BL + a multiple of 2^52
    const uint64_t carry = (uint64_t)((int64_t)(t0 - ((uint64_t)r * B + 2 * CR_F52_BL)) >> 52);
    uint64_t p1 = f52_bits(ha) + carry, p2 = f52_bits(hm);  // high halves of products k - 1
    // re-derived every row (cr_opaque_zero): otherwise ptxas hoists the loads of later rows
    // and spills the accumulator (sm_90: 2 KB of spills at N = 128; none like this)
    const uint32_t z = cr_opaque_zero();
    const double* Ar = A + z;
    const double* Mr = M + z;
    CR_UNROLL
    for (int k = 1; k < L; k++) {
      const double ak = Ar[k * AS], mk = Mr[k];
      const double h1 = f52_hi(ak, br), h2 = f52_hi(mk, u);
      // five terms: two 3-input 64-bit adds (IADD3 pairs) on the GPU
      acc[k - 1] = acc[k] + f52_bits(f52_lo(ak, br, h1)) + f52_bits(f52_lo(mk, u, h2)) + p1 + p2;
      p1 = f52_bits(h1);
      p2 = f52_bits(h2);
    }
    acc[L - 1] = p1 + p2;
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
  int wn = 0;  // next output word; written as soon as its limbs are final
  CR_UNROLL
  for (int j = 0; j < L; j++) {
    const uint64_t d = acc[j] - (f52_int(Mr[j]) & ~keep) - br;
    acc[j] = d & CR_F52_MASK;
    br = d >> 63;
    CR_UNROLL
    for (; wn < N / 2 && (64 * wn + 64 <= 52 * (j + 1) || j == L - 1); wn++) {
      const int k0 = (64 * wn) / 52, o = 64 * wn - 52 * k0;
      uint64_t v = acc[k0] >> o;
      CR_UNROLL
      for (int k = k0 + 1, have = 52 - o; k <= j && have < 64; k++, have += 52) v |= acc[k] << have;
      out[(cr_idx)wn * ldo] = v;
    }
  }
#ifdef __CUDA_ARCH__
  __syncwarp(lanes);  // no lane rewrites M (next call) while another still reads it
#endif
}
