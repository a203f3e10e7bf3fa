#!/usr/bin/env bash
# Device run of each warpgroup's grid wait moved past the __syncthreads and the setmaxnreg hand-over (so
# that nothing but the work follows it): the whole GPU suite, memcheck, an A/B against the tree before it
# (.oldwt, tools/ab_against_checkout.sh: old, new, old, new) on the small targets as the dispatcher runs
# them, B1 H32 S2048 D64 and a causal mid shape, then the timeline probe. Prediction: the grid wait ->
# first Q load gap (0.48 us) shrinks to ~0.2 us, -0.2 to -0.3 us per small call.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/grid_wait_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc} XLA_PYTHON_CLIENT_PREALLOCATE=false
out=${OUT:?set OUT to the log directory}
timeout 240 python -m pytest -m gpu -q -n 4 -rfE -p no:cacheprovider tests/ > "$out/tests.log" 2>&1
echo "tests: exit $?"; grep -E "^(FAILED|ERROR)" "$out/tests.log" | head -20; tail -1 "$out/tests.log"
timeout 100 compute-sanitizer --tool memcheck python tools/sanitize_shapes.py > "$out/memcheck.log" 2>&1
echo "memcheck: exit $?"; grep -c cuGetProcAddress "$out/memcheck.log"; tail -1 "$out/memcheck.log"
variants="def:ctas=0 ws:block_m=64,split_warpgroups=1,splits=1 ws64:block_m=64,block_n=64,split_warpgroups=1,splits=1"
timeout 240 tools/ab_against_checkout.sh .oldwt "$variants" "$variants" 1,8,512,512,64,0 1,16,1024,1024,64,0 \
    1,8,512,512,128,0 1,8,512,512,128,1 1,32,2048,2048,64,0 4,16,2048,2048,128,1
echo "ab: exit $?"
timeout 60 python tools/trace_timeline.py 1,8,512,64,0 1,16,1024,64,0 1,8,512,128,0 > "$out/trace.log" 2>&1
echo "trace: exit $?"; cat "$out/trace.log"
