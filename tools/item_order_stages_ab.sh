#!/usr/bin/env bash
# A deeper K/V ring for head-dim-64 block masks past the L2 rule (one Q buffer, item order with the last
# heads longest first as dispatched: compare_variants order=-4): two (as dispatched), three and four
# stages, persistent CTAs, B1 H16 S16384 D64; both listings per density (DENSITIES, default 0.1 0.25 0.5).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache [DENSITIES="0.1 0.25 0.5"] tools/item_order_stages_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
for density in ${DENSITIES:-0.1 0.25 0.5}; do
    both_listings "item_order_stages_$density" 2 "s2:ctas=0,order=-4 s3:ctas=0,order=-4,stages=3 s4:ctas=0,order=-4,stages=4" \
        --density "$density" --config 1,16,16384,16384,64,0
done
