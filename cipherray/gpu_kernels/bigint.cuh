// cipherray: batched multi-precision arithmetic core (__host__ __device__).
//
// A number of N 32-bit limbs (little-endian) is stored as N/2 uint64 words, "limb pairs":
// word k = limb 2k | limb (2k+1) << 32. Every operand is addressed as (pointer, ld): word k
// lives at ptr[k * ld]. Device batches are word-major, shape (N/2, count), so element e starts
// at base + e and ld = count: a warp reading word k of 32 consecutive elements touches 256
// contiguous bytes, and each load brings two limbs. Single values (moduli, tables, constants)
// are contiguous (ld = 1). Exponents are plain uint32 limb arrays (limb j at e[j * lde]).
//
// Montgomery arithmetic: R = 2^(32 N), minv = -m^(-1) mod 2^32, m odd, m < R (variant "f64":
// R = 2^(52 ceil(32 N / 52)), see bigint_f64.cuh).
// mont_mul returns a * b * R^(-1) mod m, fully reduced (< m) whenever a * b < R * m.
#pragma once
#include "common.cuh"
#include "exponent.cuh"

#ifdef CR_DEVICE_BUILD
#define CR_HD_NOINLINE __host__ __device__ __noinline__
#else
#define CR_HD_NOINLINE static
#endif

#define CR_LO(v) ((uint64_t)(uint32_t)(v))
#define CR_HI(v) ((v) >> 32)

#ifndef CR_SMEM_MIN
#define CR_SMEM_MIN 128  // limb count from which the GPU streams a from shared memory
#endif
#ifndef CR_MM_BLOCK
#define CR_MM_BLOCK 64  // threads per block for bigint kernels (per-thread shared columns)
#endif

// An opaque zero: re-evaluated every row on the GPU, so address arithmetic that depends on it
// cannot be hoisted out of the row loop (keeps the compiler from parking a whole operand in
// registers when that would spill the accumulator).
CR_HD uint32_t cr_opaque_zero() {
#ifdef __CUDA_ARCH__
  uint32_t z;
  asm volatile("mov.u32 %0, 0;" : "=r"(z));
  return z;
#else
  return 0;
#endif
}

// FIOS Montgomery multiplication core: t (N + 1 limbs, registers on the GPU: compile-time
// indices only) = a * b * 2^(-32 N) mod m (not yet fully reduced, t < 2m). Each row of b runs
// the product chain and the reduction chain in one pass (two interleaved carry chains).
// ALD > 0: compile-time stride of a (the shared-memory path); OPAQUE: re-derive the a and m
// addresses every row.
template <int N, int ALD, bool OPAQUE>
CR_HD void mont_core(uint32_t* t, const uint64_t* a, int lda_rt, const uint64_t* b, int ldb,
                     const uint64_t* m, uint32_t minv) {
  const int W = N / 2;
  const int lda = ALD > 0 ? ALD : lda_rt;
  CR_UNROLL
  for (int j = 0; j < N + 1; j++) t[j] = 0;
  CR_NOUNROLL
  for (int ib = 0; ib < W; ib++) {
    const uint64_t bv = b[(cr_idx)ib * ldb];
    CR_UNROLL
    for (int h = 0; h < 2; h++) {
      const uint32_t z = OPAQUE ? cr_opaque_zero() : 0u;
      const uint64_t* ar = a + z;
      const uint64_t* mr = m + z;
      const uint64_t bi = h ? CR_HI(bv) : CR_LO(bv);
      uint64_t av = ar[0], mv = mr[0];
      uint64_t s1 = (uint64_t)t[0] + CR_LO(av) * bi;
      const uint64_t u = (uint32_t)((uint32_t)s1 * minv);
      uint64_t s2 = CR_LO(s1) + u * CR_LO(mv);
      uint64_t c1 = s1 >> 32, c2 = s2 >> 32;
      s1 = (uint64_t)t[1] + CR_HI(av) * bi + c1;
      c1 = s1 >> 32;
      s2 = CR_LO(s1) + u * CR_HI(mv) + c2;
      c2 = s2 >> 32;
      t[0] = (uint32_t)s2;
      CR_UNROLL
      for (int k = 1; k < W; k++) {
        av = ar[(cr_idx)k * lda];
        mv = mr[k];
        s1 = (uint64_t)t[2 * k] + CR_LO(av) * bi + c1;
        c1 = s1 >> 32;
        s2 = CR_LO(s1) + u * CR_LO(mv) + c2;
        c2 = s2 >> 32;
        t[2 * k - 1] = (uint32_t)s2;
        s1 = (uint64_t)t[2 * k + 1] + CR_HI(av) * bi + c1;
        c1 = s1 >> 32;
        s2 = CR_LO(s1) + u * CR_HI(mv) + c2;
        c2 = s2 >> 32;
        t[2 * k] = (uint32_t)s2;
      }
      s1 = (uint64_t)t[N] + c1;
      s2 = CR_LO(s1) + c2;
      t[N - 1] = (uint32_t)s2;
      t[N] = (uint32_t)((s1 >> 32) + (s2 >> 32));
    }
  }
}

