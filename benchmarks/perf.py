"""Speed benchmark: ours against SDPA's cuDNN and flash backends (and FlexAttention with --flex).

Run on the H100:

    PYTHONPATH=. python benchmarks/perf.py --sweep --save-results perf.json --plot perf.png

Rows: the target configs of ``bsk_cupy/targets.json`` and, with ``--sweep``, S in 512..16384 for D 64 and
128, causal and not, at 16k tokens per batch and 2048 hidden (B = 16384 / S, H = 2048 / D). Each row has GPU
time by CUDA-graph replay, eager wall time, TFLOPS (4·B·H·S²·D, halved for causal) and the baselines; the
target rows get MET / MISSED. The JSON carries the GPU name, driver and commit. ``--sparse`` adds the
block-sparse and SparseK targets of the sparse issue (``benchmarks/perf_sparse.py``: density scaling,
FlexAttention on the same masks, the small sparse shape, selection cost) as ``sparse_rows``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402  (import before NVRTC/CuPy: see bsk_cupy.environment.import_torch)

from bsk_cupy.bench import (TARGET_CONFIGS, analyze, bench_config, format_clock_table, format_table,  # noqa: E402
                            format_verdicts, graph_time_us)

import perf_sparse  # noqa: E402  (benchmarks/perf_sparse.py, beside this script)

SWEEP_S = (512, 1024, 2048, 4096, 8192, 16384)


def sweep_configs() -> list[tuple]:
    return [(16384 // s, 2048 // d, s, d, causal) for d in (64, 128) for causal in (False, True) for s in SWEEP_S]


def flex_us(batch, heads, seqlen, head_dim, causal) -> float | None:
    """FlexAttention (torch.compile) GPU time on the same shape and mask, or None if it cannot run."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError:
        return None
    q, k, v = (torch.randn(batch, heads, seqlen, head_dim, device="cuda", dtype=torch.float16) for _ in range(3))
    block_mask = None
    if causal:
        block_mask = create_block_mask(lambda b, h, qi, ki: ki <= qi, None, None, seqlen, seqlen)
    # one compile per shape: past torch's recompile limit (8) dynamo falls back to the eager math path,
    # which cannot be graph-captured
    torch._dynamo.config.recompile_limit = 64
    compiled = torch.compile(flex_attention, dynamic=False)
    try:
        compiled(q, k, v, block_mask=block_mask)   # compile outside the timing and the capture
        return graph_time_us(lambda: compiled(q, k, v, block_mask=block_mask))
    except RuntimeError as exc:
        print(f"FlexAttention failed on B{batch} H{heads} S{seqlen} D{head_dim} causal={causal}: {exc}")
        return None


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4), sharey=True)
    for ax, (d, causal) in zip(axes, [(64, False), (64, True), (128, False), (128, True)]):
        sel = [r for r in rows if r["head_dim"] == d and r["causal"] == causal and r.get("sweep")]
        if not sel:
            continue
        s = [r["seqlen"] for r in sel]
        for key, label in [("ours_tflops", "bsk_cupy"), ("cudnn_tflops", "SDPA cuDNN"),
                           ("flash_tflops", "SDPA flash"), ("flex_tflops", "FlexAttention")]:
            if any(r.get(key) for r in sel):
                ax.plot(s, [r.get(key) or float("nan") for r in sel], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_title(f"D={d} {'causal' if causal else 'full'}")
        ax.set_xlabel("sequence length")
    axes[0].set_ylabel("TFLOPS (fp16, H100)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", action="store_true", help="add the S x D x causal sweep")
    parser.add_argument("--flex", action="store_true", help="also time FlexAttention (slow: torch.compile)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    parser.add_argument("--save-results", metavar="PATH.json")
    parser.add_argument("--plot", metavar="PATH.png")
    parser.add_argument("--sparse", action="store_true",
                        help="add the block-sparse and SparseK targets of benchmarks/perf_sparse.py")
    args = parser.parse_args()

    target_rows = [bench_config(*cfg, dtype=args.dtype) for cfg in TARGET_CONFIGS]
    sweep_rows = [bench_config(*cfg, dtype=args.dtype) for cfg in sweep_configs()] if args.sweep else []
    records = []
    for row, is_sweep in [(r, False) for r in target_rows] + [(r, True) for r in sweep_rows]:
        record = row.as_dict()
        record["sweep"] = is_sweep
        if args.flex:
            record["flex_us"] = flex_us(row.batch, row.heads, row.seqlen, row.head_dim, row.causal)
            record["flex_tflops"] = row.tflops(record["flex_us"])
        records.append(record)
    sparse_rows = perf_sparse.measure_all() if args.sparse else []
    verdicts = analyze(target_rows)
    print(format_table(target_rows + sweep_rows))
    print()
    print(format_clock_table(target_rows + sweep_rows))
    print()
    print(format_verdicts(verdicts))
    if sparse_rows:
        print()
        print(perf_sparse.table(sparse_rows))
    if args.save_results:
        meta = {"gpu": torch.cuda.get_device_name(), "driver": torch.cuda.driver_version()
                if hasattr(torch.cuda, "driver_version") else None, "torch": torch.__version__,
                "commit": commit(), "dtype": args.dtype}
        Path(args.save_results).write_text(json.dumps({"meta": meta, "rows": records, "sparse_rows": sparse_rows,
                                                       "verdicts": [v.__dict__ for v in verdicts]}, indent=1))
    if args.plot:
        plot(records, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
