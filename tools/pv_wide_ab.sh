#!/usr/bin/env bash
# A/B of O += P V as one wgmma across all of D (m64n128k16 at head dim 128, m64n256k16 at 256) against
# one m64n64k16 per 64-column chunk of V, the previous tree's (a copy in .oldwt with its cache): the
# attention and variant tests first, then both trees alternated twice on the 128-row tiles select_spec
# picks (large shapes), the cluster split and split warpgroups at head dim 128 (small ones).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/pv_wide_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
attention_tests
ab large default default 4,32,4096,4096,128,0 4,32,4096,4096,128,1 1,32,2048,2048,128,0 1,16,8192,8192,128,0 \
    4,16,4096,4096,256,0 4,16,4096,4096,256,1
cl=block_m=64,split_warpgroups=1,cluster_split=2,block_n=64
ws=block_m=64,split_warpgroups=1,block_n=64
ab small "cl:$cl ws:$ws" "cl:$cl ws:$ws" 1,8,512,512,128,0 1,8,512,512,128,1 1,4,1024,1024,128,0 1,16,512,512,128,0
