"""The fp64 product split of bigint_f64.cuh: the host emulation of the GPU's round-toward-zero
FMA gives the bits the hardware gives.

On the GPU, ``f52_hi`` is ``__fma_rz(x, y, 2^104)``; the host build computes the same value from
a 128-bit integer product. Here a small C++ program compares that emulation with the host
CPU's own IEEE FMA under ``FE_TOWARDZERO`` (what the GPU instruction does), and ``f52_lo``
(a round-to-nearest FMA on both) with the exact low half, on random and extreme 52-bit limbs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cipherray.gpu_kernels._build import SRC_DIR

PROGRAM = r"""
#include <fenv.h>
#include <math.h>
#include <stdio.h>
#include "bigint.cuh"
#pragma STDC FENV_ACCESS ON

int main() {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  long bad = 0, n = 0;
  for (long i = 0; i < 2000000; i++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    uint64_t x = s & CR_F52_MASK;
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    uint64_t y = s & CR_F52_MASK;
    if (i % 7 == 0) x = CR_F52_MASK;
    if (i % 11 == 0) y = CR_F52_MASK;
    if (i % 13 == 0) y = 0;
    if (i % 17 == 0) x = 1;
    volatile double dx = (double)x, dy = (double)y, c = 0x1p104;
    fesetround(FE_TOWARDZERO);
    const double hw = fma(dx, dy, c);
    fesetround(FE_TONEAREST);
    const double em = f52_hi(dx, dy);
    const unsigned __int128 p = (unsigned __int128)x * y;
    bad += f52_bits(hw) != f52_bits(em);
    bad += f52_bits(em) - CR_F52_BH != (uint64_t)(p >> 52);
    bad += f52_bits(f52_lo(dx, dy, em)) - CR_F52_BL != (uint64_t)(p & CR_F52_MASK);
    n++;
  }
  printf("%ld %ld\n", n, bad);
  return 0;
}
"""


def test_kernel_f64_fma_rz_emulation_matches_hardware(tmp_path: Path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "rz.cc"
    src.write_text(PROGRAM)
    exe = tmp_path / "rz"
    cmd = [cxx, "-O1", "-frounding-math", "-std=c++17", "-DCR_F64=1", "-I", str(SRC_DIR),
           str(src), "-o", str(exe), "-lm"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    n, bad = int(out[0]), int(out[1])
    assert n == 2_000_000
    assert bad == 0
