#!/usr/bin/env bash
# Masked head-dim-64 grids on the dispatched two-Q kernel (128-row tiles, random masks in row order,
# persistent CTAs): with and without the consumers' ping-pong, with two and four K/V stages (without the
# ping-pong the consumers may drift apart by up to the ring's depth, so that one's epilogue can overlap the
# other's GEMMs); and the same kernel launched without programmatic dependent launch at d 0.5 (pdl=0; its
# CUDA-graph time read 6-9% above its eager time in perf_sparse since the fourteenth session). Both
# listings per density (DENSITIES, default 0.1 0.25), each in its own process. Logs under $OUT.
#   OUT=/tmp/out BSK_CACHE_DIR=$PWD/.bskcache [DENSITIES="0.1 0.25"] tools/masked_d64_ring_ab.sh [ring] [pdl]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/device_steps.sh
configs=(--config 1,16,4096,4096,64,0 --config 1,32,2048,2048,64,0)
a="pp:ctas=0,q_buffers=2 serial:ctas=0,q_buffers=2,pingpong=0 serial4:ctas=0,q_buffers=2,pingpong=0,stages=4 pp4:ctas=0,q_buffers=2,stages=4"
b="pp4:ctas=0,q_buffers=2,stages=4 serial4:ctas=0,q_buffers=2,pingpong=0,stages=4 serial:ctas=0,q_buffers=2,pingpong=0 pp:ctas=0,q_buffers=2"
for step in ${*:-ring pdl}; do
    case $step in
        ring)
            for density in ${DENSITIES:-0.1 0.25}; do
                log="$out/masked_d64_ring_$density.log"
                for order in "$a" "$b"; do
                    timeout 200 python benchmarks/compare_variants.py $order --density "$density" "${configs[@]}" >> "$log" 2>&1
                    echo "== density $density: $order (exit $?)"; tail -n 3 "$log"
                done
            done ;;
        pdl)
            log="$out/masked_d64_pdl.log"
            for order in "pdl:ctas=0,q_buffers=2 nopdl:ctas=0,q_buffers=2,pdl=0" \
                         "nopdl:ctas=0,q_buffers=2,pdl=0 pdl:ctas=0,q_buffers=2"; do
                timeout 200 python benchmarks/compare_variants.py $order --density 0.5 "${configs[@]}" >> "$log" 2>&1
                echo "== density 0.5: $order (exit $?)"; tail -n 3 "$log"
            done ;;
        *) echo "unknown step $step"; exit 2 ;;
    esac
done
