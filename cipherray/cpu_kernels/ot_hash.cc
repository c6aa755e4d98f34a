// The tweakable correlation-robust hash of IKNP OT extension (cipherray.protocols.ot.iknp):
//
//     H(x, i) = pi(pi(x) ^ i) ^ pi(x)
//
// (Guo–Katz–Wang–Yu, S&P 2020, TCCR), pi = AES-128 under a fixed public key whose 16 bytes
// the caller passes. Block f of the output (f = j * nblocks + b) is H(x_j ^ delta, i) with the
// tweak i = (start + j) in bytes 0..7 and b in bytes 8..15 (little-endian); delta is optional
// (null: none). Eight blocks go through the rounds side by side (AES-NI); where the build has
// VAES (this file included by ot_hash_vaes.cc with -mvaes -mavx512f) and nblocks is 1,
// sixteen blocks go four to an instruction. No secret-dependent branch or address: AES-NI
// is constant time. Checked bit for bit against `cryptography`'s AES-ECB in tests/test_ot.py.

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

namespace {

constexpr int ROUNDS = 10;
constexpr int LANES = 8;

struct Key {
  __m128i rk[ROUNDS + 1];
};

#include "aes_schedule.h"

static inline void expand_key(const uint8_t* key, Key* k) {
  __m128i* rk = k->rk;
  rk[0] = _mm_loadu_si128((const __m128i*)key);
#define CR_AES128_STEP(i, rcon) \
  rk[i] = sched_even(rk[i - 1], _mm_aeskeygenassist_si128(rk[i - 1], rcon));
  CR_AES128_STEP(1, 0x01)
  CR_AES128_STEP(2, 0x02)
  CR_AES128_STEP(3, 0x04)
  CR_AES128_STEP(4, 0x08)
  CR_AES128_STEP(5, 0x10)
  CR_AES128_STEP(6, 0x20)
  CR_AES128_STEP(7, 0x40)
  CR_AES128_STEP(8, 0x80)
  CR_AES128_STEP(9, 0x1b)
  CR_AES128_STEP(10, 0x36)
#undef CR_AES128_STEP
}

static inline void aes(const Key& k, __m128i* x, int n) {
  for (int j = 0; j < n; ++j) x[j] = _mm_xor_si128(x[j], k.rk[0]);
  for (int r = 1; r < ROUNDS; ++r)
    for (int j = 0; j < n; ++j) x[j] = _mm_aesenc_si128(x[j], k.rk[r]);
  for (int j = 0; j < n; ++j) x[j] = _mm_aesenclast_si128(x[j], k.rk[ROUNDS]);
}

// The flat block position f = j * nblocks + b, advanced one block at a time (no division).
struct Pos {
  int64_t j, b, nblocks;
  inline void next() {
    if (++b == nblocks) b = 0, ++j;
  }
};

static inline __m128i tweak(uint64_t start, const Pos& q) {
  return _mm_set_epi64x((long long)q.b, (long long)(start + (uint64_t)q.j));
}

// n <= LANES output blocks from position *pos (advanced past them), written at out.
static inline void hash_blocks(const Key& k, const uint8_t* x, __m128i delta, uint64_t start,
                               Pos* pos, int n, uint8_t* out) {
  __m128i p[LANES], y[LANES], t[LANES];
  for (int l = 0; l < n; ++l, pos->next()) {
    p[l] = _mm_xor_si128(_mm_loadu_si128((const __m128i*)(x + 16 * pos->j)), delta);
    t[l] = tweak(start, *pos);
  }
  aes(k, p, n);
  for (int l = 0; l < n; ++l) y[l] = _mm_xor_si128(p[l], t[l]);
  aes(k, y, n);
  for (int l = 0; l < n; ++l) _mm_storeu_si128((__m128i*)(out + 16 * l), _mm_xor_si128(y[l], p[l]));
}

#if defined(__VAES__) && defined(__AVX512F__)
constexpr int ZLANES = 4;  // zmm registers in flight, four blocks each

static inline void aes512(const __m512i* rk, __m512i* x) {
  for (int j = 0; j < ZLANES; ++j) x[j] = _mm512_xor_si512(x[j], rk[0]);
  for (int r = 1; r < ROUNDS; ++r)
    for (int j = 0; j < ZLANES; ++j) x[j] = _mm512_aesenc_epi128(x[j], rk[r]);
  for (int j = 0; j < ZLANES; ++j) x[j] = _mm512_aesenclast_epi128(x[j], rk[ROUNDS]);
}

// Groups of 4 * ZLANES blocks from position *pos (advanced); returns the blocks done.
// nblocks == 1 loads four consecutive rows at once, otherwise each 128-bit lane is filled
// from its own row.
static inline int64_t hash_wide(const Key& k, const uint8_t* x, __m128i delta, uint64_t start,
                                Pos* pos, int64_t total, uint8_t* out) {
  __m512i rk[ROUNDS + 1];
  for (int r = 0; r <= ROUNDS; ++r) rk[r] = _mm512_broadcast_i32x4(k.rk[r]);
  const __m512i d = _mm512_broadcast_i32x4(delta);
  __m512i p[ZLANES], y[ZLANES], t[ZLANES];
  int64_t f = 0;
  for (; f + 4 * ZLANES <= total; f += 4 * ZLANES) {
    for (int l = 0; l < ZLANES; ++l) {
      if (pos->nblocks == 1) {
        const long long j = pos->j;
        p[l] = _mm512_loadu_si512((const void*)(x + 16 * j));
        t[l] = _mm512_set_epi64(0, (long long)start + j + 3, 0, (long long)start + j + 2, 0,
                                (long long)start + j + 1, 0, (long long)start + j);
        pos->j += 4;
      } else {
        __m512i v = _mm512_setzero_si512(), w = _mm512_setzero_si512();
        for (int e = 0; e < 4; ++e, pos->next()) {
          const __m128i xe = _mm_loadu_si128((const __m128i*)(x + 16 * pos->j));
          const __m128i te = tweak(start, *pos);
          switch (e) {  // the lane index must be an immediate
            case 0: v = _mm512_inserti32x4(v, xe, 0), w = _mm512_inserti32x4(w, te, 0); break;
            case 1: v = _mm512_inserti32x4(v, xe, 1), w = _mm512_inserti32x4(w, te, 1); break;
            case 2: v = _mm512_inserti32x4(v, xe, 2), w = _mm512_inserti32x4(w, te, 2); break;
            default: v = _mm512_inserti32x4(v, xe, 3), w = _mm512_inserti32x4(w, te, 3);
          }
        }
        p[l] = v, t[l] = w;
      }
      p[l] = _mm512_xor_si512(p[l], d);
    }
    aes512(rk, p);
    for (int l = 0; l < ZLANES; ++l) y[l] = _mm512_xor_si512(p[l], t[l]);
    aes512(rk, y);
    for (int l = 0; l < ZLANES; ++l)
      _mm512_storeu_si512((void*)(out + 16 * (f + 4 * l)), _mm512_xor_si512(y[l], p[l]));
  }
  return f;
}
#endif

}  // namespace

extern "C" void cr_tccr(const uint8_t* key, const uint8_t* x, int64_t m, const uint8_t* delta,
                        uint64_t start, int64_t nblocks, uint8_t* out) {
  if (m <= 0 || nblocks <= 0) return;
  Key k;
  expand_key(key, &k);
  const __m128i d = delta ? _mm_loadu_si128((const __m128i*)delta) : _mm_setzero_si128();
  const int64_t total = m * nblocks;
  Pos pos = {0, 0, nblocks};
  int64_t f = 0;
#if defined(__VAES__) && defined(__AVX512F__)
  f = hash_wide(k, x, d, start, &pos, total, out);
#endif
  for (; f + LANES <= total; f += LANES) hash_blocks(k, x, d, start, &pos, LANES, out + 16 * f);
  if (f < total) hash_blocks(k, x, d, start, &pos, (int)(total - f), out + 16 * f);
}
