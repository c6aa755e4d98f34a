#!/usr/bin/env python3
"""Static view of the bigint kernels for sm_90 (H100/H200), without a GPU.

Compiles ``cipherray/gpu_kernels/bigint.cu`` with NVRTC exactly as ``cupy.RawModule`` does
(same options, one module per limb count and Montgomery variant), and reports per variant:

* registers and spills of ``mont_mul`` and of the ``montmul`` / ``modexp`` kernels (ptxas);
* with ``cuobjdump`` present, the SASS instruction mix of the Montgomery row loop of the
  ``montmul`` kernel, per limb product: how many fp64, integer, shared-memory, local-memory
  and move instructions one product costs.

This says nothing about speed by itself (``bench/gpu.py`` on a device measures that); it shows
that a variant compiles, what the loop is made of, and whether it spills. Needs NVRTC and,
for the instruction mix, cuobjdump and nvdisasm:
``pip install nvidia-cuda-nvrtc nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm``
(or a CUDA toolkit on PATH / LD_LIBRARY_PATH).

    python bench/kernel_static.py        # writes bench/results/kernel_static.{json,md}
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import ctypes.util
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "cipherray" / "gpu_kernels"
sys.path.insert(0, str(ROOT))

# names in cipherray.gpu_kernels.bigint._VARIANTS
VARIANTS = ("fios", "ptx", "pairs", "pairs_sqr", "f64", "f64x2", "f64s", "f64x2s")


def _site_dirs() -> list[str]:
    import site

    dirs = list(site.getsitepackages()) + [site.getusersitepackages()]
    return [d for d in dirs if os.path.isdir(d)]


def find_nvrtc() -> str | None:
    for d in _site_dirs():
        hits = sorted(glob.glob(os.path.join(d, "nvidia", "*", "lib", "libnvrtc.so*")))
        hits = [h for h in hits if "builtins" not in h]
        if hits:
            return hits[-1]
    name = ctypes.util.find_library("nvrtc")
    if name:
        return name
    hits = sorted(glob.glob("/usr/local/cuda*/lib64/libnvrtc.so*"))
    return hits[-1] if hits else None


def find_cuobjdump() -> str | None:
    exe = shutil.which("cuobjdump")
    if exe:
        return exe
    for d in _site_dirs():
        hits = glob.glob(os.path.join(d, "nvidia", "*", "bin", "cuobjdump"))
        if hits:
            return hits[0]
    return None


class Nvrtc:
    def __init__(self, path: str) -> None:
        self.lib = ctypes.CDLL(path)

    def compile(self, source: str, defines: list[tuple[str, int]], arch: str) -> tuple[bytes, str]:
        code = ("// static check\n" + (SRC / source).read_text()).encode()
        prog = ctypes.c_void_p()
        rc = self.lib.nvrtcCreateProgram(ctypes.byref(prog), code, source.encode(), 0, None, None)
        if rc:
            raise RuntimeError(f"nvrtcCreateProgram: {rc}")
        opts = ["-std=c++17", f"-I{SRC}", f"--gpu-architecture={arch}", "-Xptxas=-v"]
        opts += [f"-D{k}={v}" for k, v in defines]
        arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        rc = self.lib.nvrtcCompileProgram(prog, len(opts), arr)
        n = ctypes.c_size_t()
        self.lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
        log = ctypes.create_string_buffer(n.value)
        self.lib.nvrtcGetProgramLog(prog, log)
        text = log.value.decode(errors="replace")
        if rc:
            raise RuntimeError(f"NVRTC failed ({rc}):\n{text[-3000:]}")
        self.lib.nvrtcGetCUBINSize(prog, ctypes.byref(n))
        cubin = ctypes.create_string_buffer(n.value)
        self.lib.nvrtcGetCUBIN(prog, cubin)
        self.lib.nvrtcDestroyProgram(ctypes.byref(prog))
        return cubin.raw, text


def ptxas_report(log: str) -> dict[str, dict]:
    """Function name -> {stack, spill_stores, spill_loads, registers} from ptxas -v output."""
    out: dict[str, dict] = {}
    cur = None
    for line in log.splitlines():
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            cur = out.setdefault(m.group(1), {})
            continue
        m = re.search(
            r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line
        )
        if m and cur is not None:
            cur.update(stack=int(m.group(1)), spill_stores=int(m.group(2)),
                       spill_loads=int(m.group(3)))  # fmt: skip
            continue
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            cur = out.setdefault(m.group(1), {})
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and cur is not None:
            cur["registers"] = int(m.group(1))
    return out


def _classify(op: str) -> str:
    if op.startswith(("DFMA", "DADD", "DMUL")):
        return "fp64"
    if op.startswith(("LDS", "STS")):
        return "shared"
    if op.startswith(("LDL", "STL")):
        return "local"
    if op.startswith(("LDG", "STG", "LD.", "ST.", "LDC")):
        return "global/const"
    if op.startswith(("MOV", "IMAD.MOV", "UMOV")):
        return "move"
    if op.startswith(("IMAD", "IADD", "LOP", "SHF", "LEA", "VIADD", "ISETP", "SEL", "UI", "US")):
        return "int"
    return "other"


def _pipe(op: str) -> str:
    """The execution pipe an instruction issues to on sm_80 / sm_90, as Nsight Compute names
    them: every IMAD form (IMAD.WIDE, and IMAD.MOV, which ptxas uses for plain moves) goes to
    the FMA pipe; IADD3, LOP3, MOV and the other integer ALU operations to the ALU pipe."""
    if op.startswith(("DFMA", "DADD", "DMUL")):
        return "fp64"
    if op.startswith("IMAD"):
        return "fma"
    if op.startswith(("IADD3", "LOP3", "MOV", "SHF", "SEL", "ISETP", "LEA", "VIADD", "PRMT")):
        return "alu"
    if op.startswith(("LD", "ST")):
        return "memory"
    return "other"


def sass(cuobjdump: str, cubin: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        env = dict(os.environ)
        if shutil.which("nvdisasm") is None and "NVDISASM_PATH" not in env:
            env["NVDISASM_PATH"] = str(Path(cuobjdump).parent)  # the pip wheels: same bin/
        r = subprocess.run([cuobjdump, "-sass", f.name], capture_output=True, text=True, env=env)
    return r.stdout


def functions(txt: str) -> dict[str, list[tuple[int, str]]]:
    """cuobjdump -sass output -> {kernel: [(address, instruction), ...]} (a kernel's section
    holds the device functions it calls too)."""
    out: dict[str, list[tuple[int, str]]] = {}
    cur: list[tuple[int, str]] | None = None
    for line in txt.splitlines():
        f = re.match(r"\s+Function : (\S+)", line)
        if f:
            cur = out.setdefault(f.group(1), [])
            continue
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m and cur is not None:
            cur.append((int(m.group(1), 16), m.group(2).strip()))
    return out


def loops(txt: str, kernel: str, min_len: int = 200) -> list[list[tuple[int, str]]]:
    """The loops (backward branches) of at least min_len instructions in `kernel`, in order."""
    ins = functions(txt).get(kernel, [])
    index = {a: k for k, (a, _) in enumerate(ins)}
    out = []
    for k, (a, t) in enumerate(ins):
        m = re.search(r"BRA.*?0x([0-9a-f]+)", t)
        if m and int(m.group(1), 16) < a and int(m.group(1), 16) in index:
            seg = ins[index[int(m.group(1), 16)] : k + 1]
            if len(seg) >= min_len:
                out.append(seg)
    return out


def square_rows(
    txt: str, limbs32: int, blocks: int, rows_per_pass: int, fp64: bool = True
) -> dict | None:
    """Instructions per row of a blocked squaring (montsqr), averaged over its rows. fp64:
    block b's loop does rows_per_pass rows of (L - s_b) + L products per pass, L 52-bit limbs;
    else ("pairs_sqr") one word of b, two 32-bit rows, per pass, over L = limbs32 / 2 words."""
    ls = loops(txt, "montsqr")
    if len(ls) != blocks:
        return None
    L = -(-32 * limbs32 // 52) if fp64 else limbs32 // 2
    bounds = [(b * L // blocks, (b + 1) * L // blocks) for b in range(blocks)]
    per_row = [len(seg) / rows_per_pass for seg in ls]
    mean = sum(p * (e - s) for p, (s, e) in zip(per_row, bounds)) / L
    return {"per_row_by_block": [round(p) for p in per_row], "per_row_mean": round(mean, 1)}


SIZED_KERNELS = ("montmul", "montsqr", "modexp")
# the scalar multiply runs in modexp, or (MontContext.modexp with steps) in montsqr launches
# and montmul_digit launches
SHARE_KERNELS = ("montmul", "montsqr", "modexp", "montmul_digit")


def code_kib(txt: str) -> dict[str, float]:
    """SASS size (KiB, 16 bytes an instruction) of the SIZED_KERNELS, the device functions
    each calls included (each kernel carries its own copy). A hot loop that outgrows the SM's
    instruction caches is fetched from L2: a risk the static counts do not show."""
    fns = functions(txt)
    return {k: round(len(fns[k]) * 16 / 1024, 1) for k in SIZED_KERNELS if k in fns}


def _opcode(ins: str) -> str:
    """The opcode of a SASS instruction, without its predicate (``@P0``, ``@!UP1``)."""
    return re.sub(r"^@!?U?P\w+\s+", "", ins).split()[0]


def row_loop_mix(txt: str, kernel: str = "montmul") -> dict | None:
    """Instruction mix of the largest loop in `kernel` (the Montgomery row loop)."""
    ls = loops(txt, kernel)
    if not ls:
        return None
    best = max(ls, key=len)
    ops = collections.Counter(_opcode(t) for _, t in best)
    classes = collections.Counter()
    pipes = collections.Counter()
    for op, c in ops.items():
        classes[_classify(op)] += c
        pipes[_pipe(op)] += c
    return {
        "instructions": len(best),
        "classes": dict(classes),
        "pipes": dict(pipes),
        "top": ops.most_common(8),
    }


def local_share(txt: str, kernel: str, min_len: int) -> float | None:
    """Local-memory instructions (spill traffic) as a share of all instructions in the
    Montgomery loops of `kernel` (its loops of at least min_len instructions). The scalar
    multiplication runs in ``modexp``, where mont_mul / mont_sqr are compiled for a caller
    that keeps state across 17 call sites, so its loops can spill more than the same loops in
    the single-call ``montmul`` kernel."""
    ls = [seg for seg in loops(txt, kernel) if len(seg) >= min_len]
    if not ls:
        return None
    n = sum(len(seg) for seg in ls)
    loc = sum(1 for seg in ls for _, t in seg if _opcode(t).startswith(("LDL", "STL")))
    return round(loc / n, 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    lib = find_nvrtc()
    if lib is None:
        print("NVRTC not found: pip install nvidia-cuda-nvrtc (or a CUDA toolkit)")
        return 2
    nv = Nvrtc(lib)
    cuobj = find_cuobjdump()
    from cipherray.gpu_kernels import bigint as bi

    table = bi._VARIANTS
    res = {"arch": args.arch, "nvrtc": lib, "cuobjdump": cuobj, "modules": {}}
    rows = []
    for n in (64, 128):
        for var in VARIANTS:
            cubin, log = nv.compile("bigint.cu", [("BI_N", n), *table[var]], args.arch)
            rep = ptxas_report(log)
            mm = next((v for k, v in rep.items() if k.startswith(f"_Z8mont_mulILi{n}E")), {})
            entry = {
                "mont_mul": mm,
                "montmul_kernel": rep.get("montmul", {}),
                "modexp_kernel": rep.get("modexp", {}),
            }
            if var.startswith("f64"):
                L = -(-32 * n // 52)
                rows_per_pass, prods = (2, 4) if var.startswith("f64x2") else (1, 2)
                limb_bits = 52
            else:
                L, rows_per_pass, prods, limb_bits = n, 2, 4, 32  # int loop: 2 rows per pass
            txt = sass(cuobj, cubin) if cuobj else ""
            mix = row_loop_mix(txt) if cuobj else None
            if mix:
                # products in one pass of the loop: prods per limb of a / m, L limbs
                per_prod = {k: round(v / (prods * L), 2) for k, v in mix["classes"].items()}
                mix["per_product"] = per_prod
                mix["pipes_per_product"] = {
                    k: round(v / (prods * L), 2) for k, v in mix["pipes"].items()
                }
                mix["instructions_per_product"] = round(mix["instructions"] / (prods * L), 2)
                mix["limb_bits"] = limb_bits
                mix["rows_per_pass"] = rows_per_pass
                # issue slots per bit^2 of schoolbook product work, relative to 32-bit limbs
                mix["instructions_per_kbit2"] = round(
                    1000 * mix["instructions"] / (prods * L * limb_bits**2), 3
                )
            if mix:
                mix["per_row"] = round(mix["instructions"] / rows_per_pass, 1)
                half = mix["instructions"] // 2  # the row loops, not copies / conversions
                entry["local_share"] = {k: local_share(txt, k, half) for k in SHARE_KERNELS}
            entry["row_loop"] = mix
            defs = dict(table[var])
            sq = defs.get("CR_F64_SQR", 0) or defs.get("CR_PAIRS_SQR", 0)
            entry["square"] = (
                square_rows(txt, n, sq, rows_per_pass, fp64=var.startswith("f64"))
                if (sq and cuobj)
                else None
            )
            entry["montsqr_kernel"] = rep.get("montsqr", {})
            entry["code_kib"] = code_kib(txt) if cuobj else {}
            res["modules"][f"{n}_{var}"] = entry
            rows.append(
                (n, var, mm, entry["modexp_kernel"], mix, entry["square"], entry["code_kib"],
                 entry.get("local_share", {}))
            )  # fmt: skip
            print(f"N={n:3d} {var:6s} mont_mul spills {mm.get('spill_stores')}/"
                  f"{mm.get('spill_loads')} B"
                  + (f", row loop {mix['instructions']} instr, "
                     f"{mix['instructions_per_kbit2']} per 1000 bit^2, {mix['per_product']}"
                     if mix else ""))  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernel_static.json").write_text(json.dumps(res, indent=1))
    md = [
        f"Static view of `bigint.cu` for {args.arch} (NVRTC, as CuPy compiles it; no GPU run).",
        "",
        "| modulus | variant | mont_mul spills (B) | modexp kernel regs / spills (B) | row-loop "
        "instructions per limb product | of which fp64 / int / shared / local / move | "
        "by pipe: FMA (all IMAD forms) / ALU / fp64 | "
        "instructions per 1000 bit² | squaring / multiplication (row-loop instructions) | "
        "SASS KiB montmul / montsqr / modexp | local-memory share of the row loops: "
        "montmul / montsqr / modexp / montmul_digit kernel |",
        "|---|---|---:|---:|---:|---|---|---:|---|---|---|",
    ]
    for n, var, mm, mk, mix, sq, kib, share in rows:
        pp = mix["per_product"] if mix else {}
        pipes = mix["pipes_per_product"] if mix else {}
        md.append(
            f"| {32 * n}-bit | {var} | {mm.get('spill_stores', '?')} | "
            f"{mk.get('registers', '?')} / {mk.get('spill_stores', '?')} | "
            f"{mix['instructions_per_product'] if mix else '-'} | "
            + " / ".join(str(pp.get(c, 0)) for c in ("fp64", "int", "shared", "local", "move"))
            + " | "
            + " / ".join(str(pipes.get(c, 0)) for c in ("fma", "alu", "fp64"))
            + f" | {mix['instructions_per_kbit2'] if mix else '-'} | "
            + (
                f"{(sq['per_row_mean'] if sq else mix['per_row']) / mix['per_row']:.2f}"
                if mix
                else "-"
            )
            + " | "
            + " / ".join(f"{kib[k]:.0f}" if k in kib else "-" for k in SIZED_KERNELS)
            + " | "
            + " / ".join(
                "-" if share.get(k) is None else f"{100 * share[k]:.1f}%" for k in SHARE_KERNELS
            )
            + " |"
        )
    # the cooperative kernels (bigint_coop.cuh): a group of tpi threads per number
    md += [
        "",
        f"Cooperative kernels (`bigint_coop.cu`, a group of threads per number), {args.arch}. "
        "Per limb product: instructions of all the group's threads together, so the figures "
        "compare with the one-thread rows above.",
        "",
        "| modulus | threads per number | coop_montmul regs / spills (B) | coop_modexp regs / "
        "spills (B) | coop_bucket_prod / coop_fixed_base regs (spills, B) | row-loop "
        "instructions per limb product | by pipe: FMA / ALU | shuffles per limb product | "
        "SASS KiB coop_modexp |",
        "|---|---:|---:|---:|---|---:|---|---:|---:|",
    ]
    res["coop_modules"] = {}
    for n in (64, 128):
        for tpi in bi.coop_group_sizes(n):
            if n // tpi < 4:
                continue
            cubin, log = nv.compile(bi.COOP_SOURCE, [("BI_N", n), ("CR_TPI", tpi)], args.arch)
            rep = ptxas_report(log)
            txt = sass(cuobj, cubin) if cuobj else ""
            entry = {
                k: rep.get(f"coop_{k}", {})
                for k in ("montmul", "modexp", "bucket_prod", "fixed_base")
            }
            ls = loops(txt, "coop_montmul", 50) if cuobj else []
            if ls:
                best = max(ls, key=len)  # the owner loop: n / tpi rows of y per lane
                prods = (n // tpi) * 2 * (n // tpi)  # products per lane per owner iteration
                ops = collections.Counter(_opcode(t) for _, t in best)
                pipes = collections.Counter()
                for op, c in ops.items():
                    pipes[_pipe(op)] += c
                entry["row_loop"] = {
                    "instructions": len(best),
                    "instructions_per_product": round(len(best) / prods, 2),
                    "pipes_per_product": {k: round(v / prods, 2) for k, v in pipes.items()},
                    "shuffles_per_product": round(
                        sum(c for op, c in ops.items() if op.startswith("SHFL")) / prods, 3
                    ),
                }
            fns = functions(txt) if cuobj else {}
            entry["modexp_kib"] = round(len(fns.get("coop_modexp", [])) * 16 / 1024, 1)
            res["coop_modules"][f"{n}_tpi{tpi}"] = entry
            rl = entry.get("row_loop") or {}
            pp = rl.get("pipes_per_product", {})
            md.append(
                f"| {32 * n}-bit | {tpi} | {entry['montmul'].get('registers', '?')} / "
                f"{entry['montmul'].get('spill_stores', '?')} | "
                f"{entry['modexp'].get('registers', '?')} / "
                f"{entry['modexp'].get('spill_stores', '?')} | "
                + " / ".join(
                    f"{entry[k].get('registers', '?')} ({entry[k].get('spill_stores', '?')})"
                    for k in ("bucket_prod", "fixed_base")
                )
                + f" | {rl.get('instructions_per_product', '-')} | "
                f"{pp.get('fma', 0)} / {pp.get('alu', 0)} | {rl.get('shuffles_per_product', '-')} | "
                f"{entry['modexp_kib']} |"
            )
            print(f"N={n:3d} coop tpi={tpi}: {entry}")
    (out / "kernel_static.json").write_text(json.dumps(res, indent=1))
    (out / "kernel_static.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out / 'kernel_static.json'} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