#if defined(__CUDA_ARCH__) && defined(CR_PTX)
// GPU-only variant of mont_core (variant "ptx"): the same CIOS rows written with PTX carry
// chains (mad.lo.cc / madc.hi.cc), two instructions per 32x32-bit product. Products of even
// and odd limbs go in separate chains so that each chain adds one 32-bit part per limb; the
// reduction pass writes its result one limb down (the division by 2^32) as it goes.
// t has N + 2 limbs here. The host build and the other variants use mont_core above; the
// GPU results are checked bit for bit against them and against Python ints (bench/gpu.py).
#define CR_MADLO_CC(d, x, y, c) asm volatile("mad.lo.cc.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(x), "r"(y), "r"(c))
#define CR_MADCLO_CC(d, x, y, c) asm volatile("madc.lo.cc.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(x), "r"(y), "r"(c))
#define CR_MADCHI_CC(d, x, y, c) asm volatile("madc.hi.cc.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(x), "r"(y), "r"(c))
#define CR_ADDC_CC0(d, x) asm volatile("addc.cc.u32 %0, %1, 0;" : "=r"(d) : "r"(x))
#define CR_ADDC0(d, x) asm volatile("addc.u32 %0, %1, 0;" : "=r"(d) : "r"(x))

template <int N, int ALD, bool OPAQUE>
__device__ __forceinline__ void mont_core_ptx(uint32_t* t, const uint64_t* a, int lda_rt,
                                              const uint64_t* b, int ldb, const uint64_t* m,
                                              uint32_t minv) {
  const int W = N / 2;
  const int lda = ALD > 0 ? ALD : lda_rt;
#pragma unroll
  for (int j = 0; j < N + 2; j++) t[j] = 0;
#pragma unroll 1
  for (int ib = 0; ib < W; ib++) {
    const uint64_t bv = b[(cr_idx)ib * ldb];
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const uint32_t bi = h ? (uint32_t)(bv >> 32) : (uint32_t)bv;
      const uint32_t z = OPAQUE ? cr_opaque_zero() : 0u;
      const uint64_t* ar = a + z;
      const uint64_t* mr = m + z;
      // t += a * bi: even limbs of a
      uint64_t av = ar[0];
      CR_MADLO_CC(t[0], (uint32_t)av, bi, t[0]);
      CR_MADCHI_CC(t[1], (uint32_t)av, bi, t[1]);
#pragma unroll
      for (int k = 1; k < W; k++) {
        av = ar[(cr_idx)k * lda];
        CR_MADCLO_CC(t[2 * k], (uint32_t)av, bi, t[2 * k]);
        CR_MADCHI_CC(t[2 * k + 1], (uint32_t)av, bi, t[2 * k + 1]);
      }
      CR_ADDC_CC0(t[N], t[N]);
      CR_ADDC0(t[N + 1], t[N + 1]);
      // odd limbs of a
      av = ar[0];
      CR_MADLO_CC(t[1], (uint32_t)(av >> 32), bi, t[1]);
      CR_MADCHI_CC(t[2], (uint32_t)(av >> 32), bi, t[2]);
#pragma unroll
      for (int k = 1; k < W; k++) {
        av = ar[(cr_idx)k * lda];
        CR_MADCLO_CC(t[2 * k + 1], (uint32_t)(av >> 32), bi, t[2 * k + 1]);
        CR_MADCHI_CC(t[2 * k + 2], (uint32_t)(av >> 32), bi, t[2 * k + 2]);
      }
      CR_ADDC0(t[N + 1], t[N + 1]);
      // t = (t + u * m) / 2^32: even limbs of m, written one limb down
      const uint32_t u = t[0] * minv;
      uint64_t mv = mr[0];
      uint32_t zero_limb;
      CR_MADLO_CC(zero_limb, u, (uint32_t)mv, t[0]);
      CR_MADCHI_CC(t[0], u, (uint32_t)mv, t[1]);
#pragma unroll
      for (int k = 1; k < W; k++) {
        mv = mr[k];
        CR_MADCLO_CC(t[2 * k - 1], u, (uint32_t)mv, t[2 * k]);
        CR_MADCHI_CC(t[2 * k], u, (uint32_t)mv, t[2 * k + 1]);
      }
      CR_ADDC_CC0(t[N - 1], t[N]);
      CR_ADDC0(t[N], t[N + 1]);
      (void)zero_limb;
      // odd limbs of m, in place on the shifted accumulator
      mv = mr[0];
      CR_MADLO_CC(t[0], u, (uint32_t)(mv >> 32), t[0]);
      CR_MADCHI_CC(t[1], u, (uint32_t)(mv >> 32), t[1]);
#pragma unroll
      for (int k = 1; k < W; k++) {
        mv = mr[k];
        CR_MADCLO_CC(t[2 * k], u, (uint32_t)(mv >> 32), t[2 * k]);
        CR_MADCHI_CC(t[2 * k + 1], u, (uint32_t)(mv >> 32), t[2 * k + 1]);
      }
      CR_ADDC0(t[N], t[N]);
      t[N + 1] = 0;
    }
  }
}
#endif

