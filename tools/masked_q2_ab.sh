#!/usr/bin/env bash
# Two Q buffers on block-masked grids (128-row tiles, masks in their row order): the next item is claimed
# once the current one's loads are issued and its Q loads into the second buffer meanwhile. Persistent A/B
# against one Q buffer in one process, listed in both orders, per density (DENSITIES, default 0.1 0.25).
# HEAD_DIM 64 (default; twelfth and fourteenth sessions) or 128 (sixteenth) picks the shapes, or SHAPES
# ("B,H,SQ,SK,D,CAUSAL ...") names them; FIELDS (e.g. ",order=0": the kernel's item order, where the
# claim stays late; seventeenth session) is appended to both variants. Steps (default: ab): tests (the
# attention and kernel-variant GPU tests), ab. Logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache [HEAD_DIM=64 | SHAPES=...] [FIELDS=...] [DENSITIES="0.1 0.25"]
#       tools/masked_q2_ab.sh [tests] [ab]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
case ${HEAD_DIM:-64} in
    64) configs=(--config 1,16,4096,4096,64,0 --config 1,32,2048,2048,64,0 --config 1,16,8192,8192,64,0
                 --config 4,16,2048,2048,64,0) ;;
    128) configs=(--config 1,16,4096,4096,128,0 --config 2,16,2048,2048,128,0) ;;
    *) echo "HEAD_DIM must be 64 or 128"; exit 2 ;;
esac
if [ -n "${SHAPES:-}" ]; then
    configs=()
    for c in $SHAPES; do configs+=(--config "$c"); done
fi
variants="q1:ctas=0${FIELDS:-} q2:ctas=0,q_buffers=2${FIELDS:-}"
for step in ${*:-ab}; do
    case $step in
        tests) attention_tests 200 ;;
        ab)
            for density in ${DENSITIES:-0.1 0.25}; do
                both_listings "masked_q2_$density" $((${#configs[@]} / 2 + 1)) "$variants" --density "$density" \
                    "${configs[@]}"
            done ;;
        *) echo "unknown step $step"; exit 2 ;;
    esac
done
