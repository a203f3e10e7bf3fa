#!/usr/bin/env bash
# A/B of the producer's K/V issue order for split warpgroups (K of both warpgroups' tiles, then their V)
# against the previous tree (a copy in .oldwt with its cache): the attention and variant tests first, then
# both trees alternated twice on the cluster split (head dim 64 and 128), on split warpgroups without a
# cluster, and on 64 x 64 block masks at density 0.25 (which run split warpgroups on every shape).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/kv_order_ab.sh
# Ran on branch wip/kv-order (the change was rejected: benchmarks/RESULTS.md, eighth session).
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
attention_tests
cl=block_m=64,split_warpgroups=1,cluster_split=2
ws=block_m=64,split_warpgroups=1
ab d64 "cl:$cl" "cl:$cl" 1,8,512,512,64,0 1,8,512,512,64,1 1,4,1024,1024,64,0 1,2,2048,2048,64,0
ab d128 "cl:$cl,block_n=64" "cl:$cl,block_n=64" 1,8,512,512,128,0 1,8,512,512,128,1 1,4,1024,1024,128,0
ab wgsplit "ws:$ws" "ws:$ws" 1,16,512,512,64,0 1,16,512,512,64,1 1,16,512,512,128,0 1,16,512,512,128,1 \
    2,16,1024,1024,128,0
masked=(--density 0.25 --mask-block 64 --config 1,32,2048,2048,64,0 --config 1,16,4096,4096,128,0
        --config 1,16,4096,4096,64,1)
for round in 1 2; do
    (cd .oldwt && PYTHONPATH=. BSK_CACHE_DIR=$PWD/.bskcache timeout 100 python benchmarks/compare_variants.py \
        default "${masked[@]}" > "$out/masked_old$round.log" 2>&1)
    echo "== masked, .oldwt, round $round"; tail -4 "$out/masked_old$round.log"
    timeout 100 python benchmarks/compare_variants.py default "${masked[@]}" > "$out/masked_new$round.log" 2>&1
    echo "== masked, this tree, round $round"; tail -4 "$out/masked_new$round.log"
done
