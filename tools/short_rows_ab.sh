#!/usr/bin/env bash
# A/B for short rows at large batch (B32 S512: 1.22-1.29x cuDNN's time in the sixth session's sweep), with
# no code change: persistent 128-row CTAs as dispatched, one CTA per item, 192-row tiles, and split
# warpgroups (64-row blocks, four stages) run persistent; the first variant repeats last.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/short_rows_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc}
out=${OUT:?set OUT to the log directory}
timeout 150 python benchmarks/compare_variants.py def:ctas=0 percta: m192:block_m=192,ctas=0 \
    ws:block_m=64,split_warpgroups=1,splits=1,ctas=0 def_again:ctas=0 --config 32,32,512,512,64,0 \
    --config 32,32,512,512,64,1 --config 32,16,512,512,128,0 --config 16,32,1024,1024,64,0 > "$out/short_rows.log" 2>&1
echo "short rows: exit $?"; cat "$out/short_rows.log"
