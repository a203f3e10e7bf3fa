#!/usr/bin/env bash
# A/B of where a consumer hands the ping-pong turn to the next warpgroup: right after issuing S_t = Q K_t^T
# (so the next warpgroup's S can go onto the tensor cores before this one's P V) against after both
# issues (the previous tree's, a copy in .oldwt with its cache); both trees alternated twice.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/pingpong_handover_ab.sh
# Ran with the early hand-over in the working copy (not committed: rejected, benchmarks/RESULTS.md, eighth
# session).
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
ab all default default 1,32,2048,2048,64,0 1,16,1024,1024,64,0 2,16,16384,16384,64,0 4,32,4096,4096,128,0 \
    4,32,4096,4096,128,1
