#!/usr/bin/env bash
# Whether short items should also move the head-dim-64 tile rule: shapes where select_spec keeps 128-row
# tiles but 192-row ones with 128-row short items (dispatch.short_items_plan) model ~8% faster, timed as
# 128 rows, 192 rows and 192 rows with short items on persistent CTAs, in one process, twice.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/short_items_tile_rule_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
for round in 1 2; do
    timeout 200 python benchmarks/compare_variants.py "m128:block_m=128,ctas=0" "m192:block_m=192,ctas=0" \
        "short:block_m=192,ctas=0,tall=-1" --config 1,16,8192,8192,64,0 --config 1,8,8192,8192,64,0 \
        --config 1,8,16384,16384,64,0 --config 1,32,4096,4096,64,0 --config 1,16,4096,4096,64,0 \
        > "$out/tile_rule$round.log" 2>&1
    echo "== round $round"; tail -n 6 "$out/tile_rule$round.log"
done
