#!/usr/bin/env bash
# Where do the consumer warps of one real launch stall, instruction by instruction? Nsight Compute's
# SourceCounters (warp-state sampling per SASS instruction) on the 4th launch of one shape, exported per
# instruction, then summarised by tools/ncu_source_summary.py: samples per stall reason and per opcode, and
# the instructions holding the most samples with their leading reasons.
#
#   OUT=/tmp/out tools/ncu_source_stalls.sh B H S D [causal] [density | wLEFT | wLEFTblocks]
#
# With a density the launch runs under profile_one.py's random 128 x 128 block mask of that density; with
# wLEFT under its sliding-window mask and window (LEFT, 0), wLEFTblocks the same mask without the window.
#
# Clocks are left as the card runs them (--clock-control none). The report and its CSV stay in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.
b=$1 h=$2 s=$3 d=$4 causal=${5:-0} density=${6:-}
out=${OUT:?set OUT to the log directory}
tag="b${b}h${h}s${s}d${d}c${causal}${density:+m$density}"
ncu --clock-control none --kernel-name attn_fwd_sm90 --launch-skip 3 --launch-count 1 \
    --section SourceCounters --section WarpStateStats -f -o "$out/src_$tag" \
    python3 benchmarks/profile_one.py "$b" "$h" "$s" "$d" "$causal" $density > "$out/ncu_src_$tag.log" 2>&1 \
    || { echo "ncu failed: $(tail -3 "$out/ncu_src_$tag.log")"; exit 1; }
ncu --import "$out/src_$tag.ncu-rep" --page source --csv --print-source sass > "$out/src_$tag.csv" 2>&1 \
    || { echo "export failed: $(head -3 "$out/src_$tag.csv")"; exit 1; }
python3 tools/ncu_source_summary.py "$out/src_$tag.csv"
