"""Batched multi-exponentiation by the bucket method (Pippenger): ``X.T @ c`` in the exponent.

For ciphertexts ``c_r`` (r < R) and a signed int64 matrix ``X`` (R x J), every column j needs
``prod_r c_r^X[r, j] mod m``. Positive and negative entries go to separate sign columns k
(K = J, or 2J when X has negative entries; the caller inverts the negative products), and each
exponent is cut into ``nwin`` windows of ``w`` bits. Steps, as the code below numbers them:

1. Keys: every nonzero digit d of window t of column k becomes a pair (key, row) with
   key = (t K + k) 2^w + d; the pairs are sorted by key (one argsort on the backend).
2. Bucket products: each distinct key is a bucket B[g, d] = prod of c_r over its rows
   (g = t K + k); one thread (or one cooperative group: ``MontContext.bucket_prod``) per
   bucket, buckets ordered longest first so a warp's threads do about the same number of
   multiplications. Empty buckets are 1.
3. Bucket sums: A_g = prod_d B[g, d]^d by running products, split into S segments of Q = 2^w / S
   digits so that S G independent chains run at once: T_s = prod_q B[s Q + q]^q and
   P_s = prod_q B[s Q + q] (2 Q steps), then A_g = prod_s T_s * (prod_s P_s^s)^Q (2 S steps and
   log2 Q squarings).
4. Windows: out_k = prod_t A_(t K + k)^(2^(w t)) by Horner (w squarings per window).

Multiplications: about nwin (R J + 2 K 2^w) against 16 R J for a 4-bit Straus table per row;
``window`` is chosen to minimise that, and the windows stop at the longest entry of X. Every
step is a batched kernel launch on :class:`.bigint.MontContext`; the host build runs the same
code (NumPy instead of CuPy).
"""

from __future__ import annotations

import numpy as np

from . import bigint as bi

MAX_WINDOW = 16
PAIR_BUDGET = 1 << 25  # (key, row) pairs per pass; more columns are done in several passes


