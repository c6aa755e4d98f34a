"""Logistic regression trained on secret shares (mini-batch gradient descent).

Everything stays shared: features X (n_samples x n_features), labels y (0/1) and the
weights. Written only with the MPC ops of this package:

    for each epoch, for each batch (rows s:e, public):
        z   = X_b @ w + b                 matmul (Beaver) + truncation
        p   = sigmoid(z)                  piecewise-linear sigmoid (`functions.sigmoid`)
        err = p - y_b                     local
        g   = X_b^T @ err                 matmul; g_b = sum(err) (local)
        w  -= (lr / B) * g                public scalar (significant_bits=14) + truncation

The sigmoid is the piecewise-linear approximation (max error 1e-3);
`train_logreg_plaintext` runs the same algorithm in float64 with the same
approximation (`functions.sigmoid_plaintext`) as the reference.

Rounds per batch (2 members): matmul 1 + sigmoid 9 + matmul 1 = 11 (the update is
local); 3 members: 15 (the truncations of consecutive steps partly overlap).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.protocols.mpc import arithmetic, common, functions
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import PerParty


@common.member_step
def _with_ones(i: int, x: np.ndarray, one: np.uint64) -> np.ndarray:
    """Append the intercept column (member 0 holds the public 1)."""
    col = np.full((x.shape[0], 1), one if i == 0 else 0, dtype=np.uint64)
    return np.concatenate([x, col], axis=1)


@common.member_step
def _rows(i: int, a: np.ndarray, s: int, e: int) -> np.ndarray:
    return np.ascontiguousarray(a[s:e])


@common.member_step
def _split_wb(i: int, wb: np.ndarray) -> tuple:
    return wb[:-1].copy(), wb[-1:].copy()


def _batches(n_samples: int, batch_size: int | None) -> list[tuple[int, int]]:
    b = n_samples if batch_size is None else int(batch_size)
    if b <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return [(s, min(n_samples, s + b)) for s in range(0, n_samples, b)]


def train_logreg(
    ctx: MPCContext,
    x: PerParty,
    y: PerParty,
    *,
    epochs: int,
    lr: float,
    batch_size: int | None = None,
    x_shape: Any = None,
) -> tuple[PerParty, PerParty]:
    """Train on shared X (n, d) and y (n,) (fixed point, y in {0, 1}); weights start at 0.

    Returns shared (w of shape (d,), b of shape (1,)). Batches are consecutive row
    ranges of `batch_size` (default: full batch), in order, every epoch. Default tag
    "logreg"; batch s of epoch ep is tagged "<tag>/e<ep>/b<s>/{fwd,sig,grad,upd}"."""
    ctx = ctx.with_default_tag("logreg")
    n, d = common.shape_of(ctx.engine, x, x_shape, "x")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    xa = ctx.engine.local(_with_ones, x, np.uint64(1 << ctx.frac_bits), step="local")
    wb = common.zeros_shared(ctx.engine, (d + 1,))
    for ep in range(epochs):
        for s, e in _batches(n, batch_size):
            batch = ctx.scoped(f"e{ep}/b{s}")
            step = _gradient_step(batch, xa, y, wb, rows=(s, e), width=d + 1, lr=lr)
            wb = common.lin_sub(ctx.engine, wb, step)
    w, b = ctx.engine.local(_split_wb, wb, num_returns=2, step="local")
    return w, b


def _gradient_step(
    ctx: MPCContext,
    xa: PerParty,
    y: PerParty,
    wb: PerParty,
    *,
    rows: tuple[int, int],
    width: int,
    lr: float,
) -> PerParty:
    """(lr / B) X_b^T (sigmoid(X_b @ wb) - y_b) for the B rows `rows` of xa (which has
    `width` columns, the intercept's included)."""
    engine = ctx.engine
    s, e = rows
    bsz = e - s
    xb = engine.local(_rows, xa, s, e, step="local")
    yb = engine.local(_rows, y, s, e, step="local")
    z = arithmetic.matmul(ctx.scoped("fwd"), xb, wb, x_shape=(bsz, width), y_shape=(width,))
    p = functions.sigmoid(ctx.scoped("sig"), z, shape=(bsz,))
    err = common.lin_sub(engine, p, yb)
    xt = engine.local(common.transpose, xb, step="local")
    g = arithmetic.matmul(ctx.scoped("grad"), xt, err, x_shape=(width, bsz), y_shape=(bsz,))
    return arithmetic.mul_public(
        ctx.scoped("upd"), g, lr / bsz, x_shape=(width,), significant_bits=14
    )


def train_logreg_plaintext(
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch_size: int | None = None,
    exact_sigmoid: bool = False,
) -> tuple[np.ndarray, float]:
    """The same training in float64 (same init, batches, updates and sigmoid
    approximation unless `exact_sigmoid`): the reference for `train_logreg`."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    xa = np.concatenate([x, np.ones((n, 1))], axis=1)
    wb = np.zeros(d + 1)
    sig = (lambda z: 1 / (1 + np.exp(-z))) if exact_sigmoid else functions.sigmoid_plaintext
    for _ in range(epochs):
        for s, e in _batches(n, batch_size):
            p = sig(xa[s:e] @ wb)
            wb = wb - lr / (e - s) * (xa[s:e].T @ (p - y[s:e]))
    return wb[:-1], float(wb[-1])
