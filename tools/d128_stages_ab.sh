#!/usr/bin/env bash
# A third K/V stage at head dim 128 (128-row tiles, one Q buffer), which fits only without the bulk store's
# staging rows (231 424 bytes): persistent CTAs, the dispatched kernel against register stores with two
# stages and with three, each listing in both orders in its own process. Steps (default: dense masked):
# dense (B4 H32 S4096 non-causal and causal, B1 H16 S8192), masked (random block masks in the kernel's
# item order, K and V past the L2 rule: B1 H16 S8192 and S16384, per density in DENSITIES, default
# 0.1 0.25). Logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache [DENSITIES="0.1 0.25"] tools/d128_stages_ab.sh [dense] [masked]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
variants="base:ctas=0 rs:ctas=0,bulk_store=0 s3:ctas=0,stages=3,bulk_store=0"
for step in ${*:-dense masked}; do
    case $step in
        dense) both_listings d128_stages_dense 4 "$variants" --config 4,32,4096,4096,128,0 \
                   --config 4,32,4096,4096,128,1 --config 1,16,8192,8192,128,0 ;;
        masked)
            for density in ${DENSITIES:-0.1 0.25}; do
                both_listings "d128_stages_masked_$density" 3 "$variants" --density "$density" \
                    --config 1,16,8192,8192,128,0 --config 1,16,16384,16384,128,0
            done ;;
        *) echo "unknown step $step"; exit 2 ;;
    esac
done
