// Batched X25519 (RFC 7748) with AVX-512 IFMA: one scalar, eight u-coordinates at a time.
//
// Field elements mod p = 2^255 - 19 are five limbs of radix 2^51; eight independent
// elements sit side by side in the 64-bit lanes of five zmm registers ("vertical" SIMD).
// vpmadd52luq / vpmadd52huq give the low 52 bits and the high bits (>> 52) of a 52x52-bit
// product; for radix 2^51 the high part of a_i b_j belongs to column i+j+1 counted twice,
// so it is accumulated apart and doubled. Columns 5..9 fold into 0..4 times 19
// (2^255 = 19 mod p), then one carry pass leaves every limb <= 2^51 (all inputs of a
// multiplication are such outputs, so they stay below the 52 bits IFMA reads).
//
// The Montgomery ladder follows RFC 7748 section 5 step for step, with the clamped scalar
// shared by all lanes; the conditional swap is a masked XOR, the scalar bits only ever
// select data through masks, and no branch or memory index depends on the scalar or on a
// point: constant time. The result is inverted by Fermat (z^(p-2), the usual 254-squaring
// chain) and frozen to the canonical value in [0, p), little-endian.
//
// Points go sixteen at a time through two interleaved groups of eight lanes
// (ladder16_many, a scalar per lane; cr_x25519_batch gives every lane the same one).
//
// Checked bit for bit against `cryptography` (OpenSSL) and the RFC 7748 vectors in
// tests/test_cpu_x25519.py. Built with -mavx512f -mavx512ifma and called only after the
// Python side has checked that the CPU has both (x25519.py).

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

namespace {

typedef __m512i fe[5];

constexpr uint64_t MASK51 = (1ULL << 51) - 1;

static inline __m512i times19(__m512i x) {
  // 19 x = 16 x + 2 x + x
  return _mm512_add_epi64(_mm512_add_epi64(_mm512_slli_epi64(x, 4), _mm512_slli_epi64(x, 1)), x);
}

// limbs below 2^62 -> limbs <= 2^51 (limb 0 and 2..4 below 2^51), same value mod p
static inline void fe_carry(__m512i* c) {
  const __m512i m = _mm512_set1_epi64((long long)MASK51);
  c[1] = _mm512_add_epi64(c[1], _mm512_srli_epi64(c[0], 51));
  c[0] = _mm512_and_si512(c[0], m);
  c[2] = _mm512_add_epi64(c[2], _mm512_srli_epi64(c[1], 51));
  c[1] = _mm512_and_si512(c[1], m);
  c[3] = _mm512_add_epi64(c[3], _mm512_srli_epi64(c[2], 51));
  c[2] = _mm512_and_si512(c[2], m);
  c[4] = _mm512_add_epi64(c[4], _mm512_srli_epi64(c[3], 51));
  c[3] = _mm512_and_si512(c[3], m);
  c[0] = _mm512_add_epi64(c[0], times19(_mm512_srli_epi64(c[4], 51)));
  c[4] = _mm512_and_si512(c[4], m);
  c[1] = _mm512_add_epi64(c[1], _mm512_srli_epi64(c[0], 51));
  c[0] = _mm512_and_si512(c[0], m);
}

// columns lo[k] + 2 hi[k] (k = 0..9) -> reduced field element
static inline void fe_reduce_columns(__m512i* r, const __m512i* lo, const __m512i* hi) {
  __m512i c[10];
  for (int k = 0; k < 10; ++k) c[k] = _mm512_add_epi64(lo[k], _mm512_slli_epi64(hi[k], 1));
  for (int k = 0; k < 5; ++k) c[k] = _mm512_add_epi64(c[k], times19(c[k + 5]));
  fe_carry(c);
  for (int k = 0; k < 5; ++k) r[k] = c[k];
}

static inline void fe_mul(__m512i* r, const __m512i* a, const __m512i* b) {
  const __m512i z = _mm512_setzero_si512();
  __m512i lo[10] = {z, z, z, z, z, z, z, z, z, z};
  __m512i hi[10] = {z, z, z, z, z, z, z, z, z, z};
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 5; ++j) {
      lo[i + j] = _mm512_madd52lo_epu64(lo[i + j], a[i], b[j]);
      hi[i + j + 1] = _mm512_madd52hi_epu64(hi[i + j + 1], a[i], b[j]);
    }
  }
  fe_reduce_columns(r, lo, hi);
}

