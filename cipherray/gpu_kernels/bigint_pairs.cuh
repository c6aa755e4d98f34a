// cipherray: Montgomery multiplication on aligned limb pairs (variant "pairs"; with the
// squaring at the end of this file, "pairs_sqr").
//
// Why: on sm_80/sm_90 ptxas turns a PTX pair "mad.lo.cc / madc.hi.cc" into one
// IMAD.WIDE.U32.X, whose addend and result are 64-bit register pairs that must start at an even
// register. The "ptx" core adds the products of odd limbs at odd limb positions, so half of its
// pairs straddle two register pairs and ptxas moves registers around them: the SASS of its row
// loop has ~1.7-2 moves (IMAD.MOV, on the same pipe as the products) per limb product
// (bench/results/kernel_static.md).
//
// Here every fused product lands on an aligned pair, and the products that belong at odd
// positions are formed by a plain mul.wide (IMAD.WIDE.U32, no addend) and added with two
// add-with-carry instructions (IADD3.X, the integer ALU pipe). One word of b (two 32-bit rows)
// runs as eight carry chains; x_e / x_o are the even / odd 32-bit limbs of a or m, bl / bh the
// low / high limb of the b word, p the limb position:
//
//   A  t += a_e * bl   at p = 2k      (fused, aligned)
//   B  t += a_o * bl   at p = 2k + 1  (mul.wide + add chain)
//   C  u1 = t[0] * minv;  t += m_e * u1  at p = 2k      (t[0] becomes 0)
//   D  t += m_o * u1   at p = 2k + 1
//   E  t += a_o * bh   at p = 2k + 2  (fused, aligned)
//   F  t += a_e * bh   at p = 2k + 1
//   G  u2 = t[1] * minv;  t += m_e * u2  at p = 2k + 1  (t[1] becomes 0)
//   H  t = (t + m_o * u2 at p = 2k + 2) / 2^64: the fused results written one pair down.
//
// Bounds (m < 2^(32N), a, b < m, t < 2m on entry): after G the sum is below 2^(32N + 66), so t
// has N + 3 limbs (N + 4 allocated, to keep pairs aligned); after H, t < 2m again (CIOS bound).
// Each chain's carry goes only as far up as the bound lets it reach. tests/pairs_model.py
// models these chains in Python and holds inputs (CARRY_VECTORS_256) under which each of those
// top-limb carries is taken; the CPU tests and bench/gpu.py run them.
//
// The host build runs the same chains with the carry flag emulated in a variable, so the CPU
// tests check this exact sequence of operations; the GPU must give the same bits.
#pragma once
#include "common.cuh"
#include "carry_chain.cuh"

// Passes C, D (row 1 of the word, u1 from t[0]) and G, H (row 2, u2 from t[1], then the
// 2^64 shift), shared by the multiplication and the squaring, with their top-limb carries.
#define CRP_REDUCE_ROW1(t, mr, minv)                                                 \
  do {                                                                               \
    const uint32_t u1_ = t[0] * (minv);                                              \
    CRP_FUSED_PASS(t, 0, mr, 1, 0, u1_);                                             \
    CRP_ADDC_CC(t[N], t[N], 0u);                                                     \
    CRP_ADDC(t[N + 1], t[N + 1], 0u);                                                \
    CRP_ODD_PASS(t, mr, 1, 1, u1_);                                                  \
    CRP_ADDC(t[N + 1], t[N + 1], 0u);                                                \
  } while (0)
