#!/usr/bin/env bash
# Block-mask rows in BlockMask.row_order (most listed blocks first) against the kernel's item order, one
# compiled kernel (compare_variants' order=0 clears the pointer). Steps (default: tests, memcheck, ab):
# tests (the sparse and kernel-variant GPU tests), memcheck (tools/sanitize_shapes.py, malformed row order
# included), ab (persistent A/B at densities 0.1 and 0.25, both orders in separate processes), large (the
# same on shapes whose K and V take 32-64 MiB, more than half the L2; not in the default). Logs in $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/row_order_run.sh [tests] [memcheck] [ab] [large]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
steps=${*:-tests memcheck ab}
# large: the same A/B where K and V of all heads take 32-64 MiB (bsk_cupy.dispatch.follows_row_order)
large=(--config 1,16,16384,16384,64,0 --config 1,16,8192,8192,128,0 --config 1,16,8192,8192,64,0
       --config 1,16,4096,4096,128,0)
configs=(--config 1,32,2048,2048,64,0 --config 1,16,4096,4096,64,0 --config 1,16,4096,4096,128,0
         --config 1,16,8192,8192,64,0 --config 4,16,2048,2048,64,0 --config 2,16,4096,4096,128,1)
a=ordered:ctas=0 b=index:ctas=0,order=0
# ab_pairs NAME SECONDS CONFIG_ARGS...: both orders of the two variants, in separate processes, per density.
ab_pairs() {
    local name=$1 seconds=$2; shift 2
    for density in 0.1 0.25; do
        for first in ordered index; do
            pair="$a $b"; [ $first = index ] && pair="$b $a"
            log="$out/${name}_${density}_${first}_first.log"
            timeout "$seconds" python benchmarks/compare_variants.py $pair --density $density "$@" > "$log" 2>&1
            echo "== density $density: $pair (exit $?)"; tail -n $(( $# / 2 + 2 )) "$log"
        done
    done
}
for step in $steps; do
    case $step in
        tests)
            timeout 200 python -m pytest -m gpu -q -n 4 -rfE -p no:cacheprovider tests/test_sparse_attention_gpu.py \
                tests/test_kernel_variants_gpu.py > "$out/tests.log" 2>&1
            echo "tests: exit $?"; grep -E "^(FAILED|ERROR)" "$out/tests.log" | head -10; tail -1 "$out/tests.log" ;;
        memcheck)
            memcheck; grep -E "max err|completed" "$out/memcheck.log" | tail -3 ;;
        ab) ab_pairs row_order_ab 150 "${configs[@]}" ;;
        large) ab_pairs row_order_large 140 "${large[@]}" ;;
    esac
done
