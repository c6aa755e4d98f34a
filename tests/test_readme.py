"""The README's example runs as written, and .ci/run runs the README's test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has no python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "total" in out.stdout  # the ledger summary's total row
    assert (tmp_path / "job.dot").read_text().startswith("digraph")


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = [ln for ln in ci.splitlines() if "pytest" in ln][0].strip()
    assert test_cmd in readme


def test_readme_hfl_example_runs_inline(tmp_path):
    """The README's federated-learning example, on the inline backend (same code path)."""
    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "hfl" in b)
    assert 'cr.init(["server"], driver_as="server",' in block
    block = block.replace('cr.init(["server"],', 'cr.init(["server"], backend="inline",')
    script = tmp_path / "hfl_example.py"
    script.write_text(block)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    included, degree = map(int, out.stdout.split())
    assert included == 900 and degree >= 2  # 10% of 1000 dropped before their input


def test_readme_query_example_runs_inline(tmp_path):
    """The hidden-query section's commands, on the inline backend (same code path)."""
    import os

    text = (ROOT / "README.md").read_text()
    section = text.split("## Hidden query", 1)[1]
    block = re.findall(r"```bash\n(.*?)```", section, re.S)[0]
    block = block.replace("cipherray run query", f"{sys.executable} -m cipherray run query")
    block = re.sub(r"--out (\S+)", r"--out \1 --backend inline --no-progress", block)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        ["bash", "-ec", block], capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    hits = (tmp_path / "hits" / "bank.csv").read_text().splitlines()
    assert hits == ["id,amount,found,flag,score", "P2,100,True,grey,455", "X9,250,False,,",
                    "P3,75,True,black,802"]  # fmt: skip
    joint = (tmp_path / "joint" / "bank.csv").read_text().splitlines()
    assert joint == ["id,amount,found,count", "P2,100,True,3", "X9,250,False,0", "P3,75,False,1"]
