// Bit-matrix transposition for IKNP OT extension (cipherray.protocols.ot), SSE2, and
// AVX-512BW where this file is built by bit_transpose_avx512.cc.
//
// The input is a rows x (8 * cols) bit matrix stored row by row, cols bytes a row, bit j of
// row i at byte j / 8, bit j % 8 (least significant bit first). The output is its transpose,
// (8 * cols) rows of rows / 8 bytes, in the same bit order. rows and cols must be multiples
// of 16 (the Python side pads). cr_bit_transpose_xor transposes in ^ (x & row_mask[i]) with
// row_mask[i] 0x00 or 0xff (IKNP's q^i = G(k_i) ^ delta_i * u^i) in the same pass;
// cr_bit_transpose_acc also xors every input row and one fixed row into an accumulator
// (IKNP's u^i = G(k_i^1) ^ t^i ^ c) while it reads them.
//
// Each 16-row x 16-byte tile is loaded as 16 registers and turned into its 16 x 16 byte
// transpose by four rounds of unpack (8-, 16-, 32- and 64-bit interleave of register pairs;
// after them register k holds byte column bitrev4(k) of the 16 rows, in row order). Then
// _mm_movemask_epi8 collects the top bit of the 16 bytes, i.e. one bit column of the 16
// rows = 16 bits of one output row, and a left shift by one brings up the next bit: eight
// movemasks per byte column give the eight output rows. With AVX-512 the four 128-bit lanes
// of a register carry four such tiles (rows r0, r0 + 16, r0 + 32, r0 + 48; the unpacks work
// lane by lane) and _mm512_movepi8_mask takes 64 rows' bits at once. The tiles of one
// 16-byte column block are walked down all rows so that the output being written stays in
// L1. No data-dependent branch or address: constant time in the matrix and the masks.

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

namespace {

constexpr int BITREV4[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};

template <int W>
static inline void interleave(const __m128i* x, __m128i* y) {
  for (int i = 0; i < 8; ++i) {
    const __m128i a = x[2 * i], b = x[2 * i + 1];
    if (W == 1) y[i] = _mm_unpacklo_epi8(a, b), y[i + 8] = _mm_unpackhi_epi8(a, b);
    if (W == 2) y[i] = _mm_unpacklo_epi16(a, b), y[i + 8] = _mm_unpackhi_epi16(a, b);
    if (W == 4) y[i] = _mm_unpacklo_epi32(a, b), y[i + 8] = _mm_unpackhi_epi32(a, b);
    if (W == 8) y[i] = _mm_unpacklo_epi64(a, b), y[i + 8] = _mm_unpackhi_epi64(a, b);
  }
}

// One 16 x 16 byte tile: rows r0..r0+15, byte columns c0..c0+15.
static inline void tile16(const uint8_t* in, int64_t cols, int64_t r0, int64_t c0, uint8_t* out,
                          int64_t out_row) {
  __m128i a[16], b[16];
  for (int k = 0; k < 16; ++k)
    a[k] = _mm_loadu_si128((const __m128i*)(in + (r0 + k) * cols + c0));
  interleave<1>(a, b);
  interleave<2>(b, a);
  interleave<4>(a, b);
  interleave<8>(b, a);
  uint8_t* dst = out + r0 / 8;
  for (int k = 0; k < 16; ++k) {
    __m128i v = a[k];
    const int64_t base = 8 * (c0 + BITREV4[k]);
    for (int bit = 7; bit >= 0; --bit) {
      const uint16_t mask = (uint16_t)_mm_movemask_epi8(v);
      memcpy(dst + (base + bit) * out_row, &mask, 2);
      v = _mm_slli_epi64(v, 1);
    }
  }
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
template <int W>
static inline void interleave512(const __m512i* x, __m512i* y) {
  for (int i = 0; i < 8; ++i) {
    const __m512i a = x[2 * i], b = x[2 * i + 1];
    if (W == 1) y[i] = _mm512_unpacklo_epi8(a, b), y[i + 8] = _mm512_unpackhi_epi8(a, b);
    if (W == 2) y[i] = _mm512_unpacklo_epi16(a, b), y[i + 8] = _mm512_unpackhi_epi16(a, b);
    if (W == 4) y[i] = _mm512_unpacklo_epi32(a, b), y[i + 8] = _mm512_unpackhi_epi32(a, b);
    if (W == 8) y[i] = _mm512_unpacklo_epi64(a, b), y[i + 8] = _mm512_unpackhi_epi64(a, b);
  }
}

static inline __m512i load4(const uint8_t* p, int64_t stride) {  // rows p, +16, +32, +48
  __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i*)p));
  v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i*)(p + 16 * stride)), 1);
  v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i*)(p + 32 * stride)), 2);
  return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i*)(p + 48 * stride)), 3);
}

