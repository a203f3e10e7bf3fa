#!/usr/bin/env bash
# 128-row against 192-row tiles at head dim 64, alternated twice in one process, on shapes near select_spec's
# break-even (B1 H32 S2048 is a speed target; B1 H16 S8192 went to 128 rows in tools/tall_tile_gain.sh).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/tall_tile_repeat.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
timeout 300 python benchmarks/compare_variants.py a128:block_m=128 a192:block_m=192 b128:block_m=128 \
    b192:block_m=192 --config 1,32,2048,2048,64,0 --config 1,32,2048,2048,64,1 --config 1,16,8192,8192,64,0 \
    --config 2,16,2048,2048,64,0 --config 1,16,4096,4096,64,0 --config 2,32,1024,1024,64,0 \
    --json "$out/tall_repeat.json" > "$out/tall_repeat.log" 2>&1
echo "tall repeat: exit $?"; tail -7 "$out/tall_repeat.log"
