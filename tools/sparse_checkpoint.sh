#!/usr/bin/env bash
# Closing measurements after a kernel change whose GPU suite already ran: steps (default: memcheck
# validate sparse) memcheck (tools/sanitize_shapes.py), validate (`bsk-cupy validate`, its report copied to
# $OUT), sparse (benchmarks/perf_sparse.py, JSON and log in $OUT). Each step has its own time limit.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/sparse_checkpoint.sh [memcheck] [validate] [sparse]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
for step in ${*:-memcheck validate sparse}; do
    case $step in
        memcheck) memcheck ;;
        validate)
            timeout 240 python -m bsk_cupy validate > "$out/validate.log" 2>&1
            echo "validate: exit $?"; cp H100_VALIDATION_REPORT.md "$out/validate.md" 2>/dev/null
            grep -A12 "^## Speed targets" "$out/validate.md" 2>/dev/null ;;
        sparse)
            timeout 540 python benchmarks/perf_sparse.py --save-results "$out/sparse.json" > "$out/sparse.log" 2>&1
            echo "perf_sparse: exit $?"; tail -45 "$out/sparse.log" ;;
        *) echo "unknown step $step"; exit 2 ;;
    esac
done
