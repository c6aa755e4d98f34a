#!/usr/bin/env bash
# Issue #6's device figures in one device call, from the repository root:
#
#   run(command="bash bench/device_check.sh", carry=[".dev/g"], timeout_s=600)
#
# 1. bench/gpu.py (numpy + cupy only): kernels checked against Python ints, then timed;
#    $OUT/gpu.json and gpu.md (targets, every Montgomery form side by side). It keeps itself
#    under 5 minutes; the timeout here is a backstop.
# 2. bench/gpu_integration.py (needs gmpy2): protocols.paillier's GPU path against its CPU
#    path, "through protocols.paillier" figures, with the kernels step 1 measured fastest
#    (--tuning gpu.json); $OUT/gpu_integration.json and .md. Skipped when gmpy2 is missing.
#    It also times phe (python-paillier) on one core, the peer reference, where importable.
# 3. bench/gpu_buckets.py (needs gmpy2): the bucket products of vertical FL on the GPU,
#    checked bit for bit against the gmpy2 reference, then timed; $OUT/gpu_buckets.json.
#    gmpy2 and phe travel as wheels in .dev/g (ignored by git), made here by
#      mkdir -p .dev/g && python3 -m pip download -q --no-deps --only-binary=:all: \
#        --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 \
#        -d .dev/g gmpy2 phe
#
# `bash bench/device_check.sh --host-dry-run` runs the same steps on a CPU, on the host build
# of the kernels with tiny sizes (tests/test_device_scripts.py), so that the one device call
# a session may get does not find a broken script; its timings mean nothing.
set -u
out=${OUT:-bench/out}
mkdir -p "$out"
dry=()
n=100000
if [ "${1:-}" = "--host-dry-run" ]; then
  dry=(--host-dry-run)
  n=256
elif [ -n "${1:-}" ]; then
  echo "usage: bash bench/device_check.sh [--host-dry-run]" >&2
  exit 2
else
  if compgen -G ".dev/g/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .dev/g/*.whl &&
      export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  nvidia-smi --query-gpu=name,compute_cap,clocks.max.sm --format=csv,noheader || true
fi
timeout 330 python3 bench/gpu.py ${dry[@]+"${dry[@]}"} --out "$out"
echo "bench/gpu.py exit $?"
# step 2 runs the kernels step 1 measured fastest (variant, steps, cooperative group sizes)
tuning=()
if [ -s "$out/gpu.json" ]; then tuning=(--tuning "$out/gpu.json"); fi
if python3 -c "import gmpy2" 2>/dev/null; then
  timeout 170 python3 bench/gpu_integration.py ${dry[@]+"${dry[@]}"} ${tuning[@]+"${tuning[@]}"} --n "$n" --out "$out" >"$out/gpu_integration.log" 2>&1
  echo "bench/gpu_integration.py exit $?"
  tail -c 1500 "$out/gpu_integration.log"
  # 3. bench/gpu_buckets.py: vertical FL's bucket products (gpu_kernels.buckets) checked
  #    against the gmpy2 reference, then SecureBoost's 100k x 300 x 32 histogram timed
  timeout 90 python3 bench/gpu_buckets.py ${dry[@]+"${dry[@]}"} --out "$out" >"$out/gpu_buckets.log" 2>&1
  echo "bench/gpu_buckets.py exit $?"
  tail -c 800 "$out/gpu_buckets.log"
else
  echo "gmpy2 not importable: bench/gpu_integration.py and bench/gpu_buckets.py skipped"
fi