// out = t mod m for t < 2m (branch-free conditional subtraction), written as words.
template <int N>
CR_HD void mont_finish(uint64_t* out, int ldo, const uint32_t* t, const uint64_t* m) {
  const int W = N / 2;
  uint32_t br = 0;
  CR_UNROLL
  for (int k = 0; k < W; k++) {
    const uint64_t mv = m[k];
    uint64_t d = (uint64_t)t[2 * k] - CR_LO(mv) - br;
    br = (uint32_t)(d >> 63);
    d = (uint64_t)t[2 * k + 1] - CR_HI(mv) - br;
    br = (uint32_t)(d >> 63);
  }
  const uint64_t mask = (t[N] != 0 || br == 0) ? 0xffffffffull : 0ull;
  br = 0;
  CR_UNROLL
  for (int k = 0; k < W; k++) {
    const uint64_t mv = m[k];
    const uint64_t d0 = (uint64_t)t[2 * k] - (CR_LO(mv) & mask) - br;
    br = (uint32_t)(d0 >> 63);
    const uint64_t d1 = (uint64_t)t[2 * k + 1] - (CR_HI(mv) & mask) - br;
    br = (uint32_t)(d1 >> 63);
    out[(cr_idx)k * ldo] = CR_LO(d0) | (CR_LO(d1) << 32);
  }
}

#ifdef CR_PAIRS
#include "bigint_pairs.cuh"
#endif

