#!/usr/bin/env bash
# Conflict-free staging rows at head dim 128 with two Q buffers (epilogue.cuh stage_row, every bulk store's since the
# twenty-second session) against the tree in .oldwt (the plain 4-byte staging writes), old / new / old / new on one
# warm GPU. Steps (default: tests masked dense trace): tests (the attention and kernel-variant GPU tests), masked
# (random block masks in row order, the dispatched two-Q kernel, persistent CTAs, per density in DENSITIES, default
# 0.1 0.25), dense (one Q buffer, unchanged, against two), trace (tools/trace_timeline.py's item marks on a masked
# D128 grid, both trees; .oldwt needs its own tools/trace_timeline.py). Logs under $OUT.
#   OUT=/tmp/out [DENSITIES="0.1 0.25"] tools/staging_d128_ab.sh [tests] [masked] [dense] [trace]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
masked_configs=(1,16,4096,4096,128,0 2,16,2048,2048,128,0)
dense_configs=(4,32,4096,4096,128,0 8,16,2048,2048,128,0)
for step in ${*:-tests masked dense trace}; do
    case $step in
        tests) attention_tests 200 ;;
        masked)
            for density in ${DENSITIES:-0.1 0.25}; do
                CV_ARGS="--density $density" ab "masked_$density" q2:ctas=0,q_buffers=2 q2:ctas=0,q_buffers=2 \
                    "${masked_configs[@]}"
            done ;;
        dense) ab dense "q1:ctas=0 q2:ctas=0,q_buffers=2" "q1:ctas=0 q2:ctas=0,q_buffers=2" "${dense_configs[@]}" ;;
        trace)
            for tree in .oldwt .; do
                echo "== trace, $tree"
                log="$out/trace_$([ $tree = . ] && echo new || echo old).log"
                (cd $tree && PYTHONPATH=. BSK_CACHE_DIR=$PWD/.bskcache timeout 120 python tools/trace_timeline.py \
                    1,16,4096,128,0,0.1 2,16,2048,128,0,0.25) > "$log" 2>&1
                tail -n 40 "$log"
            done ;;
        *) echo "unknown step $step"; exit 2 ;;
    esac
done
