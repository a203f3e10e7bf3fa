#!/usr/bin/env bash
# A/B of the bulk-store epilogue (one cp.async.bulk per warpgroup) against stores from registers: the speed
# targets on the dispatcher's 128/192-row tiles, and small shapes on split warpgroups; cuDNN in the same run.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/bulk_store_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc}
out=${OUT:?set OUT to the log directory}
timeout 120 python benchmarks/compare_variants.py registers bulk:bulk_store=1 > "$out/bulk_targets.log" 2>&1
echo "targets: exit $?"; tail -8 "$out/bulk_targets.log"
small=(--config 1,8,512,512,64,0 --config 1,16,1024,1024,64,0 --config 1,8,512,512,128,0 --config 2,8,256,256,64,0)
timeout 60 python benchmarks/compare_variants.py wg:block_m=64,split_warpgroups=1 \
    wgbulk:block_m=64,split_warpgroups=1,bulk_store=1 "${small[@]}" > "$out/bulk_small.log" 2>&1
echo "small: exit $?"; tail -5 "$out/bulk_small.log"