#if defined(CR_F64)
// Variant "f64": Montgomery multiplication on the fp64 units, R = 2^(52 ceil(32 N / 52)).
#include "bigint_f64.cuh"

#else
// Montgomery multiplication out = a * b * R^-1 mod m (fully reduced when a * b < R * m).
// GPU, N >= CR_SMEM_MIN (128): the accumulator (N + 1 registers) leaves no room for a and m, so a is first
// copied into this thread's column of a shared-memory block and streamed from there, and
// the a / m addresses are re-derived each row. Smaller N: operands stay in registers.
// The arithmetic (mont_core) is the same code on host and device.
template <int N>
CR_HD_NOINLINE void mont_mul(uint64_t* out, int ldo, const uint64_t* a, int lda,
                             const uint64_t* b, int ldb, const uint64_t* __restrict__ m,
                             uint32_t minv) {
#ifdef CR_PAIRS
  uint32_t t[N + 4];
#else
  uint32_t t[N + 2];
#endif
#ifdef __CUDA_ARCH__
  if constexpr (N >= CR_SMEM_MIN) {
#ifdef CR_PAIRS
    uint64_t* col = crp_smem<N>() + threadIdx.x;  // shared with mont_sqr_pairs
#else
    __shared__ uint64_t s_a[(N / 2) * CR_MM_BLOCK];
    uint64_t* col = s_a + threadIdx.x;
#endif
    for (int k = 0; k < N / 2; k++) col[k * CR_MM_BLOCK] = a[(cr_idx)k * lda];
#if defined(CR_PAIRS)
    mont_core_pairs<N, CR_MM_BLOCK, true>(t, col, CR_MM_BLOCK, b, ldb, m, minv);
#elif defined(CR_PTX)
    mont_core_ptx<N, CR_MM_BLOCK, true>(t, col, CR_MM_BLOCK, b, ldb, m, minv);
#else
    mont_core<N, CR_MM_BLOCK, true>(t, col, CR_MM_BLOCK, b, ldb, m, minv);
#endif
    mont_finish<N>(out, ldo, t, m);
    return;
  }
#if defined(CR_PTX) && !defined(CR_PAIRS)
  mont_core_ptx<N, 0, false>(t, a, lda, b, ldb, m, minv);
  mont_finish<N>(out, ldo, t, m);
  return;
#endif
#endif
#ifdef CR_PAIRS
  mont_core_pairs<N, 0, false>(t, a, lda, b, ldb, m, minv);
#else
  mont_core<N, 0, false>(t, a, lda, b, ldb, m, minv);
#endif
  mont_finish<N>(out, ldo, t, m);
}

#endif

#ifndef CR_F64_SQR
#define CR_F64_SQR 0  // f64 builds: K > 0 = squarings by f52_mont_sqr with K blocks
#endif

// out = a^2 R^-1 mod m (out may alias a): the dedicated fp64 squaring where built with it,
// else the general multiplication.
template <int N>
CR_HD void mont_sqr(uint64_t* out, int ldo, const uint64_t* a, int lda, const uint64_t* m,
                    uint32_t minv) {
#if defined(CR_F64) && CR_F64_SQR
  f52_mont_sqr<N, CR_F64_SQR>(out, ldo, a, lda, m);
#elif defined(CR_PAIRS) && defined(CR_PAIRS_SQR)
  mont_sqr_pairs<N, CR_PAIRS_SQR>(out, ldo, a, lda, m, minv);
#else
  mont_mul<N>(out, ldo, a, lda, a, lda, m, minv);
#endif
}

template <int N>
CR_HD void copy_words(uint64_t* out, int ldo, const uint64_t* a, int lda) {
  for (int k = 0; k < N / 2; k++) out[(cr_idx)k * ldo] = a[(cr_idx)k * lda];
}

