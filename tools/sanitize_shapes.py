"""Run attention_forward once per launch mode, for ``compute-sanitizer`` (memcheck / synccheck):

    PYTHONPATH=. compute-sanitizer --tool memcheck python tools/sanitize_shapes.py

One call each: persistent CTAs claiming items (dense, causal, block mask at density 0.3), split-KV,
split warpgroups, 192-row tiles; small enough for the sanitizer's slowdown. Prints the largest |error| vs
float32 SDPA per call, so a call the tool lets through is still checked.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import bsk_cupy as bsk

CASES = [  # (B, H, Sq, Sk, D, causal, mask density)
    (2, 16, 1024, 1024, 64, False, None),    # 256 items on 132 persistent CTAs
    (2, 16, 1024, 1024, 128, True, None),
    (2, 16, 1024, 1024, 128, False, 0.3),
    (1, 2, 128, 4096, 128, False, None),     # split-KV
    (1, 4, 256, 256, 64, False, None),       # split warpgroups
    (4, 16, 2048, 2048, 64, False, None),    # 192-row tiles
]


def main() -> None:
    for b, h, sq, sk, d, causal, density in CASES:
        q = torch.randn(b, h, sq, d, device="cuda", dtype=torch.float16)
        k, v = (torch.randn(b, h, sk, d, device="cuda", dtype=torch.float16) for _ in range(2))
        mask, ref_mask = None, None
        if density is not None:
            nq, nk = sq // 128, sk // 128
            blocks = np.random.default_rng(0).random((b, h, nq, nk)) < density
            blocks[..., np.arange(nq), np.arange(nq)] = True
            mask = bsk.BlockMask.from_dense(blocks)
            ref_mask = torch.from_numpy(blocks).cuda().repeat_interleave(128, 2).repeat_interleave(128, 3)
        out = bsk.attention_forward(q, k, v, causal=causal, block_mask=mask)
        ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=ref_mask,
                                             is_causal=causal)
        err = (out.float() - ref).abs().max().item()
        print(f"B{b} H{h} Sq{sq} Sk{sk} D{d} causal={causal} density={density}: max err {err:.1e}")
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
