#!/usr/bin/env bash
# Device run for the dynamic tile scheduler: the variant and sparse correctness suites, then one CTA per
# item vs persistent CTAs (dynamic and static hand-out) on dense, causal and block-masked shapes.
#   OUT=/tmp/out tools/dyn_sched_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc}
out=${OUT:?set OUT to the log directory}
timeout 90 python -m pytest -m gpu -q -x tests/test_kernel_variants_gpu.py -k persistent > "$out/smoke.log" 2>&1 \
    || { tail -5 "$out/smoke.log"; echo "persistent smoke failed or hung"; exit 1; }
timeout 240 python -m pytest -m gpu -q -x tests/test_kernel_variants_gpu.py tests/test_sparse_attention_gpu.py > "$out/tests.log" 2>&1
tail -3 "$out/tests.log"
EXTRA_CONFIGS="8,16,512,512,64,0 8,16,2048,2048,128,1 1,32,2048,2048,64,1 2,16,8192,8192,64,1" \
    timeout 200 tools/device_ab.sh "" item dyn:ctas=0 static:ctas=0,dyn=0
masked=()
for c in 1,32,2048,2048,64,0 1,16,8192,8192,64,0 1,16,8192,8192,128,0 2,16,4096,4096,128,1; do masked+=(--config "$c"); done
timeout 150 python benchmarks/compare_variants.py item dyn:ctas=0 static:ctas=0,dyn=0 --density 0.3 "${masked[@]}" \
    --json "$out/masked.json" > "$out/masked.log" 2>&1
tail -8 "$out/masked.log"
