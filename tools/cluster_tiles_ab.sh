#!/usr/bin/env bash
# A/B of the cluster split's KV tile width: at head dim 128, 64-key tiles with four stages (two tiles per
# warpgroup at S 512) against 128-key tiles with two (one tile per warpgroup); at head dim 64, 128-key
# tiles against 64-key ones. Small dense shapes; the first variant repeats last (the run's own noise).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/cluster_tiles_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
cv="python benchmarks/compare_variants.py"
cl="block_m=64,split_warpgroups=1,cluster_split=2"
timeout 100 $cv n64:$cl,block_n=64 n128:$cl,block_n=128 n64again:$cl,block_n=64 \
    --config 1,8,512,512,128,0 --config 1,8,512,512,128,1 --config 2,4,512,512,128,0 --config 1,4,1024,1024,128,0 \
    --config 1,2,2048,2048,128,0 --config 1,8,256,256,128,0 > "$out/d128_tiles.log" 2>&1
echo "d128: exit $?"; tail -7 "$out/d128_tiles.log"
timeout 80 $cv n128:$cl,block_n=128 n64:$cl,block_n=64 n128again:$cl,block_n=128 \
    --config 1,8,512,512,64,0 --config 1,8,512,512,64,1 --config 1,4,1024,1024,64,0 > "$out/d64_tiles.log" 2>&1
echo "d64: exit $?"; tail -4 "$out/d64_tiles.log"
