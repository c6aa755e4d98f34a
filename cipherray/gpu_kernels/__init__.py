"""GPU kernels: batched big-integer / Paillier arithmetic and Z_2^64 ring arithmetic.

CUDA C++ sources live next to this file (``*.cu``, ``*.cuh``) and are loaded with
``cupy.RawModule``. The arithmetic core is ``__host__ __device__`` code that also compiles for
the host (system C++ compiler, loaded with ctypes), so everything here runs without a GPU
and GPU results can be checked bit for bit against the host build.

Importing this package never imports CuPy or Ray; :func:`available` tells whether a usable GPU
is present. Backends: ``"gpu"``, ``"host"`` or ``"auto"`` (GPU when available).
"""

from __future__ import annotations

from . import bigint, paillier, ring64
from ._build import get_backend, gpu_available

__all__ = ["available", "bigint", "get_backend", "paillier", "ring64"]


def available() -> bool:
    """True when CuPy is importable and sees at least one CUDA device."""
    return gpu_available()