template <int N>
CR_HD void unpack(uint32_t* dst, const uint64_t* src, int ld) {
  for (int k = 0; k < N / 2; k++) {
    const uint64_t v = src[(cr_idx)k * ld];
    dst[2 * k] = (uint32_t)v;
    dst[2 * k + 1] = (uint32_t)(v >> 32);
  }
}

template <int N>
CR_HD void pack(uint64_t* dst, int ld, const uint32_t* src) {
  for (int k = 0; k < N / 2; k++) dst[(cr_idx)k * ld] = CR_LO(src[2 * k]) | ((uint64_t)src[2 * k + 1] << 32);
}

// o (N limbs) += x * y for x, y of N / 2 limbs (schoolbook; o must not overflow N limbs).
template <int N>
CR_HD void mul_add_half(uint32_t* o, const uint32_t* x, const uint32_t* y) {
  const int H = N / 2;
  for (int i = 0; i < H; i++) {
    const uint64_t xi = x[i];
    uint64_t c = 0;
    for (int j = 0; j < H; j++) {
      const uint64_t s = (uint64_t)o[i + j] + xi * y[j] + c;
      o[i + j] = (uint32_t)s;
      c = s >> 32;
    }
    for (int k = i + H; k < N && c; k++) {
      const uint64_t s = (uint64_t)o[k] + c;
      o[k] = (uint32_t)s;
      c = s >> 32;
    }
  }
}

// s = s - (m & mask) where mask is chosen so that the result is s mod m for s < 2m
// (carry = carry out of the addition that produced s).
template <int N>
CR_HD void cond_sub(uint32_t* s, uint32_t carry, const uint32_t* m) {
  uint32_t br = 0;
  for (int j = 0; j < N; j++) {
    const uint64_t d = (uint64_t)s[j] - m[j] - br;
    br = (uint32_t)(d >> 63);
  }
  const uint32_t mask = (carry != 0 || br == 0) ? 0xffffffffu : 0u;
  br = 0;
  for (int j = 0; j < N; j++) {
    const uint64_t d = (uint64_t)s[j] - (m[j] & mask) - br;
    s[j] = (uint32_t)d;
    br = (uint32_t)(d >> 63);
  }
}


// ---------------------------------------------------------------------------------------
// Kernel bodies. idx = work item. "s*" arguments are element steps (1: one value per item,
// 0: broadcast one value to all items).
// ---------------------------------------------------------------------------------------

// out = a * b * R^-1 mod m
template <int N>
CR_HD void montmul_kbody(cr_idx idx, uint64_t* out, int ldo, const uint64_t* a, int lda, int sa,
                         const uint64_t* b, int ldb, int sb, const uint64_t* m, uint32_t minv) {
  mont_mul<N>(out + idx, ldo, a + idx * sa, lda, b + idx * sb, ldb, m, minv);
}

template <int N>
CR_HD void montsqr_kbody(cr_idx idx, uint64_t* out, int ldo, const uint64_t* a, int lda,
                         const uint64_t* m, uint32_t minv) {
  mont_sqr<N>(out + idx, ldo, a + idx, lda, m, minv);
}

// out = a * b mod m (normal form in and out); r2 = R^2 mod m.
template <int N>
CR_HD void mulmod_kbody(cr_idx idx, uint64_t* out, int ldo, const uint64_t* a, int lda, int sa,
                        const uint64_t* b, int ldb, int sb, const uint64_t* m, uint32_t minv,
                        const uint64_t* r2) {
  mont_mul<N>(out + idx, ldo, a + idx * sa, lda, b + idx * sb, ldb, m, minv);
  mont_mul<N>(out + idx, ldo, out + idx, ldo, r2, 1, m, minv);
}

