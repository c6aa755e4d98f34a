// cipherray: Montgomery multiplication and squaring on the fp64 units (variants "f64*",
// -DCR_F64; -DCR_F64_ROWS=2: two rows per pass; -DCR_F64_SQR=K: f52_mont_sqr with K blocks).
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

// Column constants ("biases"): how many lo and hi halves landed in a column. Product rows in
// K blocks [s_b, e_b) of the L limbs (the squaring, f52_mont_sqr below; K = 1 is mont_mul's
// full rows). lo halves of product rows landing in column c (absolute): rows i of block b
// with s_b <= c - i < L. The hi halves in column c are those of column c - 1.
template <int L, int K>
CR_HD constexpr int f52_prod_terms(int c) {
  int n = 0;
  for (int b = 0; b < K; b++) {
    const int s = b * L / K, e = (b + 1) * L / K;
    const int lo = s > c - L + 1 ? s : c - L + 1;
    const int hi = e < c - s + 1 ? e : c - s + 1;
    n += hi > lo ? hi - lo : 0;
  }
  return n;
}

// reduction rows r < L with 0 <= c - r < L (their lo halves in column c)
template <int L>
CR_HD constexpr int f52_red_terms(int c) {
  const int lo = c - L + 1 > 0 ? c - L + 1 : 0;
  const int hi = c < L - 1 ? c : L - 1;
  return hi >= lo ? hi - lo + 1 : 0;
}

// constants in column c (absolute) once all rows are in (K = 1: mont_mul)
template <int L, int K>
CR_HD constexpr uint64_t f52_final_bias(int c) {
  return (uint64_t)(f52_prod_terms<L, K>(c) + f52_red_terms<L>(c)) * CR_F52_BL +
         (uint64_t)(f52_prod_terms<L, K>(c - 1) + f52_red_terms<L>(c - 1)) * CR_F52_BH;
}

// Constants in column r (absolute) at its digit: product lo / hi halves so far, r + 1
// reduction lo halves (row r's u m_0 included), r reduction hi halves. K = 0: mont_mul's rows,
// in closed form (the count for K = 1: r + 1 and r product halves, r B + 2 BL); K > 0: the
// squaring's K blocks.
template <int L, int K>
CR_HD uint64_t f52_digit_bias(int r) {
  if constexpr (K == 0) {
    return (uint64_t)r * CR_F52_ROW_BIAS + 2 * CR_F52_BL;
  } else {
    return (uint64_t)(f52_prod_terms<L, K>(r) + r + 1) * CR_F52_BL +
           (uint64_t)(f52_prod_terms<L, K>(r - 1) + r) * CR_F52_BH;
  }
}

// One row: acc = (acc + a_(>= S) b_r + u m) / 2^52, a_(>= S) = sum_(k >= S) a_k 2^(52 k) (S = 0
// in mont_mul; the squaring's blocks start later). Column k - 1 of the result is built from
// the low halves of products k and the high halves of products k - 1. bias: the constants
// in column 0 with u m_0's low half (f52_digit_bias); the carry out of column 0 is taken
// without them. The bounds on k are template constants: after unrolling, the products below
// S are simply absent.
template <int L, int AS, int S, int K>
CR_HD void f52_row(uint64_t* acc, const double* A, const double* M, double br, uint64_t minv,
                   int r) {
  uint64_t t0 = acc[0], h1 = 0;
  if constexpr (S == 0) {
    const F52Prod p0 = f52_mul(A[0], br);
    t0 += p0.lo;
    h1 = p0.hi;
  }
  const F52Digit d = f52_reduce(t0, M[0], minv, f52_digit_bias<L, K>(r));
  const double u = d.u;
  h1 += d.carry;         // high halves of products k - 1 (a b_r)
  uint64_t h2 = d.q.hi;  // and (u m)
  CR_UNROLL
  for (int k = 1; k < L; k++) {
    const F52Prod q = f52_mul(M[k], u);
    if (k >= S) {
      const F52Prod p = f52_mul(A[k * AS], br);
      // five terms: two 3-input 64-bit adds (IADD3 pairs) on the GPU
      acc[k - 1] = acc[k] + p.lo + q.lo + h1 + h2;
      h1 = p.hi;
    } else {
      acc[k - 1] = acc[k] + q.lo + h1 + h2;
      h1 = 0;
    }
    h2 = q.hi;
  }
  acc[L - 1] = h1 + h2;
}

