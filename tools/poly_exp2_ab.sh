#!/usr/bin/env bash
# A/B of the share of the softmax's exp2 computed by the cubic on the FMA pipe (KernelSpec.poly_exp2, in
# eighths) against MUFU only: the tiles select_spec picks on the large and mid-size targets, then the
# cluster split on the small ones. The first variant repeats last (the run's own noise); max_err is against
# SDPA's float32 math backend.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/poly_exp2_ab.sh
# Ran on branch wip/poly-exp2 (the change was rejected: benchmarks/RESULTS.md, eighth session).
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
cv="python benchmarks/compare_variants.py"
timeout 240 $cv p0:poly_exp2=0 p1:poly_exp2=1 p2:poly_exp2=2 p3:poly_exp2=3 p0again:poly_exp2=0 \
    --config 4,32,4096,4096,128,0 --config 4,32,4096,4096,128,1 --config 2,16,16384,16384,64,0 \
    --config 2,16,16384,16384,64,1 --config 1,32,2048,2048,64,0 --config 1,16,1024,1024,64,0 \
    --json "$out/large.json" > "$out/large.log" 2>&1
echo "large: exit $?"; tail -7 "$out/large.log"
cl="block_m=64,split_warpgroups=1,cluster_split=2"
for d in 64 128; do
    tiles=$cl,block_n=$((d == 64 ? 128 : 64))
    timeout 120 $cv c0:$tiles c1:$tiles,poly_exp2=1 c2:$tiles,poly_exp2=2 c3:$tiles,poly_exp2=3 c0again:$tiles \
        --config 1,8,512,512,$d,0 --config 1,8,512,512,$d,1 --config 1,4,1024,1024,$d,0 \
        --json "$out/small$d.json" > "$out/small$d.log" 2>&1
    echo "small D$d: exit $?"; tail -4 "$out/small$d.log"
done