static inline void fe_sqr(__m512i* r, const __m512i* a) {
  // diagonal products once, cross products a_i a_j (i < j) accumulated apart and doubled
  const __m512i z = _mm512_setzero_si512();
  __m512i lo[10] = {z, z, z, z, z, z, z, z, z, z};
  __m512i hi[10] = {z, z, z, z, z, z, z, z, z, z};
  __m512i xlo[10] = {z, z, z, z, z, z, z, z, z, z};
  __m512i xhi[10] = {z, z, z, z, z, z, z, z, z, z};
  for (int i = 0; i < 5; ++i) {
    lo[2 * i] = _mm512_madd52lo_epu64(lo[2 * i], a[i], a[i]);
    hi[2 * i + 1] = _mm512_madd52hi_epu64(hi[2 * i + 1], a[i], a[i]);
    for (int j = i + 1; j < 5; ++j) {
      xlo[i + j] = _mm512_madd52lo_epu64(xlo[i + j], a[i], a[j]);
      xhi[i + j + 1] = _mm512_madd52hi_epu64(xhi[i + j + 1], a[i], a[j]);
    }
  }
  for (int k = 0; k < 10; ++k) {
    lo[k] = _mm512_add_epi64(lo[k], _mm512_slli_epi64(xlo[k], 1));
    hi[k] = _mm512_add_epi64(hi[k], _mm512_slli_epi64(xhi[k], 1));
  }
  fe_reduce_columns(r, lo, hi);
}

static inline void fe_sqr_n(__m512i* r, const __m512i* a, int n) {
  fe_sqr(r, a);
  for (int i = 1; i < n; ++i) fe_sqr(r, r);
}

// r = a * c for a small constant c < 2^52
static inline void fe_mul_small(__m512i* r, const __m512i* a, uint64_t c) {
  const __m512i z = _mm512_setzero_si512();
  const __m512i cv = _mm512_set1_epi64((long long)c);
  __m512i lo[10] = {z, z, z, z, z, z, z, z, z, z};
  __m512i hi[10] = {z, z, z, z, z, z, z, z, z, z};
  for (int i = 0; i < 5; ++i) {
    lo[i] = _mm512_madd52lo_epu64(lo[i], a[i], cv);
    hi[i + 1] = _mm512_madd52hi_epu64(hi[i + 1], a[i], cv);
  }
  fe_reduce_columns(r, lo, hi);
}

static inline void fe_add(__m512i* r, const __m512i* a, const __m512i* b) {
  __m512i c[5];
  for (int k = 0; k < 5; ++k) c[k] = _mm512_add_epi64(a[k], b[k]);
  fe_carry(c);
  for (int k = 0; k < 5; ++k) r[k] = c[k];
}

// a - b + 4p (limbs of 4p are >= 2^53 - 76 > any input limb <= 2^51)
static inline void fe_sub(__m512i* r, const __m512i* a, const __m512i* b) {
  const __m512i p0 = _mm512_set1_epi64((long long)(4 * ((1ULL << 51) - 19)));
  const __m512i pk = _mm512_set1_epi64((long long)(4 * ((1ULL << 51) - 1)));
  __m512i c[5];
  c[0] = _mm512_sub_epi64(_mm512_add_epi64(a[0], p0), b[0]);
  for (int k = 1; k < 5; ++k) c[k] = _mm512_sub_epi64(_mm512_add_epi64(a[k], pk), b[k]);
  fe_carry(c);
  for (int k = 0; k < 5; ++k) r[k] = c[k];
}

