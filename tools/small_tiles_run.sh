#!/usr/bin/env bash
# Device run after split-warpgroup tiles took four stages: the whole GPU suite, memcheck, the timeline
# probe on the small targets, and the next A/Bs for them: head dim 128 on 64 x 64 split-warpgroup tiles
# (which take four stages there) against 64 x 128 with two; 128-row tiles with four stages at B1 H16 S1024
# D64. Each A/B repeats its first variant last. Five logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/small_tiles_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
cv="python benchmarks/compare_variants.py"
gpu_suite
memcheck
timeout 90 python tools/trace_timeline.py 1,8,512,64,0 1,16,1024,64,0 1,8,512,128,0 > "$out/trace.log" 2>&1
echo "trace: exit $?"; cat "$out/trace.log"
timeout 60 $cv n128:block_m=64,split_warpgroups=1,splits=1 n64:block_m=64,block_n=64,split_warpgroups=1,splits=1 \
    n128again:block_m=64,split_warpgroups=1,splits=1 --config 1,8,512,512,128,0 --config 1,8,512,512,128,1 \
    --config 1,16,512,512,128,0 --config 1,4,1024,1024,128,0 > "$out/d128_small.log" 2>&1
echo "d128 small: exit $?"; tail -5 "$out/d128_small.log"
timeout 60 $cv s2:block_m=128,ctas=0 s4:block_m=128,stages=4,ctas=0 s2again:block_m=128,ctas=0 \
    --config 1,16,1024,1024,64,0 --config 1,32,1024,1024,64,1 --config 1,32,2048,2048,64,0 > "$out/m128_s4.log" 2>&1
echo "m128 s4: exit $?"; tail -4 "$out/m128_s4.log"
