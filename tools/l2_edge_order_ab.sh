#!/usr/bin/env bash
# Row order against the tail order near the L2 rule's edge (K and V 24-32 MiB) for rows of 32, 64 and
# 128 blocks (tools/dispatched_ab.py tail=K with K the dispatcher's tail_heads for each shape), logs in $OUT.
#   OUT=/tmp/out tools/l2_edge_order_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. BSK_CACHE_DIR=$PWD/.bskcache
run() { k=$1; shift; timeout 150 python tools/dispatched_ab.py --rounds 3 --variant - --variant tail=$k "$@" > $OUT/edge_$k.log 2>&1; echo "tail=$k rc $?"; grep -A30 "^shape" $OUT/edge_$k.log; }
run 8 1,12,8192,64,0.1 1,12,8192,64,0.5 1,16,8192,64,0.1 1,16,8192,64,0.5
run 4 1,6,16384,64,0.1 1,6,16384,64,0.5 1,8,16384,64,0.1 1,8,16384,64,0.5 1,6,8192,128,0.1 1,6,8192,128,0.5 \
    1,8,8192,128,0.1 1,8,8192,128,0.5
run 16 1,24,4096,64,0.1 1,24,4096,64,0.5 1,32,4096,64,0.1 1,32,4096,64,0.5