// Two rows (r, r + 1) in one pass: every a_k and m_k loaded once for four products. Column
// k - 2 of the result takes products k of row r (low halves) and k - 1 (high halves), and
// products k - 1 of row r + 1 (low) and k - 2 (high). bias0, bias1: the constants of columns
// 0 and 1 at their digits (see f52_row). Needs r + 1 < L.
template <int L, int AS, int S, int K>
CR_HD void f52_row2(uint64_t* acc, const double* A, const double* M, double b0, double b1,
                    uint64_t minv, int r) {
  // column 0: row r's digit
  const double a0 = A[0], m0 = M[0];
  uint64_t t0 = acc[0], hp0 = 0;
  if constexpr (S == 0) {
    const F52Prod p0 = f52_mul(a0, b0);
    t0 += p0.lo;
    hp0 = p0.hi;
  }
  const F52Digit d0 = f52_reduce(t0, m0, minv, f52_digit_bias<L, K>(r));
  const double u0 = d0.u;
  // column 1: row r + 1's digit
  const double a1 = A[AS], m1 = M[1];
  uint64_t t1, hp1 = 0, hs0 = 0;
  const F52Prod q1 = f52_mul(m1, u0);
  if constexpr (S == 0) {
    const F52Prod p1 = f52_mul(a1, b0), s0 = f52_mul(a0, b1);
    t1 = acc[1] + p1.lo + q1.lo + hp0 + d0.q.hi + d0.carry + s0.lo;
    hp1 = p1.hi;
    hs0 = s0.hi;
  } else if constexpr (S == 1) {
    const F52Prod p1 = f52_mul(a1, b0);
    t1 = acc[1] + p1.lo + q1.lo + d0.q.hi + d0.carry;
    hp1 = p1.hi;
  } else {
    t1 = acc[1] + q1.lo + d0.q.hi + d0.carry;
  }
  const F52Digit d1 = f52_reduce(t1, m0, minv, f52_digit_bias<L, K>(r + 1));
  const double u1 = d1.u;
  uint64_t h1 = hp1 + d1.carry, h2 = q1.hi;  // row r, products k - 1
  uint64_t g1 = hs0, g2 = d1.q.hi;           // row r + 1, products k - 2
  double ap = a1, mp = m1;                   // a_(k-1), m_(k-1)
  CR_UNROLL
  for (int k = 2; k < L; k++) {
    const double ak = A[k * AS], mk = M[k];
    const F52Prod q = f52_mul(mk, u0), v = f52_mul(mp, u1);
    const F52Prod p = k >= S ? f52_mul(ak, b0) : F52Prod{0, 0};
    const F52Prod s = k - 1 >= S ? f52_mul(ap, b1) : F52Prod{0, 0};
    // nine terms: four IADD3 pairs (the absent products add constant zeros)
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

// The shared-memory column of one operand (x: `a`, or 2a for a squaring) and the per-warp row
// of m, as doubles. GPU: X is this thread's column of a shared block (stride AS =
// CR_MM_BLOCK), M a per-warp shared row; host: local arrays (AS = 1). The shared blocks are
// static variables of one function per limb count, so that a kernel calling both mont_mul
// and f52_mont_sqr holds them once (twice is over the 48 KB limit).
#ifdef __CUDA_ARCH__
template <int L>
__device__ __forceinline__ double* f52_smem_x() {
  __shared__ double s[L * CR_MM_BLOCK];
  return s;
}
template <int L>
__device__ __forceinline__ double* f52_smem_m() {
  __shared__ double s[(CR_MM_BLOCK / 32) * L];
  return s;
}
#define CR_F52_OPERANDS(L)                                \
  double* X = f52_smem_x<L>() + threadIdx.x;              \
  constexpr int AS = CR_MM_BLOCK;                         \
  double* M = f52_smem_m<L>() + (threadIdx.x >> 5) * (L); \
  const unsigned lanes = __activemask();
#define CR_F52_SYNC() __syncwarp(lanes)
#else
#define CR_F52_OPERANDS(L) \
  double X[L], M[L];       \
  constexpr int AS = 1;
#define CR_F52_SYNC()
#endif

// Remove the biases (K = 0: mont_mul's; K > 0: those of f52_mont_sqr with K blocks), normalise
// to 52-bit limbs (the value t is < 2m < 2^(52 L): no carry out of the top) and find the
// borrow of t - m; then subtract m unless t < m (branch-free) and write the words. m's limbs
// come back from the doubles in M.
template <int N, int L, int K>
CR_HD void f52_finish(uint64_t* acc, const double* M, uint64_t* out, int ldo);

// The operands as doubles: X = a (TWICE: 2a, in 52-bit limbs: the top bit of each limb moves
// into the next one), M = m; returns -m^-1 mod 2^52.
template <int N, int AS, bool TWICE>
CR_HD uint64_t f52_load(double* X, double* M, const uint64_t* a, int lda, const uint64_t* m) {
  uint64_t carry = 0;
  CR_NOUNROLL
  for (int k = 0; k < F52<N>::L; k++) {
    const uint64_t ak = f52_limb<N>(a, lda, k);
    X[k * AS] = f52_double(TWICE ? ((ak << 1) & CR_F52_MASK) | carry : ak);
    carry = ak >> 51;
    M[k] = f52_double(f52_limb<N>(m, 1, k));
  }
  return f52_minv(f52_limb<N>(m, 1, 0));
}

// out = a * b * 2^(-52 L) mod m, fully reduced for a, b < m (out may alias a or b).
// The accumulator (L uint64 columns) is in registers.
template <int N>
CR_HD_NOINLINE void mont_mul(uint64_t* out, int ldo, const uint64_t* a, int lda,
                             const uint64_t* b, int ldb, const uint64_t* __restrict__ m,
                             uint32_t /* minv: the 32-bit digit of the other variants */) {
  constexpr int L = F52<N>::L;
  CR_F52_OPERANDS(L)
  double* A = X;
  const uint64_t minv = f52_load<N, AS, false>(A, M, a, lda, m);
  CR_F52_SYNC();
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
      f52_row2<L, AS, 0, 0>(acc, A + z, M + z, b0, b1, minv, r);
    }
  }
  CR_NOUNROLL
  for (; r < L; r++) {
    const uint32_t z = cr_opaque_zero();
    const double b0 = f52_double(bn0);
    bn0 = bn1;
    bn1 = f52_limb<N>(b, ldb, r + 2);
    f52_row<L, AS, 0, 0>(acc, A + z, M + z, b0, minv, r);
  }
  f52_finish<N, L, 0>(acc, M + cr_opaque_zero(), out, ldo);
  CR_F52_SYNC();  // no lane rewrites M (next call) while another still reads it
}

