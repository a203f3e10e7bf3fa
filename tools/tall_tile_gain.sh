#!/usr/bin/env bash
# The head-dim-64 tile choice (bsk_cupy/dispatch.py, select_spec): 128-row tiles (two consumer warpgroups)
# against 192-row ones (three) on the shapes where rounds of work decide between them, the first variant
# repeated last (the run's own noise). The per-row gain of the taller tile at B2 H16 S16384 is the
# dispatcher's _TALL_TILE_GAIN.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/tall_tile_gain.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
timeout 300 python benchmarks/compare_variants.py m128:block_m=128 m192:block_m=192 m128again:block_m=128 \
    --config 2,16,16384,16384,64,0 --config 2,16,16384,16384,64,1 --config 1,32,2048,2048,64,0 \
    --config 1,32,2048,2048,64,1 --config 4,32,2048,2048,64,0 --config 1,16,8192,8192,64,0 \
    --config 8,16,1024,1024,64,0 --config 1,48,2048,2048,64,0 --json "$out/tall.json" > "$out/tall.log" 2>&1
echo "tall: exit $?"; tail -9 "$out/tall.log"
