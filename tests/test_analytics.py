"""Joint tables on shares: private join, group-by with the key at either party, filters,
statistics against pandas on the pooled data, release gates, DP budget, bad input."""

from __future__ import annotations

import json

import dp_accounting
import numpy as np
import pandas as pd
import pytest

import cipherray as cr
from cipherray.protocols.dp import PrivacyBudgetExceeded
from cipherray.protocols.mpc import permute
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import _H, LocalEngine
from cipherray.runtime.errors import DisclosureError
from cipherray.workloads.analytics import DP, TableError
from cipherray.workloads.analytics.result import gaussian_multiplier


def _data(n: int = 600, seed: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    gen = np.random.default_rng(seed)  # synthetic test data
    bank = pd.DataFrame(
        {
            "id": np.arange(n),
            "region": gen.choice(["N", "S", "E", "W", "X"], n, p=[0.3, 0.3, 0.2, 0.185, 0.015]),
            "age": gen.integers(16, 90, n).astype(float),
        }
    )
    ids = gen.permutation(np.arange(n // 3, n + n // 3))
    ins = pd.DataFrame(
        {
            "id": ids,
            "income": gen.normal(5e4, 1e4, n).round(2),
            "claims": gen.poisson(2, n),
            "plan": gen.choice(["gold", "silver", "basic"], n),
        }
    )
    ins["income"] += 500 * ins["claims"]
    return bank, ins


def _const(df: pd.DataFrame):
    return lambda: df


@pytest.fixture(scope="module")
def env():
    bank, ins = _data()
    rt = cr.init(parties=["bank", "insurer", "dealer"], backend="inline", driver_as="bank")
    b = rt.party("bank")(_const(bank))()
    i = rt.party("insurer")(_const(ins))()
    table = rt.table({"bank": b, "insurer": i}, on="id", dealer="dealer")
    yield rt, table, bank, ins, bank.merge(ins, on="id"), (b, i)
    rt.shutdown()


# ------------------------------------------------------------ the permutation protocols


@pytest.mark.parametrize("n", [2, 3])
def test_select_and_group_sum_equal_numpy(n):
    eng = LocalEngine(n)
    ctx = MPCContext(eng, None, 16)
    x = (np.arange(40, dtype=np.uint64) * 977).reshape(20, 2)
    xs = eng.share(x)
    src = np.array([3, -1, 7, 0, -1, 19, 12])
    out = eng.reconstruct(permute.select(ctx, xs, 1, _H(src, 1), len(src), (20, 2)))
    want = np.where(src[:, None] >= 0, x[np.maximum(src, 0)], 0)
    assert np.array_equal(out, want)
    codes = np.random.default_rng(1).integers(-1, 4, 20)
    codes[:4] = [0, 1, 2, -1]
    gs = eng.reconstruct(permute.group_sum(ctx, xs, 0, _H(codes, 0), 5, (20, 2)))
    want = np.stack([x[codes == g].sum(0) for g in range(5)]).astype(np.uint64)
    assert np.array_equal(gs, want)  # group 3 may be empty, group 4 is: zeros


def test_the_holder_sees_only_masked_rows():
    eng = LocalEngine(2)
    ctx = MPCContext(eng, None, 16)
    x = np.arange(1, 1001, dtype=np.uint64).reshape(1000, 1)
    shares = eng.share(x)
    before = len(eng.messages)
    out, pi, _ = permute.permute(ctx, shares, 0, (1000, 1))
    assert np.array_equal(eng.reconstruct(out), x[pi.value])
    # what member 1 sent to the holder: x_1 + a_1 (uniform masks), never its share or x
    masked = [m for m in eng.messages[before:] if m[0].endswith("masked")]
    assert len(masked) == 1 and masked[0][1] == 1 and masked[0][2] == 0


def test_select_rejects_repeated_sources():
    eng = LocalEngine(2)
    ctx = MPCContext(eng, None, 16)
    xs = eng.share(np.zeros((5, 1), dtype=np.uint64))
    with pytest.raises(ValueError, match="distinct"):
        permute.select(ctx, xs, 0, _H(np.array([1, 1]), 0), 2, (5, 1))


# ------------------------------------------------------------ joined tables


def test_groupby_key_at_bank_values_at_insurer_equals_pandas(env):
    rt, table, bank, ins, pooled, _ = env
    out = rt.get(
        table.groupby("region").agg(["income:mean", "id:count", "income:std", "claims:sum"])
        .release(to="bank")
    )  # fmt: skip
    ref = pooled.groupby("region").agg(
        income_mean=("income", "mean"), id_count=("id", "count"),
        income_std=("income", "std"), claims_sum=("claims", "sum"),
    )  # fmt: skip
    got = out.set_index("region").loc[ref.index]
    assert np.array_equal(got["id_count"].to_numpy(), ref["id_count"].to_numpy())
    np.testing.assert_allclose(got["income_mean"], ref["income_mean"], rtol=1e-9)
    np.testing.assert_allclose(got["income_std"], ref["income_std"], rtol=1e-6)
    np.testing.assert_allclose(got["claims_sum"], ref["claims_sum"], rtol=1e-9)


def test_groupby_key_at_insurer_values_at_bank_with_filters_on_both(env):
    rt, table, bank, ins, pooled, (b, i) = env
    t = rt.table({"bank": b, "insurer": i}, on="id", dealer="dealer")
    t.filter("age >= 18", "claims > 1")
    out = rt.get(t.groupby("plan").agg(age="mean").release(to="bank"))
    sel = pooled[(pooled.age >= 18) & (pooled.claims > 1)]
    ref = sel.groupby("plan")["age"].mean()
    np.testing.assert_allclose(out.set_index("plan").loc[ref.index, "age_mean"], ref, rtol=1e-9)


def test_the_intersection_is_revealed_to_nobody(env):
    rt, table, *_ = env
    matched = table.view("bank").matched
    for p in ("bank", "insurer"):
        with pytest.raises(DisclosureError):
            matched.reveal_to(p)
    # what crossed in the clear during the join: only the salt and the declared blinded ids
    audit = rt.audit.to_frame()
    join = audit[audit["tag"].str.startswith("table/")]
    assert set(join["tag"]) == {"table/salt", "table/blinded", "table/double_blinded"}
    assert join["rule"].str.startswith("protocol table/").all()


def test_gate_suppresses_small_groups_on_exact_counts(env):
    rt, table, bank, ins, pooled, _ = env
    counts = pooled.groupby("region").size()
    k = int(counts.min()) + 1  # the smallest group is one below k
    res = table.groupby("region").agg(["income:mean"])
    out = rt.get(res.release(to="bank", min_group=k))
    assert set(out["region"]) == set(counts[counts >= k].index)
    assert res.summarise().suppressed == int((counts < k).sum()) >= 1
    table.clamp(income=(0, 2e5))  # with DP: the same groups are suppressed
    res = table.groupby("region").agg(["income:mean"])
    out = rt.get(res.release(to="bank", min_group=k, dp=DP(epsilon=5.0)))
    assert set(out["region"]) == set(counts[counts >= k].index)


def test_histogram_quantiles_crosstab(env):
    rt, table, bank, ins, pooled, _ = env
    h = rt.get(table.histogram("age", bins=8, range=(18, 90)).release(to="bank"))
    want = np.histogram(np.clip(pooled.age, 18, 90), bins=8, range=(18, 90))[0]
    assert np.array_equal(h["count"].to_numpy(), want)
    q = rt.get(table.quantile("income", [0.1, 0.5, 0.9], range=(0, 1.2e5)).release(to="bank"))
    ref = pooled["income"].quantile([0.1, 0.5, 0.9]).to_numpy()
    assert np.all(np.abs(q["value"].to_numpy() - ref) <= q["error"].to_numpy() + 1e-9)
    ct = rt.get(table.crosstab("region", "plan").release(to="bank")).set_index("region")
    ref = pd.crosstab(pooled.region, pooled.plan)
    for plan in ref.columns:
        assert np.array_equal(ct.loc[ref.index, f"plan={plan}"].to_numpy(), ref[plan].to_numpy())


def test_correlation_and_ols_equal_numpy(env):
    rt, table, bank, ins, pooled, _ = env
    table.clamp(age=(0, 120), income=(0, 2e5), claims=(0, 50))
    c = rt.get(table.corr(["age", "income", "claims"]).release(to="bank"))
    np.testing.assert_allclose(
        c.to_numpy(), pooled[["age", "income", "claims"]].corr().to_numpy(), atol=2e-5
    )
    o = rt.get(table.ols("income", ["age", "claims"]).release(to="bank"))
    x = np.c_[np.ones(len(pooled)), pooled.age, pooled.claims]
    beta = np.linalg.lstsq(x, pooled.income, rcond=None)[0]
    np.testing.assert_allclose(o["coef"].to_numpy(), beta, rtol=1e-4)


def test_dp_release_epsilon_budget_and_bounds(env):
    rt, _, bank, ins, pooled, (b, i) = env
    t = rt.table({"bank": b, "insurer": i}, on="id", dealer="dealer", budget=(1.2, 1e-6),
                 name="claims")  # fmt: skip
    with pytest.raises(ValueError, match="clamping bounds"):
        t.groupby("region").agg(["income:sum"]).release(to="bank", dp=DP(epsilon=1.0))
    t.clamp(income=(0, 1e5))
    res = t.groupby("region").agg(["income:sum"])
    rt.get(res.release(to="bank", dp=DP(epsilon=1.0)))
    z = gaussian_multiplier(1.0, 1e-6, 2)
    acct = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    acct.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z), 2))
    assert res.outcome.epsilon == pytest.approx(acct.get_epsilon(1e-6), rel=1e-9)
    assert res.outcome.epsilon == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(PrivacyBudgetExceeded, match="table claims"):
        t.groupby("region").agg(["income:sum"]).release(to="bank", dp=DP(epsilon=1.0))
    with pytest.raises(ValueError, match="epsilon must be positive"):
        DP(epsilon=0)