static inline void fe_cswap(__m512i* a, __m512i* b, __m512i mask) {
  for (int k = 0; k < 5; ++k) {
    const __m512i t = _mm512_and_si512(_mm512_xor_si512(a[k], b[k]), mask);
    a[k] = _mm512_xor_si512(a[k], t);
    b[k] = _mm512_xor_si512(b[k], t);
  }
}

// z^(p-2) = z^-1 (the chain of ref10: 254 squarings, 11 multiplications)
static void fe_invert(__m512i* r, const __m512i* z) {
  fe t0, t1, t2, t3;
  fe_sqr(t0, z);            // 2
  fe_sqr_n(t1, t0, 2);      // 8
  fe_mul(t1, t1, z);        // 9
  fe_mul(t0, t0, t1);       // 11
  fe_sqr(t2, t0);           // 22
  fe_mul(t1, t1, t2);       // 2^5 - 1
  fe_sqr_n(t2, t1, 5);      // 2^10 - 2^5
  fe_mul(t1, t2, t1);       // 2^10 - 1
  fe_sqr_n(t2, t1, 10);     // 2^20 - 2^10
  fe_mul(t2, t2, t1);       // 2^20 - 1
  fe_sqr_n(t3, t2, 20);     // 2^40 - 2^20
  fe_mul(t2, t3, t2);       // 2^40 - 1
  fe_sqr_n(t2, t2, 10);     // 2^50 - 2^10
  fe_mul(t1, t2, t1);       // 2^50 - 1
  fe_sqr_n(t2, t1, 50);     // 2^100 - 2^50
  fe_mul(t2, t2, t1);       // 2^100 - 1
  fe_sqr_n(t3, t2, 100);    // 2^200 - 2^100
  fe_mul(t2, t3, t2);       // 2^200 - 1
  fe_sqr_n(t2, t2, 50);     // 2^250 - 2^50
  fe_mul(t1, t2, t1);       // 2^250 - 1
  fe_sqr_n(t1, t1, 5);      // 2^255 - 2^5
  fe_mul(r, t1, t0);        // 2^255 - 21 = p - 2
}

// canonical value in [0, p): q = floor((x + 19) / 2^255) is 1 iff x >= p; x + 19 q - q 2^255
static void fe_freeze(__m512i* x) {
  const __m512i m = _mm512_set1_epi64((long long)MASK51);
  fe_carry(x);
  __m512i q = _mm512_srli_epi64(_mm512_add_epi64(x[0], _mm512_set1_epi64(19)), 51);
  for (int k = 1; k < 5; ++k) q = _mm512_srli_epi64(_mm512_add_epi64(x[k], q), 51);
  x[0] = _mm512_add_epi64(x[0], times19(q));
  for (int k = 0; k < 4; ++k) {
    x[k + 1] = _mm512_add_epi64(x[k + 1], _mm512_srli_epi64(x[k], 51));
    x[k] = _mm512_and_si512(x[k], m);
  }
  x[4] = _mm512_and_si512(x[4], m);
}

static inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;  // little-endian host (x86-64)
}

// 32 little-endian bytes with bit 255 masked -> five 51-bit limbs
static void decode_u(uint64_t limbs[5], const uint8_t* s) {
  const uint64_t w0 = load64(s), w1 = load64(s + 8), w2 = load64(s + 16),
                 w3 = load64(s + 24) & 0x7fffffffffffffffULL;
  limbs[0] = w0 & MASK51;
  limbs[1] = ((w0 >> 51) | (w1 << 13)) & MASK51;
  limbs[2] = ((w1 >> 38) | (w2 << 26)) & MASK51;
  limbs[3] = ((w2 >> 25) | (w3 << 39)) & MASK51;
  limbs[4] = (w3 >> 12) & MASK51;
}

