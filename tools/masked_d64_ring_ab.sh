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
ring="pp:ctas=0,q_buffers=2 serial:ctas=0,q_buffers=2,pingpong=0 serial4:ctas=0,q_buffers=2,pingpong=0,stages=4"
ring+=" pp4:ctas=0,q_buffers=2,stages=4"
for step in ${*:-ring pdl}; do
    case $step in
        ring)
            for density in ${DENSITIES:-0.1 0.25}; do
                both_listings "masked_d64_ring_$density" 3 "$ring" --density "$density" "${configs[@]}"
            done ;;
        pdl) both_listings masked_d64_pdl 3 "pdl:ctas=0,q_buffers=2 nopdl:ctas=0,q_buffers=2,pdl=0" --density 0.5 \
                 "${configs[@]}" ;;
        *) echo "unknown step $step"; exit 2 ;;
    esac
done
