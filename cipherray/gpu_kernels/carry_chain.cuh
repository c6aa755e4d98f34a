// cipherray: 32-bit carry chains (PTX add / multiply-add with the carry flag on the GPU,
// the same operations with the flag emulated in a variable on the host), and the limb-range
// passes built from them. Used by the "pairs" Montgomery core (bigint_pairs.cuh, which
// explains the passes) and by the cooperative kernels (bigint_coop.cuh). A function using
// them declares the host's flag with CRP_CC_STATE.
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

// t += x_h * y over the words k in [K0, K1) of x: the limbs x[2k + h] at positions 2k + 2P,
// each product fused onto the aligned pair (t[2k + 2P], t[2k + 2P + 1]). Leaves the carry out
// of position 2 K1 - 1 + 2P in the flag.
#define CRP_FUSED_RANGE(t, P, x, ld, h, y, K0, K1)                                   \
  do {                                                                               \
    CRP_MADLO_CC(t[2 * ((K0) + (P))], CRP_LIMB(x, ld, K0, h), y, t[2 * ((K0) + (P))]); \
    CRP_MADCHI_CC(t[2 * ((K0) + (P)) + 1], CRP_LIMB(x, ld, K0, h), y,                \
                  t[2 * ((K0) + (P)) + 1]);                                          \
    CR_UNROLL                                                                        \
    for (int k = (K0) + 1; k < (K1); k++) {                                          \
      const uint32_t xk_ = CRP_LIMB(x, ld, k, h);                                    \
      CRP_MADCLO_CC(t[2 * (k + (P))], xk_, y, t[2 * (k + (P))]);                     \
      CRP_MADCHI_CC(t[2 * (k + (P)) + 1], xk_, y, t[2 * (k + (P)) + 1]);             \
    }                                                                                \
  } while (0)
#define CRP_FUSED_PASS(t, P, x, ld, h, y) CRP_FUSED_RANGE(t, P, x, ld, h, y, 0, W)

// t += x_h * y at the odd positions 2k + 1, k in [K0, K1): mul.wide, then the product's two
// halves into (t[2k + 1], t[2k + 2]) on one add chain. Leaves the carry out of position 2 K1
// in the flag.
#define CRP_ODD_RANGE(t, x, ld, h, y, K0, K1)                                        \
  do {                                                                               \
    uint32_t pl_, ph_;                                                               \
    CRP_MULWIDE(pl_, ph_, CRP_LIMB(x, ld, K0, h), y);                                \
    CRP_ADD_CC(t[2 * (K0) + 1], t[2 * (K0) + 1], pl_);                               \
    CRP_ADDC_CC(t[2 * (K0) + 2], t[2 * (K0) + 2], ph_);                              \
    CR_UNROLL                                                                        \
    for (int k = (K0) + 1; k < (K1); k++) {                                          \
      CRP_MULWIDE(pl_, ph_, CRP_LIMB(x, ld, k, h), y);                               \
      CRP_ADDC_CC(t[2 * k + 1], t[2 * k + 1], pl_);                                  \
      CRP_ADDC_CC(t[2 * k + 2], t[2 * k + 2], ph_);                                  \
    }                                                                                \
  } while (0)
#define CRP_ODD_PASS(t, x, ld, h, y) CRP_ODD_RANGE(t, x, ld, h, y, 0, W)