// One 64 x 16 byte tile: rows r0..r0+63, byte columns c0..c0+15.
static inline void tile64(const uint8_t* in, int64_t cols, int64_t r0, int64_t c0, uint8_t* out,
                          int64_t out_row) {
  __m512i a[16], b[16];
  for (int k = 0; k < 16; ++k) a[k] = load4(in + (r0 + k) * cols + c0, cols);
  interleave512<1>(a, b);
  interleave512<2>(b, a);
  interleave512<4>(a, b);
  interleave512<8>(b, a);
  uint8_t* dst = out + r0 / 8;
  for (int k = 0; k < 16; ++k) {
    __m512i v = a[k];
    const int64_t base = 8 * (c0 + BITREV4[k]);
    for (int bit = 7; bit >= 0; --bit) {
      const uint64_t mask = (uint64_t)_mm512_movepi8_mask(v);
      memcpy(dst + (base + bit) * out_row, &mask, 8);
      v = _mm512_slli_epi64(v, 1);
    }
  }
}
#endif

// Rows of the input lie a power of two apart (IKNP: m / 8 bytes), so the same bytes of all
// rows share one cache set: read straight from the matrix, a tile's rows evict each other.
// The matrix is therefore copied a band of STAGE bytes per row at a time into a small
// buffer, each line read once, whole (with the optional masked xor applied), and the tiles
// run on that buffer. The next band is prefetched meanwhile.
constexpr int64_t STAGE = 256;

// MODE 0: transpose in. MODE 1: transpose in ^ (x & row_mask[r]). MODE 2: transpose in and,
// in the same pass, x[r] ^= in[r] ^ row_mask (row_mask is then one row of cols bytes).
template <int MODE>
static int transpose(const uint8_t* in, uint8_t* x, const uint8_t* row_mask, int64_t rows,
                     int64_t cols, uint8_t* out) {
  if (rows < 0 || cols < 0 || rows % 16 != 0 || cols % 16 != 0) return -1;
  const int64_t out_row = rows / 8;
  uint8_t* buf = (uint8_t*)_mm_malloc((size_t)(rows * STAGE > 0 ? rows * STAGE : 64), 64);
  if (buf == nullptr) return -2;
  for (int64_t band = 0; band < cols; band += STAGE) {
    const int64_t width = cols - band < STAGE ? cols - band : STAGE;  // a multiple of 16
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* src = in + r * cols + band;
      for (int64_t c = STAGE; c < 2 * STAGE && band + c < cols; c += 64) {
        _mm_prefetch((const char*)(src + c), _MM_HINT_T0);
        if (MODE) _mm_prefetch((const char*)(x + r * cols + band + c), _MM_HINT_T0);
      }
      for (int64_t c = 0; c < width; c += 16) {
        __m128i v = _mm_loadu_si128((const __m128i*)(src + c));
        __m128i* xp = (__m128i*)(x + r * cols + band + c);
        if (MODE == 1) {
          const __m128i m = _mm_set1_epi8((char)row_mask[r]);
          v = _mm_xor_si128(v, _mm_and_si128(_mm_loadu_si128(xp), m));
        } else if (MODE == 2) {
          const __m128i w = _mm_loadu_si128((const __m128i*)(row_mask + band + c));
          _mm_storeu_si128(xp, _mm_xor_si128(_mm_loadu_si128(xp), _mm_xor_si128(v, w)));
        }
        _mm_store_si128((__m128i*)(buf + r * STAGE + c), v);
      }
    }
    uint8_t* dst = out + 8 * band * out_row;  // output rows 8 * band ...
    for (int64_t c0 = 0; c0 < width; c0 += 16) {
      int64_t r0 = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
      for (; r0 + 64 <= rows; r0 += 64) tile64(buf, STAGE, r0, c0, dst, out_row);
#endif
      for (; r0 < rows; r0 += 16) tile16(buf, STAGE, r0, c0, dst, out_row);
    }
  }
  _mm_free(buf);
  return 0;
}

}  // namespace

extern "C" {

// out = the transpose of in (rows x cols bytes). Returns 0, -1 for a bad shape, -2 when the
// staging buffer cannot be allocated.
int cr_bit_transpose(const uint8_t* in, int64_t rows, int64_t cols, uint8_t* out) {
  return transpose<0>(in, nullptr, nullptr, rows, cols, out);
}

// out = the transpose of in ^ (x & row_mask[i]) (x rows x cols bytes, row_mask rows bytes of
// 0x00 / 0xff): IKNP's sender. Returns as cr_bit_transpose.
int cr_bit_transpose_xor(const uint8_t* in, const uint8_t* x, const uint8_t* row_mask,
                         int64_t rows, int64_t cols, uint8_t* out) {
  return transpose<1>(in, (uint8_t*)x, row_mask, rows, cols, out);
}

// out = the transpose of in, and acc[i] ^= in[i] ^ row for every row i (acc rows x cols
// bytes, row cols bytes): IKNP's receiver, u = G(k^1) ^ t ^ c. Returns as cr_bit_transpose.
int cr_bit_transpose_acc(const uint8_t* in, uint8_t* acc, const uint8_t* row, int64_t rows,
                         int64_t cols, uint8_t* out) {
  return transpose<2>(in, acc, row, rows, cols, out);
}

}  // extern "C"
