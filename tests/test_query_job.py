"""`cipherray run query`: the job on the runtime (inline backend), its output, its errors,
and what crosses between the parties."""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest

import cipherray as cr
from cipherray.workloads.query.job import QueryConfig, QueryInputError, parse_parties, run


@pytest.fixture
def data(tmp_path):
    bureau = pd.DataFrame(
        {
            "id": [f"P{i:04d}" for i in range(300)] + ["P0007"],  # a duplicate: first kept
            "flag": ["black"] * 150 + ["grey"] * 151,
            "score": [str(i * 3) for i in range(300)] + ["999"],
            "secret_note": ["do not ship"] * 301,
        }
    )
    bank = pd.DataFrame(
        {
            "id": ["P0007", "X1", "P0299", "", "P0150", "X2"],
            "amount": ["1", "2", "3", "4", "5", "6"],
        }
    )
    paths = {"bureau": tmp_path / "blacklist.csv", "bank": tmp_path / "queries.csv"}
    bureau.to_csv(paths["bureau"], index=False)
    bank.to_csv(paths["bank"], index=False)
    for j, keys in enumerate([["a", "b", "c", "d"], ["b", "c", "e"], ["c", "d", "e", "e"]]):
        p = tmp_path / f"h{j}.csv"
        pd.DataFrame({"id": keys}).to_csv(p, index=False)
        paths[f"h{j}"] = p
    pd.DataFrame({"id": list("abcdefz")}).to_csv(tmp_path / "q2.csv", index=False)
    paths["q2"] = tmp_path / "q2.csv"
    return {k: str(v) for k, v in paths.items()} | {"out": str(tmp_path / "out")}


def _cfg(data, **kw):
    return QueryConfig(
        holders={"bureau": data["bureau"]}, querier=("bank", data["bank"]), keys=["id"],
        labels=["flag", "score"], out=data["out"], backend="inline", progress=False, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["inline", "ray"])
def test_lookup_writes_the_queriers_rows_with_labels(data, backend):
    report = run(replace(_cfg(data), backend=backend))
    got = pd.read_csv(report["file"], dtype=str, keep_default_na=False)
    bureau = pd.read_csv(data["bureau"], dtype=str).drop_duplicates("id", keep="first")
    want = {r.id: (r.flag, r.score) for r in bureau.itertuples()}
    assert got.columns.tolist() == ["id", "amount", "found", "flag", "score"]
    for r in got.itertuples():
        assert (r.found == "True") == (r.id in want)
        assert (r.flag, r.score) == want.get(r.id, ("", ""))
    assert got.loc[0, "score"] == "21"  # P0007: the first row, not the duplicate's 999
    st = report["holder_stats"]
    assert st["duplicates"] == 1 and st["kept"] == 300 and report["found"] == 3
    assert report["file"].endswith("bank.csv")


def test_only_declared_messages_cross_and_no_plaintext_row(data):
    cfg = _cfg(data)
    rt = cr.init(["bureau", "bank"], backend="inline")
    try:
        with rt.record_messages() as sent:
            run(cfg, rt)
    finally:
        rt.shutdown()
    tags = {(src, dst, tag) for src, dst, tag, _ in sent}
    assert tags == {
        ("bureau", "bank", "query/setup"),
        ("bank", "bureau", "query/blinded"),
        ("bureau", "bank", "query/evaluated"),
    }
    to_bank = b"".join(pickle.dumps(p) for src, _, _, p in sent if src == "bureau")
    for plain in (b"P0001", b"black", b"do not ship", b"secret_note", b"score"):
        assert plain not in to_bank
    to_bureau = b"".join(pickle.dumps(p) for src, _, _, p in sent if src == "bank")
    assert b"P0299" not in to_bureau and b"X1" not in to_bureau