// Squaring (mont_sqr uses it in the builds with CR_F64_SQR = K > 0: variants "f64s",
// "f64x2s"). A square needs each cross product a_i a_j (i != j) once, doubled. Split the
// limbs into K blocks [s_b, e_b). Row i of block b multiplies a_i by
//   D = a_(s_b .. e_b - 1) | 2 a_(e_b .. L - 1)
// (its own block as is, the blocks above doubled), over columns j >= s_b only. Summed over
// all rows, every product within a block comes once per order and every product across
// blocks once, doubled: a^2. The doubled limbs come from B = 2a in 52-bit limbs (B_j =
// 2 a_j mod 2^52 + t_(j-1), t_j = bit 51 of a_j); sum_(j >= e) B_j 2^(52 j) is 2 sum_(j >= e)
// a_j 2^(52 j) once B_e's low bit (t_(e-1)) is cleared. Entering block b turns its limbs of
// the shared column from B_j into a_j = B_j / 2 + t_j 2^51 (t_j: the low bit of B_(j+1)) and
// clears B_(e_b)'s low bit. Every row keeps the fixed shape of mont_mul's rows (no per-row
// bounds: the bounds are template constants), with (L - s_b) + L products instead of 2 L:
// K = 4 saves 19% of a 4096-bit squaring's products, K = 8 22% (each block is one more
// unrolled copy of the row). Needs 52 L > 32 N (then t_(L-1) = 0).

