#!/usr/bin/env bash
# A/B of four K/V stages (two per warpgroup) against two on split-warpgroup tiles, where each warpgroup
# otherwise has one stage and its next tile's load waits for its previous tile's P V (the timeline probe,
# tools/trace_timeline.py, put 2.6 us between consumer 0's first S and last P V at B1 H8 S512 D64, and
# 2.4 us more until the merged output was stored). Small dense shapes the dispatcher runs on split
# warpgroups, then 64 x 64 block masks. The first variant repeats last, so the run shows its own noise.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/wgsplit_stages_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc}
out=${OUT:?set OUT to the log directory}
cv="python benchmarks/compare_variants.py"
ws="block_m=64,split_warpgroups=1,splits=1"
timeout 90 $cv s2:$ws,stages=2 s4:$ws,stages=4 \
    s2again:$ws,stages=2 --config 1,8,512,512,64,0 --config 1,8,512,512,64,1 \
    --config 1,16,512,512,64,0 --config 1,4,1024,1024,64,0 --config 2,8,512,512,64,0 > "$out/ws_dense.log" 2>&1
echo "dense: exit $?"; tail -6 "$out/ws_dense.log"
timeout 90 $cv s2:stages=2,ctas=0 s4:stages=4,ctas=0 s2again:stages=2,ctas=0 --density 0.25 --mask-block 64 \
    --config 1,32,2048,2048,64,0 --config 1,16,4096,4096,128,0 --config 1,16,4096,4096,64,1 \
    > "$out/ws_masked64.log" 2>&1
echo "masked 64: exit $?"; tail -4 "$out/ws_masked64.log"
