// SoftSpokenOT's small-field VOLE (cipherray.protocols.ot.softspoken) with VAES (AVX-512):
// for every block b of 2^k seeds s_{b,x}, the AES-256-CTR keystreams G_x (the PRG of
// aes_ctr.cc, bit for bit: counter block = the 128-bit big-endian integer
// stream * 2^64 + block index) folded into
//   plane l   = XOR of the G_x with bit l of x set   (l < k)
//   sum       = XOR of all G_x                        (optional)
// without materialising the 2^k keystreams. vole.py falls back to aes_ctr.keystreams and
// a numpy tree where this build cannot run.
//
// The fold is a binary counter over x: the keystream of x (cur) is merged up the levels
// while x has its bit l set (plane l ^= cur, cur ^= stack[l]: the odd subtree goes into
// plane l, the pair sum goes up), and parked in stack[l] at the first clear bit. About two
// XOR passes per keystream byte. The columns are walked in tiles of TILE bytes so that the
// stack, the planes and cur (2k + 1 tiles) stay in L1; the round keys of a block's 2^k
// seeds are expanded once per block.
//
// AES-NI/VAES has no table lookups and no secret-dependent branch or address: the control
// flow depends on k, x and the sizes only (public).

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

namespace {

constexpr int ROUNDS = 14;
constexpr int LANES = 8;               // zmm registers in flight, 4 blocks each
constexpr int64_t STEP = 64 * LANES;  // keystream bytes per step
constexpr int64_t TILE = 2048;         // columns per tile (a multiple of STEP)
constexpr int MAXK = 8;

#include "aes_schedule.h"

static inline void expand_key(const uint8_t* seed, __m128i* rk) {
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
}

static inline __m512i counters(uint64_t stream, uint64_t block0) {
  return _mm512_set_epi64((long long)stream, (long long)(block0 + 3), (long long)stream,
                          (long long)(block0 + 2), (long long)stream, (long long)(block0 + 1),
                          (long long)stream, (long long)block0);
}

// nbytes (a multiple of STEP) of the keystream of round keys rk128, from block block0 on
static inline void keystream(const __m128i* rk128, uint64_t stream, uint64_t block0,
                             uint8_t* out, int64_t nbytes) {
  __m512i rk[ROUNDS + 1];
  for (int r = 0; r <= ROUNDS; ++r) rk[r] = _mm512_broadcast_i32x4(rk128[r]);
  const __m512i rev = _mm512_broadcast_i32x4(
      _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  const __m512i four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
  __m512i x[LANES];
  for (int64_t pos = 0; pos < nbytes; pos += STEP, block0 += 4 * LANES) {
    __m512i c = counters(stream, block0);
    for (int j = 0; j < LANES; ++j) {
      x[j] = _mm512_xor_si512(_mm512_shuffle_epi8(c, rev), rk[0]);
      c = _mm512_add_epi64(c, four);
    }
    for (int r = 1; r < ROUNDS; ++r)
      for (int j = 0; j < LANES; ++j) x[j] = _mm512_aesenc_epi128(x[j], rk[r]);
    for (int j = 0; j < LANES; ++j)
      _mm512_store_si512(out + pos + 64 * j, _mm512_aesenclast_epi128(x[j], rk[ROUNDS]));
  }
}

static inline void xor_into(uint8_t* dst, const uint8_t* src, int64_t n) {
  for (int64_t i = 0; i < n; i += 64)
    _mm512_store_si512(dst + i,
                       _mm512_xor_si512(_mm512_load_si512(dst + i), _mm512_load_si512(src + i)));
}

}  // namespace

extern "C" {

// seeds: nblocks * 2^k * 32 bytes; planes: nblocks * k rows of nbytes (row b k + l);
// sums: nblocks rows of nbytes, or NULL. Returns 0, -1 for a bad k, -2 without memory.
int32_t cr_vole_planes(const uint8_t* seeds, int64_t nblocks, int32_t k, uint64_t stream,
                       uint8_t* planes, uint8_t* sums, int64_t nbytes) {
  if (k < 1 || k > MAXK) return -1;
  if (nblocks <= 0 || nbytes <= 0) return 0;
  const int64_t n = (int64_t)1 << k;
  const int64_t key_bytes = (n * (ROUNDS + 1) * 16 + 63) / 64 * 64;
  __m128i* keys = (__m128i*)aligned_alloc(64, (size_t)key_bytes);
  uint8_t* buf = (uint8_t*)aligned_alloc(64, (size_t)((2 * k + 1) * TILE));
  if (keys == nullptr || buf == nullptr) {
    free(keys);
    free(buf);
    return -2;
  }
  uint8_t* cur = buf;
  uint8_t* stack = buf + TILE;          // k tiles
  uint8_t* acc = buf + (1 + k) * TILE;  // k tiles: the planes of this tile
  for (int64_t b = 0; b < nblocks; ++b) {
    for (int64_t x = 0; x < n; ++x) expand_key(seeds + 32 * (b * n + x), keys + x * (ROUNDS + 1));
    for (int64_t t0 = 0; t0 < nbytes; t0 += TILE) {
      const int64_t len = nbytes - t0 < TILE ? nbytes - t0 : TILE;
      const int64_t span = (len + STEP - 1) / STEP * STEP;
      memset(acc, 0, (size_t)(k * TILE));
      for (int64_t x = 0; x < n; ++x) {
        keystream(keys + x * (ROUNDS + 1), stream, (uint64_t)(t0 / 16), cur, span);
        int l = 0;
        for (; l < k && ((x >> l) & 1); ++l) {
          xor_into(acc + l * TILE, cur, span);
          xor_into(cur, stack + l * TILE, span);
        }
        if (l < k) memcpy(stack + l * TILE, cur, (size_t)span);
      }
      // x = 2^k - 1 ran through every level: cur is the sum of all 2^k keystreams
      for (int l = 0; l < k; ++l) memcpy(planes + (b * k + l) * nbytes + t0, acc + l * TILE, len);
      if (sums != nullptr) memcpy(sums + b * nbytes + t0, cur, (size_t)len);
    }
  }
  free(keys);
  free(buf);
  return 0;
}

}  // extern "C"