def test_release_to_an_outsider_needs_the_owners_grants(env):
    rt, *_ = env
    bank, ins = _data(200, seed=8)
    r2 = cr.init(parties=["bank", "insurer", "dealer", "regulator"], backend="inline",
                 driver_as="regulator")  # fmt: skip
    try:
        b = r2.party("bank")(_const(bank))()
        i = r2.party("insurer")(_const(ins))()
        t = r2.table({"bank": b, "insurer": i}, on="id", dealer="dealer")
        with pytest.raises(DisclosureError):
            t.groupby("region").agg(["income:mean"]).release(to="regulator", min_group=5)
        for owner in ("bank", "insurer"):
            r2.policy.grant(owner=owner, to="regulator", allow="aggregate", min_rows=5)
        out = r2.get(t.groupby("region").agg(["income:mean"]).release(to="regulator", min_group=5))
        assert len(out) >= 1
    finally:
        r2.shutdown()


def test_bad_input_is_named(env):
    rt, table, bank, ins, pooled, (b, i) = env
    with pytest.raises(TableError, match="'incme'.*did you mean 'income'"):
        table.agg(["incme:mean"])
    with pytest.raises(TableError, match="'plan' at insurer is not numeric"):
        table.agg(["plan:mean"])
    with pytest.raises(TableError, match="mixes columns"):
        table.filter("age > 3 and claims > 1")
    with pytest.raises(TableError, match="unknown aggregate"):
        table.agg(["income:median"])
    dup = pd.concat([ins, ins.iloc[:2]])
    d = rt.party("insurer")(_const(dup))()
    with pytest.raises(Exception, match="duplicate values"):
        rt.table({"bank": b, "insurer": d}, on="id", dealer="dealer")
    with pytest.raises(TableError, match="needs a dealer"):
        rt.table({"bank": b, "insurer": i}, on="id")


