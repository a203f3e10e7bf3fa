#!/usr/bin/env bash
# A kernel change against the tree in .oldwt (ab_against_checkout.sh: old, new, old, new), where it matters
# at item boundaries. Steps (default: tests memcheck ab plain): tests (the whole GPU suite), memcheck
# (tools/sanitize_shapes.py), ab (persistent CTAs with two Q buffers as dispatched: block masks in row order
# at densities 0.1 and 0.25, and dense 192-row grids with the short-items plan), plain (one-Q kernels: the
# headline's cluster tiles, 128-row tiles at head dim 128, causal too). Logs in $OUT. Used for the
# fifteenth session's cross-item pipelining (benchmarks/results/2026-11-26-s15-cross-item.patch applied to
# its base, the base in .oldwt) and the epilogue's reciprocal and log2 (benchmarks/RESULTS.md).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/two_q_ab_run.sh [tests] [memcheck] [ab] [plain]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
steps=${*:-tests memcheck ab plain}
masked=(1,32,2048,2048,64,0 1,16,4096,4096,64,0 4,16,2048,2048,64,0 1,16,8192,8192,64,0)
dense=(1,32,2048,2048,64,0 4,32,1024,1024,64,0 8,16,512,512,64,0 32,32,512,512,64,0)
for step in $steps; do
    case $step in
        tests) gpu_suite 300 ;;
        memcheck) memcheck ;;
        ab)
            for density in 0.1 0.25; do
                v="x:ctas=0,q_buffers=2 --density $density"
                ab "masked_$density" "$v" "$v" "${masked[@]}"
            done
            ab dense "x:ctas=0,q_buffers=2,tall=-1" "x:ctas=0,q_buffers=2,tall=-1" "${dense[@]}" ;;
        plain)
            ab plain_cluster "x:block_m=64,split_warpgroups=1,cluster_split=2,splits=2" \
                "x:block_m=64,split_warpgroups=1,cluster_split=2,splits=2" 1,8,512,512,64,0 1,16,1024,1024,64,0
            ab plain_d128 "x:ctas=0" "x:ctas=0" 4,32,4096,4096,128,0 8,16,2048,2048,128,1 ;;
        *) echo "unknown step $step"; exit 2 ;;
    esac
done
