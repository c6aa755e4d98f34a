// Batched modular exponentiation with AVX-512 IFMA (52-bit limbs, 8 lanes).
//
// Eight exponentiations run side by side, one per 64-bit lane of a zmm register: limb l of
// the eight operands lives in one __m512i ("vertical" SIMD). All lanes share the odd
// modulus m (in Paillier: n^2 or p^2), so the modulus limbs are broadcast scalars and no
// cross-lane operation is ever needed.
//
// Montgomery multiplication is "almost Montgomery" (AMM): with R = 2^(52 L) > 4m, inputs
// in [0, 2m) give an output in [0, 2m) without a final subtraction; one subtraction at
// the very end brings the result into [0, m). Word-serial CIOS, fused: for each limb b_i
//   t += a * b_i;  y = (t_0 * k0) mod 2^52;  t += y * m;  t >>= 52 (as an index shift)
// where vpmadd52luq / vpmadd52huq add the low / high 52 bits of a 52x52-bit product into a
// 64-bit accumulator. An accumulator takes at most 4 L + carries terms below 2^52, which
// stays below 2^64 for L <= 119 (4 * 119 * 2^52 < 2^61), so limbs are normalised only once
// per multiplication.
//
// Exponentiation: fixed window of w bits with a table of 2^w powers per lane; the table
// entry for each lane's digit is picked with masked blends over all entries (the same
// instructions and memory accesses for every digit value). Exponents differ per lane.
// The fixed-base path (encryption randomness) gathers its table entries by digit instead:
// like GMP's powm and the gmpy2 table path it replaces, its memory access pattern depends
// on the exponent, so it is not hardened against cache-timing observers on the same host.
//
// Built by cipherray.cpu_kernels with -mavx512f -mavx512ifma and only called after the
// Python side has checked that the CPU has both (see modexp.py).

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include <stdlib.h>


namespace {

#include "ifma_common.h"

static inline uint64_t exp_digit(const uint64_t* e, int ewords, int bit, int w) {
  // bits [bit, bit + w) of a little-endian multi-word exponent
  const int word = bit >> 6, s = bit & 63;
  if (word >= ewords) return 0;
  uint64_t v = e[word] >> s;
  if (s + w > 64 && word + 1 < ewords) v |= e[word + 1] << (64 - s);
  return v & ((1ULL << w) - 1);
}

template <int L>
static void select_entry(__m512i* dst, const __m512i* table, int entries, __m512i digits) {
  for (int j = 0; j < L; ++j) dst[j] = table[j];
  for (int e = 1; e < entries; ++e) {
    const __mmask8 k = _mm512_cmpeq_epi64_mask(digits, _mm512_set1_epi64(e));
    const __m512i* row = table + (size_t)e * L;
    for (int j = 0; j < L; ++j) dst[j] = _mm512_mask_blend_epi64(k, dst[j], row[j]);
  }
}

template <int L>
static void powmod_block(const uint64_t* m64, int k64, const uint64_t* m52, uint64_t k0s,
                         const __m512i* r2, const uint64_t* base64, const uint64_t* exp64,
                         int ewords, int w, uint64_t* out64, int64_t first, int64_t count) {
  const __m512i k0 = _mm512_set1_epi64((long long)k0s);
  const int entries = 1 << w;
  const size_t table_bytes = (size_t)entries * L * sizeof(__m512i);
  __m512i* const table = static_cast<__m512i*>(aligned_alloc(64, table_bytes));
  alignas(64) __m512i x[L], acc[L], sel[L];

  // one (Montgomery form R mod m) in entry 0, base * R in entry 1, then its powers
  alignas(64) __m512i one[L];
  for (int j = 0; j < L; ++j) one[j] = _mm512_set1_epi64(j == 0 ? 1 : 0);
  amm<L>(table, r2, one, m52, k0);
  load_lanes<L>(x, base64, k64, first, count);
  amm<L>(table + L, x, r2, m52, k0);
  for (int e = 2; e < entries; ++e)
    amm<L>(table + (size_t)e * L, table + (size_t)(e - 1) * L, table + L,
           m52, k0);

  // the longest exponent of the eight lanes sets the number of windows
  int ebits = 0;
  for (int lane = 0; lane < 8 && first + lane < count; ++lane) {
    const uint64_t* e = exp64 + (first + lane) * ewords;
    for (int wd = ewords - 1; wd >= 0; --wd) {
      if (e[wd]) {
        const int b = 64 * wd + 64 - __builtin_clzll(e[wd]);
        if (b > ebits) ebits = b;
        break;
      }
    }
  }
  const int windows = (ebits + w - 1) / w;
  alignas(64) uint64_t dig[8];
  auto digits_at = [&](int t) {
    for (int lane = 0; lane < 8; ++lane) {
      const int64_t e = first + lane;
      dig[lane] = e < count ? exp_digit(exp64 + e * ewords, ewords, t * w, w) : 0;
    }
    return _mm512_load_si512(dig);
  };

  if (windows == 0) {
    for (int j = 0; j < L; ++j) acc[j] = table[j];
  } else {
    select_entry<L>(acc, table, entries, digits_at(windows - 1));
    for (int t = windows - 2; t >= 0; --t) {
      for (int s = 0; s < w; ++s) amm<L>(acc, acc, acc, m52, k0);
      select_entry<L>(sel, table, entries, digits_at(t));
      amm<L>(acc, acc, sel, m52, k0);
    }
  }
  amm<L>(acc, acc, one, m52, k0);  // out of Montgomery form: result in [0, m]

  alignas(64) uint64_t lanes[L][8];
  for (int j = 0; j < L; ++j) _mm512_store_si512(lanes[j], acc[j]);
  uint64_t x52[L];
  for (int lane = 0; lane < 8 && first + lane < count; ++lane) {
    for (int j = 0; j < L; ++j) x52[j] = lanes[j][lane];
    store_lane(out64 + (first + lane) * k64, k64, x52, L, m64);
  }
  free(table);
}

template <int L>
static void powmod_all(const uint64_t* m64, int k64, uint64_t k0, const uint64_t* r2_64,
                       const uint64_t* base64, const uint64_t* exp64, int ewords, int w,
                       uint64_t* out64, int64_t count, int threads) {
  uint64_t m52[L];
  for (int j = 0; j < L; ++j) m52[j] = limb52(m64, k64, j);
  alignas(64) __m512i r2[L];
  for (int j = 0; j < L; ++j) r2[j] = _mm512_set1_epi64((long long)limb52(r2_64, k64, j));
  const int64_t blocks = (count + 7) / 8;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t b = 0; b < blocks; ++b)
    powmod_block<L>(m64, k64, m52, k0, r2, base64, exp64, ewords, w, out64, b * 8, count);
}


