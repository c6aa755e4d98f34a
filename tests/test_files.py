"""Workload outputs are written under a temporary name and renamed: a failed write
leaves the old file (or none) and no temporary behind."""

from __future__ import annotations

import pytest

from cipherray.workloads import files


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    files.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with files.atomic_output(target) as tmp:
            assert tmp.suffix == ".json" and tmp.parent == tmp_path
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    files.write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
