"""The tail order for block masks broadcast over heads past the L2 rule, against their item order.

    PYTHONPATH=. python tools/broadcast_tail_ab.py [--rounds N] [B,H,S,D ...]

Past the L2 rule a block mask's items run in the kernel's item order but for the last heads', which run
longest first (``dispatch.tail_heads``, ``mask_operand.tail_item_order``). For a mask broadcast over
heads (one (1, 1, nQB, nKB) list set for every head) the eighteenth session first measured what that tail
would buy by copying the mask out per head (per-head masks had the tail order, broadcast ones only the
item order), then gave broadcast masks the tail over their heads' items. This script times, through
``attention_forward``, the same mask three ways on the same inputs: broadcast (the dispatched tail order),
broadcast without a row order (the item order throughout: broadcast masks before the change) and copied
out per head (``BlockMask.from_dense`` of the broadcast blocks). Masks: a causal document mask (packed
documents of 4-32 blocks, seed fixed, ``causal=True``: the documents' diagonal blocks masked per element)
and a sliding window of 1024 keys to the left (rows of equal length: the control). Variants of a shape run
back to back each round, the order reversed every other round; outputs must match bit for bit. The table
(mean GPU µs by CUDA-graph replay) is printed last.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch  # before NVRTC/CuPy (environment.import_torch says why)

import bsk_cupy as bsk
from bsk_cupy.bench import graph_time_us

BLOCK = 128
VARIANTS = ("broadcast", "broadcast, item order", "per head")


def document_blocks(n_blocks: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(touched, full) (1, 1, n, n) bool block matrices of a causal document mask: documents of 4-32
    blocks back to back; a block is touched when its query and key blocks share a document and the key
    block is not after the query block, full when strictly before it."""
    rng = np.random.default_rng(seed)
    doc = np.empty(n_blocks, int)
    start, d = 0, 0
    while start < n_blocks:
        length = int(rng.integers(4, 33))
        doc[start:start + length] = d
        start, d = start + length, d + 1
    q, k = np.arange(n_blocks)[:, None], np.arange(n_blocks)[None, :]
    same = doc[:, None] == doc[None, :]
    return (same & (k <= q))[None, None], (same & (k < q))[None, None]


def masks(kind: str, heads: int, seqlen: int):
    """The broadcast mask, the same without a row order, its per-head copy; the causal flag, the density."""
    import cupy

    n = seqlen // BLOCK
    if kind == "document":
        touched, full = document_blocks(n, seed=0)
        causal = True
    else:
        window = bsk.BlockMask.sliding_window(seqlen, seqlen, left=1024, right=0)
        touched, full = (cupy.asnumpy(x) for x in (window.to_dense(), window.full_to_dense()))
        causal = True
    broadcast = bsk.BlockMask.from_dense(cupy.asarray(touched), full_blocks=cupy.asarray(full))
    expand = lambda x: cupy.asarray(np.ascontiguousarray(np.broadcast_to(x, (1, heads, n, n))))
    per_head = bsk.BlockMask.from_dense(expand(touched), full_blocks=expand(full))
    return (broadcast, dataclasses.replace(broadcast, row_order=None), per_head), causal, broadcast.density


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("configs", nargs="*", default=["1,16,8192,128", "1,16,16384,64", "1,16,16384,128"])
    args = parser.parse_args()
    rows = []
    for text in args.configs:
        b, h, s, d = (int(x) for x in text.split(","))
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.float16) for _ in range(3))
        for kind in ("document", "window"):
            variants, causal, density = masks(kind, h, s)
            calls, outs = [], []
            for mask in variants:
                out = torch.full_like(q, float("nan"))
                call = (lambda q=q, k=k, v=v, mask=mask, out=out, causal=causal:
                        bsk.attention_forward(q, k, v, causal=causal, block_mask=mask, out=out))
                call()
                calls.append(call)
                outs.append(out)
            torch.cuda.synchronize()
            for name, out in zip(VARIANTS[1:], outs[1:]):
                if not torch.equal(out.view(torch.int16), outs[0].view(torch.int16)):
                    raise SystemExit(f"B{b} H{h} S{s} D{d} {kind}: {name} differs from the broadcast mask")
            rows.append((f"B{b} H{h} S{s} D{d} {kind} d{density:.3f}", calls, (q, k, v, variants)))
    times = [[[] for _ in VARIANTS] for _ in rows]
    for r in range(args.rounds):
        for i, (label, calls, _) in enumerate(rows):
            for j in (range(len(calls)) if r % 2 == 0 else reversed(range(len(calls)))):
                times[i][j].append(graph_time_us(calls[j]))
            print(f"round {r} {label}: " + " / ".join(f"{t[-1]:.1f}" for t in times[i]), flush=True)
    print(f"\n{'shape, mask':<44}" + "".join(f"{v:>26}" for v in VARIANTS))
    for i, (label, _, _) in enumerate(rows):
        means = [float(np.mean(t)) for t in times[i]]
        cells = [f"{means[0]:.1f}"] + [f"{m:.1f} ({(m / means[0] - 1) * 100:+.1f}%)" for m in means[1:]]
        print(f"{label:<44}" + "".join(f"{c:>26}" for c in cells))


if __name__ == "__main__":
    main()
