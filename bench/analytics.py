"""Joint analytics benchmark: group-by on a privately joined table against pandas on the
pooled data, histogram / variance / correlation, and DP releases against dp-accounting.

    python3 bench/analytics.py --rows 1000000 --out bench/results

Parts (`--parts groupby,stats,dp`):
- groupby: the bank holds `region` (50 groups) and `age`, the insurer `income`; a
  joined table (private join through ECDH + the dealer's oblivious permutations), then
  the mean income per region on shares, released to the bank; pandas `merge` +
  `groupby` on the pooled data side by side (ratio), and the largest difference.
- stats: a 64-bin histogram, the variance, and a 10 x 10 correlation matrix (5 columns
  at each party) on the same table, each timed and checked against pandas.
- dp: Gaussian and Laplace releases of a per-group mean: the ε the table reports equals
  dp-accounting's for the same mechanism computed here independently, and the
  empirical standard deviation of the released sums over repeated releases equals the
  stated noise std.
The secure sum of 3 x 10^7 values is `bench/runtime.py`; Mondrian is `bench/deid.py`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine, write  # noqa: E402


def make_tables(rows: int, groups: int, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic bank and insurer tables; 80% of the ids are common."""
    gen = np.random.default_rng(seed)  # synthetic data only
    ids = gen.permutation(int(rows * 1.25))
    bank_ids, ins_ids = ids[:rows], ids[int(rows * 0.25) :]
    bank = pd.DataFrame(
        {
            "id": bank_ids,
            "region": gen.integers(0, groups, rows),
            "age": gen.integers(18, 90, rows).astype(float),
        }
    )
    for j in range(4):
        bank[f"b{j}"] = gen.normal(0, 1, rows) + 0.01 * bank["age"]
    ins = pd.DataFrame({"id": ins_ids, "income": gen.normal(5e4, 1.5e4, len(ins_ids)).round(2)})
    for j in range(4):
        ins[f"i{j}"] = gen.normal(0, 1, len(ins_ids))
    return bank, ins


def _load(df: pd.DataFrame):
    return lambda: df


def bench_groupby(rt, bank, ins, rows: int) -> tuple[dict, object, pd.DataFrame]:
    b = rt.party("bank")(_load(bank))()
    i = rt.party("insurer")(_load(ins))()
    rt.wait(b, i)
    t0 = time.perf_counter()
    table = rt.table({"bank": b, "insurer": i}, on="id", dealer="dealer")
    rt.wait(table.view("bank").matched)
    t_join = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = table.groupby("region").agg(["income:mean", "id:count"])
    out = rt.get(res.release(to="bank", min_group=10))
    t_group = time.perf_counter() - t0
    t0 = time.perf_counter()
    pooled = bank.merge(ins, on="id")
    ref = pooled.groupby("region")["income"].mean()
    t_pandas = time.perf_counter() - t0
    err = float(np.max(np.abs(out.set_index("region")["income_mean"] - ref)))
    row = {
        "part": "groupby mean (50 groups, key at bank, values at insurer)",
        "rows": rows,
        "join_s": round(t_join, 2),
        "ours_s": round(t_group, 3),
        "pandas_s": round(t_pandas, 3),
        "ratio": round(t_group / t_pandas, 1),
        "max_abs_error": err,
        "target": "<= 10 s",
        "met": t_group <= 10,
    }
    return row, table, pooled


def bench_stats(rt, table, pooled: pd.DataFrame, rows: int) -> list[dict]:
    out = []
    t0 = time.perf_counter()
    h = rt.get(table.histogram("income", bins=64, range=(0, 1e5)).release(to="bank"))
    t = time.perf_counter() - t0
    ref = np.histogram(np.clip(pooled["income"], 0, 1e5), bins=64, range=(0, 1e5))[0]
    out.append(
        {"part": "histogram (64 bins)", "rows": rows, "ours_s": round(t, 3),
         "max_abs_error": float(np.max(np.abs(h["count"].to_numpy() - ref)))}
    )  # fmt: skip
    t0 = time.perf_counter()
    v = rt.get(table.agg(["income:var"]).release(to="bank"))
    t = time.perf_counter() - t0
    out.append(
        {"part": "variance", "rows": rows, "ours_s": round(t, 3),
         "max_abs_error": abs(float(v["income_var"][0]) - float(pooled["income"].var()))}
    )  # fmt: skip
    cols = ["age", "b0", "b1", "b2", "b3", "income", "i0", "i1", "i2", "i3"]
    table.clamp(
        age=(0, 120), income=(0, 2e5), **{c: (-8, 8) for c in cols if c not in ("age", "income")}
    )
    t0 = time.perf_counter()
    c = rt.get(table.corr(cols).release(to="bank"))
    t = time.perf_counter() - t0
    clipped = (
        pooled[cols]
        .clip(lower=-8, upper=8)
        .assign(age=pooled["age"], income=pooled["income"].clip(0, 2e5))
    )
    err = float(np.max(np.abs(c.to_numpy() - clipped.corr().to_numpy())))
    out.append(
        {"part": "10 x 10 correlation", "rows": rows, "ours_s": round(t, 3), "max_abs_error": err}
    )
    return out


