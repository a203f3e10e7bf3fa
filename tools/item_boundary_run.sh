#!/usr/bin/env bash
# Where a persistent CTA's time goes between work items: the launch timeline probe (tools/trace_timeline.py)
# on shapes with several items per CTA, short rows (the sweep's S 512 at B32 H32) to long.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/item_boundary_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
timeout 300 python tools/trace_timeline.py 32,32,512,64,0 8,32,1024,64,0 1,32,2048,64,0 2,16,4096,64,0 \
    32,32,512,128,0 4,32,4096,128,0 > "$out/item_boundary.log" 2>&1
echo "item boundary: exit $?"; cat "$out/item_boundary.log"