# ------------------------------------------------------------ stacked tables


def test_union_groupby_with_exact_min_max():
    bank, ins = _data(400, seed=6)
    pooled = bank.merge(ins, on="id")[["region", "age", "income"]]
    parts = [pooled.iloc[k::3].reset_index(drop=True) for k in range(3)]
    with cr.init(parties=["h1", "h2", "h3", "dealer"], backend="inline", driver_as="h1") as rt:
        refs = [rt.party(f"h{k + 1}")(_const(p))() for k, p in enumerate(parts)]
        u = rt.table.union(*refs, dealer="dealer").filter("age >= 20")
        out = rt.get(
            u.groupby("region").agg(["income:mean", "income:var", "age:min", "age:max"])
            .release(to="h1", min_group=3)
        ).set_index("region")  # fmt: skip
    sel = pooled[pooled.age >= 20]
    ref = sel.groupby("region").agg(
        m=("income", "mean"), v=("income", "var"), lo=("age", "min"), hi=("age", "max"), n=("age", "size")
    )  # fmt: skip
    ref = ref[ref.n >= 3]
    assert set(out.index) == set(ref.index)
    np.testing.assert_allclose(out.loc[ref.index, "income_mean"], ref.m, rtol=1e-9)
    np.testing.assert_allclose(out.loc[ref.index, "income_var"], ref.v, rtol=1e-6)
    np.testing.assert_allclose(out.loc[ref.index, "age_min"], ref.lo, atol=1e-3)
    np.testing.assert_allclose(out.loc[ref.index, "age_max"], ref.hi, atol=1e-3)