// out = base^exp mod m, fixed window of w bits (per-element exponents, normal form in/out).
// tbl: scratch of 2^w entries per item, laid out (2^w, N/2, count): entry d at tbl + d*W*ldt.
// consts: [r2 | one_m = R mod m | unit = 1], W words each.
template <int N>
CR_HD void modexp_kbody(cr_idx idx, uint64_t* out, int ldo, const uint64_t* base, int ldb, int sb,
                        const uint32_t* e, int lde, int se, int elimbs, int ebits,
                        const uint64_t* m, uint32_t minv, const uint64_t* consts, uint64_t* tbl,
                        int ldt, int w) {
  const int W = N / 2;
  const uint64_t* r2 = consts;
  const uint64_t* one_m = consts + W;
  const uint64_t* unit = consts + 2 * W;
  uint64_t* o = out + idx;
  const uint32_t* ex = e + idx * se;
  uint64_t* tb = tbl + idx;
  const cr_idx tstep = (cr_idx)W * ldt;
  const int nt = 1 << w;
  copy_words<N>(tb, ldt, one_m, 1);
  mont_mul<N>(tb + tstep, ldt, base + idx * sb, ldb, r2, 1, m, minv);
  for (int d = 2; d < nt; d++)  // even powers as squares (cheaper where mont_sqr is its own)
    if (d % 2 == 0)
      mont_sqr<N>(tb + d * tstep, ldt, tb + (d / 2) * tstep, ldt, m, minv);
    else
      mont_mul<N>(tb + d * tstep, ldt, tb + (d - 1) * tstep, ldt, tb + tstep, ldt, m, minv);
  const int nwin = ebits > 0 ? (ebits + w - 1) / w : 1;
  for (int win = nwin - 1; win >= 0; win--) {
    const uint32_t d = exp_digit(ex, lde, elimbs, win, w);
    if (win == nwin - 1) {
      copy_words<N>(o, ldo, tb + d * tstep, ldt);
    } else {
      for (int k = 0; k < w; k++) mont_sqr<N>(o, ldo, o, ldo, m, minv);
      mont_mul<N>(o, ldo, o, ldo, tb + d * tstep, ldt, m, minv);
    }
  }
  mont_mul<N>(o, ldo, o, ldo, unit, 1, m, minv);
}

// One step of modexp as its own launch (MontContext.modexp with steps=True): out = out *
// tbl[d] * R^-1 mod m, d = window `win` of the item's exponent, tbl laid out as modexp's scratch.
// Between these launches the squarings run as montsqr launches: each kernel keeps only its own
// multiplication's registers (modexp inlines the multiplication and the squaring together).
template <int N>
CR_HD void montmul_digit_kbody(cr_idx idx, uint64_t* out, int ldo, const uint64_t* tbl, int ldt,
                               const uint32_t* e, int lde, int se, int elimbs, int win, int w,
                               const uint64_t* m, uint32_t minv) {
  const uint32_t d = exp_digit(e + idx * se, lde, elimbs, win, w);
  mont_mul<N>(out + idx, ldo, out + idx, ldo, tbl + (cr_idx)d * (N / 2) * ldt + idx, ldt, m, minv);
}

// Fixed-base comb: out = g^e * mulin mod m, where table holds g^(d * 2^(w*i)) * R mod m for
// window i < nwin and digit d < 2^w, entry (i, d) contiguous at table + (i * 2^w + d) * W.
// mulin is in normal form (pass unit = 1 for a plain power). No squarings.
template <int N>
CR_HD void fixed_base_kbody(cr_idx idx, uint64_t* out, int ldo, const uint32_t* e, int lde,
                            int se, int elimbs, int nwin, int w, const uint64_t* table,
                            const uint64_t* m, uint32_t minv, const uint64_t* mulin, int ldmi,
                            int smi) {
  const int W = N / 2;
  uint64_t* o = out + idx;
  const uint32_t* ex = e + idx * se;
  const cr_idx nt = (cr_idx)1 << w;
  for (int win = 0; win < nwin; win++) {
    const uint32_t d = exp_digit(ex, lde, elimbs, win, w);
    const uint64_t* entry = table + ((cr_idx)win * nt + d) * W;
    if (win == 0)
      copy_words<N>(o, ldo, entry, 1);
    else
      mont_mul<N>(o, ldo, o, ldo, entry, 1, m, minv);
  }
  mont_mul<N>(o, ldo, o, ldo, mulin + idx * smi, ldmi, m, minv);
}

