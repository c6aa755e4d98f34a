"""Logistic regression on shares vs the same training in plaintext (breast cancer)."""

from __future__ import annotations

import numpy as np
import pytest

from cipherray.protocols.mpc import logreg
from cipherray.protocols.mpc.testing import local_context, reveal, share

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def _data():
    x, y = sklearn_datasets.load_breast_cancer(return_X_y=True)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return x, y.astype(np.float64)


def _accuracy(x, y, w, b):
    return float((((x @ w + b) > 0) == (y > 0.5)).mean())


@pytest.mark.parametrize("n,batch_size", [(2, None), (2, 128), (3, None)])
def test_logreg_on_shares_matches_plaintext(n, batch_size):
    x, y = _data()
    # vertical split: member 0 owns columns 0..14, member 1 columns 15..29 and the
    # labels; in LocalEngine the concatenated matrix is shared directly
    x0, x1 = x[:, :15], x[:, 15:]
    features = np.concatenate([x0, x1], axis=1)
    ctx = local_context(n)
    e = ctx.engine
    epochs, lr = 10, 1.0
    w, b = logreg.train_logreg(
        ctx, share(e, features), share(e, y), epochs=epochs, lr=lr, batch_size=batch_size
    )
    w_mpc, b_mpc = reveal(e, w), float(reveal(e, b)[0])
    # same init (zeros), epochs, lr, batches and the same piecewise-linear sigmoid
    w_ref, b_ref = logreg.train_logreg_plaintext(
        features, y, epochs=epochs, lr=lr, batch_size=batch_size
    )
    acc_mpc, acc_ref = _accuracy(features, y, w_mpc, b_mpc), _accuracy(features, y, w_ref, b_ref)
    assert acc_ref > 0.95
    assert abs(acc_mpc - acc_ref) <= 0.01
    # and against the same training with the exact logistic function
    w_ex, b_ex = logreg.train_logreg_plaintext(
        features, y, epochs=epochs, lr=lr, batch_size=batch_size, exact_sigmoid=True
    )
    assert abs(acc_mpc - _accuracy(features, y, w_ex, b_ex)) <= 0.01
    assert np.abs(w_mpc - w_ref).max() < 5e-3
    # one forward matmul, the sigmoid, one gradient matmul per batch
    assert e.rounds("logreg/e0/b0/") == (11 if n == 2 else 15)
