#!/usr/bin/env bash
# Profile our real attention kernel with Nsight Compute for one launch (the 4th, after warm-up) and print
# SM throughput, tensor-pipe utilisation, the XU (MUFU: exp2) pipe's issue rate, L2 and DRAM throughput,
# occupancy and the largest warp-stall reasons (the WarpStateStats section: cycles per issued instruction
# that warps spend stalled, by reason). ncu drops metrics this chip does not have without failing; the
# summary says 'not reported' for those.
#
#   benchmarks/ncu_roofline.sh B H S D [causal] [OUTDIR] [DENSITY]
#
# DENSITY runs under a random 128 x 128 block mask (benchmarks/profile_one.py). Clocks are left as the card
# runs them (--clock-control none). Full CSV goes to OUTDIR/ncu_<shape>.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
b=$1 h=$2 s=$3 d=$4 causal=${5:-0} out=${6:-.} density=${7:-}
tag="b${b}h${h}s${s}d${d}c${causal}${density:+p$density}"
export PYTHONPATH=.
metrics=sm__throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,dram__throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,lts__throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active
metrics+=,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active
metrics+=,sm__warps_active.avg.pct_of_peak_sustained_active
metrics+=,gpu__time_duration.sum
ncu --clock-control none --kernel-name attn_fwd_sm90 --launch-skip 3 --launch-count 1 \
    --metrics "$metrics" --section WarpStateStats --csv --page raw \
    python3 benchmarks/profile_one.py "$b" "$h" "$s" "$d" "$causal" $density > "$out/ncu_${tag}.csv"
python3 - "$out/ncu_${tag}.csv" <<'PY'
import csv, sys
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
header, units, values = rows[0], rows[1], rows[2]
names = {
    "gpu__time_duration.sum": "kernel time",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed": "SM throughput (% of peak)",
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active": "tensor pipe active (%)",
    "sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active": "XU (MUFU exp2) pipe (% of peak)",
    "lts__throughput.avg.pct_of_peak_sustained_elapsed": "L2 throughput (% of peak)",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed": "DRAM throughput (% of peak)",
    "sm__warps_active.avg.pct_of_peak_sustained_active": "achieved occupancy (%)",
}
for key, label in names.items():
    if key in header:
        i = header.index(key)
        print(f"{label:34s} {values[i]:>12s} {units[i]}")
    else:
        print(f"{label:34s} {'not reported':>12s} ({key})")
# WarpStateStats: smsp__average_warp_latency_issue_stalled_<reason>.ratio or the like; whatever this ncu
# names them, keep the per-reason stall figures and print the five largest.
stalls = []
for i, key in enumerate(header):
    if "issue_stalled_" in key and not key.endswith("_not_issued.ratio"):
        try:
            stalls.append((float(values[i].replace(",", "")), key.split("issue_stalled_")[1], units[i]))
        except ValueError:
            pass
for value, reason, unit in sorted(stalls, reverse=True)[:5]:
    print(f"{'stall: ' + reason:34s} {value:12.2f} {unit}")
if not stalls:
    print(f"{'warp stall reasons':34s} {'not reported':>12s} (WarpStateStats)")
PY
