#!/usr/bin/env bash
# The head-dim-64 tile rule (select_spec) re-checked with persistent CTAs (ctas=0, as get_plan launches):
# 128- against 192-row tiles, with one Q buffer and, on items of up to 16 KV tiles, with two; then long
# and causal rows, one buffer. Two processes each, the variants' order reversed in the second. Logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/tile_rule_persistent_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
short=(--config 1,32,2048,2048,64,0 --config 2,16,2048,2048,64,0 --config 2,32,1024,1024,64,0
       --config 4,32,1024,1024,64,0 --config 8,32,1024,1024,64,0 --config 32,32,512,512,64,0
       --config 8,16,512,512,64,0 --config 1,64,1024,1024,64,0)
long=(--config 1,16,4096,4096,64,0 --config 1,32,4096,4096,64,0 --config 1,16,8192,8192,64,0
      --config 2,16,16384,16384,64,0 --config 1,32,2048,2048,64,1 --config 4,16,2048,2048,64,1
      --config 8,32,1024,1024,64,1 --config 1,16,8192,8192,64,1)
v128=m128:ctas=0,block_m=128 v192=m192:ctas=0,block_m=192
q128=m128q2:ctas=0,block_m=128,q_buffers=2 q192=m192q2:ctas=0,block_m=192,q_buffers=2
for order in "$v128 $v192 $q128 $q192" "$q192 $q128 $v192 $v128"; do
    timeout 150 python benchmarks/compare_variants.py $order "${short[@]}" > "$out/short.log" 2>&1
    echo "== short items: $order (exit $?)"; tail -n 9 "$out/short.log"
done
for order in "$v128 $v192" "$v192 $v128"; do
    timeout 150 python benchmarks/compare_variants.py $order "${long[@]}" > "$out/long.log" 2>&1
    echo "== long and causal rows: $order (exit $?)"; tail -n 9 "$out/long.log"
done
