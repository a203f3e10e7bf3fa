#!/usr/bin/env bash
# The float4 exchange of split warpgroups (shared with the cluster merge since e7ae975) against the
# scalar one of 38b5b17 (a copy in .oldwt with its cache), alternated twice: 64 x 64 block masks at density
# 0.25 and plain split warpgroups where no cluster is taken (B1 H16 S512: 128 blocks of 64 rows).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/wgsplit_exchange_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?set OUT to the log directory}
export PYTHONUNBUFFERED=1
run() {  # tree, log name
    (cd "$1" && PYTHONPATH=. BSK_CACHE_DIR=$PWD/.bskcache timeout 60 python benchmarks/compare_variants.py \
        "default:ctas=0" --density 0.25 --mask-block 64 --config 1,32,2048,2048,64,0 --config 1,16,4096,4096,128,0 \
        --config 1,16,4096,4096,64,1 > "$out/$2_masked.log" 2>&1)
    (cd "$1" && PYTHONPATH=. BSK_CACHE_DIR=$PWD/.bskcache timeout 60 python benchmarks/compare_variants.py \
        "wg:block_m=64,split_warpgroups=1" --config 1,16,512,512,64,0 --config 1,16,512,512,64,1 \
        > "$out/$2_dense.log" 2>&1)
    echo "== $2"; tail -n 3 "$out/$2_masked.log"; tail -n 2 "$out/$2_dense.log"
}
for round in 1 2; do run .oldwt "old$round"; run . "new$round"; done
