#!/usr/bin/env bash
# Device run: host overhead of the eager path on this machine (tools/host_overhead.py), SM clock and power
# under sustained load, ours against cuDNN (tools/clock_power_probe.py), and Nsight Compute's per-instruction
# stall sampling on the D64 and D128 targets' loops (tools/ncu_source_stalls.sh). Logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/clock_and_stalls_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc}
out=${OUT:?set OUT to the log directory}
timeout 90 python tools/host_overhead.py > "$out/host_overhead.log" 2>&1
echo "host overhead: exit $?"; tail -8 "$out/host_overhead.log"
timeout 150 python tools/clock_power_probe.py 3 > "$out/clock.log" 2>&1
echo "clock probe: exit $?"; cat "$out/clock.log" | tail -14
for shape in "1 32 2048 64" "4 32 4096 128"; do
    timeout 150 tools/ncu_source_stalls.sh $shape > "$out/stalls_${shape// /_}.log" 2>&1
    echo "== stalls $shape: exit $?"; head -16 "$out/stalls_${shape// /_}.log"
done
