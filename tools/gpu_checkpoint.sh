#!/usr/bin/env bash
# One device run closing a kernel change: the whole GPU test suite (4 pytest workers, JAX without its memory
# preallocation), the host-overhead breakdown (with a cProfile of the eager path), compute-sanitizer
# memcheck on every launch mode, then `bsk-cupy validate` (its report copied to $OUT). Each step has its own time limit; logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/gpu_checkpoint.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
gpu_suite
timeout 60 python tools/host_overhead.py "$out/eager_profile.txt" > "$out/host_overhead.log" 2>&1
echo "host_overhead: exit $?"; tail -8 "$out/host_overhead.log"
memcheck
timeout 200 python -m bsk_cupy validate > "$out/validate.log" 2>&1
echo "validate: exit $?"; cp H100_VALIDATION_REPORT.md "$out/" 2>/dev/null
grep -A12 "^## Speed targets" "$out/H100_VALIDATION_REPORT.md" 2>/dev/null
