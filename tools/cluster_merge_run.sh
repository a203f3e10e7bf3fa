#!/usr/bin/env bash
# A/B of a cluster-merge change against earlier trees (copies in ignored folders with their caches, .oldwt
# unless OTHERS names them): the cluster tests and memcheck first, then the cluster-split variant from this
# tree and each other alternated twice on the small shapes the dispatcher runs it on (head dim 64 on
# 64 x 128 tiles, 128 on 64 x 64), split warpgroups without a cluster on one shape, then the timelines.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache [OTHERS=".oldwt .midwt"] tools/cluster_merge_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
timeout 120 python -m pytest -m gpu -q -n 4 -rfE -p no:cacheprovider tests/test_attention_gpu.py \
    "tests/test_kernel_variants_gpu.py::test_cluster_split_with_a_block_mask" \
    "tests/test_kernel_variants_gpu.py::test_variant_matches_float64" > "$out/cluster_tests.log" 2>&1
echo "cluster tests: exit $?"; grep -E "^(FAILED|ERROR)" "$out/cluster_tests.log" | head -10; tail -1 "$out/cluster_tests.log"
memcheck
cl=block_m=64,split_warpgroups=1,cluster_split=2
ws=block_m=64,split_warpgroups=1
for other in ${OTHERS:-.oldwt}; do
    tag=${other#.}
    OUT=$out timeout 150 tools/ab_against_checkout.sh "$other" "cl:$cl" "cl:$cl" 1,8,512,512,64,0 1,8,512,512,64,1 \
        1,4,1024,1024,64,0 1,2,2048,2048,64,0 > "$out/ab_d64_$tag.log" 2>&1
    echo "A/B d64 vs $other: exit $?"; cat "$out/ab_d64_$tag.log"
    OUT=$out timeout 120 tools/ab_against_checkout.sh "$other" "cl:$cl,block_n=64" "cl:$cl,block_n=64" \
        1,8,512,512,128,0 1,8,512,512,128,1 1,4,1024,1024,128,0 > "$out/ab_d128_$tag.log" 2>&1
    echo "A/B d128 vs $other: exit $?"; cat "$out/ab_d128_$tag.log"
    OUT=$out timeout 100 tools/ab_against_checkout.sh "$other" "ws:$ws" "ws:$ws" 1,16,512,512,64,0 \
        1,16,512,512,128,0 > "$out/ab_wgsplit_$tag.log" 2>&1
    echo "A/B split warpgroups vs $other: exit $?"; cat "$out/ab_wgsplit_$tag.log"
done
timeout 40 python tools/trace_timeline.py 1,8,512,64,0 1,8,512,128,0 > "$out/trace.log" 2>&1
echo "trace: exit $?"; tail -28 "$out/trace.log"