# ------------------------------------------------------------ the CLI


def test_stats_cli_over_files(tmp_path):
    from cipherray.cli import main

    bank, ins = _data(300, seed=3)
    bank.to_csv(tmp_path / "bank.csv", index=False)
    ins.to_parquet(tmp_path / "insurer.parquet")
    out = tmp_path / "out"
    argv = [
        "run", "stats", "--backend", "inline", "--no-progress",
        "--input", f"bank={tmp_path / 'bank.csv'}", "--input", f"insurer={tmp_path / 'insurer.parquet'}",
        "--key", "id", "--groupby", "region", "--agg", "income:mean", "--agg", "id:count",
        "--where", "age>=18", "--min-group", "10", "--to", "bank", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    res = pd.read_csv(out / "result.csv")
    assert list(res.columns) == ["region", "income_mean", "id_count"]
    rep = json.loads((out / "report.json").read_text())
    pooled = bank.merge(ins, on="id")
    sizes = pooled[pooled.age >= 18].groupby("region").size()
    assert rep["suppressed_groups"] == int((sizes < 10).sum())
    assert rep["released_groups"] == len(res) and rep["bytes"] > 0 and rep["rounds"] > 0
    bad = tmp_path / "bad"
    argv2 = [a if a != "income:mean" else "incme:mean" for a in argv]
    argv2[-1] = str(bad)
    assert main(argv2) == 2
    assert not bad.exists()
    argv3 = [*argv[:-1], str(bad)] + ["--epsilon", "0"]
    assert main(argv3) == 2
    assert not bad.exists()


def test_union_bounds_rows_per_entity_for_dp():
    gen = np.random.default_rng(12)
    people = pd.DataFrame({"pid": np.arange(90), "region": gen.choice(["a", "b", "c"], 90)})
    visits = people.loc[people.index.repeat(3)].assign(cost=gen.uniform(0, 100, 270))
    parts = [visits.iloc[k::2].reset_index(drop=True) for k in range(2)]
    with cr.init(parties=["h1", "h2", "dealer"], backend="inline", driver_as="h1") as rt:
        refs = [rt.party(f"h{k + 1}")(_const(p))() for k, p in enumerate(parts)]
        u = rt.table.union(*refs, dealer="dealer").clamp(cost=(0, 100))
        with pytest.raises(ValueError, match="bound_rows"):
            u.groupby("region").agg(["cost:sum"]).release(to="h1", dp=DP(epsilon=1.0))
        u.bound_rows(entity="pid", m=1)
        out = rt.get(u.groupby("region").agg(["pid:count"]).release(to="h1")).set_index("region")
        res = u.groupby("region").agg(["cost:mean"])
        rt.get(res.release(to="h1", dp=DP(epsilon=1.0, mechanism="laplace")))
    # one row per person at each party: a person's visits split over both parties
    want = pd.concat([p.drop_duplicates("pid") for p in parts]).groupby("region").size()
    assert np.array_equal(out.loc[want.index, "pid_count"].to_numpy(), want.to_numpy())
    assert res.outcome.epsilon == pytest.approx(1.0)
    # Laplace scale b = sensitivity (bound 100 x 1 row x 2 parties) x 2 statistics / ε;
    # each of the 2 members adds one sample (std sqrt(2) b): the sum has std 2 b
    b = 100 * 1 * 2 * 2 / 1.0
    assert res.outcome.noise_std["sum(cost)"] == pytest.approx(2 * b, rel=1e-9)
