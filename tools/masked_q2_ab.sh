#!/usr/bin/env bash
# Two Q buffers on block-masked grids (head dim 64, 128-row tiles): the next item is claimed once the
# current one's loads are issued (its KV tiles vary, so not earlier) and its Q loads into the second buffer
# meanwhile. Persistent A/B against one Q buffer at densities 0.1 and 0.25, alternated. Logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/masked_q2_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
configs=(--config 1,16,4096,4096,64,0 --config 1,32,2048,2048,64,0 --config 1,16,8192,8192,64,0
         --config 4,16,2048,2048,64,0)
a=q1:ctas=0 b=q2:ctas=0,q_buffers=2
for density in 0.1 0.25; do
    for order in "$a $b" "$b $a"; do
        timeout 120 python benchmarks/compare_variants.py $order --density $density "${configs[@]}" \
            > "$out/masked_q2_$density.log" 2>&1
        echo "== density $density: $order (exit $?)"; tail -n 4 "$out/masked_q2_$density.log"
    done
done
