"""`cipherray run deid`: the released table, the report, the pseudonyms, and bad input.

The job runs in-process through `cipherray.cli.main` (no Ray), except one subprocess run
that checks the exit code and the one-line error of the real command."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pycanon_check  # pycanon here or in its venv (it pins numpy / pandas exactly); else None
import pytest

from cipherray.cli import main as cli_main
from cipherray.protocols.deid import SivPseudonymizer, load_key

ROOT = Path(__file__).resolve().parents[1]
QUASI = ["age", "zip", "sex"]


def patients(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Synthetic patients (seeded NumPy generator: test data, never keys)."""
    g = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:05d}" for i in range(n)],
            "age": g.integers(18, 90, n),
            "zip": [f"{z:05d}" for z in g.integers(1000, 3000, n)],
            "sex": g.choice(["F", "M"], n),
            "diagnosis": g.choice(["flu", "cold", "hiv", "asthma", "none"], n),
        }
    )


@pytest.fixture
def data_csv(tmp_path):
    path = tmp_path / "data.csv"
    patients().to_csv(path, index=False)
    return path


def run_deid(*args) -> int:
    return cli_main(["run", "deid", *map(str, args)])


def base_args(data, out, key, *extra):
    return ["--input", data, "--quasi", ",".join(QUASI), "--sensitive", "diagnosis",
            "--k", 5, "--l", 2, "--hierarchy", "zip=prefix", "--pseudonymize", "patient_id",
            "--key-file", key, "--out", out, *extra]  # fmt: skip


def test_release_meets_k_and_l_and_the_report_says_so(data_csv, tmp_path, capsys):
    out, key = tmp_path / "out", tmp_path / "ids.key"
    assert run_deid(*base_args(data_csv, out, key, "--t", 0.6)) == 0
    assert "k = " in capsys.readouterr().out
    released = pd.read_csv(out / "deidentified.csv", dtype=str)
    k = int(released.groupby(QUASI).size().min())
    ell = int(released.groupby(QUASI)["diagnosis"].nunique().min())
    assert k >= 5 and ell >= 2
    theirs = pycanon_check.measures(out / "deidentified.csv", QUASI, "diagnosis")
    if theirs is not None:  # skipped without pycanon and its venv (CI)
        assert (theirs["k"], theirs["l"]) == (k, ell)
    report = json.loads((out / "report.json").read_text())
    assert report["k"] == k and report["l"] == ell and report["k_requested"] == 5
    assert report["t"] <= 0.6 and report["t_requested"] == 0.6
    assert report["rows_in"] == 300 and report["rows_out"] == len(released)
    assert report["rows_out"] + report["suppressed"] == 300
    for model in ("prosecutor", "journalist"):
        assert report[model]["highest"] == pytest.approx(1 / k)
    assert 0 < report["marketer"] <= 1 / k
    assert set(report["ncp"]) == set(QUASI) and 0 <= report["gcp"] <= 1
    assert report["seconds"] > 0 and report["pseudonyms"]["method"] == "HMAC-SHA-256"
    assert sorted(report["plots"]) == ["hist_age.png", "hist_sex.png", "hist_zip.png"]
    for name in report["plots"]:
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert "| k-anonymity | 5 |" in (out / "report.md").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left


