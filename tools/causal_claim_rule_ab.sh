#!/usr/bin/env bash
# The causal D64 tile height where a model of the kernel's claims (items in claim order, each costing its
# KV tiles up to the diagonal times its rows, plus a fixed cost, on 132 persistent CTAs) disagrees with the
# rounds-of-rows rule of select_spec: 128 against 192 rows on persistent CTAs, in one process, twice.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/causal_claim_rule_ab.sh          # the fitting shapes
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/causal_claim_rule_ab.sh check    # the rule's other moves
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
configs=(--config 1,4,8192,8192,64,1 --config 1,16,8192,8192,64,1 --config 2,8,8192,8192,64,1
         --config 4,32,512,512,64,1 --config 8,16,512,512,64,1 --config 4,16,2048,2048,64,1
         --config 1,4,16384,16384,64,1)
if [ "${1:-}" = check ]; then  # shapes the fitted rule moves to 192 rows that the fit did not include
    configs=(--config 1,4,32768,32768,64,1 --config 2,2,8192,8192,64,1 --config 8,2,8192,8192,64,1)
fi
for round in 1 2; do
    timeout 200 python benchmarks/compare_variants.py "m128:block_m=128,ctas=0" "m192:block_m=192,ctas=0" \
        "${configs[@]}" > "$out/causal_rule$round.log" 2>&1
    echo "== round $round"; tail -n $(( ${#configs[@]} / 2 + 1 )) "$out/causal_rule$round.log"
done
