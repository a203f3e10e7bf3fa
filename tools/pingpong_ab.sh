#!/usr/bin/env bash
# Ping-pong between the consumer warpgroups (KernelSpec.pingpong) on and off, on the tiles select_spec
# picks for the large and mid-size targets; the first variant repeats last (the run's own noise).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/pingpong_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
timeout 300 python benchmarks/compare_variants.py pp:pingpong=1 serial:pingpong=0 ppagain:pingpong=1 \
    --config 1,32,2048,2048,64,0 --config 1,16,1024,1024,64,0 --config 2,16,16384,16384,64,0 \
    --config 4,32,4096,4096,128,0 --config 4,32,4096,4096,128,1 --json "$out/pingpong.json" > "$out/pingpong.log" 2>&1
echo "pingpong: exit $?"; tail -6 "$out/pingpong.log"
