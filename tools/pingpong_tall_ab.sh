#!/usr/bin/env bash
# Ping-pong on and off for the three-consumer 192-row tiles (head dim 64), alternated twice in one process
# on the shapes select_spec gives them (tools/pingpong_ab.sh saw the serial order 2% ahead at B2 H16 S16384).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/pingpong_tall_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
t=block_m=192
timeout 300 python benchmarks/compare_variants.py pp:$t serial:$t,pingpong=0 pp2:$t serial2:$t,pingpong=0 \
    --config 2,16,16384,16384,64,0 --config 2,16,16384,16384,64,1 --config 1,16,8192,8192,64,1 \
    --config 4,32,2048,2048,64,0 --config 1,48,2048,2048,64,0 --config 4,32,4096,4096,64,0 \
    --json "$out/pingpong_tall.json" > "$out/pingpong_tall.log" 2>&1
echo "pingpong tall: exit $?"; tail -7 "$out/pingpong_tall.log"
