"""`cipherray run <workload>`: one subcommand per workload, each with its own options only.

Help and parse errors only: no job runs, no Ray starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cipherray.cli import WORKLOADS

# --input, --key and --out are options of both psi and stats (stats over the parties' files)
PSI_ONLY = ("--mode", "--value", "--receiver", "--normalize")
STATS_ONLY = ("--parties", "--groupby", "--min-group", "--epsilon")
SHARED = ("--backend", "--address", "--network", "--workers", "--timeout", "--no-progress")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cipherray", *args], capture_output=True, text=True, timeout=60
    )


def test_psi_help_lists_psi_options_only():
    out = cli("run", "psi", "--help")
    assert out.returncode == 0, out.stderr
    for flag in (*PSI_ONLY, "--strict", *SHARED, "--graph", "--json"):
        assert flag in out.stdout, flag
    for flag in STATS_ONLY:
        assert flag not in out.stdout, flag


@pytest.mark.parametrize("name", ["stats", "quickstart"])
def test_stats_help_lists_stats_options_only(name):
    out = cli("run", name, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: cipherray run stats ")
    for flag in (*STATS_ONLY, *SHARED, "--graph", "--json"):
        assert flag in out.stdout, flag
    for flag in PSI_ONLY:
        assert flag not in out.stdout, flag


def test_run_help_lists_every_workload_on_one_line():
    out = cli("run", "--help")
    assert out.returncode == 0, out.stderr
    for name, w in WORKLOADS.items():
        lines = [ln for ln in out.stdout.splitlines() if ln.strip().startswith(name)]
        assert len(lines) == 1 and w.summary in lines[0], (name, out.stdout)
        assert all(alias in lines[0] for alias in w.aliases)
    assert "--input" not in out.stdout and "--parties" not in out.stdout


def test_top_level_help_and_bad_workload():
    out = cli("--help")
    assert out.returncode == 0 and "run" in out.stdout
    bad = cli("run", "nosuch")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    wrong = cli("run", "stats", "--mode", "cardinality")  # another workload's option
    assert wrong.returncode == 2 and "unrecognized arguments: --mode" in wrong.stderr
    missing = cli("run", "stats", "--input", "a=a.csv")  # a named error, no traceback
    assert missing.returncode == 2 and missing.stderr.strip() == (
        "error: StatsInputError: a: input file a.csv does not exist"
    )


def test_help_imports_no_workload_and_no_ray():
    code = (
        "import contextlib, io, sys\n"
        "from cipherray import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    cli.main(['run', '--help'])\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('cipherray.workloads.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
