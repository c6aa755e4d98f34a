// cipherray: Montgomery multiplication on aligned limb pairs (variant "pairs").
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
// Each chain's carry goes only as far up as the bound lets it reach. tests/test_kernel_bigint.py
// has inputs (CARRY_VECTORS_256, found with a Python model of these chains) under which each
// of those top-limb carries is taken, except the one after E.
//
// The host build runs the same chains with the carry flag emulated in a variable, so the CPU
// tests check this exact sequence of operations; the GPU must give the same bits.
#pragma once
#include "common.cuh"

#ifdef __CUDA_ARCH__
#define CRP_CC_STATE
#define CRP_MADLO_CC(d, x, y, c) \
  asm volatile("mad.lo.cc.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(x), "r"(y), "r"(c))
#define CRP_MADCLO_CC(d, x, y, c) \
  asm volatile("madc.lo.cc.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(x), "r"(y), "r"(c))
#define CRP_MADCHI_CC(d, x, y, c) \
  asm volatile("madc.hi.cc.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(x), "r"(y), "r"(c))
#define CRP_ADD_CC(d, x, y) asm volatile("add.cc.u32 %0, %1, %2;" : "=r"(d) : "r"(x), "r"(y))
#define CRP_ADDC_CC(d, x, y) asm volatile("addc.cc.u32 %0, %1, %2;" : "=r"(d) : "r"(x), "r"(y))
#define CRP_ADDC(d, x, y) asm volatile("addc.u32 %0, %1, %2;" : "=r"(d) : "r"(x), "r"(y))
// no carry flag involved: ordinary (reorderable) asm
#define CRP_MULWIDE(lo, hi, x, y)                                                    \
  asm("{\n\t.reg .u64 p;\n\tmul.wide.u32 p, %2, %3;\n\tmov.b64 {%0, %1}, p;\n\t}" \
      : "=r"(lo), "=r"(hi)                                                           \
      : "r"(x), "r"(y))
#else
// Host: the same operations with the carry flag in crp_cf (declared by CRP_CC_STATE).
#define CRP_CC_STATE uint32_t crp_cf = 0
#define CRP_OP_(d, expr)                          \
  do {                                            \
    const uint64_t s_ = (expr);                   \
    crp_cf = (uint32_t)(s_ >> 32);                \
    d = (uint32_t)s_;                             \
  } while (0)
#define CRP_PLO_(x, y) ((uint64_t)(uint32_t)((uint64_t)(x) * (uint64_t)(y)))
#define CRP_PHI_(x, y) (((uint64_t)(x) * (uint64_t)(y)) >> 32)
#define CRP_MADLO_CC(d, x, y, c) CRP_OP_(d, CRP_PLO_(x, y) + (uint64_t)(c))
#define CRP_MADCLO_CC(d, x, y, c) CRP_OP_(d, CRP_PLO_(x, y) + (uint64_t)(c) + crp_cf)
#define CRP_MADCHI_CC(d, x, y, c) CRP_OP_(d, CRP_PHI_(x, y) + (uint64_t)(c) + crp_cf)
#define CRP_ADD_CC(d, x, y) CRP_OP_(d, (uint64_t)(x) + (uint64_t)(y))
#define CRP_ADDC_CC(d, x, y) CRP_OP_(d, (uint64_t)(x) + (uint64_t)(y) + crp_cf)
#define CRP_ADDC(d, x, y) (d = (uint32_t)((uint64_t)(x) + (uint64_t)(y) + crp_cf))
#define CRP_MULWIDE(lo, hi, x, y)                          \
  do {                                                     \
    const uint64_t p_ = (uint64_t)(x) * (uint64_t)(y);     \
    lo = (uint32_t)p_;                                     \
    hi = (uint32_t)(p_ >> 32);                             \
  } while (0)
#endif

// 32-bit limb `h` (0: low, 1: high) of the 64-bit word k of x (stride ld).
#define CRP_LIMB(x, ld, k, h) ((uint32_t)((x)[(cr_idx)(k) * (ld)] >> (32 * (h))))

// t (pairs from limb 2 * P) += x_h * y: the limbs x[2k + h] (k < W) at positions 2k + 2P, each
// product fused onto the aligned pair (t[2k + 2P], t[2k + 2P + 1]). Leaves the carry out of
// position N - 1 + 2P in the flag.
#define CRP_FUSED_PASS(t, P, x, ld, h, y)                                            \
  do {                                                                               \
    CRP_MADLO_CC(t[2 * (P)], CRP_LIMB(x, ld, 0, h), y, t[2 * (P)]);                  \
    CRP_MADCHI_CC(t[2 * (P) + 1], CRP_LIMB(x, ld, 0, h), y, t[2 * (P) + 1]);         \
    CR_UNROLL                                                                        \
    for (int k = 1; k < W; k++) {                                                    \
      const uint32_t xk_ = CRP_LIMB(x, ld, k, h);                                    \
      CRP_MADCLO_CC(t[2 * (k + (P))], xk_, y, t[2 * (k + (P))]);                     \
      CRP_MADCHI_CC(t[2 * (k + (P)) + 1], xk_, y, t[2 * (k + (P)) + 1]);             \
    }                                                                                \
  } while (0)

// t += x_h * y at the odd positions 2k + 1 (k < W): mul.wide, then the product's two halves
// into (t[2k + 1], t[2k + 2]) on one add chain. Leaves the carry out of position N in the flag.
#define CRP_ODD_PASS(t, x, ld, h, y)                                                 \
  do {                                                                               \
    uint32_t pl_, ph_;                                                               \
    CRP_MULWIDE(pl_, ph_, CRP_LIMB(x, ld, 0, h), y);                                 \
    CRP_ADD_CC(t[1], t[1], pl_);                                                     \
    CRP_ADDC_CC(t[2], t[2], ph_);                                                    \
    CR_UNROLL                                                                        \
    for (int k = 1; k < W; k++) {                                                    \
      CRP_MULWIDE(pl_, ph_, CRP_LIMB(x, ld, k, h), y);                               \
      CRP_ADDC_CC(t[2 * k + 1], t[2 * k + 1], pl_);                                  \
      CRP_ADDC_CC(t[2 * k + 2], t[2 * k + 2], ph_);                                  \
    }                                                                                \
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
    // C
    const uint32_t u1 = t[0] * minv;
    CRP_FUSED_PASS(t, 0, mr, 1, 0, u1);
    CRP_ADDC_CC(t[N], t[N], 0u);
    CRP_ADDC(t[N + 1], t[N + 1], 0u);
    // D
    CRP_ODD_PASS(t, mr, 1, 1, u1);
    CRP_ADDC(t[N + 1], t[N + 1], 0u);
    // E
    CRP_FUSED_PASS(t, 1, ar, lda, 1, bh);
    CRP_ADDC(t[N + 2], t[N + 2], 0u);  // by the bound only: no test input found reaches it
    // F
    CRP_ODD_PASS(t, ar, lda, 0, bh);
    CRP_ADDC_CC(t[N + 1], t[N + 1], 0u);
    CRP_ADDC(t[N + 2], t[N + 2], 0u);
    // G
    const uint32_t u2 = t[1] * minv;
    CRP_ODD_PASS(t, mr, 1, 0, u2);
    CRP_ADDC_CC(t[N + 1], t[N + 1], 0u);
    CRP_ADDC(t[N + 2], t[N + 2], 0u);
    // H: pair k + 1 plus m_o[k] * u2, written to pair k (t[0], t[1] are 0 and drop out)
    CRP_MADLO_CC(t[0], CRP_LIMB(mr, 1, 0, 1), u2, t[2]);
    CRP_MADCHI_CC(t[1], CRP_LIMB(mr, 1, 0, 1), u2, t[3]);
    CR_UNROLL
    for (int k = 1; k < W; k++) {
      const uint32_t mk = CRP_LIMB(mr, 1, k, 1);
      CRP_MADCLO_CC(t[2 * k], mk, u2, t[2 * k + 2]);
      CRP_MADCHI_CC(t[2 * k + 1], mk, u2, t[2 * k + 3]);
    }
    CRP_ADDC(t[N], t[N + 2], 0u);
    t[N + 1] = 0;
    t[N + 2] = 0;
  }
}