@pytest.mark.parametrize("backend", ["inline", "ray"])
def test_joint_blacklist_counts_and_threshold(data, backend):
    cfg = QueryConfig(
        holders={"a": data["h0"], "b": data["h1"], "c": data["h2"]}, querier=("bank", data["q2"]),
        keys=["id"], threshold=2, out=data["out"], backend=backend, progress=False, workers=1,
    )  # fmt: skip
    report = run(cfg)
    got = pd.read_csv(report["file"], dtype=str)
    lists = [{"a", "b", "c", "d"}, {"b", "c", "e"}, {"c", "d", "e"}]
    want = {k: sum(k in s for s in lists) for k in "abcdefz"}
    assert dict(zip(got.id, got["count"].astype(int), strict=True)) == want
    assert dict(zip(got.id, got.found == "True", strict=True)) == {
        k: v >= 2 for k, v in want.items()
    }
    assert report["holder_stats"]["c"]["duplicates"] == 1


def test_bad_inputs_are_named(data, tmp_path):
    with pytest.raises(cr.InputError, match=r"party 'bureau'.*MissingColumnError.*label.*'risk'"):
        run(replace(_cfg(data), labels=["flag", "risk"]))
    with pytest.raises(cr.InputError, match=r"party 'bureau'.*key column 'email'") as info:
        run(replace(_cfg(data), keys=["email"]))
    assert "secret_note" not in str(info.value)  # the holder's other columns are not listed
    with pytest.raises(cr.InputError, match=r"party 'bureau'.*DuplicateKeyError.*1 duplicate"):
        run(_cfg(data, duplicates="error"))
    with pytest.raises(cr.InputError, match=r"party 'bureau'.*LabelWidthError.*declared width 8"):
        run(_cfg(data, label_bytes=8))
    nokey = tmp_path / "nokey.csv"
    pd.DataFrame({"phone": ["1"]}).to_csv(nokey, index=False)
    with pytest.raises(cr.InputError, match=r"party 'bank'.*nokey\.csv.*key column 'id'"):
        run(replace(_cfg(data), querier=("bank", str(nokey))))
    with pytest.raises(QueryInputError, match="party 'a' is given twice"):
        parse_parties(["a=x.csv,a=y.csv"], "--holders")
    with pytest.raises(QueryInputError, match="--threshold"):
        run(_cfg(data, threshold=2))
    with pytest.raises(QueryInputError, match="label columns"):
        run(replace(_cfg(data), labels=[]))


def test_cli_runs_the_example(data, tmp_path):
    out = tmp_path / "cli_out"
    cmd = [sys.executable, "-m", "cipherray", "run", "query", "--holder",
           f"bureau={data['bureau']}", "--querier", f"bank={data['bank']}", "--key", "id",
           "--labels", "flag,score", "--out", str(out), "--backend", "inline", "--no-progress"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "3 found" in res.stdout and "query/setup" in res.stdout
    assert sorted(p.name for p in out.iterdir()) == ["bank.csv"]  # nothing of the holder's
    bad = subprocess.run(cmd[:-3] + ["--threshold", "2", "--backend", "inline", "--no-progress"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "--threshold needs several holders" in bad.stderr


def test_service_sets_up_once_then_queries_and_updates():
    """The offline/online split on the runtime: one setup, several queries, an update that
    ships only the changes; the ledger counts each message."""
    from cipherray.workloads.query.service import QueryService

    rt = cr.init(["bureau", "bank"], backend="inline", driver_as="bank")
    try:
        keys = [f"K{i}" for i in range(500)]
        labels = [f"L{i}".encode() for i in range(500)]
        bureau = rt.party("bureau")
        svc = QueryService(rt, "bureau", "bank", width=8)
        svc.setup(bureau(lambda: keys)(), bureau(lambda: labels)())
        setup_bytes = rt.ledger.total_bytes
        asked = rt.party("bank")(lambda: ["K1", "nope", "K499"])()
        for _ in range(2):
            found, got = rt.get(list(svc.query(asked)))
            assert found.tolist() == [True, False, True]
            assert bytes(got[0]).rstrip(b"\0") == b"L1"
        before = rt.ledger.total_bytes
        svc.update(bureau(lambda: ["K1", "nope"])(), bureau(lambda: [b"new", b"x"])(),
                   bureau(lambda: ["K499"])())  # fmt: skip
        assert rt.ledger.total_bytes - before < setup_bytes / 50  # only the changes
        found, got = rt.get(list(svc.query(asked)))
        assert found.tolist() == [True, True, False]
        assert bytes(got[0]).rstrip(b"\0") == b"new"
    finally:
        rt.shutdown()
