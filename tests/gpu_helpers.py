"""Helpers for the GPU tests: random inputs, the float64 oracle, SDPA's error as the tolerance yardstick."""

from __future__ import annotations

import os

import numpy as np

from bsk_cupy.reference import attention_reference, visible_keys


def max_seq_len() -> int:
    """Longest sequence the GPU tests use (BSK_TEST_SEQ_LEN shrinks it)."""
    return int(os.environ.get("BSK_TEST_SEQ_LEN", 4097))


def batch_size() -> int:
    """Batch of the GPU tests (BSK_TEST_BATCH_SIZE shrinks it)."""
    return int(os.environ.get("BSK_TEST_BATCH_SIZE", 2))


def to_numpy(x) -> np.ndarray:
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def reference_for(q, k, v, causal, layout="bhsd", scale=None):
    """float64 (out, lse) for torch inputs."""
    return attention_reference(to_numpy(q), to_numpy(k), to_numpy(v), causal=causal, layout=layout, scale=scale)


def sdpa_error(q, k, v, causal, ref_out, layout="bhsd", scale=None) -> float:
    """Max abs error of torch SDPA in the inputs' dtype against the float64 reference (bottom-right mask)."""
    import torch
    import torch.nn.functional as F

    if layout == "bshd":
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))
        ref_out = ref_out.transpose(0, 2, 1, 3)
    group = q.shape[1] // k.shape[1]
    k, v = (x.repeat_interleave(group, dim=1) for x in (k, v))
    mask = None
    if causal:
        mask = torch.from_numpy(visible_keys(q.shape[2], k.shape[2], True)).to(q.device)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    out = torch.nan_to_num(out.float(), nan=0.0).cpu().numpy()
    return float(np.abs(out - ref_out).max())


def tolerance(sdpa_err: float) -> float:
    """The suite's bound: 2 x SDPA's error in the same dtype + 1e-3."""
    return 2.0 * sdpa_err + 1e-3


def poison_allocator(nbytes: int) -> None:
    """Fill about ``nbytes`` of torch's caching allocator with NaN and free it, so a later torch.empty
    that the kernel fails to fill shows up as NaN."""
    import torch

    block = torch.full((nbytes // 2,), float("nan"), dtype=torch.float16, device="cuda")
    del block
