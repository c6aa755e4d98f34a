"""cipherray.protocols.deid: pseudonyms, hierarchies, Mondrian (checked with pycanon), risk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pycanon_check  # pycanon here or in its venv; None: comparisons skipped
import pytest

from cipherray.protocols.deid import (
    ConstraintError,
    DateHierarchy,
    HierarchyError,
    IntervalHierarchy,
    KeyFileError,
    PrefixHierarchy,
    SivPseudonymizer,
    SuppressionLimitError,
    TokenError,
    TreeHierarchy,
    achieved_k,
    certainty_penalty,
    distinct_l,
    hmac_tokens,
    journalist_risk,
    load_key,
    make_hierarchy,
    marketer_risk,
    mondrian,
    new_key_file,
    prosecutor_risk,
    risk_report,
    t_closeness,
)
from cipherray.protocols.deid.hierarchy import common_generalisation


class _Canon:
    """k, distinct l and t of a released table, from the table alone (its rows grouped
    by their quasi-identifier labels, independent of Mondrian's class ids); where
    pycanon is importable or its venv exists (tests/pycanon_check.py) it must agree."""

    @staticmethod
    def _classes(table: pd.DataFrame, qis: list) -> np.ndarray:
        return table.groupby(qis, sort=False).ngroup().to_numpy()

    def k_anonymity(self, table: pd.DataFrame, qis: list) -> int:
        ours = int(table.groupby(qis).size().min())
        theirs = pycanon_check.measures(table, qis)
        if theirs is not None:
            assert theirs["k"] == ours
        return ours

    def l_diversity(self, table: pd.DataFrame, qis: list, sa: list) -> int:
        ours = int(table.groupby(qis)[sa[0]].nunique().min())
        theirs = pycanon_check.measures(table, qis, sa[0])
        if theirs is not None:
            assert theirs["l"] == ours
        return ours

    def t_closeness(self, table: pd.DataFrame, qis: list, sa: list) -> float:
        ours = t_closeness(self._classes(table, qis), table[sa[0]])
        theirs = pycanon_check.measures(table, qis, sa[0], t=True)
        if theirs is not None:
            assert theirs["t"] == pytest.approx(ours)
        return ours


pycanon = _Canon()

QIS = ["age", "zip", "hours", "edu", "sex", "race", "work", "born"]
DISEASES = ["flu", "hiv", "cancer", "cold", "none", "asthma"]


def adult_like(n: int, seed: int = 0) -> pd.DataFrame:
    """Adult-like synthetic rows (seeded NumPy generator: test data, never keys)."""
    g = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": g.integers(17, 91, n),
            "zip": pd.Series(g.integers(10000, 99999, n)).astype(str),
            "hours": g.integers(1, 100, n),
            "edu": g.integers(1, 17, n),
            "sex": g.choice(["F", "M"], n),
            "race": g.choice(list("ABCDE"), n),
            "work": g.choice(["private", "self", "federal", "state", "local"], n),
            "born": pd.Timestamp("1950-01-01") + pd.to_timedelta(g.integers(0, 20000, n), "D"),
            "disease": g.choice(DISEASES, n),
            "salary": g.integers(10, 60, n) * 1000,
        }
    )


# --- pseudonyms -----------------------------------------------------------------------


def test_hmac_tokens_are_deterministic_per_key_and_differ_across_keys():
    k1, k2 = os.urandom(32), os.urandom(32)
    values = ["alice", "bob", "alice", 7, "7", None]
    a, b = hmac_tokens(values, k1), hmac_tokens(values, k1)
    assert list(a) == list(b)
    assert a[0] == a[2] and a[0] != a[1] and a[3] == a[4]  # 7 and "7" normalise alike
    assert a[5] is None and all(re.fullmatch(r"[0-9a-f]{64}", t) for t in a[:5])
    assert not set(hmac_tokens(values, k2)[:5]) & set(a[:5])
    with pytest.raises(KeyFileError, match="at least 32"):
        hmac_tokens(values, b"short")


def test_siv_round_trip_determinism_and_tamper_error():
    key = os.urandom(64)
    siv = SivPseudonymizer(key, context="name")
    values = pd.Series(["alice", "bob", "alice", "élodie"])
    tokens = siv.encrypt(values)
    assert tokens[0] == tokens[2] and tokens[0] != tokens[1]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", t) for t in tokens)
    assert list(siv.decrypt(tokens)) == list(values)
    assert list(SivPseudonymizer(key, context="name").decrypt(tokens)) == list(values)
    assert SivPseudonymizer(os.urandom(64)).encrypt(["alice"])[0] != tokens[0]
    t = tokens[1]
    tampered = t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1]
    with pytest.raises(TokenError):
        siv.decrypt([tampered])
    with pytest.raises(TokenError):  # another column's context does not decrypt it
        SivPseudonymizer(key, context="city").decrypt(tokens[:1])
    with pytest.raises(KeyFileError, match="64 bytes"):
        SivPseudonymizer(os.urandom(32))


def test_key_files_are_0600_and_checked(tmp_path: Path):
    path = new_key_file(tmp_path / "siv.key", "siv")
    assert (path.stat().st_mode & 0o777) == 0o600
    key = load_key(path, "siv")
    assert len(key) == 64 and list(
        SivPseudonymizer(key).decrypt(SivPseudonymizer(key).encrypt(["x"]))
    ) == ["x"]
    assert len(load_key(new_key_file(tmp_path / "h.key"), "hmac")) == 32
    with pytest.raises(KeyFileError, match="already exists"):
        new_key_file(path, "siv")
    bad = tmp_path / "bad.key"
    bad.write_bytes(os.urandom(16))
    bad.chmod(0o600)
    with pytest.raises(KeyFileError, match=re.escape(str(bad))):
        load_key(bad, "hmac")
    with pytest.raises(KeyFileError, match="64 bytes"):
        load_key(new_key_file(tmp_path / "h2.key", "hmac"), "siv")
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="group/others"):
        load_key(path, "siv")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_key(tmp_path / "nope.key")


# --- hierarchies ----------------------------------------------------------------------


def test_interval_date_prefix_hierarchies():
    h = IntervalHierarchy([5, 10, 20])
    assert h.levels == 4
    assert list(h.generalize(np.array([23, 37]), 1)) == ["20-25", "35-40"]
    assert list(h.generalize(np.array([23, 37]), 3)) == ["20-40", "20-40"]
    assert list(h.generalize(np.array([23]), 4)) == ["*"]
    with pytest.raises(HierarchyError, match="nest"):
        IntervalHierarchy([5, 7])
    d = DateHierarchy()
    day = np.array(["2021-03-04"], dtype="datetime64[D]")
    assert [d.generalize(day, lv)[0] for lv in range(4)] == ["2021-03-04", "2021-03", "2021", "*"]
    z = PrefixHierarchy(5)
    assert [z.generalize(np.array(["12345"]), lv)[0] for lv in (0, 1, 3, 5)] == [
        "12345",
        "1234*",
        "12***",
        "*",
    ]
    level, label = common_generalisation(
        z, np.array(["12345", "12345"]), np.array(["12399", "12345"])
    )
    assert list(level) == [2, 0] and list(label) == ["123**", "12345"]


def write_tree(tmp_path: Path) -> Path:
    path = tmp_path / "work.csv"
    path.write_text("private,non-gov,*\nself,non-gov,*\nfederal,gov,*\nstate,gov,*\nlocal,gov,*\n")
    return path


def test_tree_hierarchy_from_csv_and_specs(tmp_path: Path):
    t = make_hierarchy(str(write_tree(tmp_path)))
    assert isinstance(t, TreeHierarchy) and t.levels == 2
    assert list(t.generalize(np.array(["state", "self"]), 1)) == ["gov", "non-gov"]
    level, label = common_generalisation(
        t, np.array(["federal", "private"]), np.array(["state", "state"])
    )
    assert list(level) == [1, 2] and list(label) == ["gov", "*"]
    with pytest.raises(HierarchyError, match="does not cover"):
        t.generalize(np.array(["pirate"]), 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,x,*\nb,y\n")
    with pytest.raises(HierarchyError, match="row 2"):
        TreeHierarchy.from_csv(bad)
    assert isinstance(make_hierarchy({"type": "interval", "widths": [10]}), IntervalHierarchy)
    assert isinstance(make_hierarchy("date"), DateHierarchy)
    assert isinstance(make_hierarchy({"type": "zip", "length": 3}), PrefixHierarchy)
    for spec in ("banana", {"type": "fractal"}, 42, {"type": "interval", "size": 3}):
        with pytest.raises(HierarchyError):
            make_hierarchy(spec)


# --- Mondrian -------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 5, 10])
def test_mondrian_reaches_k_and_pycanon_agrees(k):
    df = adult_like(3000, seed=k)
    r = mondrian(df, QIS, k)
    assert achieved_k(r.class_id) >= k and r.n_suppressed == 0
    assert pycanon.k_anonymity(r.table, QIS) == achieved_k(r.class_id)
    assert r.table.groupby(QIS).ngroups == len(r.class_sizes)  # a label tuple per class
    assert (r.class_sizes < 2 * k).mean() > 0.5  # classes are small: the cuts went deep
    # untouched columns stay untouched
    assert (r.table["disease"] == df["disease"]).all()


def test_mondrian_distinct_l_and_t_match_pycanon():
    df = adult_like(4000, seed=3)
    r = mondrian(df, QIS, 5, sensitive="disease", l=4)
    assert distinct_l(r.class_id, df["disease"]) >= 4
    assert pycanon.l_diversity(r.table, QIS, ["disease"]) == distinct_l(r.class_id, df["disease"])
    assert pycanon.k_anonymity(r.table, QIS) == achieved_k(r.class_id)
    t_ours = t_closeness(r.class_id, df["disease"])  # categorical: equal distance
    assert t_ours == pytest.approx(pycanon.t_closeness(r.table, QIS, ["disease"]))
    t_num = t_closeness(r.class_id, df["salary"])  # numeric: ordered distance
    assert t_num == pytest.approx(pycanon.t_closeness(r.table, QIS, ["salary"]))
    # as a constraint, t bounds every class
    rt = mondrian(df, QIS, 5, sensitive="disease", t=0.3)
    assert t_closeness(rt.class_id, df["disease"]) <= 0.3 + 1e-12
    assert pycanon.t_closeness(rt.table, QIS, ["disease"]) <= 0.3 + 1e-12
    with pytest.raises(ConstraintError):
        mondrian(df, QIS, 5, sensitive="disease", l=7)


def test_mondrian_with_hierarchies(tmp_path: Path):
    df = adult_like(2000, seed=9)
    h = {
        "age": {"type": "interval", "widths": [5, 10, 20, 40]},
        "zip": "zip",
        "born": "date",
        "work": str(write_tree(tmp_path)),
    }
    r = mondrian(df, QIS, 8, hierarchies=h)
    assert pycanon.k_anonymity(r.table, QIS) >= 8
    assert set(r.table["work"]) <= {
        "private",
        "self",
        "federal",
        "state",
        "local",
        "gov",
        "non-gov",
        "*",
    }
    assert all(re.fullmatch(r"\d+-\d+|\*", a) for a in r.table["age"])
    assert all(re.fullmatch(r"\d*\**", z) for z in r.table["zip"])
    assert all(re.fullmatch(r"\d{4}(-\d\d){0,2}|\*", b) for b in r.table["born"])
    gcp = certainty_penalty(r)
    assert 0 < gcp["gcp"] < 1 and set(gcp["ncp"]) == set(QIS)


def test_suppression_limit():
    df = adult_like(500, seed=1)
    df.loc[:9, "age"] = np.nan  # 10 rows (2%) cannot be generalised
    with pytest.raises(SuppressionLimitError, match="over the limit"):
        mondrian(df, QIS, 5)
    r = mondrian(df, QIS, 5, suppression_limit=0.05)
    assert r.n_suppressed == 10 and (r.class_id[:10] == -1).all()
    assert (r.table.loc[:9, QIS] == "*").all().all()
    assert achieved_k(r.class_id) >= 5
    with pytest.raises(SuppressionLimitError):
        mondrian(df.head(4), QIS, 5)  # fewer rows than k: everything would go
    assert (
        certainty_penalty(r)["gcp"]
        > certainty_penalty(mondrian(df.iloc[10:], QIS, 5))["gcp"] * 0.99
    )


def test_pycanon_confirms_k_and_l_of_a_released_csv(tmp_path: Path):
    if pycanon_check.via() is None:
        pytest.skip(pycanon_check.missing_note())
    df = adult_like(2000, seed=4)
    r = mondrian(df, QIS, 6, sensitive="disease", l=3)
    path = tmp_path / "released.csv"
    r.table.to_csv(path, index=False)
    theirs = pycanon_check.measures(path, QIS, "disease")
    assert theirs == {"k": achieved_k(r.class_id), "l": distinct_l(r.class_id, df["disease"])}
    assert theirs["k"] >= 6 and theirs["l"] >= 3


def test_pycanon_check_is_skipped_without_pycanon_or_its_venv(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(pycanon_check, "in_process", None)
    monkeypatch.setenv(pycanon_check.peer.VENV_ENV, str(tmp_path / "no-venv"))
    assert pycanon_check.via() is None
    assert pycanon_check.measures(adult_like(50), QIS, "disease") is None
    assert str(tmp_path / "no-venv") in pycanon_check.missing_note()


def test_mondrian_1e5_rows_8_qis_k10_under_5s():
    df = adult_like(100_000, seed=0)
    t = time.perf_counter()
    r = mondrian(df, QIS, 10)
    elapsed = time.perf_counter() - t
    assert achieved_k(r.class_id) >= 10
    assert elapsed < 5.0, elapsed


# --- risk -----------------------------------------------------------------------------


def tiny_result():
    """Classes of sizes 2, 3, 5 (10 rows), hand-checked below."""
    df = pd.DataFrame(
        {
            "age": [20, 21, 30, 31, 32, 40, 41, 42, 43, 44],
            "s": ["a", "b", "a", "a", "b", "a", "b", "c", "c", "c"],
        }
    )
    r = mondrian(df, ["age"], 2, sensitive="s")
    return df, r


def test_mondrian_on_tiny_table_then_hand_checked_risks():
    df, r = tiny_result()
    # median cuts: 10 -> 5 + 5 (lower median 32), 5 -> 3 + 2 each
    assert r.class_sizes.tolist() == [3, 2, 3, 2]
    cls = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    p = prosecutor_risk(cls, threshold=0.2)
    assert p == {"highest": 0.5, "average": 0.3, "records_at_risk": 0.5}
    assert achieved_k(cls) == 2
    assert distinct_l(cls, df["s"]) == 2  # class 1: {a, b}
    # t (equal distance): table p = (.4, .3, .3); class 0 q = (.5, .5, 0) -> .5*(.1+.2+.3) = .3
    # class 1 (2/3, 1/3, 0) -> .5*(.2667+.0333+.3)=.3; class 2 (.2,.2,.6) -> .5*(.2+.1+.3) = .3
    assert t_closeness(cls, df["s"]) == pytest.approx(0.3)
    # numeric ordered distance on age values per class vs pycanon
    table = pd.DataFrame({"q": cls.astype(str), "age": df["age"]})
    assert t_closeness(cls, df["age"]) == pytest.approx(pycanon.t_closeness(table, ["q"], ["age"]))
    # risks through a result object
    rep = risk_report(r)
    assert rep["k"] == 2 and rep["prosecutor"]["highest"] == 0.5
    assert rep["prosecutor"]["average"] == pytest.approx(0.4) and rep["marketer"] == pytest.approx(
        0.4
    )
    assert rep["prosecutor"]["records_at_risk"] == 1.0  # every record risk >= 1/3 > 0.2
    assert journalist_risk(r) == prosecutor_risk(r.class_id)


def test_journalist_and_marketer_with_a_population():
    df, r = tiny_result()
    # population: each sample class appears 4 times as often
    population = pd.concat([r.table] * 4, ignore_index=True)
    j = journalist_risk(r, population, threshold=0.2)
    # F = 12, 8, 12, 8 for classes of 3, 2, 3, 2: mean of 1/F over 10 records = 0.1
    assert j == {"highest": 0.125, "average": pytest.approx(0.1), "records_at_risk": 0.0}
    assert marketer_risk(r, population) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="fewer rows"):
        journalist_risk(r, r.table.head(3))


def test_certainty_penalty_hand_checked():
    df = pd.DataFrame({"x": [0, 5, 10, 20, 25, 30], "c": ["a", "a", "b", "b", "a", "a"]})
    r = mondrian(df, ["x"], 3)  # {0,5,10} and {20,25,30}: widths 10 and 10 over 30
    assert sorted(r.table["x"]) == ["0-10"] * 3 + ["20-30"] * 3
    assert certainty_penalty(r)["ncp"]["x"] == pytest.approx(1 / 3)
    r2 = mondrian(df, ["c"], 6)  # one class {a,b}: (2-1)/(2-1) = 1
    assert certainty_penalty(r2)["gcp"] == pytest.approx(1.0)


def test_deid_does_not_import_ray_or_the_runtime():
    pkg = Path(__file__).resolve().parents[1] / "cipherray" / "deid"
    pattern = re.compile(
        r"^\s*(import ray\b|from ray\b|(import|from) cipherray\.runtime)", re.MULTILINE
    )
    assert [p.name for p in pkg.glob("*.py") if pattern.search(p.read_text())] == []
    code = "import sys, cipherray.protocols.deid\nprint('ray' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
