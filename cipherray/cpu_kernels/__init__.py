"""Native CPU kernels, built from C++ source on first use and cached (no Ray, no CuPy).

- :mod:`.modexp` — batched modular exponentiation with AVX-512 IFMA for the Paillier CPU
  path (scalar multiplication, decryption); gmpy2 does the same work where it cannot run.
- :mod:`.x25519` — batched X25519 with AVX-512 IFMA for ECDH-PSI; ``cryptography`` does
  the same work where it cannot run.
- :mod:`.aes_ctr` — batched AES-256-CTR keystreams and masked sums with AES-NI for the
  SecAgg masks (the PRG of :mod:`cipherray.protocols.prg`); ``cryptography`` where it
  cannot run.
- :mod:`.bit_transpose` — bit-matrix transposition (SSE2 / AVX-512BW) for IKNP OT
  extension; numpy's unpackbits / packbits where it cannot run.
- :mod:`.ot_hash` — the fixed-key AES correlation-robust hash of OT extension (AES-NI /
  VAES); ``cryptography``'s AES-ECB where it cannot run.

They run only where the CPU has the features they need (AVX-512 IFMA, AES-NI for
``aes_ctr`` and ``ot_hash``, SSE2 for ``bit_transpose``) and a C++ compiler is present
(:mod:`._native`); ``set_enabled(False)`` or ``CIPHERRAY_CPU_KERNELS=0`` turns them off.
"""

from ._native import enabled, set_enabled
from .modexp import available, powmod, supports

__all__ = ["available", "enabled", "powmod", "set_enabled", "supports"]