#define CRP_REDUCE_ROW2(t, mr, minv)                                                 \
  do {                                                                               \
    const uint32_t u2_ = t[1] * (minv);                                              \
    CRP_ODD_PASS(t, mr, 1, 0, u2_);                                                  \
    CRP_ADDC_CC(t[N + 1], t[N + 1], 0u);                                             \
    CRP_ADDC(t[N + 2], t[N + 2], 0u);                                                \
    /* H: pair k + 1 plus m_o[k] * u2, written to pair k (t[0], t[1] are 0, drop out) */ \
    CRP_MADLO_CC(t[0], CRP_LIMB(mr, 1, 0, 1), u2_, t[2]);                            \
    CRP_MADCHI_CC(t[1], CRP_LIMB(mr, 1, 0, 1), u2_, t[3]);                           \
    CR_UNROLL                                                                        \
    for (int k = 1; k < W; k++) {                                                    \
      const uint32_t mk_ = CRP_LIMB(mr, 1, k, 1);                                    \
      CRP_MADCLO_CC(t[2 * k], mk_, u2_, t[2 * k + 2]);                               \
      CRP_MADCHI_CC(t[2 * k + 1], mk_, u2_, t[2 * k + 3]);                           \
    }                                                                                \
    CRP_ADDC(t[N], t[N + 2], 0u);                                                    \
    t[N + 1] = 0;                                                                    \
    t[N + 2] = 0;                                                                    \
  } while (0)

// t (N + 4 limbs) = a * b * 2^(-32 N) mod m, not fully reduced (t < 2m, limbs 0..N).
// ALD > 0: compile-time stride of a (shared-memory column); OPAQUE: re-derive the a / m
// addresses per word of b (see cr_opaque_zero in bigint.cuh).
template <int N, int ALD, bool OPAQUE>
CR_HD void mont_core_pairs(uint32_t* t, const uint64_t* a, int lda_rt, const uint64_t* b,
                           int ldb, const uint64_t* m, uint32_t minv) {
  const int W = N / 2;
  const int lda = ALD > 0 ? ALD : lda_rt;
  CRP_CC_STATE;
  CR_UNROLL
  for (int j = 0; j < N + 4; j++) t[j] = 0;
  CR_NOUNROLL
  for (int ib = 0; ib < W; ib++) {
    const uint64_t bv = b[(cr_idx)ib * ldb];
    const uint32_t bl = (uint32_t)bv, bh = (uint32_t)(bv >> 32);
    const uint32_t z = OPAQUE ? cr_opaque_zero() : 0u;
    const uint64_t* ar = a + z;
    const uint64_t* mr = m + z;
    // A
    CRP_FUSED_PASS(t, 0, ar, lda, 0, bl);
    CRP_ADDC(t[N], t[N], 0u);  // no further: a_e < 2^(32(N-1)), so t < 2^(32N + 2) here
    // B
    CRP_ODD_PASS(t, ar, lda, 1, bl);
    CRP_ADDC(t[N + 1], t[N + 1], 0u);
    // C, D
    CRP_REDUCE_ROW1(t, mr, minv);
    // E
    CRP_FUSED_PASS(t, 1, ar, lda, 1, bh);
    CRP_ADDC(t[N + 2], t[N + 2], 0u);
    // F
    CRP_ODD_PASS(t, ar, lda, 0, bh);
    CRP_ADDC_CC(t[N + 1], t[N + 1], 0u);
    CRP_ADDC(t[N + 2], t[N + 2], 0u);
    // G, H
    CRP_REDUCE_ROW2(t, mr, minv);
  }
}

// Squaring (variant "pairs_sqr": mont_sqr with -DCR_PAIRS_SQR=K). A square needs each cross
// product a_i a_j (i != j) once, doubled. The words of a are split into K blocks [S, E); row
// i of block b multiplies a_i by
//   D = a (words S .. E - 1) | 2 a (words E .. W - 1, carries included, plus the top bit of 2a
//       as word W)
// over the words k >= S only: each product within a block comes once per order, each product
// across blocks once, doubled, which sums to a^2. D lives in this thread's column of a shared
// block (host: a local array), first as 2a; entering block b turns its words back into a
// (a = D / 2, the low bit of the next word giving each word's top bit) and clears the low bit
// of word E, the carry that 2a brought in from below the block. The rows keep the shape of the
// multiplication's (the product passes start at word S, a template constant, and take word W
// too); the reduction passes are unchanged. Bounds: D < 2m, so between words t < 3m (the
// partial sums of a^2 are below 2a 2^(32 i)) and within a word the sum stays below
// 2^(32N + 66): the same top limbs suffice. The result is below 2m because a < m.
#ifdef __CUDA_ARCH__
// One shared column block per limb count for mont_mul's a (N >= CR_SMEM_MIN) and the
// squaring's D, so that a kernel calling both holds it once.
template <int N>
__device__ __forceinline__ uint64_t* crp_smem() {
  __shared__ uint64_t s[(N / 2 + 1) * CR_MM_BLOCK];
  return s;
}
#endif

