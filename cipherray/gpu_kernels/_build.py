"""Build and load the CUDA C++ sources of this package, for the GPU or for the host.

The kernels are written once (``*.cu`` / ``*.cuh`` next to this file). On a machine with CuPy
and a GPU they are compiled by NVRTC (``cupy.RawModule``). Everywhere else the same source is
compiled by the system C++ compiler into a shared library (cached under
``~/.cache/cipherray/host/<hash of sources and flags>/``) and called through ctypes, one loop
iteration per GPU thread, so CPU tests exercise exactly the arithmetic the GPU runs.

Both backends expose ``launch(module, kernel, args, count)`` where ``args`` follow a type string
(``p`` pointer to an array, ``i`` int32, ``u`` uint32, ``q`` int64); ``count`` (the number of work
items) is always appended as the last int64 argument.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

SRC_DIR = Path(__file__).resolve().parent
HOST_CXX_FLAGS = ["-O3", "-shared", "-fPIC", "-std=c++17", "-Wno-unknown-pragmas"]
NVRTC_FLAGS = ("-std=c++17",)

_lock = threading.Lock()


def _sources_digest(extra: str, src_dir: Path = SRC_DIR, pattern: str = "*.cu*") -> str:
    h = hashlib.sha256(extra.encode())
    for p in sorted(src_dir.glob(pattern)):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("CIPHERRAY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cipherray"
    )
    return Path(base)


@lru_cache(maxsize=1)
def _openmp_flag() -> list[str]:
    cxx = os.environ.get("CXX", "g++")
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "t.cc"
        src.write_text("int main(){return 0;}\n")
        try:
            r = subprocess.run(
                [cxx, "-fopenmp", str(src), "-o", str(Path(d) / "t")], capture_output=True
            )
        except OSError:
            return []
        return ["-fopenmp"] if r.returncode == 0 else []


def host_library(
    source: str,
    defines: dict[str, int] | None = None,
    src_dir: Path = SRC_DIR,
    extra_flags: tuple[str, ...] = (),
) -> ctypes.CDLL:
    """Compile ``source`` (a file name in ``src_dir``, by default this package) for the host
    and load it (cached by a digest of the compiler, the flags and the sources there)."""
    defines = defines or {}
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise RuntimeError(f"host build of {source} needs a C++ compiler ({cxx}) on PATH")
    flags = (
        HOST_CXX_FLAGS
        + _openmp_flag()
        + list(extra_flags)
        + [f"-D{k}={v}" for k, v in sorted(defines.items())]
    )
    tag = "_".join(f"{k}{v}" for k, v in sorted(defines.items()))
    pattern = "*.cu*" if src_dir == SRC_DIR else "*.[ch]*"  # sources and headers
    digest = _sources_digest(" ".join([cxx, source, *flags]), src_dir, pattern)
    out = cache_dir() / "host" / digest / f"{Path(source).stem}{'_' + tag if tag else ''}.so"
    with _lock:
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
            os.close(fd)
            cmd = [cxx, *flags, "-I", str(src_dir), "-x", "c++", str(src_dir / source), "-o", tmp]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                os.unlink(tmp)
                raise RuntimeError(f"host build failed: {' '.join(cmd)}\n{r.stderr}")
            os.replace(tmp, out)
        return ctypes.CDLL(str(out))


_CTYPES = {"p": ctypes.c_void_p, "i": ctypes.c_int32, "u": ctypes.c_uint32, "q": ctypes.c_int64}
_NPTYPES = {"i": np.int32, "u": np.uint32, "q": np.int64}


class HostBackend:
    """Runs kernels on the CPU through the host-compiled shared library; arrays are NumPy."""

    name = "host"
    xp = np

    def __init__(self) -> None:
        self._libs: dict[tuple, Any] = {}

    def _fn(self, source: str, defines: tuple, kernel: str, sig: str):
        key = (source, defines)
        lib = self._libs.get(key)
        if lib is None:
            lib = self._libs[key] = host_library(source, dict(defines))
        fn = getattr(lib, kernel)
        if fn.argtypes is None:
            fn.argtypes = [_CTYPES[c] for c in sig + "q"]
            fn.restype = None
        return fn

    def launch(
        self, source: str, defines: tuple, kernel: str, sig: str, args: list, count: int
    ) -> None:
        if count <= 0:
            return
        fn = self._fn(source, defines, kernel, sig)
        conv = []
        for c, a in zip(sig, args):
            if c == "p":
                assert isinstance(a, np.ndarray), kernel
                conv.append(a.ctypes.data)
            else:
                conv.append(int(a))
        fn(*conv, int(count))

    # the host build runs every variant's arithmetic; the choice changes no result
    fp64_full_rate = True

    def asarray(self, a):
        return np.asarray(a)

    def to_host(self, a):
        return np.asarray(a)

    def synchronize(self) -> None:
        pass


# compute capabilities (CuPy's spelling) with a full-rate fp64 pipe
FP64_FULL_RATE_CC = frozenset({"60", "70", "80", "90", "100"})


class GpuBackend:
    """Runs kernels on the current CUDA device through CuPy; arrays are CuPy arrays."""

    name = "gpu"

    # threads per block; bigint kernels give each thread a column of a static shared-memory
    # block of CR_MM_BLOCK (= 64) columns, so they must not launch more; the cooperative
    # kernels need whole warps (their groups of threads are parts of one warp).
    BLOCK = {"bigint.cu": 64, "bigint_coop.cu": 128}

    def __init__(self, block: int = 128) -> None:
        import cupy

        self.xp = cupy
        self.block = block
        self._mods: dict[tuple, Any] = {}

    def module(self, source: str, defines: tuple):
        key = (source, defines)
        mod = self._mods.get(key)
        if mod is None:
            # headers are not part of CuPy's kernel-cache key: put their digest in the source
            code = f"// sources {_sources_digest('nvrtc')}\n" + (SRC_DIR / source).read_text()
            opts = (*NVRTC_FLAGS, f"-I{SRC_DIR}", *(f"-D{k}={v}" for k, v in defines))
            mod = self._mods[key] = self.xp.RawModule(code=code, options=opts)
        return mod

    def launch(
        self, source: str, defines: tuple, kernel: str, sig: str, args: list, count: int
    ) -> None:
        if count <= 0:
            return
        fn = self.module(source, defines).get_function(kernel)
        conv = []
        for c, a in zip(sig, args):
            conv.append(a if c == "p" else _NPTYPES[c](a))
        conv.append(np.int64(count))
        block = self.BLOCK.get(source, self.block)
        grid = (int(count) + block - 1) // block
        fn((grid,), (block,), tuple(conv))

    @property
    def compute_capability(self) -> str:
        """The current device's compute capability as CuPy writes it ("90" for sm_90)."""
        return str(self.xp.cuda.Device().compute_capability)

    @property
    def fp64_full_rate(self) -> bool:
        """Whether the device has a full-rate fp64 pipe (half the fp32 rate: the data-centre
        parts P100, V100, A100, H100 / H200, B200). Consumer and workstation GPUs run fp64 at
        1/32 to 1/64 of fp32, where the fp64 Montgomery variants are not worth choosing."""
        return self.compute_capability in FP64_FULL_RATE_CC

    def asarray(self, a):
        return self.xp.asarray(a)

    def to_host(self, a):
        return self.xp.asnumpy(a)

    def synchronize(self) -> None:
        self.xp.cuda.runtime.deviceSynchronize()


