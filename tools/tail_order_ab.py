"""Block masks past the L2 rule through ``attention_forward``, as dispatched (item order, the last heads'
rows longest first: dispatch.tail_heads) against the same mask without a row order (item order
throughout, the dispatch before the seventeenth session), on perf_sparse's random masks (B1 H16, S 8192
and 16384, D 64 and 128). Per row: both outputs bit-identical, then GPU µs by CUDA-graph replay, listed
item / tail / tail / item so that neither takes only one place in the process.

    PYTHONPATH=. python tools/tail_order_ab.py [DENSITY ...]   (default 0.1 0.25 0.5)
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import torch  # before NVRTC/CuPy (environment.import_torch says why)

import bsk_cupy as bsk
from bsk_cupy.bench import graph_time_us
from perf_sparse import BLOCK, qkv, random_blocks

SHAPES = ((8192, 128), (16384, 64), (16384, 128))


def main() -> None:
    import cupy

    densities = [float(x) for x in sys.argv[1:]] or [0.1, 0.25, 0.5]
    print(f"{'B1 H16 S D, density':<28}{'item':>9}{'tail':>9}{'tail':>9}{'item':>9}{'tail/item':>11}")
    for s, d in SHAPES:
        q, k, v = qkv(1, 16, 16, s, d)
        for p in densities:
            blocks = random_blocks(16, s // BLOCK, p, [0, s, d, int(p * 100)])
            tail_mask = bsk.BlockMask.from_dense(cupy.asarray(blocks))
            item_mask = dataclasses.replace(tail_mask, row_order=None)
            calls = {name: (lambda m=m: bsk.attention_forward(q, k, v, block_mask=m))
                     for name, m in (("item", item_mask), ("tail", tail_mask))}
            assert torch.equal(calls["item"](), calls["tail"]()), "orders disagree"
            times = {name: [] for name in calls}
            for name in ("item", "tail", "tail", "item"):
                times[name].append(graph_time_us(calls[name]))
            ratio = sum(times["tail"]) / sum(times["item"])
            print(f"{f'S{s} D{d}, {blocks.mean():.3f}':<28}{times['item'][0]:>9.1f}{times['tail'][0]:>9.1f}"
                  f"{times['tail'][1]:>9.1f}{times['item'][1]:>9.1f}{ratio:>11.3f}", flush=True)


if __name__ == "__main__":
    main()
