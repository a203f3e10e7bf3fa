#!/usr/bin/env bash
# Two cheap re-checks under persistent launches: a deeper K/V ring on 192-row D64 tiles (3 and 4 stages
# against 2; one and two Q buffers) and the D128 large targets without the consumers' ping-pong (whose
# named barrier holds 6% of the D128 warp samples, twelfth session), each alternated in reversed order.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/stages_pingpong_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
d64=(--config 2,16,16384,16384,64,0 --config 1,32,2048,2048,64,0 --config 4,32,1024,1024,64,0)
a=s2:ctas=0,block_m=192 b=s3:ctas=0,block_m=192,stages=3 c=s4:ctas=0,block_m=192,stages=4
d=q2s2:ctas=0,block_m=192,q_buffers=2 e=q2s3:ctas=0,block_m=192,q_buffers=2,stages=3
for order in "$a $b $c $d $e" "$e $d $c $b $a"; do
    timeout 150 python benchmarks/compare_variants.py $order "${d64[@]}" > "$out/stages.log" 2>&1
    echo "== $order (exit $?)"; tail -n 4 "$out/stages.log"
done
d128=(--config 4,32,4096,4096,128,0 --config 4,32,4096,4096,128,1)
f=pp:ctas=0 g=serial:ctas=0,pingpong=0
for order in "$f $g" "$g $f"; do
    timeout 100 python benchmarks/compare_variants.py $order "${d128[@]}" > "$out/pingpong.log" 2>&1
    echo "== $order (exit $?)"; tail -n 3 "$out/pingpong.log"
done