@lru_cache(maxsize=1)
def gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


_backends: dict[str, Any] = {}


def get_backend(name: str | Any = "auto"):
    """``"host"``, ``"gpu"``, ``"auto"`` (GPU when present) or a backend object (returned as is)."""
    if not isinstance(name, str):
        return name
    if name == "auto":
        name = "gpu" if gpu_available() else "host"
    if name not in ("host", "gpu"):
        raise ValueError(f"unknown backend {name!r}: use 'host', 'gpu' or 'auto'")
    if name == "gpu" and not gpu_available():
        raise RuntimeError("backend 'gpu' requested but no CuPy-usable GPU is present")
    b = _backends.get(name)
    if b is None:
        b = _backends[name] = HostBackend() if name == "host" else GpuBackend()
    return b


# a kernel of each source whose lookup makes CuPy compile (and cache) its module
_PROBE_KERNEL = {
    "bigint.cu": "montmul",
    "bigint_coop.cu": "coop_montmul",
    "ring64.cu": "chacha_u64",
}


def _module_name(source: str, defines: tuple) -> str:
    return source + "".join(f" {k}={v}" for k, v in defines)


def _precompile_one(backend: str, source: str, defines: tuple) -> float:
    """Worker: compile one module into the on-disk cache; seconds taken."""
    t = time.perf_counter()
    if backend == "host":
        host_library(source, dict(defines))
    else:
        GpuBackend().module(source, defines).get_function(_PROBE_KERNEL[source])
    return time.perf_counter() - t


def precompile(
    modules: list[tuple[str, tuple]],
    backend: str = "gpu",
    workers: int | None = None,
    timeout: float = 240.0,
) -> dict:
    """Compile the modules ``(source, defines)`` side by side in worker processes into the
    on-disk caches (CuPy's kernel cache for "gpu", ours for "host"), so that this process's
    first launches load them instead of compiling them one after another (NVRTC takes
    seconds per 4096-bit module). The workers are spawned, not forked, so each makes its own CUDA context.
    Returns seconds per module, the wall time and the errors; a module that failed or was not
    done within ``timeout`` only compiles later, on first use."""
    import concurrent.futures as cf
    import multiprocessing as mp

    modules = list(dict.fromkeys(modules))
    report: dict = {"modules": len(modules), "per_module_s": {}, "errors": {}}
    if not modules:
        return report
    workers = max(1, min(len(modules), workers or os.cpu_count() or 1))
    report["workers"] = workers
    t0 = time.perf_counter()
    ex = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    futs = {ex.submit(_precompile_one, backend, src, defs): (src, defs) for src, defs in modules}
    done, pending = cf.wait(futs, timeout=timeout)
    for f in done:
        name = _module_name(*futs[f])
        try:
            report["per_module_s"][name] = round(f.result(), 2)
        except Exception as e:  # noqa: BLE001 - reported; the module compiles on first use
            report["errors"][name] = repr(e)[:500]
    for f in pending:
        report["errors"][_module_name(*futs[f])] = f"not done within {timeout:.0f} s"
    ex.shutdown(wait=not pending, cancel_futures=True)
    report["wall_s"] = round(time.perf_counter() - t0, 2)
    return report
