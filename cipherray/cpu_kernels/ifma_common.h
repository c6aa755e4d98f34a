// Shared pieces of the AVX-512 IFMA kernels (modexp_ifma.cc, bucket_ifma.cc): 52-bit limbs,
// eight numbers in the eight 64-bit lanes of a zmm register, almost-Montgomery multiplication
// (see modexp_ifma.cc for the scheme), limb conversion and the final conditional subtraction.
// Included inside each source's anonymous namespace.

#ifndef CR_IFMA_COMMON_H
#define CR_IFMA_COMMON_H

constexpr uint64_t MASK52 = (1ULL << 52) - 1;

struct Modulus {
  int L;
  const uint64_t* m52;  // L limbs, normalised
  uint64_t k0;          // -m^-1 mod 2^52
};

// r = a * b / R mod m, all L-limb lane arrays (r may alias a or b).
template <int L>
static inline void amm(__m512i* r, const __m512i* a, const __m512i* b, const uint64_t* m52,
                       __m512i k0) {
  __m512i t[2 * L];
  const __m512i zero = _mm512_setzero_si512();
  for (int p = 0; p < 2 * L; ++p) t[p] = zero;
  for (int i = 0; i < L; ++i) {
    const __m512i bi = b[i];
    __m512i ti = _mm512_madd52lo_epu64(t[i], a[0], bi);
    const __m512i y = _mm512_madd52lo_epu64(zero, ti, k0);
    ti = _mm512_madd52lo_epu64(ti, _mm512_set1_epi64((long long)m52[0]), y);
    t[i + 1] = _mm512_add_epi64(t[i + 1], _mm512_srli_epi64(ti, 52));
#pragma GCC unroll 8
    for (int j = 1; j < L; ++j) {
      const __m512i mj = _mm512_set1_epi64((long long)m52[j]);
      const __m512i mj1 = _mm512_set1_epi64((long long)m52[j - 1]);
      __m512i acc = t[i + j];
      acc = _mm512_madd52lo_epu64(acc, a[j], bi);
      acc = _mm512_madd52hi_epu64(acc, a[j - 1], bi);
      acc = _mm512_madd52lo_epu64(acc, mj, y);
      acc = _mm512_madd52hi_epu64(acc, mj1, y);
      t[i + j] = acc;
    }
    __m512i top = t[i + L];
    top = _mm512_madd52hi_epu64(top, a[L - 1], bi);
    top = _mm512_madd52hi_epu64(top, _mm512_set1_epi64((long long)m52[L - 1]), y);
    t[i + L] = top;
  }
  const __m512i mask = _mm512_set1_epi64((long long)MASK52);
  __m512i carry = zero;
  for (int j = 0; j < L; ++j) {
    const __m512i v = _mm512_add_epi64(t[L + j], carry);
    r[j] = _mm512_and_si512(v, mask);
    carry = _mm512_srli_epi64(v, 52);
  }
}

// bits [52 j, 52 j + 52) of a little-endian array of k64 64-bit words
static inline uint64_t limb52(const uint64_t* x, int k64, int j) {
  const int pos = 52 * j, w = pos >> 6, s = pos & 63;
  if (w >= k64) return 0;
  uint64_t v = x[w] >> s;
  if (s > 12 && w + 1 < k64) v |= x[w + 1] << (64 - s);
  return v & MASK52;
}

template <int L>
static void load_lanes(__m512i* dst, const uint64_t* src, int k64, int64_t first, int64_t count) {
  alignas(64) uint64_t tmp[8];
  for (int j = 0; j < L; ++j) {
    for (int lane = 0; lane < 8; ++lane) {
      const int64_t e = first + lane;
      tmp[lane] = e < count ? limb52(src + e * k64, k64, j) : (j == 0 ? 1 : 0);
    }
    dst[j] = _mm512_load_si512(tmp);
  }
}

// out (k64 words) = x (L normalised 52-bit limbs of one lane), then x mod m by one
// conditional subtraction (x <= m on entry).
static void store_lane(uint64_t* out, int k64, const uint64_t* x52, int L, const uint64_t* m64) {
  memset(out, 0, sizeof(uint64_t) * k64);
  for (int j = 0; j < L; ++j) {
    const int pos = 52 * j, w = pos >> 6, s = pos & 63;
    if (w < k64) out[w] |= x52[j] << s;
    if (s > 12 && w + 1 < k64) out[w + 1] |= x52[j] >> (64 - s);
  }
  int ge = 1;  // out >= m ?
  for (int w = k64 - 1; w >= 0; --w) {
    if (out[w] != m64[w]) {
      ge = out[w] > m64[w];
      break;
    }
  }
  if (ge) {
    unsigned __int128 borrow = 0;
    for (int w = 0; w < k64; ++w) {
      const unsigned __int128 d = (unsigned __int128)out[w] - m64[w] - borrow;
      out[w] = (uint64_t)d;
      borrow = (d >> 64) & 1;
    }
  }
}

#endif  // CR_IFMA_COMMON_H
