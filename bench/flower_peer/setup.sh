#!/usr/bin/env bash
# Create the Flower venv ($CIPHERRAY_FLOWER_VENV, default ~/.cache/cipherray/flower-venv,
# outside the repository so no tool scans its site-packages) with Flower 1.42 (simulation extra: Ray 2.55), NumPy and
# scikit-learn, apart from the project's interpreter (which uses Ray 2.60).
# Idempotent: does nothing when the venv already imports the pinned versions.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${CIPHERRAY_FLOWER_VENV:-$HOME/.cache/cipherray/flower-venv}"
mkdir -p "$(dirname "$venv")"
py="$venv/bin/python"
check='import flwr, ray, numpy, sklearn; assert flwr.__version__ == "1.42.0", flwr.__version__'

if [[ -x "$py" ]] && "$py" -c "$check" 2>/dev/null; then
    echo "flower_peer venv ok: $("$py" -c 'import flwr, ray; print("flwr", flwr.__version__, "ray", ray.__version__)')"
    exit 0
fi

"${PYTHON:-python3}" -m venv "$venv"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "flwr[simulation]==1.42.0" numpy scikit-learn
"$py" -c "$check"
echo "flower_peer venv ready: $("$py" -c 'import flwr, ray; print("flwr", flwr.__version__, "ray", ray.__version__)')"