// Fixed-base exponentiation with a table T[i][d] = g^(d * 256^i) mod m (i < rows, d < 256):
// g^a = prod_i T[i][a_i] for the little-endian bytes a_i of a. The table is kept in
// Montgomery form as 52-bit limbs, entry-major (entry e, limb j at t52[e * L + j]), and each
// lane gathers its own entry: rows - 1 multiplications per value plus one out of
// Montgomery form.
struct FixedBase {
  int L, k64, rows;
  uint64_t k0;
  uint64_t* m52;
  uint64_t* m64;
  uint64_t* t52;
};

template <int L>
static void fb_build(FixedBase* fb, const uint64_t* table64, const uint64_t* r2_64) {
  const int64_t entries = (int64_t)fb->rows * 256;
  const __m512i k0 = _mm512_set1_epi64((long long)fb->k0);
  alignas(64) __m512i r2[L], x[L];
  for (int j = 0; j < L; ++j) r2[j] = _mm512_set1_epi64((long long)limb52(r2_64, fb->k64, j));
  alignas(64) uint64_t lanes[L][8];
  for (int64_t e = 0; e < entries; e += 8) {
    load_lanes<L>(x, table64, fb->k64, e, entries);
    amm<L>(x, x, r2, fb->m52, k0);
    for (int j = 0; j < L; ++j) _mm512_store_si512(lanes[j], x[j]);
    for (int lane = 0; lane < 8 && e + lane < entries; ++lane)
      for (int j = 0; j < L; ++j) fb->t52[(e + lane) * L + j] = lanes[j][lane];
  }
}

template <int L>
static void fb_pow_block(const FixedBase* fb, const uint8_t* digits, uint64_t* out64,
                         int64_t first, int64_t count) {
  const __m512i k0 = _mm512_set1_epi64((long long)fb->k0);
  const int rows = fb->rows;
  alignas(64) __m512i acc[L], sel[L], one[L];
  alignas(64) int64_t base[8];
  auto gather = [&](__m512i* dst, int row) {
    for (int lane = 0; lane < 8; ++lane) {
      const int64_t e = first + lane;
      const int d = e < count ? digits[e * rows + row] : 0;
      base[lane] = ((int64_t)row * 256 + d) * L;
    }
    const __m512i idx = _mm512_load_si512(base);
    for (int j = 0; j < L; ++j)
      dst[j] = _mm512_i64gather_epi64(_mm512_add_epi64(idx, _mm512_set1_epi64(j)),
                                      (const long long*)fb->t52, 8);
  };
  gather(acc, 0);
  for (int i = 1; i < rows; ++i) {
    gather(sel, i);
    amm<L>(acc, acc, sel, fb->m52, k0);
  }
  for (int j = 0; j < L; ++j) one[j] = _mm512_set1_epi64(j == 0 ? 1 : 0);
  amm<L>(acc, acc, one, fb->m52, k0);
  alignas(64) uint64_t lanes[L][8];
  for (int j = 0; j < L; ++j) _mm512_store_si512(lanes[j], acc[j]);
  uint64_t x52[L];
  for (int lane = 0; lane < 8 && first + lane < count; ++lane) {
    for (int j = 0; j < L; ++j) x52[j] = lanes[j][lane];
    store_lane(out64 + (first + lane) * fb->k64, fb->k64, x52, L, fb->m64);
  }
}

