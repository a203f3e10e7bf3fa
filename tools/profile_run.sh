#!/usr/bin/env bash
# Device run that profiles the gaps: Nsight Compute on every speed target (benchmarks/ncu_targets.sh) and
# on two block-masked shapes (B1 H32 S2048 D64 at density 0.25, B1 H16 S4096 D128 at 0.1), summaries in
# $OUT/profile.log, the CSVs packed into $OUT/ncu_csv.tgz (the device returns at most 8 files).
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/profile_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc}
out=${OUT:?set OUT to the log directory}
csv=$(mktemp -d)
{
    timeout 420 benchmarks/ncu_targets.sh "$csv"
    for shape in "1 32 2048 64 0 0.25" "1 16 4096 128 0 0.1"; do
        set -- $shape
        echo "== B$1 H$2 S$3 D$4 causal=$5 block mask density $6"
        timeout 90 benchmarks/ncu_roofline.sh "$1" "$2" "$3" "$4" "$5" "$csv" "$6" || echo "(ncu failed: exit $?)"
    done
} > "$out/profile.log" 2>&1
tar czf "$out/ncu_csv.tgz" -C "$csv" .
cat "$out/profile.log"
