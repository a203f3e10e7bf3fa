"""Run attention_forward once per launch mode, for ``compute-sanitizer`` (memcheck / synccheck):

    PYTHONPATH=. compute-sanitizer --tool memcheck python tools/sanitize_shapes.py

One call each: persistent CTAs claiming items (dense, causal, block masks of 128 and 64 at density 0.3,
at head dims 64 and 128 claimed early into two Q buffers), split-KV, split warpgroups (alone and across a
cluster of two CTAs), 192-row tiles (with the 128-row items after them), head dim 256; small enough for the
sanitizer's slowdown. Prints the largest |error| vs float32 SDPA per call, so a call the tool lets through
is still checked. Then a block mask shared by every batch entry and head (each of its rows runs several
items, in its row order), and the same mask with a malformed device row order (rows past the last and
negative: the kernel must clamp them, whatever it computes). Last a per-head mask whose K and V outgrow the
L2 rule (B1 H16 S8192 D128): item order but the last heads' rows longest first (dispatch.tail_heads), and
the same with a malformed device row order; one head's mask broadcast over heads there (the same tail over
its heads' items), and that plan launched with a malformed item order.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

import bsk_cupy as bsk

CASES = [  # (B, H, Sq, Sk, D, causal, mask density, mask block)
    (2, 16, 1024, 1024, 64, False, None, 128),    # 256 items on 132 persistent CTAs
    (2, 16, 1024, 1024, 128, True, None, 128),
    (2, 16, 1024, 1024, 64, False, 0.3, 128),     # rows in row order, claimed early into two Q buffers
    (2, 16, 1024, 1024, 128, False, 0.3, 128),    # the same at head dim 128
    (2, 16, 1024, 1024, 64, True, 0.3, 64),       # 64 x 64 tiles
    (1, 2, 128, 4096, 128, False, None, 128),     # split-KV
    (1, 4, 256, 256, 64, False, None, 128),       # split warpgroups
    (1, 8, 512, 512, 64, False, None, 128),       # split warpgroups, KV split across a cluster of two
    (1, 8, 512, 512, 128, True, None, 128),
    (4, 16, 2048, 2048, 64, False, None, 128),    # 192-row tiles, two Q buffers, 8 per head then 128-row items
    (1, 32, 1900, 1900, 64, False, None, 128),    # the same, 6 per head, the last 128-row item holds 108 rows
    (2, 8, 1024, 1024, 256, True, None, 128),     # head dim 256
]


def main() -> None:
    for b, h, sq, sk, d, causal, density, block in CASES:
        q = torch.randn(b, h, sq, d, device="cuda", dtype=torch.float16)
        k, v = (torch.randn(b, h, sk, d, device="cuda", dtype=torch.float16) for _ in range(2))
        mask, ref_mask = None, None
        if density is not None:
            nq, nk = sq // block, sk // block
            blocks = np.random.default_rng(0).random((b, h, nq, nk)) < density
            blocks[..., np.arange(nq), np.arange(nq)] = True
            mask = bsk.BlockMask.from_dense(blocks, block_size=block)
            ref_mask = torch.from_numpy(blocks).cuda().repeat_interleave(block, 2).repeat_interleave(block, 3)
            if causal:
                ref_mask &= torch.ones(sq, sk, dtype=torch.bool, device="cuda").tril()
        out = bsk.attention_forward(q, k, v, causal=causal, block_mask=mask)
        ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=ref_mask,
                                             is_causal=causal and ref_mask is None)
        err = (out.float() - ref).abs().max().item()
        print(f"B{b} H{h} Sq{sq} Sk{sk} D{d} causal={causal} density={density} block={block}: max err {err:.1e}")
    shared_mask_calls()
    tail_order_calls()
    torch.cuda.synchronize()


def shared_mask_calls() -> None:
    import cupy

    q, k, v = (torch.randn(2, 16, 1024, 128, device="cuda", dtype=torch.float16) for _ in range(3))
    blocks = np.random.default_rng(1).random((1, 1, 8, 8)) < 0.4
    blocks[..., np.arange(8), np.arange(8)] = True
    mask = bsk.BlockMask.from_dense(cupy.asarray(blocks))   # device arrays: used as given, not validated
    ref_mask = torch.from_numpy(blocks).cuda().repeat_interleave(128, 2).repeat_interleave(128, 3)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=ref_mask)
    err = (bsk.attention_forward(q, k, v, block_mask=mask).float() - ref).abs().max().item()
    print(f"B2 H16 S1024 D128, one mask for every batch entry and head (256 items: the row order is kept), "
          f"row order {mask.row_order.get()}: max err {err:.1e}")
    bad = cupy.asarray(np.array([100, -5, 7, 1 << 30, 0, 3, -1, 8], np.int32))
    bsk.attention_forward(q, k, v, block_mask=dataclasses.replace(mask, row_order=bad))
    print("the same mask with row order [100, -5, 7, 2**30, 0, 3, -1, 8]: completed")


def tail_order_calls() -> None:
    import cupy

    q, k, v = (torch.randn(1, 16, 8192, 128, device="cuda", dtype=torch.float16) for _ in range(3))
    blocks = np.random.default_rng(2).random((1, 16, 64, 64)) < 0.05
    blocks[..., np.arange(64), np.arange(64)] = True
    mask = bsk.BlockMask.from_dense(cupy.asarray(blocks))
    ref_mask = torch.from_numpy(blocks[:, :2]).cuda().repeat_interleave(128, 2).repeat_interleave(128, 3)
    ref = F.scaled_dot_product_attention(*(x[:, :2].float() for x in (q, k, v)), attn_mask=ref_mask)
    err = (bsk.attention_forward(q, k, v, block_mask=mask)[:, :2].float() - ref).abs().max().item()
    print(f"B1 H16 S8192 D128, a mask per head past the L2 rule (last heads longest first): max err {err:.1e}")
    bad = mask.row_order.copy()
    bad[-6:] = cupy.asarray(np.array([1 << 30, -5, 1024, -1, 70000, 3], np.int32))
    bsk.attention_forward(q, k, v, block_mask=dataclasses.replace(mask, row_order=bad))
    print("the same mask with its row order's last six [2**30, -5, 1024, -1, 70000, 3]: completed")
    shared = bsk.BlockMask.from_dense(cupy.asarray(blocks[:, :1]))
    ref = F.scaled_dot_product_attention(*(x[:, :2].float() for x in (q, k, v)), attn_mask=ref_mask[:, :1])
    err = (bsk.attention_forward(q, k, v, block_mask=shared)[:, :2].float() - ref).abs().max().item()
    print(f"the first head's mask broadcast over heads (its last heads' items longest first): max err {err:.1e}")
    malformed_item_order_call(q, k, v, shared)


def malformed_item_order_call(q, k, v, mask) -> None:
    """``mask`` launched with a malformed item order (Params::mask_order_items): the kernel must clamp it."""
    import cupy

    from bsk_cupy import interop
    from bsk_cupy.dispatch import get_plan
    from bsk_cupy.launch import LaunchPlan
    from bsk_cupy.mask_operand import mask_operand
    from bsk_cupy.validation import check_attention_args

    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    problem = check_attention_args(*infos, causal=False, scale=None, layout="bhsd")
    plan = get_plan(problem, *infos, mask=mask_operand(mask, problem))
    bad = plan.mask.arrays[-1].copy()
    bad[-6:] = cupy.asarray(np.array([1 << 30, -5, 1024, -1, 70000, 3], np.int32))
    operand = dataclasses.replace(plan.mask, row_order_ptr=bad.data.ptr, arrays=plan.mask.arrays + (bad,))
    broken = LaunchPlan(plan.kernel, problem, *infos, mask=operand, max_ctas=plan.grid[0])
    out = torch.empty_like(q)
    broken.launch(out.data_ptr(), 0, torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    print("the same with its item order's last six [2**30, -5, 1024, -1, 70000, 3]: completed")


if __name__ == "__main__":
    main()
