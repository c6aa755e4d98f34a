// cipherray: Z_2^64 helpers (limb split / recombination for GEMM-based matmul) and the
// ChaCha20 mask generator. Compiled by NVRTC and by the host C++ compiler; see ring64.py.
#include "common.cuh"
#include "chacha20.cuh"

// Keystream as uint64: block idx (counter0 + idx) -> out[8 idx .. 8 idx + 8).
CR_HD void chacha_u64_body(cr_idx idx, uint64_t* out, const uint32_t* key, const uint32_t* nonce,
                           uint32_t counter0) {
  uint32_t w[16];
  chacha20_block(w, key, counter0 + (uint32_t)idx, nonce);
  uint64_t* o = out + idx * 8;
  for (int i = 0; i < 8; i++) o[i] = (uint64_t)w[2 * i] | ((uint64_t)w[2 * i + 1] << 32);
}
CR_ENTRY(chacha_u64, (uint64_t* out, const uint32_t* key, const uint32_t* nonce,
                      uint32_t counter0, cr_idx count),
         (idx, out, key, nonce, counter0))

// Split x (rows x cols, row stride ldin) into 8 signed 8-bit digits d_i in [-128, 127],
// x = sum d_i 2^(8i) mod 2^64, written to out[r][slot(i)][c] with row stride 8 * cpad
// (slot(i) = i, or 7 - i when rev). Item idx = r * cpad + c; columns c >= cols get zeros.
CR_HD void split_s8_body(cr_idx idx, int8_t* out, const uint64_t* in, cr_idx ldin, cr_idx cols,
                         cr_idx cpad, int rev) {
  const cr_idx r = idx / cpad, c = idx % cpad;
  uint64_t x = c < cols ? in[r * ldin + c] : 0;
  int8_t* o = out + r * 8 * cpad + c;
  for (int i = 0; i < 8; i++) {
    int d = (int)(x & 0xff);
    if (d >= 128) d -= 256;
    x = (x - (uint64_t)(int64_t)d) >> 8;
    o[(rev ? 7 - i : i) * cpad] = (int8_t)d;
  }
}
CR_ENTRY(split_s8, (int8_t* out, const uint64_t* in, cr_idx ldin, cr_idx cols, cr_idx cpad,
                    int rev, cr_idx count),
         (idx, out, in, ldin, cols, cpad, rev))

// Same with 4 unsigned 16-bit digits as float64 (for fp64 GEMMs).
CR_HD void split_u16_body(cr_idx idx, double* out, const uint64_t* in, cr_idx ldin, cr_idx cols,
                          cr_idx cpad, int rev) {
  const cr_idx r = idx / cpad, c = idx % cpad;
  const uint64_t x = c < cols ? in[r * ldin + c] : 0;
  double* o = out + r * 4 * cpad + c;
  for (int i = 0; i < 4; i++) o[(rev ? 3 - i : i) * cpad] = (double)((x >> (16 * i)) & 0xffff);
}
CR_ENTRY(split_u16, (double* out, const uint64_t* in, cr_idx ldin, cr_idx cols, cr_idx cpad,
                     int rev, cr_idx count),
         (idx, out, in, ldin, cols, cpad, rev))

// out[idx] += sum_s C_s[idx] * 2^(8 s) mod 2^64, C_s = C + s * plane (int32).
CR_HD void combine_s8_body(cr_idx idx, uint64_t* out, const int32_t* C, cr_idx plane) {
  uint64_t acc = out[idx];
  for (int s = 0; s < 8; s++) acc += (uint64_t)(int64_t)C[s * plane + idx] << (8 * s);
  out[idx] = acc;
}
CR_ENTRY(combine_s8, (uint64_t* out, const int32_t* C, cr_idx plane, cr_idx count),
         (idx, out, C, plane))

// out[idx] += sum_s C_s[idx] * 2^(16 s) mod 2^64, C_s exact non-negative integers < 2^53.
CR_HD void combine_f64_body(cr_idx idx, uint64_t* out, const double* C, cr_idx plane) {
  uint64_t acc = out[idx];
  for (int s = 0; s < 4; s++) acc += (uint64_t)C[s * plane + idx] << (16 * s);
  out[idx] = acc;
}
CR_ENTRY(combine_f64, (uint64_t* out, const double* C, cr_idx plane, cr_idx count),
         (idx, out, C, plane))
