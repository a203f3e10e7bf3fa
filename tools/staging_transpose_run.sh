#!/usr/bin/env bash
# The bulk-store epilogue's staging rows written conflict-free (epilogue.cuh stage_row: quad transpose by
# shuffles, 16-byte stores) against the tree in .oldwt (8-way conflicted 4-byte stores). Steps (default:
# all): suite (the whole GPU suite), dense (128-row D128 and D64 grids), masked (block masks at d 0.25),
# each A/B alternated twice by tools/ab_against_checkout.sh on persistent CTAs. Logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/staging_transpose_run.sh [suite] [dense] [masked]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
for step in ${*:-suite dense masked}; do
    case $step in
        suite) gpu_suite 260 ;;
        dense) ab dense default:ctas=0 default:ctas=0 4,32,4096,4096,128,0 4,32,4096,4096,128,1 \
                   8,16,2048,2048,128,1 1,16,8192,8192,64,0 ;;
        masked) ab masked "default:ctas=0 --density 0.25" "default:ctas=0 --density 0.25" 1,32,2048,2048,64,0 \
                    1,16,4096,4096,64,0 1,16,8192,8192,128,0 2,16,4096,4096,128,1 ;;
    esac
done
