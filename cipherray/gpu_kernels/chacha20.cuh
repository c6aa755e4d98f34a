// ChaCha20 block function (RFC 8439, section 2.3), __host__ __device__.
#pragma once
#include "common.cuh"

CR_HD uint32_t cr_rotl32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

#define CR_QR(a, b, c, d)                 \
  a += b; d ^= a; d = cr_rotl32(d, 16);   \
  c += d; b ^= c; b = cr_rotl32(b, 12);   \
  a += b; d ^= a; d = cr_rotl32(d, 8);    \
  c += d; b ^= c; b = cr_rotl32(b, 7);

// out[16] = ChaCha20 block for (key[8], 32-bit block counter, nonce[3]); words little-endian.
CR_HD void chacha20_block(uint32_t* out, const uint32_t* key, uint32_t counter,
                          const uint32_t* nonce) {
  uint32_t s[16];
  s[0] = 0x61707865u; s[1] = 0x3320646eu; s[2] = 0x79622d32u; s[3] = 0x6b206574u;
  for (int i = 0; i < 8; i++) s[4 + i] = key[i];
  s[12] = counter;
  s[13] = nonce[0]; s[14] = nonce[1]; s[15] = nonce[2];
  uint32_t x[16];
  for (int i = 0; i < 16; i++) x[i] = s[i];
  for (int r = 0; r < 10; r++) {
    CR_QR(x[0], x[4], x[8], x[12]);
    CR_QR(x[1], x[5], x[9], x[13]);
    CR_QR(x[2], x[6], x[10], x[14]);
    CR_QR(x[3], x[7], x[11], x[15]);
    CR_QR(x[0], x[5], x[10], x[15]);
    CR_QR(x[1], x[6], x[11], x[12]);
    CR_QR(x[2], x[7], x[8], x[13]);
    CR_QR(x[3], x[4], x[9], x[14]);
  }
  for (int i = 0; i < 16; i++) out[i] = x[i] + s[i];
}
