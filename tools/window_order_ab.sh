#!/usr/bin/env bash
# Block masks whose K and V outgrow the L2 rule (dispatch.follows_row_order), random masks per query head:
# the kernel's item order (as dispatched) against other row orders (compare_variants order=W: windows of W
# heads, each window's rows longest first; order=-K: item order but the last K heads' rows longest first),
# persistent CTAs, one Q buffer; both listings per density, ROUNDS times.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache [ORDERS="4 8"] [DENSITIES="0.1 0.25 0.5"] [ROUNDS=1]
#       tools/window_order_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
configs=(--config 1,16,8192,8192,128,0 --config 1,16,16384,16384,64,0 --config 1,16,16384,16384,128,0)
variants="item:ctas=0,order=0"
for o in ${ORDERS:-4 8}; do
    variants+=" $([ "$o" -gt 0 ] && echo "win$o" || echo "tail${o#-}"):ctas=0,order=$o"
done
for round in $(seq ${ROUNDS:-1}); do
    for density in ${DENSITIES:-0.1 0.25 0.5}; do
        both_listings "window_order_$density" 4 "$variants" --density "$density" "${configs[@]}"
    done
done