def test_hmac_pseudonyms_are_keyed_stable_and_not_the_ids(data_csv, tmp_path):
    key = tmp_path / "ids.key"
    assert run_deid(*base_args(data_csv, tmp_path / "a", key)) == 0
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and len(key.read_bytes()) == 32
    first = pd.read_csv(tmp_path / "a" / "deidentified.csv", dtype=str)
    assert not set(first["patient_id"]) & set(patients()["patient_id"])
    assert first["patient_id"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert run_deid(*base_args(data_csv, tmp_path / "b", key)) == 0  # same key file
    second = pd.read_csv(tmp_path / "b" / "deidentified.csv", dtype=str)
    assert list(first["patient_id"]) == list(second["patient_id"])
    assert run_deid(*base_args(data_csv, tmp_path / "c", tmp_path / "other.key")) == 0
    other = pd.read_csv(tmp_path / "c" / "deidentified.csv", dtype=str)
    assert not set(other["patient_id"]) & set(first["patient_id"])


def test_siv_pseudonyms_decrypt_back_and_parquet_round_trips(tmp_path):
    data = tmp_path / "data.parquet"
    patients().to_parquet(data, index=False)
    key, out = tmp_path / "siv.key", tmp_path / "out"
    args = base_args(data, out, key, "--siv", "--format", "parquet")
    assert run_deid(*args) == 0
    released = pd.read_parquet(out / "deidentified.parquet")
    ids = SivPseudonymizer(load_key(key, "siv"), context="patient_id").decrypt(
        released["patient_id"]
    )
    original = patients().set_index("patient_id")
    assert set(ids) <= set(original.index) and len(set(ids)) == len(released)
    assert list(original.loc[list(ids), "diagnosis"]) == list(released["diagnosis"])
    assert run_deid(*base_args(data, tmp_path / "again", key, "--siv", "--format", "parquet")) == 0
    again = pd.read_parquet(tmp_path / "again" / "deidentified.parquet")
    assert list(again["patient_id"]) == list(released["patient_id"])


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_INPUT = [
    ("ColumnError", "no column 'agee'; did you mean 'age'", {"--quasi": "agee,zip,sex"}),
    ("ColumnError", "no column 'diagnosys'", {"--sensitive": "diagnosys"}),
    ("ParameterError", "larger than the table", {"--k": "301"}),
    ("ParameterError", "--k must be at least 2", {"--k": "1"}),
    ("ParameterError", "--l must be at least 2", {"--l": "1"}),
    ("ParameterError", "exceeds the 5 distinct values", {"--l": "6"}),
    ("ParameterError", "--t must lie in (0, 1]", {"--t": "1.5"}),
    ("ParameterError", "--suppression-limit", {"--suppression-limit": "-0.1"}),
    ("HierarchyError", "unknown hierarchy", {"--hierarchy": "zip=bogus"}),
    ("NonNumericError", "'sex' has 300 value(s) that are not numbers", {"--hierarchy": "sex=interval:5,10"}),
    ("HierarchyError", "last column must be '*'", {"--hierarchy": "sex={tree}"}),
    ("HierarchyError", "does not cover values", {"--hierarchy": "sex={partial}"}),
    ("HierarchyError", "no such file", {"--hierarchy": "sex={missing}"}),
    ("ParameterError", "not a --quasi column", {"--hierarchy": "diagnosis=prefix"}),
    ("EmptyInputError", "has no rows", {"--input": "{empty}"}),
    ("InputFileError", "does not exist", {"--input": "{missing}"}),
]  # fmt: skip


@pytest.mark.parametrize("error, message, change", BAD_INPUT, ids=[b[1][:24] for b in BAD_INPUT])
def test_bad_input_is_a_named_error_and_nothing_is_written(error, message, change, data_csv,
                                                           tmp_path, capsys):  # fmt: skip
    import cipherray.protocols.deid as deid
    from cipherray.workloads.analytics import deid_job
    from cipherray.workloads.analytics.deid_input import DeidSettings

    out, key = tmp_path / "out", tmp_path / "ids.key"
    args = base_args(data_csv, out, key)
    subs = {
        "tree": _write(tmp_path, "sex.csv", "F,person\nM,person\n"),
        "empty": _write(tmp_path, "empty.csv", "patient_id,age,zip,sex,diagnosis\n"),
        "missing": tmp_path / "missing.csv",
        "partial": _write(tmp_path, "partial.csv", "F,person,*\n"),
    }
    for flag, value in change.items():
        if flag not in args:
            args += [flag, ""]
        args[args.index(flag) + 1] = value.format(**subs)
    assert run_deid(*args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert not out.exists() and not key.exists()
    # the same input through the library raises the named error
    parsed = dict(zip(args[::2], args[1::2]))
    settings = DeidSettings(
        input=parsed["--input"], quasi=parsed["--quasi"].split(","), k=int(parsed["--k"]),
        out=str(out), sensitive=parsed["--sensitive"], l=int(parsed["--l"]),
        t=float(parsed["--t"]) if "--t" in parsed else None,
        suppression_limit=float(parsed.get("--suppression-limit", 0.05)),
        hierarchies=dict([parsed["--hierarchy"].split("=", 1)]),
        pseudonymize="patient_id", key_file=str(key),
    )  # fmt: skip
    with pytest.raises(getattr(deid, error)):
        deid_job.run(settings)
    assert not out.exists()


def test_cli_subprocess_prints_one_error_line_and_exits_nonzero(data_csv, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "cipherray", "run", "deid", "--input", str(data_csv),
         "--quasi", "age,zip,sexx", "--k", "5", "--out", str(out)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {data_csv}: no column 'sexx'; did you mean 'sex'?"
    ]
    assert not out.exists()


def test_suppression_limit_and_missing_quasi_values(tmp_path):
    df = patients(100)
    df.loc[:9, "age"] = np.nan  # 10% of the rows cannot be generalised: suppressed
    data = tmp_path / "data.csv"
    df.to_csv(data, index=False)
    out = tmp_path / "out"
    args = ["--input", data, "--quasi", "age,sex", "--k", 3, "--out", out]
    assert run_deid(*args, "--suppression-limit", 0.05) == 2
    assert not out.exists()
    assert run_deid(*args, "--suppression-limit", 0.2) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["suppressed"] == 10 and report["rows_out"] == 90
    assert len(pd.read_csv(out / "deidentified.csv")) == 90


def test_without_matplotlib_the_report_says_why_there_are_no_plots(data_csv, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    out = tmp_path / "out"
    assert run_deid("--input", data_csv, "--quasi", "age,sex", "--k", 5, "--out", out) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["plots"] == [] and "matplotlib" in report["plots_note"]
    assert "matplotlib is not installed" in (out / "report.md").read_text()
    assert not list(out.glob("*.png"))


def test_help_lists_the_deid_options():
    proc = subprocess.run([sys.executable, "-m", "cipherray", "run", "deid", "--help"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for flag in ("--input", "--quasi", "--sensitive", "--k", "--l", "--t", "--hierarchy",
                 "--suppression-limit", "--pseudonymize", "--key-file", "--siv", "--out",
                 "--format"):  # fmt: skip
        assert flag in proc.stdout, flag
