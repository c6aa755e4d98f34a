// Batched AES-256-CTR keystreams with AES-NI: the PRG of cipherray.protocols.prg for many
// 32-byte seeds in one call.
//
// For every seed (the AES-256 key) the keystream is AES_k(C), AES_k(C + 1), ... where the
// initial counter block C is stream (8 bytes, big-endian) followed by 8 zero bytes and the
// counter is one 128-bit big-endian integer (as in `cryptography`'s / OpenSSL's CTR mode).
// Eight counter blocks go through the 14 rounds side by side so that the aesenc latency is
// hidden (AES-NI throughput is one or two rounds per cycle, latency four or more).
//
// cr_aes_ctr_many writes each seed's first nbytes of keystream; cr_aes_ctr_masked_sum adds
// (or subtracts) each keystream, read as little-endian uint32 / uint64 ring elements, into
// one accumulator straight from the registers: no per-seed buffer.
//
// AES-NI has no table lookups and no secret-dependent branch: constant time in the keys.
// The signs are public (which client adds a pair mask). Built with -maes -msse4.1 and
// called only after the Python side has checked the CPU's "aes" flag (aes_ctr.py).
// Checked bit for bit against `cryptography` in tests/test_aes_masks.py.

#include <smmintrin.h>
#include <stdint.h>
#include <string.h>
#include <wmmintrin.h>

#include <type_traits>

namespace {

constexpr int ROUNDS = 14;
constexpr int LANES = 8;  // blocks in flight
constexpr int64_t CHUNK = 16 * LANES;

struct Key {
  __m128i rk[ROUNDS + 1];
};

#include "aes_schedule.h"

static inline void expand_key(const uint8_t* seed, Key* k) {
  __m128i* rk = k->rk;
  rk[0] = _mm_loadu_si128((const __m128i*)seed);
  rk[1] = _mm_loadu_si128((const __m128i*)(seed + 16));
// the rcon byte must be an immediate: one macro per step pair
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
}

// The 128-bit big-endian counter block hi:lo as a register (bytes 0..7 = hi big-endian).
static inline __m128i counter_block(uint64_t hi, uint64_t lo) {
  return _mm_set_epi64x((long long)__builtin_bswap64(lo), (long long)__builtin_bswap64(hi));
}

// Keystream blocks block0 .. block0 + n - 1 (n <= LANES) of the counter that starts at
// stream:0, into x[0..n). The low counter half starts at 0 and an int64 byte count needs
// fewer than 2^59 blocks, so it never carries into the high half (stream).
static inline void keystream(const Key& k, uint64_t stream, uint64_t block0, __m128i* x, int n) {
  for (int j = 0; j < n; ++j)
    x[j] = _mm_xor_si128(counter_block(stream, block0 + (uint64_t)j), k.rk[0]);
  for (int r = 1; r < ROUNDS; ++r)
    for (int j = 0; j < n; ++j) x[j] = _mm_aesenc_si128(x[j], k.rk[r]);
  for (int j = 0; j < n; ++j) x[j] = _mm_aesenclast_si128(x[j], k.rk[ROUNDS]);
}

// Full chunks of LANES blocks, the compiler keeps all eight in registers.
static inline void keystream8(const Key& k, uint64_t stream, uint64_t block0, __m128i* x) {
  keystream(k, stream, block0, x, LANES);
}

template <int BITS, bool SUB>
static inline __m128i combine(__m128i acc, __m128i ks) {
  if (BITS == 32) return SUB ? _mm_sub_epi32(acc, ks) : _mm_add_epi32(acc, ks);
  return SUB ? _mm_sub_epi64(acc, ks) : _mm_add_epi64(acc, ks);
}

template <typename T, bool SUB>
static inline void combine_tail(T* acc, const uint8_t* ks, int64_t count) {
  for (int64_t e = 0; e < count; ++e) {
    T v;
    memcpy(&v, ks + e * (int64_t)sizeof(T), sizeof(T));  // little-endian host (x86)
    acc[e] = SUB ? (T)(acc[e] - v) : (T)(acc[e] + v);
  }
}

// acc[0 .. nbytes) += or -= the keystream of k, as ring elements of BITS bits.
template <int BITS, bool SUB>
static void accumulate(const Key& k, uint64_t stream, uint8_t* acc, int64_t nbytes) {
  typedef typename std::conditional<BITS == 32, uint32_t, uint64_t>::type T;
  __m128i x[LANES];
  uint64_t block = 0;
  int64_t pos = 0;
  for (; pos + CHUNK <= nbytes; pos += CHUNK, block += LANES) {
    keystream8(k, stream, block, x);
    for (int j = 0; j < LANES; ++j) {
      __m128i* p = (__m128i*)(acc + pos + 16 * j);
      _mm_storeu_si128(p, combine<BITS, SUB>(_mm_loadu_si128(p), x[j]));
    }
  }
  const int64_t rest = nbytes - pos;  // a multiple of sizeof(T), below CHUNK
  if (rest > 0) {
    const int n = (int)((rest + 15) / 16);
    keystream(k, stream, block, x, n);
    alignas(16) uint8_t buf[CHUNK];
    for (int j = 0; j < n; ++j) _mm_store_si128((__m128i*)(buf + 16 * j), x[j]);
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

// out[i * nbytes ...] = the first nbytes of the keystream of seeds[32 i .. 32 i + 32).
void cr_aes_ctr_many(const uint8_t* seeds, int64_t count, uint64_t stream, uint8_t* out,
                     int64_t nbytes) {
  if (count <= 0 || nbytes <= 0) return;
  Key k;
  __m128i x[LANES];
  for (int64_t i = 0; i < count; ++i) {
    expand_key(seeds + 32 * i, &k);
    uint8_t* o = out + i * nbytes;
    uint64_t block = 0;
    int64_t pos = 0;
    for (; pos + CHUNK <= nbytes; pos += CHUNK, block += LANES) {
      keystream8(k, stream, block, x);
      for (int j = 0; j < LANES; ++j) _mm_storeu_si128((__m128i*)(o + pos + 16 * j), x[j]);
    }
    const int64_t rest = nbytes - pos;
    if (rest > 0) {
      const int n = (int)((rest + 15) / 16);
      keystream(k, stream, block, x, n);
      alignas(16) uint8_t buf[CHUNK];
      for (int j = 0; j < n; ++j) _mm_store_si128((__m128i*)(buf + 16 * j), x[j]);
      memcpy(o + pos, buf, (size_t)rest);
      }
  }
}

// acc (length elements of Z_2^bits: uint32 for bits 32, uint64 for bits 64) += the sum of
// signs[i] * keystream_i (sign 1 adds, -1 subtracts, 0 skips). Returns 0, or -1 for a bits
// other than 32 and 64 (acc untouched).
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
