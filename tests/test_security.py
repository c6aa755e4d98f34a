"""Security invariants: CSPRNG only, fresh uniform shares, no plaintext across parties."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import cipherray as cr
from cipherray.protocols import fixedpoint, prg, sharing

LIB = Path(cr.__file__).resolve().parent
# files that generate *synthetic demo data* (never keys, shares or masks) with numpy
SYNTHETIC_DATA_OK = {"workloads/stats.py", "workloads/vfl/demo.py"}


def _insecure_rng_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            hits += [f"import {a.name}" for a in node.names if a.name == "random"]
        elif isinstance(node, ast.ImportFrom) and node.module in ("random", "numpy.random"):
            hits.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and node.attr == "random":
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("np", "numpy"):
                hits.append(f"np.random at line {node.lineno}")
    return hits


def test_library_uses_no_non_cryptographic_rng():
    offenders = {}
    for path in LIB.rglob("*.py"):
        rel = path.relative_to(LIB).as_posix()
        if rel in SYNTHETIC_DATA_OK:
            continue
        hits = _insecure_rng_uses(path)
        if hits:
            offenders[rel] = hits
    assert not offenders, f"non-cryptographic RNG in library code: {offenders}"


def test_prg_is_deterministic_per_seed_and_distinct_across_seeds():
    s1, s2 = prg.new_seed(), prg.new_seed()
    assert s1 != s2 and len(s1) == 32
    a = prg.random_ring(s1, 1000)
    np.testing.assert_array_equal(a, prg.random_ring(s1, 1000))
    assert not np.array_equal(a, prg.random_ring(s2, 1000))
    assert not np.array_equal(a, prg.random_ring(s1, 1000, stream=1))
    with pytest.raises(ValueError):
        prg.random_ring(b"short", 4)


def test_shares_are_fresh_and_look_uniform():
    x = fixedpoint.encode(np.zeros(20_000))
    s_a = sharing.share(x, 3)
    s_b = sharing.share(x, 3)
    assert not np.array_equal(s_a[1], s_b[1])  # a fresh sharing every time
    np.testing.assert_array_equal(sharing.reconstruct(s_a), x)
    bits = np.unpackbits(s_a[1].view(np.uint8))
    assert abs(bits.mean() - 0.5) < 0.01  # each bit of a share is unbiased
    # every single share is independent of the secret: shares of 0 and of 10^6 alike
    y = fixedpoint.encode(np.full(20_000, 1e6))
    bits_y = np.unpackbits(sharing.share(y, 3)[0].view(np.uint8))
    assert abs(bits_y.mean() - 0.5) < 0.01


def test_raw_data_cannot_move_between_parties():
    with cr.init(["bank", "insurer"], backend="inline") as rt:
        bank, insurer = rt.parties
        raw = bank(lambda: np.array([42.0]))()
        with pytest.raises(cr.DisclosureError):
            raw.to(insurer)
        with pytest.raises(cr.DisclosureError):
            raw.reveal_to(insurer)
        with pytest.raises(cr.LocationError):
            insurer(lambda v: v)(raw)
        shared = raw.to(rt.mpc(bank, insurer))
        with pytest.raises(cr.DisclosureError):
            rt.get(shared)
        with pytest.raises(TypeError):
            import pickle

            pickle.dumps(raw)


def test_what_crosses_the_channel_when_sharing_is_not_the_value():
    with cr.init(["bank", "insurer"], backend="inline") as rt, rt.record_messages() as msgs:
        bank, insurer = rt.parties
        secret = np.arange(1000, dtype=np.float64) * 3.5
        shared = bank(lambda: secret)().to(rt.mpc(bank, insurer))
        sent = [v for src, dst, tag, v in msgs if tag == "share"]
        assert len(sent) == 1
        seed, shape = sent[0]
        assert isinstance(seed, bytes) and len(seed) == 32 and tuple(shape) == (1000,)
        np.testing.assert_allclose(rt.get(shared.reveal_to(bank)), secret)
