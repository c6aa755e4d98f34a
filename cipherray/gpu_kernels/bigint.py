"""Batched big-integer arithmetic (Montgomery multiplication, modexp, fixed-base comb).

Data layout: on a backend (NumPy for the host build, CuPy for the GPU) a batch of ``count``
numbers of ``L`` 32-bit limbs is a uint64 array of shape ``(L // 2, count)``: word k of an
element holds limbs 2k and 2k + 1 (little-endian), words are major so GPU threads read coalesced
and every load brings two limbs. Exponents are uint32 arrays ``(limbs, count)``. :func:`ints_to_limbs` / :func:`limbs_to_ints` convert between Python
ints and the row layout ``(count, L)``; :meth:`MontContext.put` / :meth:`MontContext.get` move
ints to / from a backend in the limb-major layout.

Supported limb counts: 8, 16, 32, 64, 128 (256 ... 4096-bit moduli); one compiled module per
limb count and variant. The one-thread-per-number kernels are in ``bigint.cu`` / ``bigint.cuh``,
the cooperative ones (a group of threads per number: ``MODEXP_COOP``, ``MONTMUL_COOP``) in
``bigint_coop.cu`` / ``bigint_coop.cuh``; the host build runs the same sources.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ._build import get_backend

SIZES = (8, 16, 32, 64, 128)
SOURCE = "bigint.cu"
COOP_SOURCE = "bigint_coop.cu"  # TPI threads per number (bigint_coop.cuh)

try:  # optional, faster host-side precomputation
    import gmpy2 as _gmpy2
except ImportError:  # pragma: no cover
    _gmpy2 = None

# kernel -> argument types (count is appended)
_SIG = {
    "montmul": "pipiipiipu",
    "montsqr": "pipipu",
    "mulmod": "pipiipiipup",
    "modexp": "pipiipiiiipuppii",
    "montmul_digit": "pipipiiiiipu",
    "fixed_base": "pipiiiiippupii",
    "one_plus_xn": "pipip",
    "reduce2": "pipipup",
    "dec_finish": "pippipuu",
    "bucket_prod": "pipippppu",
    "coop_montmul": "pipiipiipu",
    "coop_modexp": "pipiipiiiipuppii",
    "coop_bucket_prod": "pipippppup",
    "coop_fixed_base": "pipiiiiippupii",
}


# Montgomery multiplication variants (compile-time switches of bigint.cuh): "fios" (the
# portable rows, 32-bit limbs: the host build of "ptx", and the variant of limb counts that
# DEFAULT_VARIANT does not list), "ptx" (GPU: the rows as PTX carry chains), "pairs"
# (bigint_pairs.cuh: carry chains whose fused products all land on aligned register pairs,
# the others as mul.wide + add chain; the host build runs the same chains), "pairs_sqr"
# ("pairs" with a dedicated squaring), "f64" (bigint_f64.cuh: 52-bit limbs on the fp64 units;
# Montgomery radix 2^(52 ceil(32 L / 52)) instead of 2^(32 L), see mont_r_bits), "f64x2" (the
# same, two rows of b per pass over a, m), "f64s" / "f64x2s" (those with a dedicated squaring:
# each cross product once). bench/gpu.py times every variant but "fios" and may choose any of
# them (gpu_kernels/README.md, "Montgomery variants").
_VARIANTS = {
    "fios": (),
    "ptx": (("CR_PTX", 1),),
    "pairs": (("CR_PAIRS", 1),),
    "pairs_sqr": (("CR_PAIRS", 1), ("CR_PAIRS_SQR", 4)),
    "f64": (("CR_F64", 1),),
    "f64x2": (("CR_F64", 1), ("CR_F64_ROWS", 2)),
    "f64s": (("CR_F64", 1), ("CR_F64_SQR", 4)),
    "f64x2s": (("CR_F64", 1), ("CR_F64_ROWS", 2), ("CR_F64_SQR", 4)),
}


def mont_r_bits(limbs: int, variant: str) -> int:
    """log2 of the Montgomery radix R the kernels of ``variant`` use for ``limbs`` 32-bit limbs."""
    if variant.startswith("f64"):
        return 52 * ((32 * limbs + 51) // 52)
    return 32 * limbs


# The kernels MontContext(variant="auto") uses, per limb count: bench/gpu.py's choice in the
# latest device run (its figures: gpu_kernels/README.md, "Measured"). The sizes gpu.py does not
# time keep ptx. On another GPU, CIPHERRAY_KERNEL_TUNING=<the gpu.json gpu.py wrote there>
# replaces these tables (apply_tuning).
DEFAULT_VARIANT = {8: "ptx", 16: "ptx", 32: "ptx", 64: "pairs", 128: "f64s"}
# Used instead of an "f64*" default on GPUs without a full-rate fp64 pipe: the fastest integer
# variant at 4096 bits in the latest device run (gpu.py's fastest_integer_variant).
INTEGER_FALLBACK_VARIANT = "pairs_sqr"
VARIANT_ENV = "CIPHERRAY_MONT_VARIANT"  # overrides "auto" (experiments, benchmarks)
# MontContext.modexp as one launch per multiplication (montsqr / montmul_digit) instead of the
# one fused modexp kernel, per limb count. Same results; which is faster depends on how each
# variant's registers fit (bench/gpu.py times both; a context reads this when it is made).
MODEXP_STEPS = {8: False, 16: False, 32: False, 64: True, 128: True}
# MontContext.modexp on the cooperative kernel (bigint_coop.cuh) with this many threads per
# number, per limb count; 0: the one-thread kernels. Same results (bench/gpu.py times both).
MODEXP_COOP = {8: 0, 16: 0, 32: 0, 64: 0, 128: 0}
COOP_ENV = "CIPHERRAY_MODEXP_COOP"  # overrides MODEXP_COOP: "8" (every size) or "128:8,64:0"
# The same for the single multiplications and the chains of them without squarings
# (MontContext.mont_mul / mont_sqr / bucket_prod / fixed_base_pow: multiexp's X.T @ c, the
# batch inversion, the product trees, the encryption's comb), where the context's radix is
# 2^(32 limbs) (not under the "f64" variants, so not at 4096 bits while f64s is the default
# there).
MONTMUL_COOP = {8: 0, 16: 0, 32: 0, 64: 0, 128: 0}
MONTMUL_COOP_ENV = "CIPHERRAY_MONTMUL_COOP"


def coop_group_sizes(limbs: int) -> tuple[int, ...]:
    """Threads per number the cooperative kernels take for ``limbs``: powers of two from 2
    to 32 that leave each thread an even number of limbs, 16 at most (with 32, the compiler
    has no registers to spare; NVRTC 13 crashed compiling 128 limbs on 4 threads)."""
    return tuple(
        t
        for t in (2, 4, 8, 16, 32)
        if limbs % t == 0 and 2 <= limbs // t <= 16 and (limbs // t) % 2 == 0
    )


def _check_group_size(tpi: Any, limbs: int, where: str) -> None:
    """ValueError (naming `where`) unless tpi is 0 or one of coop_group_sizes(limbs)."""
    if (
        isinstance(tpi, bool)
        or not isinstance(tpi, (int, np.integer))
        or (tpi and tpi not in coop_group_sizes(limbs))
    ):
        raise ValueError(
            f"{where}: cooperative group of {tpi!r} threads per number for {limbs} limbs: use 0 "
            f"or one of {coop_group_sizes(limbs)}"
        )


def _coop_setting(limbs: int, table: dict, env: str) -> int:
    """Threads per number for `limbs` from `table`, unless the variable `env` overrides."""
    tpi = table.get(limbs, 0)
    forced = os.environ.get(env, "").strip()
    try:
        if forced and ":" not in forced:
            tpi = int(forced)
        elif forced:
            per_size = dict(item.split(":") for item in forced.split(","))
            tpi = int(per_size.get(str(limbs), tpi))
    except ValueError as e:
        raise ValueError(f"{env}={forced!r}: write 8 or 128:8,64:0") from e
    _check_group_size(tpi, limbs, env if forced else "bigint tables")
    return tpi


def _modexp_coop(limbs: int) -> int:
    return _coop_setting(limbs, MODEXP_COOP, COOP_ENV)


def _montmul_coop(limbs: int) -> int:
    return _coop_setting(limbs, MONTMUL_COOP, MONTMUL_COOP_ENV)


TUNING_ENV = "CIPHERRAY_KERNEL_TUNING"  # path to a bench/gpu.py gpu.json: apply_tuning at import


def apply_tuning(measured: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """Use the kernels ``bench/gpu.py`` measured fastest on this GPU: its gpu.json (or the
    same keys) gives per modulus size in bits ``montmul_variant_used`` (-> DEFAULT_VARIANT),
    ``modexp_steps_used`` (-> MODEXP_STEPS), ``modexp_coop_used`` (-> MODEXP_COOP) and
    ``montmul_coop_used`` (-> MONTMUL_COOP); a key that is absent leaves its table alone.
    Contexts made afterwards use the new settings. Everything is checked before anything is
    set. Returns the settings applied, per limb count."""
    tables = {
        "montmul_variant_used": (DEFAULT_VARIANT, "variant"),
        "modexp_steps_used": (MODEXP_STEPS, "modexp_steps"),
        "modexp_coop_used": (MODEXP_COOP, "modexp_coop"),
        "montmul_coop_used": (MONTMUL_COOP, "montmul_coop"),
    }
    updates: list[tuple[dict, int, Any]] = []
    applied: dict[int, dict[str, Any]] = {}
    for key, (table, name) in tables.items():
        per_size = measured.get(key)
        if per_size is None:
            continue
        if not isinstance(per_size, Mapping):
            raise ValueError(f"{key}: expected {{modulus bits: value}}, got {per_size!r}")
        for bits, value in per_size.items():
            limbs, rest = divmod(int(bits), 32) if str(bits).isdigit() else (-1, 0)
            if limbs not in table or rest:
                raise ValueError(f"{key}: {bits!r} is not a supported modulus size in bits")
            if name == "variant" and value not in _VARIANTS:
                raise ValueError(f"{key}[{bits}]: {value!r} is not one of {sorted(_VARIANTS)}")
            if name == "modexp_steps" and not isinstance(value, bool):
                raise ValueError(f"{key}[{bits}]: {value!r} is not true or false")
            if name.endswith("coop"):
                _check_group_size(value, limbs, f"{key}[{bits}]")
            updates.append((table, limbs, value))
            applied.setdefault(limbs, {})[name] = value
    for table, limbs, value in updates:
        table[limbs] = value
    return applied


def _tuning_from_env() -> None:
    path = os.environ.get(TUNING_ENV, "").strip()
    if not path:
        return
    try:
        with open(path, encoding="utf-8") as f:
            measured = json.load(f)
        apply_tuning(measured)
    except (OSError, ValueError) as e:
        raise ValueError(f"{TUNING_ENV}={path!r}: {e}") from e


def auto_variant(limbs: int, backend: Any) -> str:
    """The variant ``MontContext(variant="auto")`` uses for ``limbs`` on ``backend``: the
    environment's ``CIPHERRAY_MONT_VARIANT`` when set, else DEFAULT_VARIANT, except that an
    fp64 variant gives way to INTEGER_FALLBACK_VARIANT on a GPU whose fp64 pipe is slow."""
    forced = os.environ.get(VARIANT_ENV, "").strip()
    if forced:
        if forced not in _VARIANTS:
            raise ValueError(f"{VARIANT_ENV}={forced!r}: must be one of {sorted(_VARIANTS)}")
        return forced
    variant = DEFAULT_VARIANT.get(limbs, "fios")
    if variant.startswith("f64") and not getattr(backend, "fp64_full_rate", True):
        return INTEGER_FALLBACK_VARIANT
    return variant


def limbs_for_bits(bits: int) -> int:
    """Smallest supported limb count L with 32 * L >= bits."""
    for n in SIZES:
        if 32 * n >= bits:
            return n
    raise ValueError(f"{bits}-bit operands exceed the largest supported size (4096 bits)")


def ints_to_limbs(values: Iterable[Any], limbs: int) -> np.ndarray:
    """Non-negative ints (Python int, numpy object array, gmpy2 mpz) -> uint32 (count, limbs)."""
    width = 4 * limbs
    if isinstance(values, np.ndarray):
        vals = values.ravel()
    elif isinstance(values, (list, tuple)):
        vals = values
    else:
        vals = list(values)
    try:
        try:  # int and mpz write their bytes directly (no int() copy of an mpz)
            parts = [v.to_bytes(width, "little") for v in vals]
        except (AttributeError, TypeError):  # e.g. NumPy integers
            parts = [int(v).to_bytes(width, "little") for v in vals]
    except OverflowError as e:
        raise ValueError(f"a value is negative or does not fit in {limbs} limbs") from e
    return (
        np.frombuffer(b"".join(parts), dtype="<u4").reshape(-1, limbs).astype(np.uint32, copy=False)
    )


def limbs_to_ints(arr: np.ndarray, as_mpz: bool = False) -> np.ndarray:
    """uint32 (count, limbs) little-endian limbs -> 1-D numpy object array of Python ints
    (``as_mpz``: of gmpy2 mpz, made straight from the bytes, where gmpy2 is installed)."""
    a = np.ascontiguousarray(arr, dtype="<u4")
    if a.ndim == 1:
        a = a[None, :]
    width = 4 * a.shape[1]
    mv = memoryview(a.tobytes())
    fb = _gmpy2.mpz.from_bytes if as_mpz and _gmpy2 is not None else int.from_bytes
    vals = [fb(mv[i : i + width], "little") for i in range(0, len(mv), width)]
    # fromiter: `out[:] = vals` would probe every mpz as a possible sequence
    return np.fromiter(vals, dtype=object, count=len(vals))


def _words(limbs32: np.ndarray) -> np.ndarray:
    """uint32 limbs (..., L) -> uint64 limb pairs (..., L // 2) (little-endian)."""
    return np.ascontiguousarray(limbs32, dtype="<u4").view("<u8").astype(np.uint64, copy=False)


def _ld(a) -> int:
    return a.strides[0] // a.itemsize if a.ndim == 2 else 1


def _step(a) -> int:
    return 1 if a.ndim == 2 else 0


def _count(*arrays) -> int:
    counts = {a.shape[1] for a in arrays if a.ndim == 2}
    if len(counts) > 1:
        raise ValueError(f"batch sizes differ: {sorted(counts)}")
    return counts.pop() if counts else 1


def _powmod(b: int, e: int, m: int) -> int:
    if _gmpy2 is not None:
        return int(_gmpy2.powmod(b, e, m))
    return pow(b, e, m)


def _invmod(x: int, m: int) -> int:
    return int(_gmpy2.invert(x, m)) if _gmpy2 is not None else pow(x, -1, m)


class NotInvertibleError(ValueError):
    """Some values have no inverse mod m; `columns` lists where they are."""

    def __init__(self, columns: list[int]) -> None:
        self.columns = columns
        super().__init__(f"no inverse mod m for the values at columns {columns[:10]}")


class MontContext:
    """A modulus m (odd, < 2^4096) prepared for Montgomery arithmetic on one backend."""

    def __init__(
        self, m: int, backend: str | Any = "auto", limbs: int | None = None, variant: str = "auto"
    ) -> None:
        m = int(m)
        if m <= 1 or m % 2 == 0:
            raise ValueError("Montgomery modulus must be odd and > 1")
        self.m = m
        self.limbs = n = limbs or limbs_for_bits(m.bit_length())
        if m.bit_length() > 32 * n:
            raise ValueError("modulus does not fit the limb count")
        self.backend = get_backend(backend)
        if variant == "auto":
            variant = auto_variant(n, self.backend)
        self.variant = variant
        if variant not in _VARIANTS:
            raise ValueError(f"variant must be one of {sorted(_VARIANTS)}")
        self.defines = (("BI_N", n), *_VARIANTS[variant])
        self.modexp_steps = MODEXP_STEPS.get(n, False)
        self.modexp_coop = _modexp_coop(n)
        coop_mm = _montmul_coop(n)
        # single multiplications return a b R^-1 with the variant's R: the cooperative
        # kernel's radix is 2^(32 n)
        self.montmul_coop = coop_mm if mont_r_bits(n, variant) == 32 * n else 0
        self.R = 1 << mont_r_bits(n, variant)
        self.minv = (-pow(m, -1, 1 << 32)) % (1 << 32)
        self.r2 = self.R * self.R % m
        self.one_m = self.R % m
        put = self.backend.asarray
        self.words = w = n // 2
        self.m_arr = put(_words(ints_to_limbs([m], n)[0]))
        self.consts = put(_words(ints_to_limbs([self.r2, self.one_m, 1], n).reshape(-1)))
        # reduce2 splits a wide c at 2^(32 n): its high half goes in with 2^(32 n) R^2 (= R^3
        # when R = 2^(32 n))
        r3 = (1 << (32 * n)) * self.R * self.R % m
        self.consts_r3 = put(_words(ints_to_limbs([self.r2, r3, 1], n).reshape(-1)))
        self.unit = self.consts[2 * w :]
        # the cooperative kernels' radix is 2^(32 n) whatever the variant
        r_int = 1 << (32 * n)
        self.consts_coop = (
            self.consts
            if r_int == self.R
            else put(_words(ints_to_limbs([r_int * r_int % m, r_int % m, 1], n).reshape(-1)))
        )

    # -- moving data -------------------------------------------------------------------
    def put(self, values: Iterable[Any], limbs: int | None = None):
        """Ints -> backend word array (limbs // 2, count)."""
        host = _words(ints_to_limbs(values, limbs or self.limbs))
        xp = self.backend.xp
        return xp.ascontiguousarray(self.backend.asarray(host).T)

    def put32(self, values: Iterable[Any], limbs: int):
        """Ints (e.g. exponents) -> backend uint32 limb array (limbs, count)."""
        host = ints_to_limbs(values, limbs)
        return self.backend.xp.ascontiguousarray(self.backend.asarray(host).T)

    def get(self, arr, as_mpz: bool = False) -> np.ndarray:
        """Backend word array (limbs // 2, count) -> numpy object array of ints (or mpz)."""
        # transpose where the data is (on a GPU: there, not in a strided host copy)
        host = self.backend.to_host(self.backend.xp.ascontiguousarray(arr.T))
        return limbs_to_ints(host.view(np.uint32), as_mpz)

    def get_bytes(self, arr, width: int) -> bytes:
        """Backend word array (limbs // 2, count) -> the values as `width`-byte big-endian
        strings, concatenated (each value must be below 2^(8 width))."""
        host = self.backend.to_host(self.backend.xp.ascontiguousarray(arr.T))
        le = np.ascontiguousarray(host, dtype="<u8").view(np.uint8).reshape(host.shape[0], -1)
        if width > le.shape[1] or le[:, width:].any():
            raise ValueError(f"values do not fit in {width} bytes")
        return le[:, width - 1 :: -1].tobytes() if width else b""

    def empty(self, count: int, limbs: int | None = None):
        return self.backend.xp.empty(((limbs or self.limbs) // 2, count), dtype=np.uint64)

    def launch(self, kernel: str, args: list, count: int, tpi: int = 0) -> None:
        """A kernel of bigint.cu for ``count`` items, or with ``tpi`` > 0 one of
        bigint_coop.cu with a group of ``tpi`` threads for each item."""
        for a in args:  # the kernels step columns by one element (row stride from _ld)
            if getattr(a, "ndim", 0) == 2 and a.shape[1] > 1 and a.strides[1] != a.itemsize:
                raise ValueError(f"{kernel}: limb arrays need contiguous columns")
        if not tpi:
            self.backend.launch(SOURCE, self.defines, kernel, _SIG[kernel], args, count)
            return
        _check_group_size(tpi, self.limbs, kernel)
        defines = (("BI_N", self.limbs), ("CR_TPI", tpi))
        self.backend.launch(COOP_SOURCE, defines, kernel, _SIG[kernel], args, count * tpi)

    # -- elementwise -------------------------------------------------------------------
    def mont_mul(self, a, b, out=None, coop: int | None = None):
        """a * b * R^-1 mod m (either operand may be a single (limbs,) value, broadcast).
        coop (default: the context's montmul_coop): on the cooperative kernel with this many
        threads per number, whose radix is 2^(32 limbs) whatever the variant (0: not)."""
        coop = self.montmul_coop if coop is None else coop
        count = _count(a, b)
        out = self.empty(count) if out is None else out
        self.launch(
            "coop_montmul" if coop else "montmul",
            [out, _ld(out), a, _ld(a), _step(a), b, _ld(b), _step(b), self.m_arr, self.minv],
            count,
            coop,
        )
        return out

    def mulmod(self, a, b, out=None):
        """a * b mod m, normal form in and out."""
        count = _count(a, b)
        out = self.empty(count) if out is None else out
        self.launch(
            "mulmod",
            [out, _ld(out), a, _ld(a), _step(a), b, _ld(b), _step(b), self.m_arr, self.minv,
             self.consts],
            count,
        )  # fmt: skip
        return out

    def mont_sqr(self, a, out=None):
        """a^2 * R^-1 mod m (the squaring kernel of the variant, or the cooperative
        multiplication where montmul_coop says so)."""
        if self.montmul_coop:
            return self.mont_mul(a, a, out)
        count = a.shape[1]
        out = self.empty(count) if out is None else out
        self.launch("montsqr", [out, _ld(out), a, _ld(a), self.m_arr, self.minv], count)
        return out

    def bucket_prod(self, out, base, rows, start, lens) -> None:
        """out[:, i] = prod_j base[:, rows[start[i] + j]] for j < lens[i] (Montgomery form, as
        the bases), one item per bucket; multiexp.py's bucket products."""
        coop = self.montmul_coop
        args = [out, _ld(out), base, _ld(base), rows, start, lens, self.m_arr, self.minv]
        if coop:  # past its own end a group multiplies by R mod m
            args.append(self.consts[self.words : 2 * self.words])
        self.launch("coop_bucket_prod" if coop else "bucket_prod", args, out.shape[1], coop)

    def to_mont(self, a, out=None):
        return self.mont_mul(a, self.consts[: self.words], out)

    def from_mont(self, a, out=None):
        return self.mont_mul(a, self.unit, out)

    def reduce_wide(self, c, out=None):
        """c mod m for c with 2 * limbs limbs (word array (L, count))."""
        count = c.shape[1]
        out = self.empty(count) if out is None else out
        self.launch(
            "reduce2",
            [out, _ld(out), c, _ld(c), self.m_arr, self.minv, self.consts_r3],
            count,
        )
        return out

    # -- exponentiation ----------------------------------------------------------------
    def modexp(
        self, base, exps, ebits: int, w: int | None = None, out=None, chunk=None,
        steps: bool | None = None, coop: int | None = None,
    ):  # fmt: skip
        """base^e mod m with a fixed window; exps: (elimbs, count) or (elimbs,) broadcast.
        steps (default: the context's modexp_steps): one launch per multiplication instead of
        the fused kernel; coop (default: the context's modexp_coop): the cooperative kernel
        with this many threads per number (0: not). The same bits every way."""
        count = _count(base, exps)
        if w is None:
            w = 3 if ebits <= 16 else 4 if ebits <= 128 else 5 if ebits <= 1536 else 6
        out = self.empty(count) if out is None else out
        elimbs = exps.shape[0]
        if chunk is None:
            budget = (1 << 30) if self.backend.name == "gpu" else (1 << 26)
            chunk = max(1, min(count, budget // ((1 << w) * self.limbs * 4)))
        xp = self.backend.xp
        tbl = xp.empty(((1 << w) * self.words, min(chunk, count)), dtype=np.uint64)
        fused = not (self.modexp_steps if steps is None else steps)
        coop = self.modexp_coop if coop is None else coop
        for s in range(0, count, chunk):
            e = min(count, s + chunk)
            o = out[:, s:e]
            b = base[:, s:e] if base.ndim == 2 else base
            x = exps[:, s:e] if exps.ndim == 2 else exps
            t = tbl[:, : e - s]
            if coop or fused:
                self.launch(
                    "coop_modexp" if coop else "modexp",
                    [o, _ld(o), b, _ld(b), _step(b), x, _ld(x), _step(x), elimbs, ebits,
                     self.m_arr, self.minv, self.consts_coop if coop else self.consts, t,
                     _ld(t), w],
                    e - s,
                    coop,
                )  # fmt: skip
            else:
                self._modexp_steps(o, b, x, ebits, t, w)
        return out

    def _modexp_steps(self, o, b, x, ebits: int, t, w: int) -> None:
        """The fused modexp kernel's steps as launches: table t[d] = b^d R (d < 2^w, even d
        as squares), then per window from the top w squarings (none at the top) and one
        multiplication by t[digit]; o = 1 R at the start and leaves Montgomery form at the end."""
        W, n = self.words, o.shape[1]
        if b.ndim == 1:  # a broadcast base: the table is per element all the same
            b = self.backend.xp.ascontiguousarray(self.backend.xp.broadcast_to(b[:, None], (W, n)))
        one_m = self.consts[W : 2 * W]

        def entry(d: int):
            return t[d * W : (d + 1) * W]

        entry(0)[:] = one_m.reshape(-1, 1)
        self.to_mont(b, out=entry(1))
        for d in range(2, 1 << w):
            if d % 2 == 0:
                self.mont_sqr(entry(d // 2), out=entry(d))
            else:
                self.mont_mul(entry(d - 1), entry(1), out=entry(d))
        o[:] = one_m.reshape(-1, 1)
        nwin = -(-ebits // w) if ebits > 0 else 1
        for win in range(nwin - 1, -1, -1):
            if win < nwin - 1:
                for _ in range(w):
                    self.mont_sqr(o, out=o)
            self.launch(
                "montmul_digit",
                [o, _ld(o), t, _ld(t), x, _ld(x), _step(x), x.shape[0], win, w, self.m_arr,
                 self.minv],
                n,
            )  # fmt: skip
        self.from_mont(o, out=o)

    def fixed_base_table(self, g: int, ebits: int, w: int = 8):
        """Comb table for g: entry (i, d) = g^(d * 2^(w i)) * R mod m, i < ceil(ebits / w)."""
        nwin = (ebits + w - 1) // w
        m = self.m
        mpz = _gmpy2.mpz if _gmpy2 is not None else int
        entries = []
        gi = mpz(int(g) % m)
        for _ in range(nwin):
            e = mpz(self.one_m)
            for _d in range(1 << w):
                entries.append(e)
                e = e * gi % m
            gi = _powmod(gi, 1 << w, m) if _gmpy2 is None else _gmpy2.powmod(gi, 1 << w, m)
        table = self.backend.asarray(_words(ints_to_limbs(entries, self.limbs).reshape(-1)))
        return FixedBaseTable(table=table, nwin=nwin, w=w, ebits=ebits)

    def fixed_base_pow(self, tab: FixedBaseTable, exps, mulin=None, out=None):
        """g^e (* mulin) mod m for every exponent; exps (elimbs, count) with e < 2^tab.ebits."""
        count = exps.shape[1]
        mulin = self.unit if mulin is None else mulin
        out = self.empty(count) if out is None else out
        coop = self.montmul_coop
        self.launch(
            "coop_fixed_base" if coop else "fixed_base",
            [out, _ld(out), exps, _ld(exps), 1, exps.shape[0], tab.nwin, tab.w, tab.table,
             self.m_arr, self.minv, mulin, _ld(mulin), _step(mulin)],
            count,
            coop,
        )  # fmt: skip
        return out

    def invert(self, x):
        """x_i^-1 mod m for every column of x (normal form in and out), one inversion in all.

        Montgomery's batch-inversion trick as a product tree, so every step is a batched
        multiplication: (1) up the tree, each level the pairwise products of the one below;
        (2) the root (the product of all x_i) inverted on the host; (3) down the tree,
        inv(left) = inv(parent) * right and inv(right) = inv(parent) * left. About 5
        multiplications per element instead of one modular inversion each. Raises ValueError
        naming the columns that have no inverse (gcd(x_i, m) > 1).
        """
        if x.shape[1] == 0:
            return self.empty(0)
        x = self.backend.xp.ascontiguousarray(x)
        # 1. up: level t (k columns) -> parent (k - h columns): columns j and k - h + j pair
        # up, the middle one of an odd level passes through
        levels = [self.to_mont(x)]
        while levels[-1].shape[1] > 1:
            t = levels[-1]
            k = t.shape[1]
            h = k // 2
            parent = self.empty(k - h)
            self.mont_mul(t[:, :h], t[:, k - h :], out=parent[:, :h])
            if k % 2:
                parent[:, h] = t[:, h]
            levels.append(parent)
        # 2. the root: prod x_i (Montgomery form) -> its inverse, back in Montgomery form
        root = int(self.get(self.from_mont(levels[-1]))[0])
        if math.gcd(root, self.m) != 1:
            bad = [i for i, v in enumerate(self.get(x)) if math.gcd(int(v), self.m) != 1]
            raise NotInvertibleError(bad)
        inv = self.put([_invmod(root, self.m) * self.R % self.m])
        # 3. down
        for t in reversed(levels[:-1]):
            k = t.shape[1]
            h = k // 2
            below = self.empty(k)
            self.mont_mul(inv[:, :h], t[:, k - h :], out=below[:, :h])
            self.mont_mul(inv[:, :h], t[:, :h], out=below[:, k - h :])
            if k % 2:
                below[:, h] = inv[:, h]
            inv = below
        return self.from_mont(inv)

    def prod_tree(self, x, groups: int):
        """In-place product over axis 0 of x viewed as (groups, M) elements, Montgomery form.

        x: (words, groups * M) with element k * M + j. Returns the view x[:, :M].
        """
        total = x.shape[1]
        M = total // groups
        k = groups
        while k > 1:
            h = k // 2
            a = x[:, : h * M]
            b = x[:, (k - h) * M : k * M]
            self.mont_mul(a, b, out=a)
            k -= h
        return x[:, :M]


class FixedBaseTable:
    """Device/host copy of a fixed-base comb table (see MontContext.fixed_base_table)."""

    def __init__(self, table, nwin: int, w: int, ebits: int) -> None:
        self.table, self.nwin, self.w, self.ebits = table, nwin, w, ebits


# -- convenience on Python ints ---------------------------------------------------------------
def _as_list(values) -> list:
    return list(values.ravel()) if isinstance(values, np.ndarray) else list(values)


def mulmod_ints(m: int, a, b, backend: str = "auto") -> np.ndarray:
    """[a_i * b_i mod m] for ints a_i, b_i < m."""
    ctx = MontContext(m, backend)
    return ctx.get(ctx.mulmod(ctx.put(_as_list(a)), ctx.put(_as_list(b))))


def montmul_ints(m: int, a, b, backend: str = "auto") -> np.ndarray:
    """[a_i * b_i * R^-1 mod m], R = 2^mont_r_bits(L, variant) for the default variant
    (auto_variant: 2^(32 L) for the integer ones)."""
    ctx = MontContext(m, backend)
    return ctx.get(ctx.mont_mul(ctx.put(_as_list(a)), ctx.put(_as_list(b))))


def powmod_ints(m: int, bases, exps, backend: str = "auto", w: int | None = None) -> np.ndarray:
    """[b_i ^ e_i mod m] (per-element exponents, e_i >= 0)."""
    ctx = MontContext(m, backend)
    exps = [int(e) for e in _as_list(exps)]
    ebits = max(1, max((e.bit_length() for e in exps), default=1))
    el = (ebits + 31) // 32
    ex = ctx.put32(exps, limbs=el)
    return ctx.get(ctx.modexp(ctx.put([int(b) % m for b in _as_list(bases)]), ex, ebits, w))


def fixed_base_pow_ints(m: int, g: int, exps, backend: str = "auto", w: int = 8) -> np.ndarray:
    """[g ^ e_i mod m] with a comb table (one base, many exponents)."""
    ctx = MontContext(m, backend)
    exps = [int(e) for e in _as_list(exps)]
    ebits = max(1, max((e.bit_length() for e in exps), default=1))
    tab = ctx.fixed_base_table(g, ebits, w)
    el = (ebits + 31) // 32
    return ctx.get(ctx.fixed_base_pow(tab, ctx.put32(exps, limbs=el)))


_tuning_from_env()
