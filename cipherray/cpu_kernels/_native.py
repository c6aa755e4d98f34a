"""Build and load this package's C++ sources for the host CPU (AVX-512 IFMA kernels).

A kernel is used only when the CPU has AVX-512F and AVX-512 IFMA (read from
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

SRC_DIR = Path(__file__).resolve().parent
FLAGS = ("-mavx512f", "-mavx512ifma")

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


def cpu_supported() -> bool:
    return {"avx512f", "avx512ifma"} <= cpu_flags()


@cache
def _load(source: str) -> ctypes.CDLL | None:
    if os.environ.get("CIPHERRAY_CPU_KERNELS", "1") == "0" or not cpu_supported():
        return None
    from cipherray.gpu_kernels._build import host_library

    try:
        return host_library(source, src_dir=SRC_DIR, extra_flags=FLAGS)
    except RuntimeError:
        return None


def library(source: str) -> ctypes.CDLL | None:
    """The built library for ``source``, or None where it cannot or must not run."""
    return _load(source) if _enabled else None
