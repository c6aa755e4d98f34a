// Batched key derivation for SecAgg+: out[i] = SHA-256(prefix || lo_i || hi_i || shared_i)
// with lo_i, hi_i as little-endian uint64 -- the same bytes as keys.derive_key hashes
// (DOMAIN || round id || purpose || pack("<QQ", lo, hi) || X25519 output), so the two agree
// bit for bit (tests/test_secagg_cohort.py). Plain portable C++ (FIPS 180-4), no
// intrinsics: what it saves is one Python call per pair, not hashing speed.

#include <stdint.h>
#include <string.h>

namespace {

const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

void compress(uint32_t h[8], const uint8_t block[64]) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
           (uint32_t)block[4 * i + 2] << 8 | (uint32_t)block[4 * i + 3];
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                        K[i] + w[i];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

void sha256(const uint8_t* msg, size_t len, uint8_t out[32]) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  size_t done = 0;
  for (; done + 64 <= len; done += 64) compress(h, msg + done);
  uint8_t tail[128] = {0};
  const size_t rest = len - done;
  memcpy(tail, msg + done, rest);
  tail[rest] = 0x80;
  const size_t total = rest + 9 <= 64 ? 64 : 128;
  const uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; ++i) tail[total - 1 - i] = (uint8_t)(bits >> (8 * i));
  compress(h, tail);
  if (total == 128) compress(h, tail + 64);
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = (uint8_t)(h[i] >> 24);
    out[4 * i + 1] = (uint8_t)(h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(h[i] >> 8);
    out[4 * i + 3] = (uint8_t)h[i];
  }
}

}  // namespace

extern "C" {

// out[i] = SHA-256(prefix || le64(lo[i]) || le64(hi[i]) || shared[i]) for i < count.
// Returns 0, or -1 when the message would exceed the 512-byte buffer.
int32_t cr_pair_keys(const uint8_t* prefix, int64_t prefix_len, const uint8_t* shared,
                     const uint64_t* lo, const uint64_t* hi, int64_t count, uint8_t* out) {
  uint8_t msg[512];
  if (prefix_len < 0 || prefix_len + 48 > (int64_t)sizeof(msg)) return -1;
  memcpy(msg, prefix, (size_t)prefix_len);
  for (int64_t i = 0; i < count; ++i) {
    uint8_t* p = msg + prefix_len;
    for (int b = 0; b < 8; ++b) p[b] = (uint8_t)(lo[i] >> (8 * b));
    for (int b = 0; b < 8; ++b) p[8 + b] = (uint8_t)(hi[i] >> (8 * b));
    memcpy(p + 16, shared + 32 * i, 32);
    sha256(msg, (size_t)prefix_len + 48, out + 32 * i);
  }
  volatile uint8_t* v = msg;  // the buffer held key material
  for (size_t b = 0; b < sizeof(msg); ++b) v[b] = 0;
  return 0;
}
}
