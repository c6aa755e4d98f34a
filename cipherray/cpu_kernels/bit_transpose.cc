// Bit-matrix transposition with SSE2, for IKNP OT extension (cipherray.protocols.ot).
//
// The input is a rows x (8 * cols) bit matrix stored row by row, cols bytes a row, bit j of
// row i at byte j / 8, bit j % 8 (least significant bit first). The output is its transpose,
// (8 * cols) rows of rows / 8 bytes, in the same bit order. rows and cols must be multiples
// of 16 (the Python side pads).
//
// Each 16-row x 16-byte tile is loaded as 16 registers and turned into its 16 x 16 byte
// transpose by four rounds of unpack (8-, 16-, 32- and 64-bit interleave of register pairs;
// after them register k holds byte column bitrev4(k) of the 16 rows, in row order). Then
// _mm_movemask_epi8 collects the top bit of the 16 bytes, i.e. one bit column of the 16
// rows = 16 bits of one output row, and a left shift by one brings up the next bit: eight
// movemasks per byte column give the eight output rows. The tiles of one 16-byte column
// block are walked down all rows so that the 128-row block of output being written stays
// in L1. No data-dependent branch or address: constant time in the matrix.

#include <emmintrin.h>
#include <stdint.h>
#include <string.h>

namespace {

constexpr int BITREV4[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};

template <int W>
static inline __m128i unpack_lo(__m128i a, __m128i b) {
  if (W == 1) return _mm_unpacklo_epi8(a, b);
  if (W == 2) return _mm_unpacklo_epi16(a, b);
  if (W == 4) return _mm_unpacklo_epi32(a, b);
  return _mm_unpacklo_epi64(a, b);
}

template <int W>
static inline __m128i unpack_hi(__m128i a, __m128i b) {
  if (W == 1) return _mm_unpackhi_epi8(a, b);
  if (W == 2) return _mm_unpackhi_epi16(a, b);
  if (W == 4) return _mm_unpackhi_epi32(a, b);
  return _mm_unpackhi_epi64(a, b);
}

template <int W>
static inline void interleave(const __m128i* x, __m128i* y) {
  for (int i = 0; i < 8; ++i) {
    y[i] = unpack_lo<W>(x[2 * i], x[2 * i + 1]);
    y[i + 8] = unpack_hi<W>(x[2 * i], x[2 * i + 1]);
  }
}

// One 16 x 16 byte tile: rows r0..r0+15, byte columns c0..c0+15.
static inline void tile(const uint8_t* in, int64_t cols, int64_t r0, int64_t c0, uint8_t* out,
                        int64_t out_row) {
  __m128i a[16], b[16];
  for (int k = 0; k < 16; ++k) a[k] = _mm_loadu_si128((const __m128i*)(in + (r0 + k) * cols + c0));
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

}  // namespace

extern "C" int cr_bit_transpose(const uint8_t* in, int64_t rows, int64_t cols, uint8_t* out) {
  if (rows < 0 || cols < 0 || rows % 16 != 0 || cols % 16 != 0) return -1;
  const int64_t out_row = rows / 8;
  for (int64_t c0 = 0; c0 < cols; c0 += 16)
    for (int64_t r0 = 0; r0 < rows; r0 += 16) tile(in, cols, r0, c0, out, out_row);
  return 0;
}