def bench_dp(rt, repeats: int) -> list[dict]:
    import dp_accounting

    from cipherray.workloads.analytics import DP
    from cipherray.workloads.analytics.result import gaussian_multiplier

    gen = np.random.default_rng(9)
    n = 5000
    bank = pd.DataFrame({"id": np.arange(n), "g": gen.integers(0, 5, n)})
    ins = pd.DataFrame({"id": np.arange(n), "x": gen.uniform(0, 100, n)})
    b = rt.party("bank")(_load(bank))()
    i = rt.party("insurer")(_load(ins))()
    table = rt.table({"bank": b, "insurer": i}, on="id", dealer="dealer").clamp(x=(0, 100))
    truth = bank.merge(ins, on="id").groupby("g")["x"].sum().to_numpy()
    rows = []
    for mech in ("gaussian", "laplace"):
        dp = DP(epsilon=1.0, delta=1e-6, mechanism=mech)
        errs, eps, std = [], None, None
        res = table.groupby("g").agg(["x:sum"])
        for _ in range(repeats):
            out = rt.get(res.release(to="bank", dp=dp))
            errs.append(out["x_sum"].to_numpy() - truth)
            eps, std = res.outcome.epsilon, res.outcome.noise_std["sum(x)"]
        # dp-accounting, independently: 2 statistics (count, sum) compose
        if mech == "gaussian":
            z = gaussian_multiplier(1.0, 1e-6, 2)
            ev = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z), 2)
            acct = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
            ref_eps = float(acct.compose(ev).get_epsilon(1e-6))
        else:
            ev = dp_accounting.SelfComposedDpEvent(dp_accounting.LaplaceDpEvent(2.0), 2)
            acct = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
            ref_eps = float(acct.compose(ev).get_epsilon(1e-12))
        emp = float(np.std(np.concatenate(errs)))
        rows.append(
            {"part": f"DP {mech} release (ε=1, sum per group, 2 members add noise)",
             "epsilon_reported": round(eps, 6), "epsilon_dp_accounting": round(ref_eps, 6),
             "stated_noise_std": round(std, 1), "empirical_noise_std": round(emp, 1),
             "releases": repeats, "ratio": round(emp / std, 3)}
        )  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--parts", default="groupby,stats,dp")
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--backend", default="ray")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    import cipherray as cr

    parts = set(args.parts.split(","))
    table_rows: list[dict] = []
    ledger: list = []

    def runtime():
        return cr.init(
            parties=["bank", "insurer", "dealer"], backend=args.backend, timeout_s=1200,
            driver_as="bank",  # the analyst acts for the bank, which receives the results
        )  # fmt: skip

    if parts & {"groupby", "stats"}:
        with runtime() as rt:  # one session for the 10^6-row parts, closed before the next
            bank, ins = make_tables(args.rows, args.groups)
            row, table, pooled = bench_groupby(rt, bank, ins, args.rows)
            table_rows.append(row)
            print(row, flush=True)
            if "stats" in parts:
                for r in bench_stats(rt, table, pooled, args.rows):
                    table_rows.append(r)
                    print(r, flush=True)
            ledger = rt.ledger.summary().to_dict(orient="records")
            del table, pooled
    if "dp" in parts:
        with runtime() as rt:
            for r in bench_dp(rt, args.repeats):
                table_rows.append(r)
                print(r, flush=True)
    cols = ["part", "rows", "join_s", "ours_s", "pandas_s", "ratio", "max_abs_error", "releases",
            "epsilon_reported", "epsilon_dp_accounting", "stated_noise_std",
            "empirical_noise_std", "target", "met"]  # fmt: skip
    write(
        args.out, "analytics", {"machine": machine(), "rows": table_rows, "ledger": ledger},
        table_rows, cols,
    )  # fmt: skip


if __name__ == "__main__":
    main()
