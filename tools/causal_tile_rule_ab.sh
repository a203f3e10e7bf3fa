#!/usr/bin/env bash
# Causal head-dim-64 tile heights: 128- against 192-row tiles with persistent CTAs (ctas=0) on the shapes
# that tell causal tile rules apart (eleventh session: select_spec's rounds-of-rows rule against one that
# counts each block's KV tiles up to its diagonal, which lost 11% at B1 H4 S16384), two processes with the
# order reversed; then `bsk-cupy validate`.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/causal_tile_rule_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
configs=(--config 4,32,4096,4096,64,1 --config 1,32,4096,4096,64,1 --config 1,4,16384,16384,64,1
         --config 1,16,8192,8192,64,1 --config 2,16,4096,4096,64,1 --config 1,32,2048,2048,64,1)
a=m128:ctas=0,block_m=128 b=m192:ctas=0,block_m=192
for order in "$a $b" "$b $a"; do
    timeout 150 python benchmarks/compare_variants.py $order "${configs[@]}" > "$out/causal.log" 2>&1
    echo "== $order (exit $?)"; tail -n 7 "$out/causal.log"
done
timeout 200 python -m bsk_cupy validate > "$out/validate.log" 2>&1
echo "validate: exit $?"; cp H100_VALIDATION_REPORT.md "$out/" 2>/dev/null
grep -A12 "^## Speed targets" "$out/H100_VALIDATION_REPORT.md" 2>/dev/null
