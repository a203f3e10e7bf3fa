#!/usr/bin/env bash
# Device run for branch wip/producer-24 (head dim 256, 64 x 64 block masks, out=, the claiming thread):
# its GPU suites, D256 against cuDNN with ping-pong off and on, 64- vs 128-blocks at density 0.25, the
# dense targets against main's and cac654c's kernels (copies with precompiled caches in the ignored
# .mainwt and .oldwt, alternated twice), then the host-overhead breakdown. Every step has a time limit.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache tools/producer24_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1 BSK_CACHE_DIR=${BSK_CACHE_DIR:-/tmp/bskc}
out=${OUT:?set OUT to the log directory}
timeout 60 python -m pytest -m gpu -q -x tests/test_kernel_variants_gpu.py -k "m128_persistent-dense" > "$out/smoke.log" 2>&1 \
    || { tail -5 "$out/smoke.log"; echo "smoke failed or hung"; exit 1; }
timeout 230 python -m pytest -m gpu -q tests/test_kernel_variants_gpu.py tests/test_attention_gpu.py \
    tests/test_sparse_attention_gpu.py > "$out/tests.log" 2>&1
echo "tests: exit $?"; grep -E "FAILED|ERROR" "$out/tests.log" | head -20; tail -1 "$out/tests.log"
timeout 60 python benchmarks/compare_variants.py default pp:pingpong=1 --config 4,16,4096,4096,256,0 \
    --config 4,16,4096,4096,256,1 --json "$out/d256.json" > "$out/d256.log" 2>&1
echo "d256: exit $?"; tail -3 "$out/d256.log"
for block in 128 64; do
    timeout 40 python benchmarks/compare_variants.py default --density 0.25 --mask-block $block \
        --config 1,32,2048,2048,64,0 --config 1,16,8192,8192,64,0 > "$out/mask$block.log" 2>&1
    echo "mask $block: exit $?"; tail -3 "$out/mask$block.log"
done
dense=(--config 1,32,2048,2048,64,0 --config 4,32,4096,4096,128,0 --config 4,32,4096,4096,128,1 --config 2,16,16384,16384,64,0)
for round in 1 2; do
    for tree in .oldwt .mainwt .; do
        variant="dyn:ctas=0"; [ "$tree" = .oldwt ] && variant="persist:ctas=0"
        (cd "$tree" && PYTHONPATH=. BSK_CACHE_DIR=$PWD/.bskcache timeout 40 python benchmarks/compare_variants.py \
            $variant "${dense[@]}" > "$out/ab_${tree#.}_$round.log" 2>&1)
        echo "== $tree round $round: exit $?"; tail -4 "$out/ab_${tree#.}_$round.log"
    done
done
timeout 45 python tools/host_overhead.py "$out/eager_profile.txt" > "$out/host_overhead.log" 2>&1
echo "host_overhead: exit $?"; tail -14 "$out/host_overhead.log"
