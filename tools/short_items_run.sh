#!/usr/bin/env bash
# Device run for short items after a head's 192-row ones (LaunchPlan tall_blocks, dispatch.short_items_plan)
# and the idle third consumer on rows past an item's end.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/short_items_run.sh check    # tests, then the A/B below
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/short_items_run.sh targets  # perf.py, .oldwt vs this tree
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/short_items_run.sh targets-reversed  # this tree first
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/short_items_run.sh suite    # whole GPU suite, memcheck
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/short_items_run.sh tall-tests targets-reversed
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/short_items_run.sh suite ab validate   # the final run
# (steps run in the order given; ab is check without the tests, validate is bsk-cupy validate)
# check: the attention and variant GPU tests, then compare_variants on the shapes the rule re-plans, against
# .oldwt (the previous commit's tree): there two Q buffers on persistent CTAs as dispatched; here the same,
# and with the rule's short items (tall=-1), alternated twice. targets: benchmarks/perf.py (the dispatched
# target shapes, cuDNN in the same process) from each tree, alternated twice, for regressions elsewhere.
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv,noheader
for step in "${@:?check, suite, tall-tests, targets or targets-reversed}"; do
case $step in
check | ab)
    [ "$step" = check ] && attention_tests
    ab short "q2:ctas=0,q_buffers=2" "q2:ctas=0,q_buffers=2 short:ctas=0,q_buffers=2,tall=-1" \
        1,32,2048,2048,64,0 2,16,2048,2048,64,0 1,16,4096,4096,64,0 4,32,1024,1024,64,0 2,32,1024,1024,64,0 \
        8,16,512,512,64,0 1,64,2048,2048,64,0
    ;;
tall-tests)  # the 192-row variants' GPU tests and the attention tests
    attention_tests 240 -k "m192 or attention_gpu"
    ;;
validate)
    timeout 240 python -m bsk_cupy validate --report "$out/validate.md" > "$out/validate.log" 2>&1
    echo "validate: exit $?"; tail -n 30 "$out/validate.log"
    ;;
suite)
    gpu_suite 420
    memcheck
    ;;
targets | targets-reversed)
    order="old new"
    [ "$step" = targets-reversed ] && order="new old"
    for round in 1 2; do
        for tree in $order; do
            if [ $tree = old ]; then
                (cd .oldwt && PYTHONPATH=. BSK_CACHE_DIR=$PWD/.bskcache timeout 140 python benchmarks/perf.py \
                    > "$out/perf_old$round.log" 2>&1)
            else
                timeout 140 python benchmarks/perf.py > "$out/perf_new$round.log" 2>&1
            fi
            echo "== $tree tree, round $round"; tail -n 22 "$out/perf_$tree$round.log"
        done
    done
    ;;
esac
done
