#!/usr/bin/env bash
# Create the pycanon venv ($CIPHERRAY_PYCANON_VENV, default ~/.cache/cipherray/pycanon-venv,
# outside the repository so no tool scans its site-packages) with pycanon 1.3.6 and the
# versions it pins exactly (numpy==2.0.2, pandas==2.3.3), apart from the project's
# interpreter (numpy 2.4, pandas 3). bench/deid.py and tests/deid_check.py run
# bench/pycanon_peer/check.py with this venv's python when pycanon is not importable.
# Idempotent: does nothing when the venv already imports the pinned pycanon.
set -euo pipefail

venv="${CIPHERRAY_PYCANON_VENV:-$HOME/.cache/cipherray/pycanon-venv}"
mkdir -p "$(dirname "$venv")"
py="$venv/bin/python"
check='import importlib.metadata as m, pycanon.anonymity; v = m.version("pycanon"); assert v == "1.3.6", v'
report='import importlib.metadata as m; print(*(f"{p} {m.version(p)}" for p in ("pycanon", "numpy", "pandas")), sep=", ")'

if [[ -x "$py" ]] && "$py" -c "$check" 2>/dev/null; then
    echo "pycanon_peer venv ok ($venv): $("$py" -c "$report")"
    exit 0
fi

"${PYTHON:-python3}" -m venv "$venv"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "pycanon==1.3.6"  # brings its own pins: numpy==2.0.2, pandas==2.3.3
"$py" -c "$check"
echo "pycanon_peer venv ready ($venv): $("$py" -c "$report")"
