"""Build and load this package's C++ sources for the host CPU.

A kernel is used only when the CPU has the features its source needs (AVX-512F and
AVX-512 IFMA by default, AES-NI for ``aes_ctr.cc``; see ``TARGETS``; read from
``/proc/cpuinfo``, so only on Linux), a C++ compiler is on PATH (the build is cached, see
:func:`cipherray.gpu_kernels._build.host_library`), the environment variable
``CIPHERRAY_CPU_KERNELS`` is not ``0`` and ``set_enabled(False)`` was not called. Callers
fall back to gmpy2 / ``cryptography`` otherwise.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path
from typing import Any

SRC_DIR = Path(__file__).resolve().parent
FLAGS = ("-mavx512f", "-mavx512ifma")
CPU_FLAGS = frozenset({"avx512f", "avx512ifma"})
# sources with their own compiler flags and /proc/cpuinfo requirement (others: FLAGS, CPU_FLAGS)
TARGETS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "aes_ctr.cc": (("-maes", "-msse4.1"), frozenset({"aes", "sse4_1"})),
    "aes_ctr_vaes.cc": (
        ("-maes", "-msse4.1", "-mavx512f", "-mavx512bw", "-mvaes"),
        frozenset({"aes", "sse4_1", "avx512f", "avx512bw", "vaes"}),
    ),
    "sha256_kdf.cc": ((), frozenset()),
    "bit_transpose.cc": (("-msse2",), frozenset({"sse2"})),
    "bit_transpose_avx512.cc": (
        ("-mavx512f", "-mavx512bw"),
        frozenset({"avx512f", "avx512bw"}),
    ),
    "ot_hash.cc": (("-maes", "-msse4.1"), frozenset({"aes", "sse4_1"})),
    "vole_planes.cc": (
        ("-maes", "-msse4.1", "-mavx512f", "-mavx512bw", "-mvaes"),
        frozenset({"aes", "sse4_1", "avx512f", "avx512bw", "vaes"}),
    ),
    "ot_hash_vaes.cc": (
        ("-maes", "-msse4.1", "-mavx512f", "-mvaes"),
        frozenset({"aes", "sse4_1", "avx512f", "vaes"}),
    ),
}

_enabled = True


def set_enabled(flag: bool) -> None:
    """Turn the native kernels off (or back on) in this process, e.g. to time the
    fallbacks alone or to compare both paths."""
    global _enabled
    _enabled = bool(flag)


def enabled() -> bool:
    return _enabled


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _target(source: str | None) -> tuple[tuple[str, ...], frozenset[str]]:
    return TARGETS.get(source or "", (FLAGS, CPU_FLAGS))


def cpu_supported(source: str | None = None) -> bool:
    """Whether this CPU has the features ``source`` needs (by default the IFMA kernels')."""
    return _target(source)[1] <= cpu_flags()


@cache
def _load(source: str) -> ctypes.CDLL | None:
    if os.environ.get("CIPHERRAY_CPU_KERNELS", "1") == "0" or not cpu_supported(source):
        return None
    from cipherray.gpu_kernels._build import host_library

    try:
        return host_library(source, src_dir=SRC_DIR, extra_flags=_target(source)[0])
    except (RuntimeError, OSError):  # no compiler, a failed build, an unwritable cache
        return None


@cache
def _typed(source: str, name: str, argtypes: tuple, restype: Any) -> Any:
    lib = _load(source)
    if lib is None:
        return None
    fn = getattr(lib, name)
    fn.argtypes = list(argtypes)
    fn.restype = restype
    return fn


def function(source: str, name: str, argtypes: tuple, restype: Any) -> Any:
    """The C function ``name`` of the built ``source`` with its ctypes signature, or None
    where the kernels cannot or must not run (then callers use their fallback)."""
    return _typed(source, name, argtypes, restype) if _enabled else None