static void encode_u(uint8_t* s, const uint64_t l[5]) {
  const uint64_t w[4] = {l[0] | (l[1] << 51), (l[1] >> 13) | (l[2] << 38),
                         (l[2] >> 26) | (l[3] << 25), (l[3] >> 39) | (l[4] << 12)};
  memcpy(s, w, 32);
}

// eight ladders; returns how many of the (up to eight) outputs are all zero
// Sixteen Montgomery ladders as two interleaved groups of eight lanes (two independent
// dependency chains keep the IFMA unit busier); every lane has its own clamped scalar
// (k: 16 x 32 bytes) and its swap mask is built from that scalar's bits, without
// branches or indices that depend on them.
static int ladder16_many(const uint8_t* k, const uint8_t* u, uint8_t* out, int lanes) {
  alignas(64) uint64_t tmp[2][5][8];
  alignas(64) uint64_t words[2][4][8];
  for (int g = 0; g < 2; ++g) {
    for (int lane = 0; lane < 8; ++lane) {
      uint64_t l[5] = {1, 0, 0, 0, 0};
      const int i = 8 * g + lane;
      if (i < lanes) decode_u(l, u + 32 * i);
      for (int j = 0; j < 5; ++j) tmp[g][j][lane] = l[j];
      for (int q = 0; q < 4; ++q) words[g][q][lane] = i < lanes ? load64(k + 32 * i + 8 * q) : 0;
    }
  }
  fe x1[2], x2[2], z2[2], x3[2], z3[2];
  __m512i w[2][4], swap[2];
  const __m512i zero = _mm512_setzero_si512();
  const __m512i one = _mm512_set1_epi64(1);
  for (int g = 0; g < 2; ++g) {
    for (int j = 0; j < 5; ++j) {
      x1[g][j] = _mm512_load_si512(tmp[g][j]);
      x3[g][j] = x1[g][j];
      x2[g][j] = z3[g][j] = j == 0 ? one : zero;
      z2[g][j] = zero;
    }
    for (int q = 0; q < 4; ++q) w[g][q] = _mm512_load_si512(words[g][q]);
    swap[g] = zero;
  }
  for (int t = 254; t >= 0; --t) {
    __m512i mask[2];
    for (int g = 0; g < 2; ++g) {
      const __m512i kt =
          _mm512_and_si512(_mm512_srl_epi64(w[g][t >> 6], _mm_cvtsi32_si128(t & 63)), one);
      swap[g] = _mm512_xor_si512(swap[g], kt);
      mask[g] = _mm512_sub_epi64(zero, swap[g]);
      swap[g] = kt;
    }
    fe A[2], AA[2], B[2], BB[2], E[2], C[2], D[2], DA[2], CB[2], t0[2];
#define BOTH(stmt) { const int g = 0; stmt; } { const int g = 1; stmt; }
    BOTH(fe_cswap(x2[g], x3[g], mask[g]))
    BOTH(fe_cswap(z2[g], z3[g], mask[g]))
    BOTH(fe_add(A[g], x2[g], z2[g]))
    BOTH(fe_sqr(AA[g], A[g]))
    BOTH(fe_sub(B[g], x2[g], z2[g]))
    BOTH(fe_sqr(BB[g], B[g]))
    BOTH(fe_sub(E[g], AA[g], BB[g]))
    BOTH(fe_add(C[g], x3[g], z3[g]))
    BOTH(fe_sub(D[g], x3[g], z3[g]))
    BOTH(fe_mul(DA[g], D[g], A[g]))
    BOTH(fe_mul(CB[g], C[g], B[g]))
    BOTH(fe_add(t0[g], DA[g], CB[g]))
    BOTH(fe_sqr(x3[g], t0[g]))
    BOTH(fe_sub(t0[g], DA[g], CB[g]))
    BOTH(fe_sqr(t0[g], t0[g]))
    BOTH(fe_mul(z3[g], x1[g], t0[g]))
    BOTH(fe_mul(x2[g], AA[g], BB[g]))
    BOTH(fe_mul_small(t0[g], E[g], 121665))
    BOTH(fe_add(t0[g], AA[g], t0[g]))
    BOTH(fe_mul(z2[g], E[g], t0[g]))
#undef BOTH
  }
  int zeros = 0;
  for (int g = 0; g < 2; ++g) {
    const __m512i mask = _mm512_sub_epi64(zero, swap[g]);
    fe_cswap(x2[g], x3[g], mask);
    fe_cswap(z2[g], z3[g], mask);
    fe zi, r;
    fe_invert(zi, z2[g]);
    fe_mul(r, x2[g], zi);
    fe_freeze(r);
    for (int j = 0; j < 5; ++j) _mm512_store_si512(tmp[g][j], r[j]);
    for (int lane = 0; lane < 8 && 8 * g + lane < lanes; ++lane) {
      const uint64_t l[5] = {tmp[g][0][lane], tmp[g][1][lane], tmp[g][2][lane],
                             tmp[g][3][lane], tmp[g][4][lane]};
      encode_u(out + 32 * (8 * g + lane), l);
      zeros += (l[0] | l[1] | l[2] | l[3] | l[4]) == 0;
    }
  }
  volatile uint64_t* vw = &words[0][0][0];  // the scalars' words
  for (int i = 0; i < 64; ++i) vw[i] = 0;
  return zeros;
}

}  // namespace

