#!/usr/bin/env bash
# A/B of the softmax's row sum as a pairwise tree on the 192-row tiles (like their row maximum) against the
# running chain (the previous tree's, a copy in .oldwt with its cache), both trees alternated twice on the
# shapes select_spec gives 192-row tiles. Changes the sum's rounding (deterministically), not the outputs'
# accuracy (max_err against float32 SDPA).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/sum_tree_ab.sh
# Ran with the tree in the working copy (not committed: rejected, benchmarks/RESULTS.md, eighth session).
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
ab tall default default 2,16,16384,16384,64,0 2,16,16384,16384,64,1 4,32,2048,2048,64,0 1,48,2048,2048,64,0 \
    4,32,4096,4096,64,0
