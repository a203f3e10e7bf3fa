#!/usr/bin/env bash
# A/B of the softmax's row maximum as a pairwise tree against the running chain (the previous tree's, a
# copy in .oldwt with its cache), both trees alternated twice: the tiles select_spec picks on the large
# targets (head dim 64, 128, 256; causal too) and the mid-size head-dim-64 ones, then the cluster split on
# the headline shapes. fmaxf is exact: the outputs are bit-identical, only the time can move.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/max_tree_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
ab large default default 4,32,4096,4096,128,0 4,32,4096,4096,128,1 2,16,16384,16384,64,0 2,16,16384,16384,64,1 \
    1,32,2048,2048,64,0 1,16,1024,1024,64,0 4,16,4096,4096,256,0
cl=block_m=64,split_warpgroups=1,cluster_split=2
ab small "cl:$cl" "cl:$cl" 1,8,512,512,64,0 1,8,512,512,64,1 1,4,1024,1024,64,0