// Paillier plaintext embedding: out = 1 + x * n (N limbs; x and n have H = N/2 limbs, x < n).
template <int N>
CR_HD void one_plus_xn_kbody(cr_idx idx, uint64_t* out, int ldo, const uint64_t* x, int ldx,
                             const uint64_t* n) {
  const int H = N / 2;
  uint32_t xx[H], nn[H], o[N];
  unpack<H>(xx, x + idx, ldx);
  unpack<H>(nn, n, 1);
  for (int j = 0; j < N; j++) o[j] = 0;
  o[0] = 1;
  mul_add_half<N>(o, xx, nn);
  pack<N>(out + idx, ldo, o);
}

// out = c mod m for c of 2N limbs (c_hi * R + c_lo): Montgomery form via R^3 and R^2, then
// back to normal form. consts: [r2 | r3 | unit].
template <int N>
CR_HD void reduce2_kbody(cr_idx idx, uint64_t* out, int ldo, const uint64_t* c, int ldc,
                         const uint64_t* m, uint32_t minv, const uint64_t* consts) {
  const int W = N / 2;
  const uint64_t* r2 = consts;
  const uint64_t* r3 = consts + W;
  const uint64_t* unit = consts + 2 * W;
  uint64_t t1[W], t2[W];
  uint32_t s1[N], s2[N], mm[N];
  const uint64_t* cc = c + idx;
  mont_mul<N>(t1, 1, cc + (cr_idx)W * ldc, ldc, r3, 1, m, minv);
  mont_mul<N>(t2, 1, cc, ldc, r2, 1, m, minv);
  unpack<N>(s1, t1, 1);
  unpack<N>(s2, t2, 1);
  unpack<N>(mm, m, 1);
  uint64_t carry = 0;
  for (int j = 0; j < N; j++) {
    const uint64_t v = (uint64_t)s1[j] + s2[j] + carry;
    s1[j] = (uint32_t)v;
    carry = v >> 32;
  }
  cond_sub<N>(s1, (uint32_t)carry, mm);
  pack<N>(t1, 1, s1);
  mont_mul<N>(out + idx, ldo, t1, 1, unit, 1, m, minv);
}

// (x - 1) * inv mod 2^(32 H): the exact quotient (x - 1) / p when p | x - 1 and inv = p^-1.
template <int H>
CR_HD void exact_div_low(uint32_t* L, const uint32_t* x, const uint32_t* inv) {
  uint32_t xm1[H];
  uint64_t br = 1;
  for (int j = 0; j < H; j++) {
    const uint64_t d = (uint64_t)x[j] - br;
    xm1[j] = (uint32_t)d;
    br = d >> 63;
  }
  for (int j = 0; j < H; j++) L[j] = 0;
  for (int i = 0; i < H; i++) {
    const uint64_t xi = xm1[i];
    uint64_t c = 0;
    for (int j = 0; i + j < H; j++) {
      const uint64_t s = (uint64_t)L[i + j] + xi * inv[j] + c;
      L[i + j] = (uint32_t)s;
      c = s >> 32;
    }
  }
}

