"""SecureBoost: the federated model equals the numpy reference, matches XGBoost's AUC,
keeps the hosts' thresholds at the hosts, and fails loudly on bad input or a dead party."""

from __future__ import annotations

import numpy as np
import pytest

import cipherray as cr
from cipherray.workloads.vfl import secureboost as sb

KEY = {"key_bits": 1024, "insecure": True}
STRUCT = ("owner", "feature", "bin", "missing_left", "left", "right")


def _data(n: int = 150, seed: int = 0, missing: float = 0.1, objective: str = "binary"):
    rng = np.random.default_rng(seed)
    xg = rng.normal(size=(n, 3))
    xh = rng.normal(size=(n, 4))
    xh2 = rng.normal(size=(n, 2))
    f = xg[:, 0] + 1.5 * xh[:, 1] - xh2[:, 0] * xg[:, 2] + 0.3 * rng.normal(size=n)
    xh[rng.random(xh.shape) < missing] = np.nan
    xg[rng.random(xg.shape) < missing / 2] = np.nan
    y = (f > 0).astype(float) if objective == "binary" else 2.0 * f + 1.0
    return xg, y, xh, xh2


def _put(party, value):
    return party(lambda: value)()


@pytest.fixture(scope="module")
def rt():
    runtime = cr.init(
        ["guest", "host", "host2"], backend="inline", driver_as=["guest", "host", "host2"]
    )
    yield runtime
    runtime.shutdown()


def _fit(rt, xg, y, xhs, **kw):
    g = rt.party("guest")
    hosts = [rt.party("host"), rt.party("host2")][: len(xhs)]
    return sb.train(
        rt, g, hosts, _put(g, xg), _put(g, y), [_put(h, x) for h, x in zip(hosts, xhs)], **KEY, **kw
    )


def _same_trees(rt, model, plain):
    trees = rt.get(model.trees)
    assert len(trees) == len(plain.trees)
    for tf, tp in zip(trees, plain.trees):
        for k in STRUCT:
            assert np.array_equal(tf[k], tp[k]), k
        np.testing.assert_allclose(tf["value"], tp["value"], atol=1e-9)
    return trees


@pytest.mark.parametrize(
    "case",
    [
        dict(objective="binary"),
        dict(objective="regression"),
        dict(objective="binary", two_hosts=True),
        dict(objective="binary", guest_first_tree=True),
    ],
    ids=["binary-missing", "regression", "two-hosts", "guest-first-tree"],
)
def test_federated_equals_plaintext(rt, case):
    case = dict(case)
    two = case.pop("two_hosts", False)
    xg, y, xh, xh2 = _data(objective=case["objective"])
    xhs = [xh, xh2] if two else [xh]
    kw = dict(trees=3, depth=3, bins=8, **case)
    model = _fit(rt, xg, y, xhs, **kw)
    plain = sb.train_plaintext(xg, y, xhs, **kw)
    trees = _same_trees(rt, model, plain)
    owners = np.concatenate([t["owner"] for t in trees])
    assert (owners == 1).any() and (owners == 0).any()  # both parties' features split
    if two:
        assert (owners == 2).any()
    if case.get("guest_first_tree"):
        assert set(trees[0]["owner"].tolist()) <= {-1, 0}
    g = rt.party("guest")
    hosts = [rt.party("host"), rt.party("host2")][: len(xhs)]
    pred = rt.get(model.predict(rt, _put(g, xg), [_put(h, x) for h, x in zip(hosts, xhs)]))
    np.testing.assert_allclose(pred, plain.predict(xg, xhs), atol=1e-9)
    imp = rt.get(model.importance_at(hosts[0]))
    assert len(imp) == xh.shape[1] and imp["splits"].sum() == (owners == 1).sum()
    assert model.bytes_sent > 0 and len(model.seconds_per_tree) == 3


def _breast_cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    return train_test_split(x, y.astype(float), test_size=0.3, random_state=0, stratify=y)


def _xgb_auc(xtr, ytr, xte, yte, trees, depth, bins):
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    clf = xgb.XGBClassifier(
        tree_method="hist", max_depth=depth, n_estimators=trees, learning_rate=0.3,
        reg_lambda=1.0, min_child_weight=1.0, max_bin=bins, base_score=0.5, n_jobs=1,
    )  # fmt: skip
    clf.fit(xtr, ytr)
    return roc_auc_score(yte, clf.predict_proba(xte)[:, 1])


def test_auc_close_to_xgboost(rt):
    from sklearn.metrics import roc_auc_score

    xtr, xte, ytr, yte = _breast_cancer()
    # plaintext reference at the full size
    kw = dict(trees=10, depth=5, bins=32)
    plain = sb.train_plaintext(xtr[:, :10], ytr, [xtr[:, 10:]], **kw)
    auc = roc_auc_score(yte, plain.predict(xte[:, :10], [xte[:, 10:]]))
    assert abs(auc - _xgb_auc(xtr, ytr, xte, yte, **kw)) < 0.01
    # an encrypted run at a small size
    kw = dict(trees=4, depth=3, bins=16)
    g, h = rt.party("guest"), rt.party("host")
    model = _fit(rt, xtr[:, :10], ytr, [xtr[:, 10:]], **kw)
    p = rt.get(model.predict(rt, _put(g, xte[:, :10]), [_put(h, xte[:, 10:])]))
    auc = roc_auc_score(yte, p)
    assert abs(auc - _xgb_auc(xtr, ytr, xte, yte, **kw)) < 0.01


