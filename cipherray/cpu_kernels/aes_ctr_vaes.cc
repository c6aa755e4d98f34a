// AES-256-CTR keystreams with VAES (AVX-512): the same functions and results as
// aes_ctr.cc, four counter blocks per instruction instead of one. aes_ctr.py uses this
// build where the CPU has VAES, AVX-512F and AVX-512BW, else aes_ctr.cc's AES-NI build.
//
// Counter blocks as in aes_ctr.cc: the 128-bit big-endian integer stream * 2^64 + block.
// Each 128-bit lane of `ctr` holds that integer little-endian (low qword the block, high
// qword the stream), and one byte reversal per lane (vpshufb) makes the counter block.
// The block count of an int64 byte length never carries into the stream half.
//
// AES-NI has no table lookups and no secret-dependent branch: constant time in the keys.
// Checked bit for bit against `cryptography` in tests/test_aes_masks.py and
// tests/test_prg_kernel.py (both builds, where the CPU has them).

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

namespace {

constexpr int ROUNDS = 14;
constexpr int LANES = 8;                // zmm registers in flight, 4 blocks each
constexpr int64_t CHUNK = 64 * LANES;  // bytes per step

struct Key {
  __m512i rk[ROUNDS + 1];
};

#include "aes_schedule.h"

static inline void expand_key(const uint8_t* seed, Key* k) {
  __m128i rk[ROUNDS + 1];
  rk[0] = _mm_loadu_si128((const __m128i*)seed);
  rk[1] = _mm_loadu_si128((const __m128i*)(seed + 16));
#define CR_AES256_STEP(i, rcon)                                              \
  rk[i] = sched_even(rk[i - 2], _mm_aeskeygenassist_si128(rk[i - 1], rcon)); \
  rk[i + 1] = sched_odd(rk[i - 1], _mm_aeskeygenassist_si128(rk[i], 0));
  CR_AES256_STEP(2, 0x01)
  CR_AES256_STEP(4, 0x02)
  CR_AES256_STEP(6, 0x04)
  CR_AES256_STEP(8, 0x08)
  CR_AES256_STEP(10, 0x10)
  CR_AES256_STEP(12, 0x20)
  rk[14] = sched_even(rk[12], _mm_aeskeygenassist_si128(rk[13], 0x40));
#undef CR_AES256_STEP
  for (int r = 0; r <= ROUNDS; ++r) k->rk[r] = _mm512_broadcast_i32x4(rk[r]);
}

// the byte reversal of each 128-bit lane: little-endian integer -> big-endian block
static inline __m512i reverse_lanes() {
  const __m128i rev = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_broadcast_i32x4(rev);
}

// 4 * LANES keystream blocks from block0 on, into x[0 .. LANES)
static inline void keystream(const Key& k, __m512i ctr0, __m512i* x) {
  const __m512i rev = reverse_lanes();
  const __m512i four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
  __m512i c = ctr0;
  for (int j = 0; j < LANES; ++j) {
    x[j] = _mm512_xor_si512(_mm512_shuffle_epi8(c, rev), k.rk[0]);
    c = _mm512_add_epi64(c, four);
  }
  for (int r = 1; r < ROUNDS; ++r)
    for (int j = 0; j < LANES; ++j) x[j] = _mm512_aesenc_epi128(x[j], k.rk[r]);
  for (int j = 0; j < LANES; ++j) x[j] = _mm512_aesenclast_epi128(x[j], k.rk[ROUNDS]);
}

// the counters of blocks block0 .. block0 + 3 (one per 128-bit lane)
static inline __m512i counters(uint64_t stream, uint64_t block0) {
  return _mm512_set_epi64((long long)stream, (long long)(block0 + 3), (long long)stream,
                          (long long)(block0 + 2), (long long)stream, (long long)(block0 + 1),
                          (long long)stream, (long long)block0);
}

template <int BITS, bool SUB>
static inline __m512i combine(__m512i acc, __m512i ks) {
  if (BITS == 32) return SUB ? _mm512_sub_epi32(acc, ks) : _mm512_add_epi32(acc, ks);
  return SUB ? _mm512_sub_epi64(acc, ks) : _mm512_add_epi64(acc, ks);
}

template <typename T, bool SUB>
static inline void combine_tail(T* acc, const uint8_t* ks, int64_t count) {
  for (int64_t e = 0; e < count; ++e) {
    T v;
    memcpy(&v, ks + e * (int64_t)sizeof(T), sizeof(T));
    acc[e] = SUB ? (T)(acc[e] - v) : (T)(acc[e] + v);
  }
}

template <int BITS, bool SUB>
static void accumulate(const Key& k, uint64_t stream, uint8_t* acc, int64_t nbytes) {
  typedef typename std::conditional<BITS == 32, uint32_t, uint64_t>::type T;
  __m512i x[LANES];
  uint64_t block = 0;
  int64_t pos = 0;
  for (; pos + CHUNK <= nbytes; pos += CHUNK, block += 4 * LANES) {
    keystream(k, counters(stream, block), x);
    for (int j = 0; j < LANES; ++j) {
      uint8_t* p = acc + pos + 64 * j;
      _mm512_storeu_si512(p, combine<BITS, SUB>(_mm512_loadu_si512(p), x[j]));
    }
  }
  const int64_t rest = nbytes - pos;  // a multiple of sizeof(T), below CHUNK
  if (rest > 0) {
    keystream(k, counters(stream, block), x);
    alignas(64) uint8_t buf[CHUNK];
    for (int j = 0; j < LANES; ++j) _mm512_store_si512(buf + 64 * j, x[j]);
    combine_tail<T, SUB>((T*)(acc + pos), buf, rest / (int64_t)sizeof(T));
  }
}

template <int BITS>
static void masked_sum(const uint8_t* seeds, const int8_t* signs, int64_t count, uint64_t stream,
                       uint8_t* acc, int64_t nbytes) {
  Key k;
  for (int64_t i = 0; i < count; ++i) {
    if (signs[i] == 0) continue;
    expand_key(seeds + 32 * i, &k);
    if (signs[i] > 0)
      accumulate<BITS, false>(k, stream, acc, nbytes);
    else
      accumulate<BITS, true>(k, stream, acc, nbytes);
  }
}

}  // namespace

