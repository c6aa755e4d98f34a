"""A joined table on Ray (one session): the private join, a group-by with the key at the
bank and values at the insurer, and a gated release, equal to pandas on pooled data;
each party's rows stay in its own workers and the dealer sees masks only."""

from __future__ import annotations

import numpy as np
import pandas as pd

import cipherray as cr


def _const(df: pd.DataFrame):
    return lambda: df


def test_joined_groupby_on_ray():
    gen = np.random.default_rng(21)  # synthetic test data
    n = 3000
    bank = pd.DataFrame({"id": np.arange(n), "region": gen.integers(0, 7, n)})
    ins = pd.DataFrame({"id": np.arange(n // 2, n + n // 2), "income": gen.normal(5e4, 1e4, n)})
    with cr.init(parties=["bank", "insurer", "dealer"], driver_as="bank", timeout_s=120) as rt:
        b = rt.party("bank")(_const(bank))()
        i = rt.party("insurer")(_const(ins))()
        t = rt.table({"bank": b, "insurer": i}, on="id", dealer="dealer")
        res = t.groupby("region").agg(["income:mean", "id:count"])
        out = rt.get(res.release(to="bank", min_group=5)).set_index("region")
        ledger = rt.ledger.summary().set_index(["from", "to"])
        audit = rt.audit.to_frame()
    ref = bank.merge(ins, on="id").groupby("region")["income"].agg(["mean", "count"])
    np.testing.assert_allclose(out.loc[ref.index, "income_mean"], ref["mean"], rtol=1e-9)
    assert np.array_equal(out.loc[ref.index, "id_count"].to_numpy(), ref["count"].to_numpy())
    # the dealer only sends (seeds and correlations); nobody sends it anything
    assert ("dealer", "bank") in ledger.index and ("dealer", "insurer") in ledger.index
    assert not [k for k in ledger.index if k[1] == "dealer"]
    # in the clear: the declared blinded ids, then the gate's flags and the result, to the bank
    reveals = audit[~audit["rule"].str.startswith("protocol")]
    assert set(reveals["to"]) == {"bank"}