def test_host_thresholds_stay_at_host_and_histograms_rerandomised(rt):
    from cipherray.protocols.paillier import CipherArray
    from cipherray.protocols.paillier.histogram import bucket_products

    xg, y, xh, _ = _data(n=80, missing=0.0)
    bins = 8
    with rt.record_messages() as msgs:
        _fit(rt, xg, y, [xh], trees=1, depth=2, bins=bins)
    edges = np.concatenate(sb.fit_bins(xh, bins))
    from_host = [(tag, v) for src, dst, tag, v in msgs if src == "host"]
    assert {t.rsplit("/", 1)[1] for t, _ in from_host} == {"hist", "directions"}

    def floats(v):
        if isinstance(v, tuple | list):
            return [f for x in v for f in floats(x)]
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            return v.ravel().tolist()
        return [v] if isinstance(v, float) else []

    sent = [f for *_, v in msgs for f in floats(v)]
    assert not set(edges.tolist()) & set(sent)  # no host bin edge in any message
    # histograms arrive re-randomised: not the raw (compressed) bucket products
    gh = next(v for _, _, t, v in msgs if t.endswith("/gh"))
    rows = next(v for _, _, t, v in msgs if t.endswith("level0/secureboost/rows"))
    hist = next(v for t, v in from_host if t.endswith("level0/secureboost/hist"))
    enc, lay = gh[0], sb.GHLayout.from_message(gh[1])  # the layout crosses as five ints
    hbins = sb.apply_bins(xh, sb.fit_bins(xh, bins), bins)
    raw = bucket_products(enc, hbins, bins + 1, rows=rows[0], slots=rows[1], nslots=rows[2])
    raw = sb.compress(raw, lay, rerandomize=False)
    assert isinstance(hist[0], CipherArray) and hist[0].shape == raw.shape
    assert not set(raw.ciphertexts().tolist()) & set(hist[0].ciphertexts().tolist())
    # and the compression is real: several bin sums per ciphertext
    assert raw.size < hbins.shape[0] * (bins + 1)


def test_bad_input_names_the_party(rt):
    xg, y, xh, _ = _data(n=40)
    with pytest.raises(ValueError, match="guest"):
        _fit(rt, xg, y * 2, [xh], trees=1, depth=2, bins=4)
    with pytest.raises(ValueError, match="bins"):
        _fit(rt, xg, y, [xh], trees=1, depth=2, bins=1)
    with pytest.raises(ValueError, match="depth"):
        _fit(rt, xg, y, [xh], trees=1, depth=0, bins=4)
    with pytest.raises(ValueError, match="host 'host'"):
        _fit(rt, xg, y, [xh[:30]], trees=1, depth=2, bins=4)
    with pytest.raises(ValueError, match="binary"):
        sb.train_plaintext(xg, y + 3, [xh], trees=1, depth=2, bins=4)


@pytest.fixture(scope="module")
def ray_rt():
    runtime = cr.init(["guest", "host"], backend="ray", timeout_s=30, driver_as=["guest", "host"])
    yield runtime
    runtime.shutdown()


def test_ray_backend_trains_and_dead_host_is_named(ray_rt):
    import time

    rt = ray_rt
    g, h = rt.party("guest"), rt.party("host")
    xg, y, xh, _ = _data(n=60)
    kw = dict(trees=2, depth=2, bins=4)
    model = sb.train(rt, g, [h], _put(g, xg), _put(g, y), [_put(h, xh)], **KEY, **kw)
    _same_trees(rt, model, sb.train_plaintext(xg, y, [xh], **kw))

    def kill_after_first(t, total, seconds):
        if t == 0:
            rt.kill_worker(h)

    t0 = time.monotonic()
    with pytest.raises(cr.PartyError) as info:
        sb.train(
            rt, g, [h], _put(g, xg), _put(g, y), [_put(h, xh)], progress=kill_after_first,
            **KEY, **kw,
        )  # fmt: skip
    assert info.value.party == "host"
    assert time.monotonic() - t0 < rt.timeout_s + 10


def test_packing_and_compression_round_trip():
    from cipherray.protocols.paillier import keygen
    from cipherray.protocols.paillier.histogram import bucket_products

    pk, sk = keygen(1024, insecure=True)
    rng = np.random.default_rng(1)
    n, d, nb = 50, 3, 5
    gi, hi = sb.grad_hess(rng.integers(0, 2, n).astype(float), rng.normal(size=n), "binary")
    lay = sb.gh_layout(gi, hi, 1024)
    assert lay.per_ct == (1024 - 3) // lay.width and lay.per_ct > 1
    keys = rng.integers(0, nb, size=(d, n)).astype(np.int32)
    rows = np.flatnonzero(rng.random(n) < 0.7)
    slots = rng.integers(0, 2, rows.size).astype(np.int32)
    hist = bucket_products(
        pk.encrypt(sb.pack_gh(gi, hi, lay)), keys, nb, rows=rows, slots=slots, nslots=2
    )
    G, H, C = sb.decompress(sk.decrypt(sb.compress(hist, lay)), 2 * d * nb, lay)
    G0, H0 = sb.plain_histograms(keys, gi, hi, rows, slots, 2, nb)
    assert np.array_equal(G, G0.ravel()) and np.array_equal(H, H0.ravel())
    assert C.sum() == rows.size * d
    with pytest.raises(AssertionError, match="exceed"):
        sb.gh_layout(gi, hi, 40)  # a key too small for one packed bin sum
