"""What one KV tile and one work item cost a block-masked launch, fitted from masks of equal rows.

    PYTHONPATH=. python tools/item_cost_fit.py [--rounds N]

Every (head, query block) row of a mask lists exactly T random KV blocks, so all items have T tiles and
every CTA's share is a whole number of equal items: ``n = ceil(items / SMs)`` of them on the busiest
SMs. For each (S, D, H) the GPU time of ``attention_forward(block_mask=...)`` (graph replay, the
dispatcher's plan: row order where K and V fit in L2, else item order) is fitted over T as

    time(T) = launch + n * (item + T * tile),

the slope giving ``tile`` (µs per 128 x 128 tile on one SM) and, with two head counts per shape (two
values of n), the intercepts giving ``item`` (µs per item beyond its tiles) and ``launch``. The dense
kernel (no mask) of the same shape is timed too, as µs per 128 x 128 tile on one SM. The rows of one
(S, D) are timed together in ``--rounds`` passes, alternately in forward and reverse order, and the mean is
used: the card's clock follows what ran just before (a kernel timed right after a lighter one reads up to
~10% faster, eighteenth session), so rows timed far apart are not comparable. The table is printed last.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch  # before NVRTC/CuPy (environment.import_torch says why)

import bsk_cupy as bsk
from bsk_cupy import interop
from bsk_cupy.bench import graph_time_us
from bsk_cupy.dispatch import get_plan, sm_count
from bsk_cupy.mask_operand import mask_operand
from bsk_cupy.validation import check_attention_args

BLOCK = 128
# (S, D, head counts, tile counts per row)
SHAPES = ((4096, 64, (8, 16), (1, 2, 4, 8, 16, 32)),
          (4096, 128, (8, 16), (1, 2, 4, 8, 16, 32)),
          (16384, 64, (16, 24), (1, 2, 4, 8, 16)),
          (16384, 128, (16, 24), (1, 2, 4, 8, 16)))


def equal_rows_mask(heads: int, n_blocks: int, tiles: int, seed: int):
    """A (1, heads, n, n) BlockMask whose every row lists ``tiles`` distinct random KV blocks."""
    import cupy

    rng = np.random.default_rng(seed)
    keys = rng.random((1, heads, n_blocks, n_blocks))
    chosen = np.argsort(keys, axis=-1)[..., :tiles]
    blocks = np.zeros((1, heads, n_blocks, n_blocks), bool)
    np.put_along_axis(blocks, chosen, True, axis=-1)
    return bsk.BlockMask.from_dense(cupy.asarray(blocks))


def plan_name(q, k, v, mask) -> str:
    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    problem = check_attention_args(*infos, causal=False, scale=None, layout="bhsd")
    operand = None if mask is None else mask_operand(mask, problem)
    plan = get_plan(problem, *infos, mask=operand)
    if plan.mask is None:
        return plan.kernel.spec.name
    order = "tail order" if plan.mask.order_items else ("row order" if plan.mask.row_order_ptr else "item order")
    return f"{plan.kernel.spec.name} {order}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sms = sm_count(0)
    rows = []   # (S, D, H, T or None, n, callable, name)
    for seqlen, head_dim, head_counts, tile_counts in SHAPES:
        n_blocks = seqlen // BLOCK
        for heads in head_counts:
            q, k, v = (torch.randn(1, heads, seqlen, head_dim, device="cuda", dtype=torch.float16)
                       for _ in range(3))
            out = torch.empty_like(q)
            n = math.ceil(heads * n_blocks / sms)
            rows.append((seqlen, head_dim, heads, None, n,
                         lambda q=q, k=k, v=v, out=out: bsk.attention_forward(q, k, v, out=out),
                         plan_name(q, k, v, None)))
            for tiles in tile_counts:
                mask = equal_rows_mask(heads, n_blocks, tiles, seed=tiles)
                rows.append((seqlen, head_dim, heads, tiles, n,
                             lambda q=q, k=k, v=v, out=out, mask=mask:
                             bsk.attention_forward(q, k, v, block_mask=mask, out=out),
                             plan_name(q, k, v, mask)))
    times = {i: [] for i in range(len(rows))}
    for seqlen, head_dim, _, _ in SHAPES:
        group = [i for i, row in enumerate(rows) if row[:2] == (seqlen, head_dim)]
        for r in range(args.rounds):
            for i in group if r % 2 == 0 else reversed(group):
                times[i].append(graph_time_us(rows[i][5]))
    mean = {i: float(np.mean(t)) for i, t in times.items()}
    for i, row in enumerate(rows):
        print(f"S{row[0]} D{row[1]} H{row[2]} T={row[3]} n={row[4]} {row[6]}: "
              + " / ".join(f"{t:.1f}" for t in times[i]) + " us")

    print("\nfit: time(T) = launch + n * (item + T * tile), per (S, D); dense per-tile for comparison")
    print(f"{'S':>6} {'D':>4} {'tile us':>8} {'item us':>8} {'launch us':>9} {'dense tile us':>13} "
          f"{'max resid %':>11}  kernels")
    for seqlen, head_dim, head_counts, _ in SHAPES:
        pts = [(row[4], row[3], mean[i]) for i, row in enumerate(rows)
               if row[0] == seqlen and row[1] == head_dim and row[3] is not None]
        design = np.array([[1.0, n, n * t] for n, t, _ in pts])
        observed = np.array([y for _, _, y in pts])
        (launch, item, tile), *_ = np.linalg.lstsq(design, observed, rcond=None)
        resid = np.max(np.abs(design @ np.array([launch, item, tile]) - observed) / observed) * 100
        dense = [(row[2], mean[i]) for i, row in enumerate(rows)
                 if row[0] == seqlen and row[1] == head_dim and row[3] is None]
        n_blocks = seqlen // BLOCK
        dense_tile = np.mean([us * sms / (h * n_blocks * n_blocks) for h, us in dense])
        names = sorted({row[6] for row in rows if row[0] == seqlen and row[1] == head_dim})
        print(f"{seqlen:>6} {head_dim:>4} {tile:>8.3f} {item:>8.3f} {launch:>9.2f} {dense_tile:>13.3f} "
              f"{resid:>11.1f}  {'; '.join(names)}")


if __name__ == "__main__":
    main()
