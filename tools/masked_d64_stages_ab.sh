#!/usr/bin/env bash
# A deeper K/V ring on the masked head-dim-64 two-Q kernel (128-row tiles, random masks in row order,
# persistent CTAs): two (as dispatched), three and four stages. With more stages the loader runs further
# ahead across item boundaries, so a short item's first K and V are in flight earlier. Both listings per
# density (DENSITIES, default 0.1 0.25), each in its own process, ROUNDS times (default 2). Logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache [DENSITIES="0.1 0.25"] [ROUNDS=2] tools/masked_d64_stages_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
configs=(--config 1,32,2048,2048,64,0 --config 1,16,4096,4096,64,0 --config 4,16,2048,2048,64,0
         --config 1,16,8192,8192,64,0)
for round in $(seq ${ROUNDS:-2}); do
    for density in ${DENSITIES:-0.1 0.25}; do
        both_listings "masked_d64_stages_$density" 5 \
            "s2:ctas=0,q_buffers=2 s3:ctas=0,q_buffers=2,stages=3 s4:ctas=0,q_buffers=2,stages=4" \
            --density "$density" "${configs[@]}"
    done
done