extern "C" {

void cr_aes_ctr_many(const uint8_t* seeds, int64_t count, uint64_t stream, uint8_t* out,
                     int64_t nbytes) {
  if (count <= 0 || nbytes <= 0) return;
  Key k;
  __m512i x[LANES];
  for (int64_t i = 0; i < count; ++i) {
    expand_key(seeds + 32 * i, &k);
    uint8_t* o = out + i * nbytes;
    uint64_t block = 0;
    int64_t pos = 0;
    for (; pos + CHUNK <= nbytes; pos += CHUNK, block += 4 * LANES) {
      keystream(k, counters(stream, block), x);
      for (int j = 0; j < LANES; ++j) _mm512_storeu_si512(o + pos + 64 * j, x[j]);
    }
    const int64_t rest = nbytes - pos;
    if (rest > 0) {
      keystream(k, counters(stream, block), x);
      alignas(64) uint8_t buf[CHUNK];
      for (int j = 0; j < LANES; ++j) _mm512_store_si512(buf + 64 * j, x[j]);
      memcpy(o + pos, buf, (size_t)rest);
    }
  }
}

int32_t cr_aes_ctr_masked_sum(const uint8_t* seeds, const int8_t* signs, int64_t count,
                              uint64_t stream, void* acc, int64_t length, int32_t bits) {
  if (bits != 32 && bits != 64) return -1;
  if (count <= 0 || length <= 0) return 0;
  const int64_t nbytes = length * (bits / 8);
  if (bits == 32)
    masked_sum<32>(seeds, signs, count, stream, (uint8_t*)acc, nbytes);
  else
    masked_sum<64>(seeds, signs, count, stream, (uint8_t*)acc, nbytes);
  return 0;
}

}  // extern "C"
