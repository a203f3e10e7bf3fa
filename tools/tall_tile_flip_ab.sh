#!/usr/bin/env bash
# Before switching select_spec to the per-item-cost rule (branch wip/tile-rule): 128- against 192-row
# tiles, alternated twice in one process, on non-causal head-dim-64 shapes whose choice the new rule flips
# to 192 rows (from the one-batch to the short-row-large-batch end). Ninth session (H100): 192 rows faster
# on eight, tied on two, 1-3% slower at B1 H32 S4096 (benchmarks/results/2026-11-26-s9-tall-flip.log).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/tall_tile_flip_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
timeout 400 python benchmarks/compare_variants.py a128:block_m=128 a192:block_m=192 b128:block_m=128 \
    b192:block_m=192 --config 1,32,2048,2048,64,0 --config 1,32,4096,4096,64,0 --config 1,64,1024,1024,64,0 \
    --config 2,8,4096,4096,64,0 --config 4,16,1024,1024,64,0 --config 4,32,512,512,64,0 \
    --config 8,16,512,512,64,0 --config 8,32,1024,1024,64,0 --config 16,16,1024,1024,64,0 \
    --config 32,32,512,512,64,0 --config 32,16,1024,1024,64,0 --json "$out/tall_flip.json" \
    > "$out/tall_flip.log" 2>&1
echo "tall flip: exit $?"; tail -12 "$out/tall_flip.log"