extern "C" {

// out[i] = X25519(scalar, u[i]) for i < count (32 bytes each, RFC 7748: the scalar is
// clamped here, bit 255 of u is ignored). Returns the number of all-zero outputs
// (inputs of small order), which callers must treat as an error.
int64_t cr_x25519_batch(const uint8_t* scalar, const uint8_t* u, uint8_t* out, int64_t count,
                        int32_t threads) {
  uint8_t k[32];
  memcpy(k, scalar, 32);
  k[0] &= 248;
  k[31] &= 127;
  k[31] |= 64;
  uint8_t lanes_k[16 * 32];  // the clamped scalar in every lane
  for (int i = 0; i < 16; ++i) memcpy(lanes_k + 32 * i, k, 32);
  const int64_t blocks = (count + 15) / 16;
  int64_t zeros = 0;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1) \
    reduction(+ : zeros)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t first = 16 * b;
    const int lanes = (int)(count - first < 16 ? count - first : 16);
    zeros += ladder16_many(lanes_k, u + 32 * first, out + 32 * first, lanes);
  }
  volatile uint8_t* vl = lanes_k;
  for (int i = 0; i < 16 * 32; ++i) vl[i] = 0;
  volatile uint8_t* vk = k;  // wipe the clamped scalar copy
  for (int i = 0; i < 32; ++i) vk[i] = 0;
  return zeros;
}

// out[i] = X25519(scalars[i], u[i]) for i < count: one scalar per point (each clamped
// here). Returns the number of all-zero outputs, as cr_x25519_batch.
int64_t cr_x25519_many(const uint8_t* scalars, const uint8_t* u, uint8_t* out, int64_t count,
                       int32_t threads) {
  const int64_t blocks = (count + 15) / 16;
  int64_t zeros = 0;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1) \
    reduction(+ : zeros)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t first = 16 * b;
    const int lanes = (int)(count - first < 16 ? count - first : 16);
    uint8_t k[16 * 32];
    memcpy(k, scalars + 32 * first, (size_t)(32 * lanes));
    for (int i = 0; i < lanes; ++i) {
      k[32 * i] &= 248;
      k[32 * i + 31] &= 127;
      k[32 * i + 31] |= 64;
    }
    zeros += ladder16_many(k, u + 32 * first, out + 32 * first, lanes);
    volatile uint8_t* vk = k;
    for (int i = 0; i < 16 * 32; ++i) vk[i] = 0;
  }
  return zeros;
}
}