template <int N, int DLD, int K, int BLK>
CR_HD void crp_sq_blocks(uint32_t* t, uint64_t* d, const uint64_t* m, uint32_t minv) {
  const int W = N / 2;
  constexpr int S = BLK * (N / 2) / K, E = (BLK + 1) * (N / 2) / K;
  CRP_CC_STATE;
  {
    uint64_t* dz = d + cr_opaque_zero();
    CR_NOUNROLL
    for (int k = S; k < E; k++)
      dz[(cr_idx)k * DLD] = (dz[(cr_idx)k * DLD] >> 1) | (dz[(cr_idx)(k + 1) * DLD] << 63);
    dz[(cr_idx)E * DLD] &= ~(uint64_t)1;
  }
  CR_NOUNROLL
  for (int ib = S; ib < E; ib++) {
    const uint32_t z = cr_opaque_zero();
    const uint64_t* dr = d + z;
    const uint64_t* mr = m + z;
    const uint64_t bv = dr[(cr_idx)ib * DLD];  // a's word ib (block b's words of D are a)
    const uint32_t bl = (uint32_t)bv, bh = (uint32_t)(bv >> 32);
    // A: D's even limbs * bl, words S .. W (word W: the top bit of 2a); with B below, the sum
    // stays under 3m + D 2^32 < 2^(32N + 34), so neither carries past t[N + 1]
    CRP_FUSED_RANGE(t, 0, dr, DLD, 0, bl, S, W + 1);
    // B: odd limbs * bl
    CRP_ODD_RANGE(t, dr, DLD, 1, bl, S, W);
    CRP_ADDC(t[N + 1], t[N + 1], 0u);
    CRP_REDUCE_ROW1(t, mr, minv);
    // E: odd limbs * bh, one pair up
    CRP_FUSED_RANGE(t, 1, dr, DLD, 1, bh, S, W);
    CRP_ADDC(t[N + 2], t[N + 2], 0u);
    // F: even limbs * bh at odd positions, up to limb N + 2 (no carry out: the bound)
    CRP_ODD_RANGE(t, dr, DLD, 0, bh, S, W + 1);
    CRP_REDUCE_ROW2(t, mr, minv);
  }
  if constexpr (BLK + 1 < K) crp_sq_blocks<N, DLD, K, BLK + 1>(t, d, m, minv);
}

// out = a^2 * 2^(-32 N) mod m, fully reduced for a < m (out may alias a); K blocks.
template <int N, int K>
CR_HD_NOINLINE void mont_sqr_pairs(uint64_t* out, int ldo, const uint64_t* a, int lda,
                                   const uint64_t* __restrict__ m, uint32_t minv) {
  static_assert(K >= 1 && K <= N / 2, "mont_sqr_pairs: 1 <= K <= N / 2 blocks");
  const int W = N / 2;
#ifdef __CUDA_ARCH__
  uint64_t* d = crp_smem<N>() + threadIdx.x;
  constexpr int DLD = CR_MM_BLOCK;
#else
  uint64_t d[N / 2 + 1];
  constexpr int DLD = 1;
#endif
  uint64_t prev = 0;  // D = 2a, W + 1 words
  for (int k = 0; k < W; k++) {
    const uint64_t v = a[(cr_idx)k * lda];
    d[(cr_idx)k * DLD] = (v << 1) | (prev >> 63);
    prev = v;
  }
  d[(cr_idx)W * DLD] = prev >> 63;
  uint32_t t[N + 4];
  CR_UNROLL
  for (int j = 0; j < N + 4; j++) t[j] = 0;
  crp_sq_blocks<N, DLD, K, 0>(t, d, m, minv);
  mont_finish<N>(out, ldo, t, m);
}
