#!/usr/bin/env bash
# Block-masked head-dim-64 grids (two Q buffers, persistent CTAs, rows in row order): the bulk-store
# epilogue (output rows staged in shared memory, one cp.async.bulk per warpgroup) against stores straight
# from registers, in this tree and in the tree in .oldwt, both orders, densities 0.1 and 0.25; A and B
# replace the two compare_variants variants (e.g. B=s3:ctas=0,q_buffers=2,stages=3). Logs in $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache [A=...] [B=...] tools/masked_store_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
configs=(--config 1,32,2048,2048,64,0 --config 1,16,4096,4096,64,0 --config 4,16,2048,2048,64,0
         --config 1,16,8192,8192,64,0)
a=${A:-bulk:ctas=0,q_buffers=2} b=${B:-regs:ctas=0,q_buffers=2,bulk_store=0}
for tree in .oldwt .; do
    for density in 0.1 0.25; do
        for order in "$a $b" "$b $a"; do
            log="$out/store_$(basename $(realpath $tree))_$density.log"
            (cd $tree && BSK_CACHE_DIR=$PWD/.bskcache timeout 150 python benchmarks/compare_variants.py $order \
                --density $density "${configs[@]}" > "$log" 2>&1)
            echo "== $tree density $density: $order (exit $?)"; tail -n 4 "$log"
        done
    done
done
