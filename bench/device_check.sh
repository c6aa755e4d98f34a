#!/usr/bin/env bash
# Issue #6's device figures in one device call, from the repository root:
#
#   run(command="bash bench/device_check.sh", carry=[".dev/g"], timeout_s=540)
#
# 1. bench/gpu.py (numpy + cupy only): kernels checked against Python ints, then timed;
#    $OUT/gpu.json and gpu.md (targets, every Montgomery form side by side). It keeps itself
#    under 5 minutes; the timeout here is a backstop.
# 2. bench/gpu_integration.py (needs gmpy2): protocols.paillier's GPU path against its CPU
#    path, "through protocols.paillier" figures, with the cooperative kernels wherever step 1
#    found them fastest; $OUT/gpu_integration.json and .md. Skipped when gmpy2 is missing.
#    gmpy2 travels as a wheel in .dev/g (ignored by git), made here by
#      mkdir -p .dev/g && python3 -m pip download -q --no-deps --only-binary=:all: \
#        --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 \
#        -d .dev/g gmpy2
set -u
out=${OUT:-bench/out}
mkdir -p "$out"
if compgen -G ".dev/g/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .dev/g/*.whl &&
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,compute_cap,clocks.max.sm --format=csv,noheader || true
timeout 330 python3 bench/gpu.py --out "$out"
echo "bench/gpu.py exit $?"
# the cooperative kernels where bench/gpu.py measured them fastest (per size: *_coop_used)
coop_env() {
  python3 -c "import json,sys; u=json.load(open(sys.argv[1])).get(sys.argv[2],{}); print(','.join(f'{int(b)//32}:{t}' for b,t in u.items()))" "$out/gpu.json" "$1" 2>/dev/null
}
coop=$(coop_env modexp_coop_used)
if [ -n "$coop" ]; then export CIPHERRAY_MODEXP_COOP=$coop; echo "CIPHERRAY_MODEXP_COOP=$coop"; fi
coop=$(coop_env montmul_coop_used)
if [ -n "$coop" ]; then export CIPHERRAY_MONTMUL_COOP=$coop; echo "CIPHERRAY_MONTMUL_COOP=$coop"; fi
if python3 -c "import gmpy2" 2>/dev/null; then
  timeout 170 python3 bench/gpu_integration.py --n 100000 --out "$out" >"$out/gpu_integration.log" 2>&1
  echo "bench/gpu_integration.py exit $?"
  tail -c 1500 "$out/gpu_integration.log"
else
  echo "gmpy2 not importable: bench/gpu_integration.py skipped"
fi
