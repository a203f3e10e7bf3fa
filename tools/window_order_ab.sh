#!/usr/bin/env bash
# Block masks whose K and V outgrow the L2 rule (dispatch.follows_row_order), random masks per query head:
# the kernel's item order (as dispatched) against the rows in windows of W heads, each window longest first
# (compare_variants order=W), persistent CTAs, one Q buffer; both listings per density, ROUNDS times.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache [DENSITIES="0.1 0.25 0.5"] [ROUNDS=1] tools/window_order_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
configs=(--config 1,16,8192,8192,128,0 --config 1,16,16384,16384,64,0 --config 1,16,16384,16384,128,0)
a="item:ctas=0,order=0 win4:ctas=0,order=4 win8:ctas=0,order=8"
b="win8:ctas=0,order=8 win4:ctas=0,order=4 item:ctas=0,order=0"
for round in $(seq ${ROUNDS:-1}); do
    for density in ${DENSITIES:-0.1 0.25 0.5}; do
        log="$out/window_order_$density.log"
        for order in "$a" "$b"; do
            timeout 250 python benchmarks/compare_variants.py $order --density "$density" "${configs[@]}" >> "$log" 2>&1
            echo "== round $round, density $density: $order (exit $?)"; tail -n 4 "$log"
        done
    done
done
