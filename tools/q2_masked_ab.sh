#!/usr/bin/env bash
# Two Q buffers with early claims on block masks at head dim 128 in the mask's row order (K and V fit in
# L2): persistent CTAs, one Q buffer against two in one process, listed in both orders. Steps (default:
# tests ordered): tests (the attention and kernel-variant GPU tests), ordered. Densities from DENSITIES
# (default 0.1 0.25). Logs in $OUT. The sixteenth session's per-head row order for masks too large for L2
# was measured with benchmarks/results/2026-11-26-s16-head-order.patch applied (its `headorder` step).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache [DENSITIES="0.1 0.25"] tools/q2_masked_ab.sh [tests] [ordered]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
ordered=(--config 1,16,4096,4096,128,0 --config 2,16,2048,2048,128,0)

compare() {  # compare NAME DENSITY CONFIG_ARGS_VAR VARIANT...: the variants listed in both orders
    local name=$1 density=$2 configs_var=$3[@]; shift 3
    local configs=("${!configs_var}") reversed=()
    for v in "$@"; do reversed=("$v" "${reversed[@]}"); done
    for variants in "$*" "${reversed[*]}"; do
        timeout 200 python benchmarks/compare_variants.py $variants --density "$density" "${configs[@]}" >> "$out/$name.log" 2>&1
        echo "== $name: $variants (exit $?)"; tail -n $((${#configs[@]} / 2 + 1)) "$out/$name.log"
    done
}

for step in ${*:-tests ordered}; do
    case $step in
        tests) attention_tests 200 ;;
        ordered)
            for d in ${DENSITIES:-0.1 0.25}; do compare "ordered_$d" "$d" ordered q1:ctas=0 q2:ctas=0,q_buffers=2; done ;;
        *) echo "unknown step $step"; exit 2 ;;
    esac
done
