#!/usr/bin/env bash
# A/B of the bulk-store epilogue (one cp.async.bulk per warpgroup) against stores from registers on the
# speed targets, with persistent CTAs (one per SM, as the dispatcher launches them); cuDNN in the same run.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/bulk_store_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc}
out=${OUT:?set OUT to the log directory}
timeout 150 python benchmarks/compare_variants.py registers:bulk_store=0,ctas=0 bulk:ctas=0 \
    > "$out/bulk_targets.log" 2>&1
echo "targets: exit $?"; tail -8 "$out/bulk_targets.log"
