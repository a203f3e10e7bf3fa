#!/usr/bin/env bash
# benchmarks/ncu_roofline.sh on every GPU speed target of bsk_cupy/targets.json, one summary per shape.
#
#   benchmarks/ncu_targets.sh OUTDIR     (CSVs in OUTDIR, the summaries on stdout)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?give the output directory}
mkdir -p "$out"
python3 -c "
import json
for t in json.load(open('bsk_cupy/targets.json'))['gpu']:
    b, h, s, d, causal = t['config']
    print(b, h, s, d, int(causal))
" | while read -r b h s d causal; do
    echo "== B$b H$h S$s D$d causal=$causal"
    timeout 120 benchmarks/ncu_roofline.sh "$b" "$h" "$s" "$d" "$causal" "$out" || echo "(ncu failed: exit $?)"
done
