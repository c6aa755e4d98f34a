"""bigint.apply_tuning: the kernel choice bench/gpu.py measured (its gpu.json) becomes the
defaults of the contexts made afterwards; bad input is refused before anything changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cipherray.gpu_kernels import bigint as bi

TABLES = ("DEFAULT_VARIANT", "MODEXP_STEPS", "MODEXP_COOP", "MONTMUL_COOP")
M4096 = (1 << 4095) + 0x1234567 * 2 + 1
M2048 = (1 << 2047) + 0x7654321 * 2 + 1


@pytest.fixture
def saved_tables():
    saved = {name: dict(getattr(bi, name)) for name in TABLES}
    yield
    for name, table in saved.items():
        getattr(bi, name).clear()
        getattr(bi, name).update(table)


def _measured(**over):
    """A gpu.json's choice keys, as bench/gpu.py writes them (sizes in bits, as strings)."""
    d = {
        "montmul_variant_used": {"2048": "pairs", "4096": "f64s"},
        "modexp_steps_used": {"2048": False, "4096": True},
        "modexp_coop_used": {"2048": 4, "4096": 8},
        "montmul_coop_used": {"2048": 0, "4096": 16},
    }
    d.update(over)
    return d


def test_apply_tuning_sets_what_new_contexts_use(saved_tables, monkeypatch):
    for env in (bi.VARIANT_ENV, bi.COOP_ENV, bi.MONTMUL_COOP_ENV):
        monkeypatch.delenv(env, raising=False)
    applied = bi.apply_tuning(json.loads(json.dumps(_measured())))  # through JSON, as read
    assert applied[128] == {
        "variant": "f64s",
        "modexp_steps": True,
        "modexp_coop": 8,
        "montmul_coop": 16,
    }
    assert applied[64]["variant"] == "pairs" and applied[64]["modexp_coop"] == 4
    big, small = bi.MontContext(M4096, "host"), bi.MontContext(M2048, "host")
    assert (big.variant, big.modexp_steps, big.modexp_coop) == ("f64s", True, 8)
    # an fp64 variant's radix is not 2^(32 L): no cooperative single multiplications there
    assert big.montmul_coop == 0
    assert (small.variant, small.modexp_steps, small.modexp_coop, small.montmul_coop) == (
        "pairs",
        False,
        4,
        0,
    )
    # the tuned contexts compute the same function
    a, e = 0x1234567890ABCDEF**40 % M4096, 0xFEDCBA9876543210
    got = big.get(big.modexp(big.put([a]), big.put32([e], limbs=2), 64))
    assert int(got[0]) == pow(a, e, M4096)


def test_apply_tuning_leaves_absent_keys_alone(saved_tables):
    before = dict(bi.MODEXP_COOP)
    bi.apply_tuning({"montmul_variant_used": {"4096": "pairs"}})
    assert bi.DEFAULT_VARIANT[128] == "pairs"
    assert bi.MODEXP_COOP == before


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"montmul_variant_used": {"4096": "fastest"}}, "not one of"),
        ({"montmul_variant_used": {"3000": "ptx"}}, "not a supported modulus size"),
        ({"montmul_variant_used": {"bits": "ptx"}}, "not a supported modulus size"),
        ({"modexp_coop_used": {"4096": 4}}, "threads per number"),  # 4096 bits: 8, 16, 32
        ({"montmul_coop_used": {"2048": True}}, "threads per number"),
        ({"modexp_steps_used": {"4096": 1}}, "true or false"),
        ({"modexp_coop_used": [8]}, "expected"),
    ],
)
def test_apply_tuning_refuses_bad_input_before_changing_anything(saved_tables, bad, match):
    before = {name: dict(getattr(bi, name)) for name in TABLES}
    with pytest.raises(ValueError, match=match):
        # the good keys come first: none of them may be applied either
        bi.apply_tuning({**_measured(), **bad})
    assert {name: dict(getattr(bi, name)) for name in TABLES} == before


def _tables_in_subprocess(env_value: str) -> subprocess.CompletedProcess:
    code = (
        "from cipherray.gpu_kernels import bigint as bi; "
        "print(bi.DEFAULT_VARIANT[128], bi.MODEXP_STEPS[128], bi.MODEXP_COOP[128])"
    )
    env = {**os.environ, bi.TUNING_ENV: env_value}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_tuning_file_from_the_environment(tmp_path):
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps({"checks": {}, **_measured()}))
    proc = _tables_in_subprocess(str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["f64s", "True", "8"]


def test_broken_tuning_file_names_the_variable(tmp_path):
    path = tmp_path / "gpu.json"
    path.write_text('{"montmul_variant_used": {"4096": ')  # cut short
    proc = _tables_in_subprocess(str(path))
    assert proc.returncode != 0
    assert bi.TUNING_ENV in proc.stderr
    proc = _tables_in_subprocess(str(tmp_path / "missing.json"))
    assert proc.returncode != 0 and "missing.json" in proc.stderr