template <int L>
static void fb_pow_all(const FixedBase* fb, const uint8_t* digits, uint64_t* out64,
                       int64_t count, int threads) {
  const int64_t blocks = (count + 7) / 8;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t b = 0; b < blocks; ++b) fb_pow_block<L>(fb, digits, out64, b * 8, count);
}

}  // namespace

extern "C" {

// Limb counts this build supports: 52 L >= bits(m) + 2 for 2048-, 3072-, 4096- and
// 6144-bit moduli (p^2 and n^2 for 1024/1536/2048/3072-bit primes and n).
int cr_ifma_limbs(int i) {
  static const int sizes[] = {40, 60, 79, 119};
  return i >= 0 && i < 4 ? sizes[i] : 0;
}

// out[e] = base[e] ^ exp[e] mod m for e < count. Numbers are little-endian arrays of k64
// 64-bit words (base[e] < m, m odd), exponents of ewords words each. k0 = -m^-1 mod 2^52,
// r2 = R^2 mod m with R = 2^(52 L). Returns 0, or -1 for an unsupported L.
int cr_ifma_powmod(const uint64_t* m64, int32_t k64, uint64_t k0, const uint64_t* r2_64,
                   int32_t L, const uint64_t* base64, const uint64_t* exp64, int32_t ewords,
                   int32_t window, uint64_t* out64, int64_t count, int32_t threads) {
  if (count <= 0) return 0;
  switch (L) {
    case 40:
      powmod_all<40>(m64, k64, k0, r2_64, base64, exp64, ewords, window, out64, count, threads);
      return 0;
    case 60:
      powmod_all<60>(m64, k64, k0, r2_64, base64, exp64, ewords, window, out64, count, threads);
      return 0;
    case 79:
      powmod_all<79>(m64, k64, k0, r2_64, base64, exp64, ewords, window, out64, count, threads);
      return 0;
    case 119:
      powmod_all<119>(m64, k64, k0, r2_64, base64, exp64, ewords, window, out64, count,
                      threads);
      return 0;
    default:
      return -1;
  }
}

// A fixed-base table for g: table64 holds rows * 256 values T[i][d] = g^(d 256^i) mod m
// (k64 words each, entry i * 256 + d). Returns a handle for cr_ifma_fb_pow, or null.
void* cr_ifma_fb_new(const uint64_t* m64, int32_t k64, uint64_t k0, const uint64_t* r2_64,
                     int32_t L, const uint64_t* table64, int32_t rows) {
  if (rows <= 0 || (L != 40 && L != 60 && L != 79 && L != 119)) return nullptr;
  FixedBase* fb = new FixedBase;
  fb->L = L;
  fb->k64 = k64;
  fb->rows = rows;
  fb->k0 = k0;
  fb->m52 = static_cast<uint64_t*>(aligned_alloc(64, sizeof(uint64_t) * ((L + 7) / 8) * 8));
  fb->m64 = static_cast<uint64_t*>(malloc(sizeof(uint64_t) * k64));
  const size_t tbytes = sizeof(uint64_t) * (size_t)rows * 256 * L;
  fb->t52 = static_cast<uint64_t*>(aligned_alloc(64, (tbytes + 63) / 64 * 64));
  for (int j = 0; j < L; ++j) fb->m52[j] = limb52(m64, k64, j);
  memcpy(fb->m64, m64, sizeof(uint64_t) * k64);
#define CR_FB_BUILD(n) fb_build<n>(fb, table64, r2_64)
  switch (L) {
    case 40: CR_FB_BUILD(40); break;
    case 60: CR_FB_BUILD(60); break;
    case 79: CR_FB_BUILD(79); break;
    default: CR_FB_BUILD(119); break;
  }
#undef CR_FB_BUILD
  return fb;
}

// out[e] = g^a_e mod m with a_e given by its rows little-endian bytes digits[e * rows + i].
int cr_ifma_fb_pow(const void* handle, const uint8_t* digits, uint64_t* out64, int64_t count,
                   int32_t threads) {
  const FixedBase* fb = static_cast<const FixedBase*>(handle);
  if (fb == nullptr) return -1;
  if (count <= 0) return 0;
#define CR_FB_POW(n) fb_pow_all<n>(fb, digits, out64, count, threads)
  switch (fb->L) {
    case 40: CR_FB_POW(40); break;
    case 60: CR_FB_POW(60); break;
    case 79: CR_FB_POW(79); break;
    default: CR_FB_POW(119); break;
  }
#undef CR_FB_POW
  return 0;
}

void cr_ifma_fb_free(void* handle) {
  FixedBase* fb = static_cast<FixedBase*>(handle);
  if (fb == nullptr) return;
  free(fb->m52);
  free(fb->m64);
  free(fb->t52);
  delete fb;
}
}

