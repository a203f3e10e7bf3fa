#!/usr/bin/env bash
# One device run of an optimisation step: the variant correctness suite first (a variant that is wrong is
# not timed), then compare_variants.py on the speed targets plus EXTRA_CONFIGS, logs and JSON under $OUT.
#
#   OUT=/tmp/out tools/device_ab.sh "TESTS" VARIANT [VARIANT ...]
#   TESTS: pytest arguments (e.g. "tests/test_kernel_variants_gpu.py"), or "" to skip the tests
#   EXTRA_CONFIGS="B,H,SQ,SK,D,CAUSAL ..." adds shapes to the targets.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc}
out=${OUT:?set OUT to the log directory}
tests=$1; shift
if [[ -n "$tests" ]]; then
    python -m pytest -m gpu -q -x $tests > "$out/tests.log" 2>&1
    status=$?
    tail -3 "$out/tests.log"
    [[ $status -eq 0 ]] || { echo "tests failed: nothing timed"; exit $status; }
fi
configs=()
targets=$(python -c "from bsk_cupy.bench import TARGET_CONFIGS as T; print(' '.join(f'{b},{h},{s},{s},{d},{int(c)}' for b, h, s, d, c in T))")
for c in $targets ${EXTRA_CONFIGS:-}; do configs+=(--config "$c"); done
python benchmarks/compare_variants.py "$@" "${configs[@]}" --json "$out/ab.json" > "$out/ab.log" 2>&1
status=$?
tail -40 "$out/ab.log"
exit $status
