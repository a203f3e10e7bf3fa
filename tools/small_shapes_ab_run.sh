#!/usr/bin/env bash
# Device run of a kernel change aimed at small shapes: the whole GPU suite, memcheck, an A/B against the
# tree before the change (a copy of its bsk_cupy/, kernels_cu/ and benchmarks/ in .oldwt with its
# precompiled cache; tools/ab_against_checkout.sh: old, new, old, new) on the small targets as the
# dispatcher runs them (split warpgroups: 64 x 128 at D64, 64 x 64 at D128), B1 H32 S2048 D64 and a causal
# mid shape, then the timeline probe (tools/trace_timeline.py) on this tree. Used for the first claim
# decoded before the grid wait and for the grid wait moved past the set-up (RESULTS.md, sixth session).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/small_shapes_ab_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
gpu_suite
memcheck
variants="def:ctas=0 ws:block_m=64,split_warpgroups=1,splits=1 ws64:block_m=64,block_n=64,split_warpgroups=1,splits=1"
timeout 240 tools/ab_against_checkout.sh .oldwt "$variants" "$variants" 1,8,512,512,64,0 1,16,1024,1024,64,0 \
    1,8,512,512,128,0 1,8,512,512,128,1 1,32,2048,2048,64,0 4,16,2048,2048,128,1
echo "ab: exit $?"
timeout 60 python tools/trace_timeline.py 1,8,512,64,0 1,16,1024,64,0 1,8,512,128,0 > "$out/trace.log" 2>&1
echo "trace: exit $?"; cat "$out/trace.log"
