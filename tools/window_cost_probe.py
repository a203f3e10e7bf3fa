"""Why perf_sparse's sliding-window row costs more than its random row of about the same density.

    PYTHONPATH=. python tools/window_cost_probe.py [--rounds N]

B1 H32 S2048 D64 fp16, GPU time per call by CUDA-graph replay of ``attention_forward``, the variants
interleaved round by round (order reversed every other round) so that clock drift falls on all alike:

- ``window``:        BlockMask.sliding_window(left=383, right=0) with ``window=(383, 0)`` (perf_sparse's row)
- ``window blocks``: the same mask with no element mask (same tiles, none of them masked)
- ``window causal``: the same mask with ``causal=True`` (only the diagonal tile of each row masked)
- ``window per head``: the window's block matrix copied to all 32 heads, ``window=(383, 0)``
- ``same counts``:   every row lists as many blocks as the window's (its diagonal and random others), one
  mask per head, no element mask: the window's tile counts with random positions
- ``random 0.19``:   perf_sparse's random row (each block kept with p = 0.19, the diagonal always)

Each variant's density and tiles per row are printed with its time; the table (median µs per round, and
the mean) comes last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch  # before NVRTC/CuPy (environment.import_torch says why)

import bsk_cupy as bsk
from bsk_cupy.bench import graph_time_us

B, H, S, D, LEFT, BLOCK = 1, 32, 2048, 64, 383, 128


def same_count_blocks(window_blocks: np.ndarray, seed: int = 0) -> np.ndarray:
    """Per head, each row keeps its diagonal plus random other blocks, as many as the window's row has."""
    rng = np.random.default_rng(seed)
    n = window_blocks.shape[-1]
    out = np.zeros((1, H, n, n), bool)
    for h in range(H):
        for r in range(n):
            count = int(window_blocks[0, 0, r].sum())
            others = rng.permutation([c for c in range(n) if c != r])[: count - 1]
            out[0, h, r, [r, *others]] = True
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.float16) for _ in range(3))
    win = bsk.BlockMask.sliding_window(S, S, left=LEFT, right=0)
    touched = win.to_dense()
    touched = touched.get() if hasattr(touched, "get") else np.asarray(touched)
    n = S // BLOCK
    rand = np.random.default_rng(0).random((1, H, n, n)) < 0.19
    rand[..., np.arange(n), np.arange(n)] = True
    per_head = bsk.BlockMask.from_dense(np.broadcast_to(touched, (1, H, n, n)).copy(),
                                        full_blocks=np.broadcast_to(win.full_to_dense(), (1, H, n, n)).copy())
    variants = {
        "window": (win, dict(window=(LEFT, 0))),
        "window blocks": (win, {}),
        "window causal": (win, dict(causal=True)),
        "window per head": (per_head, dict(window=(LEFT, 0))),
        "same counts": (bsk.BlockMask.from_dense(same_count_blocks(touched)), {}),
        "random 0.19": (bsk.BlockMask.from_dense(rand), {}),
    }
    calls = {}
    for name, (mask, kwargs) in variants.items():
        calls[name] = (lambda m=mask, kw=kwargs: bsk.attention_forward(q, k, v, block_mask=m, **kw))
        calls[name]()
        tiles = mask.density * n
        print(f"{name:16s} density {mask.density:.3f}  tiles per row {tiles:.2f}", flush=True)
    torch.cuda.synchronize()
    times = {name: [] for name in calls}
    for r in range(args.rounds):
        order = list(calls) if r % 2 == 0 else list(reversed(calls))
        for name in order:
            times[name].append(graph_time_us(calls[name]))
        print(f"round {r}: " + "  ".join(f"{name} {times[name][-1]:.1f}" for name in calls), flush=True)
    dense_us = graph_time_us(lambda: bsk.attention_forward(q, k, v))
    print(f"\ndense B{B} H{H} S{S} D{D}: {dense_us:.1f} us")
    print(f"{'variant':16s} {'density':>8s} {'mean us':>8s} {'min':>7s} {'max':>7s} {'vs dense rate':>13s}")
    for name, (mask, _) in variants.items():
        t = np.array(times[name])
        print(f"{name:16s} {mask.density:8.3f} {t.mean():8.1f} {t.min():7.1f} {t.max():7.1f} "
              f"{t.mean() / (mask.density * dense_us):13.2f}")


if __name__ == "__main__":
    main()