def choose_window(pairs_per_window: int, sign_columns: int, bits: int) -> int:
    """The window w minimising ceil(bits / w) * (pairs + 2 K 2^w) multiplications."""

    def cost(w: int) -> int:
        return -(-bits // w) * (pairs_per_window + 2 * sign_columns * (1 << w))

    return min(range(1, MAX_WINDOW + 1), key=cost)


def matvec(ctx: bi.MontContext, c_limbs, X: np.ndarray, window: int | None = None):
    """(pos, neg), normal form: prod_r c_r^max(X, 0) and prod_r c_r^max(-X, 0) per column of X.

    c_limbs: backend word array (words, R) of values < m; X: int64 array (R, J)."""
    X = np.ascontiguousarray(X, dtype=np.int64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d, got shape {X.shape}")
    rows, J = X.shape
    if c_limbs.shape[1] != rows:
        raise ValueError(f"X has {rows} rows but there are {c_limbs.shape[1]} ciphertexts")
    with np.errstate(over="ignore"):
        xabs = np.where(X < 0, -X, X).view(np.uint64)  # |-2^63| = 2^63 as uint64
    top = int(xabs.max()) if xabs.size else 0
    if top == 0 or rows == 0:
        return ctx.put([1] * J), ctx.put([1] * J)
    bits = top.bit_length()
    signed = bool((X < 0).any())
    base = ctx.to_mont(c_limbs)
    pos, neg = ctx.empty(J), ctx.empty(J)
    # columns in passes of at most PAIR_BUDGET pairs (the keys and their sort stay bounded)
    per_col = rows * -(-bits // (window or 8))
    step = max(1, min(J, PAIR_BUDGET // max(1, per_col)))
    for j0 in range(0, J, step):
        j1 = min(J, j0 + step)
        p, n = _columns(ctx, base, xabs[:, j0:j1], X[:, j0:j1] < 0, signed, bits, window)
        pos[:, j0:j1] = p
        neg[:, j0:j1] = n
    return pos, neg


def _columns(ctx, base, xabs: np.ndarray, negative: np.ndarray, signed: bool, bits: int, window):
    xp = ctx.backend.xp
    rows, J = xabs.shape
    K = 2 * J if signed else J
    w = window or choose_window(rows * J, K, bits)
    nwin = -(-bits // w)
    G = nwin * K
    one_m = ctx.consts[ctx.words : 2 * ctx.words].reshape(-1, 1)
    # 1. keys (t K + k) 2^w + d of the nonzero digits, sorted
    xa = xp.asarray(np.ascontiguousarray(xabs))
    k = xp.arange(J, dtype=np.int64)[None, :] + (
        J * xp.asarray(negative).astype(np.int64) if signed else 0
    )
    row = xp.ascontiguousarray(xp.broadcast_to(xp.arange(rows, dtype=np.int32)[:, None], (rows, J)))
    keys, krows = [], []
    mask = np.uint64((1 << w) - 1)
    for t in range(nwin):
        d = ((xa >> np.uint64(w * t)) & mask).astype(np.int64)
        nz = d != 0
        keys.append(((t * K + k) << w | d)[nz])
        krows.append(row[nz])
    keys = xp.concatenate(keys)
    krows = xp.concatenate(krows)
    order = xp.argsort(keys)
    keys, krows = keys[order], xp.ascontiguousarray(krows[order])
    if keys.shape[0] == 0:  # every entry of these columns is 0
        return ctx.put([1] * J), ctx.put([1] * J)
    # 2. one bucket per distinct key, longest first
    starts = xp.concatenate(
        [xp.zeros(1, dtype=np.int64), xp.flatnonzero(keys[1:] != keys[:-1]) + 1]
    )
    lens = xp.diff(xp.concatenate([starts, xp.asarray([keys.shape[0]], dtype=np.int64)]))
    by_len = xp.argsort(-lens)
    starts = xp.ascontiguousarray(starts[by_len])
    lens = xp.ascontiguousarray(lens[by_len].astype(np.int32))
    prods = ctx.empty(int(starts.shape[0]))
    ctx.bucket_prod(prods, base, krows, starts, lens)
    # 3. bucket sums per group
    A = _bucket_sums(ctx, prods, keys[starts], G, w, one_m)
    # 4. Horner over the windows: out_k = prod_t A[t K + k]^(2^(w t))
    out = xp.ascontiguousarray(A[:, (nwin - 1) * K :])
    for t in range(nwin - 2, -1, -1):
        for _ in range(w):
            ctx.mont_sqr(out, out=out)
        ctx.mont_mul(out, A[:, t * K : (t + 1) * K], out=out)
    out = ctx.from_mont(out)
    if signed:
        return out[:, :J], out[:, J:]
    return out, ctx.put([1] * J)


def _bucket_sums(ctx, prods, bkeys, G: int, w: int, one_m):
    """3. A_g = prod_d B[g, d]^d for the G groups, from the nonempty buckets' products."""
    xp = ctx.backend.xp
    sb = w // 2
    S, Q = 1 << sb, 1 << (w - sb)
    SG = S * G
    # dense buckets, digit d = s Q + q of group g at column (q S + s) G + g: a fixed q is one
    # contiguous block of S G columns (the kernels need contiguous columns)
    B = xp.empty((ctx.words, SG * Q), dtype=np.uint64)
    B[:] = one_m
    g, d = bkeys >> w, bkeys & ((1 << w) - 1)
    B[:, ((d % Q) * S + d // Q) * G + g] = prods
    # first level, per segment (s, g): P = prod_q B_q, T = prod_q B_q^q
    P, T = _running_products(ctx, B, Q, SG, one_m)
    # second level, per group: U = prod_s P_s^s, then A = prod_s T_s * U^Q
    _, U = _running_products(ctx, P, S, G, one_m)
    for _ in range(w - sb):
        ctx.mont_sqr(U, out=U)
    A = ctx.prod_tree(T, S)
    ctx.mont_mul(A, U, out=A)
    return A


def _running_products(ctx, X, n: int, width: int, one_m):
    """(prod_i X_i, prod_i X_i^i) over the n blocks X_i = X[:, i width : (i + 1) width], by
    running products from the top block down: 2 (n - 1) + 1 batched multiplications."""
    xp = ctx.backend.xp
    run = xp.empty((ctx.words, width), dtype=np.uint64)
    acc = xp.empty_like(run)
    run[:] = one_m
    acc[:] = one_m
    for i in range(n - 1, 0, -1):
        ctx.mont_mul(run, X[:, i * width : (i + 1) * width], out=run)
        ctx.mont_mul(acc, run, out=acc)
    ctx.mont_mul(run, X[:, :width], out=run)
    return run, acc
