"""Summarise an Nsight Compute per-instruction export (`ncu --import R --page source --csv --print-source sass`).

    python tools/ncu_source_summary.py SOURCE.csv [TOP]

Prints the warp-state samples per stall reason over the kernel, then per opcode (samples, warp
instructions executed, leading reasons), then the TOP (default 40) instructions by samples: address, samples, share, the three leading reasons and the SASS text. Column names differ between
Nsight Compute versions, so the sample columns are found by name ("Warp Stall Sampling" / "stall_*").
"""

from __future__ import annotations

import csv
import sys
from collections import Counter


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]
    rows = [r for r in csv.reader(lines) if r and r[0] != "Kernel Name"]  # one "Kernel Name" row per kernel
    header = rows[0]
    body = [r for r in rows[1:] if len(r) == len(header)]
    print(f"{len(body)} instructions; columns: {header}")

    def col(*needles: str) -> int | None:
        for i, name in enumerate(header):
            if all(n.lower() in name.lower() for n in needles):
                return i
        return None

    source = col("Source")
    address = col("Address")
    total = col("Warp Stall Sampling (All")
    reasons = [i for i, name in enumerate(header) if name.startswith("stall_") and "(Not Issued)" not in name]

    def num(row, i) -> float:
        try:
            return float(row[i].replace(",", ""))
        except (ValueError, IndexError):
            return 0.0

    if total is None:
        print("no 'Warp Stall Sampling (All Samples)' column; first rows:")
        for r in body[:5]:
            print(r)
        return
    overall = sum(num(r, total) for r in body)
    by_reason = Counter()
    for r in body:
        for i in reasons:
            by_reason[header[i]] += num(r, i)
    print(f"samples: {overall:.0f}")
    for name, count in by_reason.most_common(12):
        print(f"  {name:60s} {count:9.0f} {count / max(overall, 1):6.1%}")
    print()
    executed = col("Instructions Executed")
    by_opcode: dict[str, Counter] = {}
    for r in body:
        words = r[source].split() if source is not None else []
        words = words[1:] if words and words[0].startswith("@") else words
        opcode = words[0].split(".")[0] if words else "?"
        counts = by_opcode.setdefault(opcode, Counter())
        counts["_samples"] += num(r, total)
        counts["_executed"] += num(r, executed) if executed is not None else 0
        for i in reasons:
            counts[header[i].replace("stall_", "")] += num(r, i)
    print("by opcode: samples, share, warp instructions executed, leading reasons")
    for opcode, c in sorted(by_opcode.items(), key=lambda kv: -kv[1]["_samples"])[:20]:
        lead = ", ".join(f"{k} {v:.0f}" for k, v in c.most_common(6) if not k.startswith("_"))[:80]
        print(f"  {opcode:10s} {c['_samples']:8.0f} {c['_samples'] / max(overall, 1):6.1%} {c['_executed']:12.0f}  {lead}")
    print()
    ranked = sorted(body, key=lambda r: -num(r, total))[:top]
    for r in ranked:
        lead = sorted(((num(r, i), header[i]) for i in reasons), reverse=True)[:3]
        lead_text = ", ".join(f"{name.replace('stall_', '')} {count:.0f}" for count, name in lead if count > 0)
        where = r[address] if address is not None else "?"
        text = r[source] if source is not None else ""
        print(f"{where:>8s} {num(r, total):7.0f} {num(r, total) / max(overall, 1):6.1%}  {text[:70]:70s} | {lead_text}")


if __name__ == "__main__":
    main()