// Paillier CRT decryption finish. H = N/2 limbs for p and q; xp = c^(p-1) mod p^2 and
// xq = c^(q-1) mod q^2 (N limbs each). prm (contiguous, H limbs = H/2 words each):
// [p | pinv = p^-1 mod 2^(32H) | hpR = hp*R_H mod p | q | qinv2 = q^-1 mod 2^(32H) |
//  hqR = hq*R_H mod q | qinvR = (q^-1 mod p)*R_H mod p]; R_H = 2^(32H).
// m_p = L_p(xp) * hp mod p with L_p(x) = (x-1)/p computed as (x-1)*p^-1 mod 2^(32H) (exact
// division), likewise m_q; out = m_q + q * ((m_p - m_q) q^-1 mod p)  (N limbs).
template <int N>
CR_HD void dec_finish_kbody(cr_idx idx, uint64_t* out, int ldo, const uint64_t* xp,
                            const uint64_t* xq, int ldx, const uint64_t* prm, uint32_t p_minv,
                            uint32_t q_minv) {
  const int H = N / 2;
  const int HW = H / 2;
  const uint64_t* p = prm;
  const uint64_t* hpR = prm + 2 * HW;
  const uint64_t* q = prm + 3 * HW;
  const uint64_t* hqR = prm + 5 * HW;
  const uint64_t* qinvR = prm + 6 * HW;
  uint32_t x[H], inv[H], L[H], a32[H], b32[H], p32[H], q32[H], o[N];
  uint64_t Lw[HW], mp[HW], mq[HW], A[HW], B[HW];
  // m_p
  unpack<H>(x, xp + idx, ldx);  // low H limbs suffice
  unpack<H>(inv, prm + HW, 1);
  exact_div_low<H>(L, x, inv);
  pack<H>(Lw, 1, L);
  mont_mul<H>(mp, 1, Lw, 1, hpR, 1, p, p_minv);
  // m_q
  unpack<H>(x, xq + idx, ldx);
  unpack<H>(inv, prm + 4 * HW, 1);
  exact_div_low<H>(L, x, inv);
  pack<H>(Lw, 1, L);
  mont_mul<H>(mq, 1, Lw, 1, hqR, 1, q, q_minv);
  // h = (m_p - m_q) q^-1 mod p = m_p q^-1 - m_q q^-1 mod p
  mont_mul<H>(A, 1, mp, 1, qinvR, 1, p, p_minv);
  mont_mul<H>(B, 1, mq, 1, qinvR, 1, p, p_minv);
  unpack<H>(a32, A, 1);
  unpack<H>(b32, B, 1);
  unpack<H>(p32, p, 1);
  unpack<H>(q32, q, 1);
  uint64_t br = 0;
  for (int j = 0; j < H; j++) {
    const uint64_t d = (uint64_t)a32[j] - b32[j] - br;
    a32[j] = (uint32_t)d;
    br = d >> 63;
  }
  const uint32_t mask = br ? 0xffffffffu : 0u;
  uint64_t c = 0;
  for (int j = 0; j < H; j++) {
    const uint64_t s = (uint64_t)a32[j] + (p32[j] & mask) + c;
    a32[j] = (uint32_t)s;
    c = s >> 32;
  }
  // out = m_q + q * h
  unpack<H>(b32, mq, 1);
  for (int j = 0; j < N; j++) o[j] = j < H ? b32[j] : 0u;
  mul_add_half<N>(o, a32, q32);
  pack<N>(out + idx, ldo, o);
}

// Bucket products for the bucket (Pippenger) multi-exponentiation of multiexp.py: slot idx
// multiplies the len[idx] values base[rows[start[idx] + i]] (Montgomery form, so the product is
// too) into out. The host orders slots longest first, so the threads of a warp run about the
// same number of multiplications. base is gathered: element r is word-major at base + r, ld ldb.
template <int N>
CR_HD void bucket_prod_kbody(cr_idx idx, uint64_t* out, int ldo, const uint64_t* base, int ldb,
                             const int32_t* rows, const cr_idx* start, const int32_t* len,
                             const uint64_t* m, uint32_t minv) {
  uint64_t* o = out + idx;
  const int32_t* r = rows + start[idx];
  const int n = len[idx];
  copy_words<N>(o, ldo, base + r[0], ldb);
  for (int i = 1; i < n; i++) mont_mul<N>(o, ldo, o, ldo, base + r[i], ldb, m, minv);
}
