"""gpu_kernels._build.precompile: modules compiled side by side in spawned processes land in
the on-disk cache that the first launch then loads (host build here; NVRTC on a GPU)."""

from __future__ import annotations

import numpy as np

from cipherray.gpu_kernels import _build
from cipherray.gpu_kernels import bigint as bi


def test_precompile_fills_the_cache_the_launch_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("CIPHERRAY_CACHE", str(tmp_path))  # inherited by the workers
    mods = [("bigint.cu", (("BI_N", 8),)), ("ring64.cu", ()), ("bigint.cu", (("BI_N", 8),))]
    rep = _build.precompile(mods, backend="host", workers=2, timeout=300)
    assert rep["errors"] == {} and rep["modules"] == 2 and rep["workers"] == 2
    assert set(rep["per_module_s"]) == {"bigint.cu BI_N=8", "ring64.cu"}
    built = sorted(p.name for p in tmp_path.glob("host/*/*.so"))
    assert built == ["bigint_BI_N8.so", "ring64.so"]
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.glob("host/*/*.so")}
    # this process's launch finds the library the worker made (nothing rebuilt) and runs it
    m = (1 << 255) + 19
    ctx = bi.MontContext(m, _build.HostBackend(), variant="fios")
    got = ctx.get(ctx.mulmod(ctx.put([3, m - 1]), ctx.put([5, m - 1])))
    assert list(got) == [15, 1]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("host/*/*.so")} == stamp


def test_precompile_reports_failures_instead_of_raising(tmp_path, monkeypatch):
    monkeypatch.setenv("CIPHERRAY_CACHE", str(tmp_path))
    rep = _build.precompile([("nope.cu", ())], backend="host", workers=1, timeout=120)
    assert list(rep["errors"]) == ["nope.cu"] and rep["per_module_s"] == {}
    assert _build.precompile([], backend="host") == {"modules": 0, "per_module_s": {}, "errors": {}}
    assert np.isfinite(rep["wall_s"])
