#!/usr/bin/env bash
# Profile our real attention kernel with Nsight Compute and print SM throughput, tensor-pipe utilisation,
# the XU (MUFU: exp2) pipe's issue rate and DRAM throughput for one launch (the 4th, after warm-up). ncu drops metrics this chip does not
# have without failing; the summary says 'not reported' for those.
#
#   benchmarks/ncu_roofline.sh B H S D [causal] [OUTDIR]
#
# Clocks are left as the card runs them (--clock-control none). Full CSV goes to OUTDIR/ncu_<shape>.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
b=$1 h=$2 s=$3 d=$4 causal=${5:-0} out=${6:-.}
tag="b${b}h${h}s${s}d${d}c${causal}"
export PYTHONPATH=.
metrics=sm__throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,dram__throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active
metrics+=,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active
metrics+=,sm__warps_active.avg.pct_of_peak_sustained_active
metrics+=,gpu__time_duration.sum
ncu --clock-control none --kernel-name attn_fwd_sm90 --launch-skip 3 --launch-count 1 \
    --metrics "$metrics" --csv --page raw \
    python3 benchmarks/profile_one.py "$b" "$h" "$s" "$d" "$causal" > "$out/ncu_${tag}.csv"
python3 - "$out/ncu_${tag}.csv" <<'PY'
import csv, sys
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
header, units, values = rows[0], rows[1], rows[2]
names = {
    "gpu__time_duration.sum": "kernel time",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed": "SM throughput (% of peak)",
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active": "tensor pipe active (%)",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed": "DRAM throughput (% of peak)",
    "sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active": "XU (MUFU exp2) pipe (% of peak)",
    "sm__warps_active.avg.pct_of_peak_sustained_active": "achieved occupancy (%)",
}
for key, label in names.items():
    if key in header:
        i = header.index(key)
        print(f"{label:34s} {values[i]:>12s} {units[i]}")
    else:
        print(f"{label:34s} {'not reported':>12s} ({key})")
PY
