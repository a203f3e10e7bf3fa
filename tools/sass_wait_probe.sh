#!/usr/bin/env bash
# Does the softmax overlap the in-flight P V product? Compiles one attention variant for sm_90a (no GPU
# needed) and counts, between the first `WARPGROUP.DEPBAR.LE gsb0, 0x1` (S_t landed, P_{t-1} V_{t-1} still
# running) and the next `... 0x0` in the SASS, the MUFU.EX2 (exponentials), SHFL and FFMA (scale folding).
# 64 MUFU + 2 corrections = 66 when the whole tile's softmax is between the waits; 0 = ptxas hoisted the
# wait above it.
#
#   [PYTHON=python3] tools/sass_wait_probe.sh [HEAD_DIM=128] [CAUSAL=False] [KernelSpec fields, e.g. "block_m=192"]
#   (needs cuobjdump on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
head_dim=${1:-128} causal=${2:-False} fields=${3:-}
cache=$(mktemp -d)
cubin=$(BSK_CACHE_DIR=$cache PYTHONPATH=. ${PYTHON:-python3} -c "
from bsk_cupy.compile import build
from bsk_cupy.specs import KernelSpec
print(build(KernelSpec($head_dim, 'float16', $causal, ${fields:+$fields})).cubin_path)")
sass=$cache/sass.txt
cuobjdump -sass "$cubin" > "$sass"
first=$(grep -n "DEPBAR.LE gsb0, 0x1" "$sass" | head -1 | cut -d: -f1)
last=$(awk -v a="$first" 'NR > a && /DEPBAR.LE gsb0, 0x0/ {print NR; exit}' "$sass")
between=$(sed -n "${first},${last}p" "$sass")
echo "between the waits: MUFU.EX2 $(grep -c MUFU.EX2 <<<"$between"), SHFL $(grep -c SHFL <<<"$between")," \
     "FFMA $(grep -c 'FFMA ' <<<"$between")"
rm -rf "$cache"
