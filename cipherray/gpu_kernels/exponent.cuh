// cipherray: exponent digits, shared by the one-thread (bigint.cuh) and the cooperative
// (bigint_coop.cuh) kernels.
#pragma once
#include "common.cuh"

// w-bit digit number `win` of an exponent with `elimbs` uint32 limbs.
CR_HD uint32_t exp_digit(const uint32_t* e, int lde, int elimbs, int win, int w) {
  const int pos = win * w;
  const int word = pos >> 5, off = pos & 31;
  if (word >= elimbs) return 0;
  uint32_t d = e[(cr_idx)word * lde] >> off;
  if (off + w > 32 && word + 1 < elimbs) d |= e[(cr_idx)(word + 1) * lde] << (32 - off);
  return d & ((1u << w) - 1u);
}
