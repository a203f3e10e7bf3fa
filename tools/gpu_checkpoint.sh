#!/usr/bin/env bash
# One device run closing a kernel change: the whole GPU test suite (4 pytest workers, JAX without its memory
# preallocation), the host-overhead breakdown (with a cProfile of the eager path), compute-sanitizer
# memcheck on every launch mode, then `bsk-cupy validate` (its report copied to $OUT). Each step has its own time limit; logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/gpu_checkpoint.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc} XLA_PYTHON_CLIENT_PREALLOCATE=false
out=${OUT:?set OUT to the log directory}
timeout 240 python -m pytest -m gpu -q -n 4 -rfE -p no:cacheprovider tests/ > "$out/tests.log" 2>&1
echo "tests: exit $?"; grep -E "^(FAILED|ERROR)" "$out/tests.log" | head -20; tail -1 "$out/tests.log"
timeout 60 python tools/host_overhead.py "$out/eager_profile.txt" > "$out/host_overhead.log" 2>&1
echo "host_overhead: exit $?"; tail -8 "$out/host_overhead.log"
timeout 100 compute-sanitizer --tool memcheck python tools/sanitize_shapes.py > "$out/memcheck.log" 2>&1
echo "memcheck: exit $?"; tail -8 "$out/memcheck.log"
timeout 200 python -m bsk_cupy validate > "$out/validate.log" 2>&1
echo "validate: exit $?"; cp H100_VALIDATION_REPORT.md "$out/" 2>/dev/null
grep -A12 "^## Speed targets" "$out/H100_VALIDATION_REPORT.md" 2>/dev/null
