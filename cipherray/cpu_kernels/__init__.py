"""Native CPU kernels, built from C++ source on first use and cached (no Ray, no CuPy).

- :mod:`.modexp` — batched modular exponentiation with AVX-512 IFMA for the Paillier CPU
  path (scalar multiplication, decryption). Used only when the CPU has the instructions
  and a compiler is present; gmpy2 does the same work otherwise.
"""

from .modexp import available, powmod, set_enabled, supports

__all__ = ["available", "powmod", "set_enabled", "supports"]