// Block b of the square: convert its limbs, then its rows; then the next block.
template <int L, int AS, int K, int b>
CR_HD void f52_sq_blocks(uint64_t* acc, double* D, const double* M, uint64_t minv) {
  constexpr int s = b * L / K, e = (b + 1) * L / K;
  {
    double* Dz = D + cr_opaque_zero();
    CR_NOUNROLL
    for (int j = s; j < e; j++) {
      const uint64_t bj = f52_int(Dz[j * AS]);
      const uint64_t t = j + 1 < L ? f52_int(Dz[(j + 1) * AS]) & 1 : 0;
      Dz[j * AS] = f52_double((bj >> 1) | (t << 51));
    }
    if (e < L) Dz[e * AS] = f52_double(f52_int(Dz[e * AS]) & ~(uint64_t)1);
  }
  int r = s;
  if constexpr (CR_F64_ROWS == 2) {
    CR_NOUNROLL
    for (; r + 1 < e; r += 2) {
      const uint32_t z = cr_opaque_zero();
      const double* Dr = D + z;
      f52_row2<L, AS, s, K>(acc, Dr, M + z, Dr[r * AS], Dr[(r + 1) * AS], minv, r);
    }
  }
  CR_NOUNROLL
  for (; r < e; r++) {
    const uint32_t z = cr_opaque_zero();
    const double* Dr = D + z;
    f52_row<L, AS, s, K>(acc, Dr, M + z, Dr[r * AS], minv, r);
  }
  if constexpr (b + 1 < K) f52_sq_blocks<L, AS, K, b + 1>(acc, D, M, minv);
}

// out = a^2 * 2^(-52 L) mod m, fully reduced for a < m (out may alias a); K blocks.
template <int N, int K>
CR_HD_NOINLINE void f52_mont_sqr(uint64_t* out, int ldo, const uint64_t* a, int lda,
                                 const uint64_t* __restrict__ m) {
  constexpr int L = F52<N>::L;
  static_assert(52 * L > 32 * N, "f52_mont_sqr needs a spare top bit in the 52-bit limbs");
  static_assert(K >= 1 && K <= L, "f52_mont_sqr: 1 <= K <= L blocks");
  CR_F52_OPERANDS(L)
  double* D = X;  // B = 2a, then block by block as described above
  const uint64_t minv = f52_load<N, AS, true>(D, M, a, lda, m);
  CR_F52_SYNC();
  uint64_t acc[L];
  CR_UNROLL
  for (int k = 0; k < L; k++) acc[k] = 0;
  f52_sq_blocks<L, AS, K, 0>(acc, D, M, minv);
  f52_finish<N, L, K>(acc, M + cr_opaque_zero(), out, ldo);
  CR_F52_SYNC();
}

template <int N, int L, int K>
CR_HD void f52_finish(uint64_t* acc, const double* Mr, uint64_t* out, int ldo) {
  uint64_t c = 0;
  uint64_t br = 0;
  CR_UNROLL
  for (int j = 0; j < L; j++) {
    const uint64_t bias = f52_final_bias<L, (K ? K : 1)>(L + j);
    const uint64_t v = acc[j] - bias + c;
    acc[j] = v & CR_F52_MASK;
    c = v >> 52;
    br = (acc[j] - f52_int(Mr[j]) - br) >> 63;
  }
  const uint64_t keep = (br != 0) ? CR_F52_MASK : 0;  // t < m: keep t
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
}
