"""Demo data for `cipherray run vfl --demo` (synthetic: NumPy generators are fine here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_demo(
    folder: str, rows: int = 2000, guest_features: int = 5, host_features: int = 10,
    overlap: float = 0.9, seed: int = 0,
) -> dict[str, str]:  # fmt: skip
    """A bank (guest: label + some features) and an insurer (host: more features) with
    overlapping customer ids, from a logistic model that uses both parties' features."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    xg = rng.normal(size=(rows, guest_features))
    xh = rng.normal(size=(rows, host_features))
    w = rng.normal(size=guest_features + host_features)
    logit = np.concatenate([xg, xh], axis=1) @ w / np.sqrt(len(w)) * 2.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    ids = np.array([f"C{i:07d}" for i in range(rows)])
    keep_g = rng.random(rows) < overlap
    keep_h = rng.random(rows) < overlap
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    bank = pd.DataFrame(xg, columns=[f"bank_{i}" for i in range(guest_features)])
    bank.insert(0, "id", ids)
    bank["default"] = y
    ins = pd.DataFrame(xh, columns=[f"ins_{i}" for i in range(host_features)])
    ins.insert(0, "id", ids)
    paths = {"bank": str(d / "bank.csv"), "insurer": str(d / "insurer.csv")}
    bank[keep_g].sample(frac=1.0, random_state=seed).to_csv(paths["bank"], index=False)
    ins[keep_h].sample(frac=1.0, random_state=seed + 1).to_csv(paths["insurer"], index=False)
    return paths
