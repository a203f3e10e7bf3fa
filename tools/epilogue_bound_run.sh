#!/usr/bin/env bash
# How much of a masked launch the epilogue can be: tools/dispatched_ab.py on the dispatcher's plans against
# the same kernels built with EPILOGUE_PROBE 1 (the output rows are not written into the staging buffer; its
# barriers, fence and bulk copy stay) and 2 (no output at all). Both drop work and write wrong output, so the
# outputs are not compared; the gaps bound what a faster staging or epilogue could gain.
#
#   OUT=/tmp/out tools/epilogue_bound_run.sh [ROUNDS]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
timeout 500 python tools/dispatched_ab.py --rounds "${1:-6}" --no-compare --variant - --variant epilogue_probe=1 \
    --variant epilogue_probe=2 1,16,4096,64,0.1 1,16,4096,64,0.25 1,32,2048,64,0.19 1,16,16384,64,0.1 \
    1,16,4096,128,0.1 1,16,4096,128,0.25 1,16,4096,128,0.5 1,16,8192,128,0.1 1,16,8192,128,0.25 \
    > "$out/epilogue_bound.log" 2>&1
echo "A/B: exit $?"; tail -11 "$out/epilogue_bound.log"
