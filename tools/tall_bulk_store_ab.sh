#!/usr/bin/env bash
# The bulk-store epilogue on 192-row tiles, with one and two Q buffers (with two, the Q wait no longer hides
# the register-store epilogue): GPU variant tests of the 192-row variants, then persistent A/Bs (ctas=0) in
# two processes with the order reversed. Logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/tall_bulk_store_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
timeout 150 python -m pytest -m gpu -q -n 4 -rfE -p no:cacheprovider tests/test_kernel_variants_gpu.py -k m192 \
    > "$out/tests.log" 2>&1
echo "tests: exit $?"; grep -E "^(FAILED|ERROR)" "$out/tests.log" | head -10; tail -1 "$out/tests.log"
configs=(--config 1,32,2048,2048,64,0 --config 4,32,1024,1024,64,0 --config 32,32,512,512,64,0
         --config 8,16,512,512,64,0 --config 2,32,1024,1024,64,0 --config 2,16,16384,16384,64,0)
a=q2:ctas=0,block_m=192,q_buffers=2 b=q2bulk:ctas=0,block_m=192,q_buffers=2,bulk_store=1
c=q1:ctas=0,block_m=192 d=q1bulk:ctas=0,block_m=192,bulk_store=1
for order in "$a $b $c $d" "$d $c $b $a"; do
    timeout 150 python benchmarks/compare_variants.py $order "${configs[@]}" > "$out/bulk.log" 2>&1
    echo "== $order (exit $?)"; tail -n 7 "$out/bulk.log"
done
