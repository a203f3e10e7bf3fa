#!/usr/bin/env bash
# First device run of the cluster split (split warpgroups whose KV tiles two CTAs of a cluster share, merged
# through distributed shared memory): the variant tests and the dispatched paths, the A/B of split
# warpgroups with and without the cluster on small shapes (first variant repeated last, for the run's own
# noise), the timeline of the headline shapes, and this tree against the previous kernel (.oldwt) on the
# large targets, whose SASS the shared-memory layout change also touched.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/cluster_split_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
timeout 150 python -m pytest -m gpu -q -n 4 -rfE -p no:cacheprovider tests/test_kernel_variants_gpu.py \
    -k "cluster or wgsplit" > "$out/variant_tests.log" 2>&1
echo "variant tests: exit $?"; grep -E "^(FAILED|ERROR)" "$out/variant_tests.log" | head -10; tail -1 "$out/variant_tests.log"
cv="python benchmarks/compare_variants.py"
ws="block_m=64,split_warpgroups=1"
timeout 100 $cv wg:$ws cl:$ws,cluster_split=2 m128:block_m=128 wgagain:$ws \
    --config 1,8,512,512,64,0 --config 1,8,512,512,64,1 --config 2,4,512,512,64,0 --config 1,4,1024,1024,64,0 \
    --config 1,2,2048,2048,64,0 > "$out/ab_d64.log" 2>&1
echo "d64: exit $?"; tail -6 "$out/ab_d64.log"
timeout 80 $cv wg:$ws,block_n=64 cl:$ws,block_n=64,cluster_split=2 m128:block_m=128 wgagain:$ws,block_n=64 \
    --config 1,8,512,512,128,0 --config 1,8,512,512,128,1 --config 1,4,1024,1024,128,0 > "$out/ab_d128.log" 2>&1
echo "d128: exit $?"; tail -4 "$out/ab_d128.log"
timeout 50 python tools/trace_timeline.py 1,8,512,64,0 1,8,512,128,0 > "$out/trace.log" 2>&1
echo "trace: exit $?"; tail -30 "$out/trace.log"
OUT=$out timeout 200 tools/ab_against_checkout.sh .oldwt default default 4,32,4096,4096,128,0 \
    4,32,4096,4096,128,1 1,32,2048,2048,64,0 1,16,1024,1024,64,0 > "$out/old_vs_new.log" 2>&1
echo "old vs new: exit $?"; cat "$out/old_vs_new.log"
