"""GPU time of calls whose tiles need element masks, for an A/B of the masking code between two trees.

    PYTHONPATH=<tree> BSK_CACHE_DIR=<tree>/.bskcache python tools/element_mask_ab.py

Rows: B1 H32 S2048 D64 under BlockMask.sliding_window(left=383) with window=(383, 0) (perf_sparse's window
row: per query block a left-cut, two full and a right-cut diagonal block), the same window without a block
mask, causal at B1 H32 S2048 D64, B4 H32 S4096 D128, B2 H16 S2048 D128 and B2 H16 S16384 D64 (one
diagonal tile per query block), and B1 H8 S512 D128 and random block masks (no element mask: the
controls). fp16; median GPU us of CUDA-graph replays (bsk_cupy.bench.graph_time_us); each output checked
against SDPA's math backend in float32 on two heads.
"""

from __future__ import annotations

import sys

import numpy as np
import torch  # before NVRTC/CuPy (environment.import_torch says why)
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import bsk_cupy as bsk
from bsk_cupy.bench import graph_time_us

LEFT = 383


def row(name: str, b: int, h: int, s: int, d: int, *, causal=False, window=None, mask=None, ref_mask=None):
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.float16, generator=gen) for _ in range(3))

    def call():
        return bsk.attention_forward(q, k, v, causal=causal, window=window, block_mask=mask)

    out = call()
    with sdpa_kernel(SDPBackend.MATH):
        ref = F.scaled_dot_product_attention(*(x[:, :2].float() for x in (q, k, v)), attn_mask=ref_mask,
                                             is_causal=causal and ref_mask is None)
    err = (out[:, :2].float() - torch.nan_to_num(ref)).abs().max().item()
    print(f"{name:<44}{graph_time_us(call):>10.1f}{err:>10.1e}", flush=True)


def main() -> None:
    print(f"{'call':<44}{'GPU us':>10}{'err':>10}  ({bsk.__file__})")
    s = 2048
    i = torch.arange(s, device="cuda")
    in_window = (i[None, :] <= i[:, None]) & (i[None, :] >= i[:, None] - LEFT)
    window_mask = bsk.BlockMask.sliding_window(s, s, left=LEFT, right=0)
    row("B1 H32 S2048 D64 window mask + window", 1, 32, s, 64, window=(LEFT, 0), mask=window_mask, ref_mask=in_window)
    row("B1 H32 S2048 D64 window (383, 0)", 1, 32, s, 64, window=(LEFT, 0), ref_mask=in_window)
    row("B1 H32 S2048 D64 causal", 1, 32, s, 64, causal=True)
    row("B4 H32 S4096 D128 causal", 4, 32, 4096, 128, causal=True)
    row("B2 H16 S2048 D128 causal", 2, 16, s, 128, causal=True)
    row("B2 H16 S16384 D64 causal (192-row tiles)", 2, 16, 16384, 64, causal=True)
    row("B1 H8 S512 D128 (no tile masked)", 1, 8, 512, 128)
    for h, s, d, density in ((32, 2048, 64, 0.25), (16, 4096, 64, 0.1), (16, 4096, 128, 0.1)):
        n = s // 128
        blocks = np.random.default_rng(0).random((1, h, n, n)) < density
        blocks[..., np.arange(n), np.arange(n)] = True
        ref = torch.from_numpy(blocks[:, :2]).cuda().repeat_interleave(128, 2).repeat_interleave(128, 3)
        row(f"B1 H{h} S{s} D{d} random mask {density} (control)", 1, h, s, d, mask=bsk.BlockMask.from_dense(blocks),
            ref_mask=ref)


if __name__ == "__main__":
    sys.exit(main())
