#!/usr/bin/env bash
# Two Q buffers (q_buffers=2) against one, both from this tree in the same process, persistent CTAs as
# the dispatcher launches them (ctas=0), in three processes with the order of the two swapped each time;
# then the checks closing a kernel change (tools/gpu_checkpoint.sh). Logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/q_buffers_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
configs=()
for c in 8,32,1024,1024,64,0 1,32,2048,2048,64,0 2,32,1024,1024,64,0 1,16,4096,4096,64,0 1,16,8192,8192,64,0 \
         2,16,16384,16384,64,0 32,32,512,512,64,0 1,16,1024,1024,64,0 1,32,2048,2048,64,0; do
    configs+=(--config "$c")
done
one=one:ctas=0 two=two:ctas=0,q_buffers=2
for order in "$one $two" "$two $one" "$one $two"; do
    timeout 150 python benchmarks/compare_variants.py $order "${configs[@]}" > "$out/q_buffers.log" 2>&1
    echo "== compare_variants $order: exit $?"; tail -n $(( ${#configs[@]} / 2 + 1 )) "$out/q_buffers.log"
done
bash tools/gpu_checkpoint.sh
