#!/usr/bin/env bash
# Two Q buffers with early claims on causal grids (each head's query blocks claimed longest first, so an
# early claim holds one of the shorter items left): persistent CTAs, one Q buffer against two alternated
# three times in one process (a1 a2 b1 b2 c1 c2). Steps (default: tests ab): tests (the attention and
# kernel-variant GPU tests), ab. Logs in $OUT. Needs benchmarks/results/2026-11-26-s16-causal-q2.patch
# applied (causal two-Q kernels, measured slower in the sixteenth session and not kept); without it the
# two-Q columns read "-".
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/q2_causal_ab.sh [tests] [ab]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
configs=(--config 4,32,4096,4096,128,1 --config 2,16,2048,2048,128,1 --config 1,32,2048,2048,64,1
         --config 8,16,1024,1024,64,1 --config 1,16,8192,8192,128,1)
for step in ${*:-tests ab}; do
    case $step in
        tests) attention_tests 200 ;;
        ab)
            timeout 300 python benchmarks/compare_variants.py a1:ctas=0 a2:ctas=0,q_buffers=2 b1:ctas=0 \
                b2:ctas=0,q_buffers=2 c1:ctas=0 c2:ctas=0,q_buffers=2 "${configs[@]}" > "$out/q2_causal.log" 2>&1
            echo "ab: exit $?"; cat "$out/q2_causal.log" ;;
        *) echo "unknown step $step"; exit 2 ;;
    esac
done
