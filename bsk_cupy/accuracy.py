"""Accuracy yardsticks on the GPU: our error against float64, and SDPA's error in the same dtype.

The contract (README, "Use"): max |ours - float64| <= 2 * max |SDPA - float64| + 1e-3. Used by the
GPU tests and by ``bsk-cupy validate``; needs PyTorch for the SDPA yardstick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .reference import attention_reference, visible_keys


def to_numpy(x) -> np.ndarray:
    """float32 host copy of a torch tensor (or anything NumPy can read)."""
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def reference_for(q, k, v, causal: bool, layout: str = "bhsd", scale: float | None = None):
    """float64 (out, lse) of torch inputs."""
    return attention_reference(to_numpy(q), to_numpy(k), to_numpy(v), causal=causal, layout=layout, scale=scale)


def sdpa_error(q, k, v, causal: bool, ref_out: np.ndarray, layout: str = "bhsd", scale: float | None = None) -> float:
    """Max abs error of torch SDPA (same dtype, bottom-right causal mask) against ``ref_out``."""
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
    out = out.float().cpu().numpy()
    seen = visible_keys(q.shape[2], k.shape[2], causal).any(axis=1)  # SDPA leaves rows with no key undefined
    return float(np.abs(out - ref_out)[:, :, seen].max(initial=0.0))


def tolerance(sdpa_err: float) -> float:
    """The bound our error must meet: 2 x SDPA's error in the same dtype + 1e-3."""
    return 2.0 * sdpa_err + 1e-3


@dataclass
class AccuracyResult:
    case: str
    error: float
    sdpa_error: float
    bound: float
    lse_error: float
    unwritten: int  # NaN elements left in a NaN-poisoned output
    ok: bool


def check_case(case: str, q, k, v, causal: bool, layout: str = "bhsd", scale: float | None = None) -> AccuracyResult:
    """Run ``attention_forward`` on NaN-poisoned memory and measure it against float64 and SDPA."""
    import torch

    from .api import attention_forward

    poison = torch.full((4 * q.numel() + (1 << 19),), float("nan"), dtype=q.dtype, device=q.device)
    del poison  # the caching allocator hands these NaN-filled bytes to the outputs below
    out, lse = attention_forward(q, k, v, causal=causal, layout=layout, scale=scale, return_lse=True)
    torch.cuda.synchronize()
    ref_out, ref_lse = reference_for(q, k, v, causal, layout=layout, scale=scale)
    got = to_numpy(out)
    unwritten = int(np.isnan(got).sum())
    error = float(np.nan_to_num(np.abs(got - ref_out), nan=np.inf).max())
    base = sdpa_error(q, k, v, causal, ref_out, layout=layout, scale=scale)
    got_lse = lse.cpu().numpy()
    finite = np.isfinite(ref_lse)
    same_inf = bool(np.array_equal(np.isfinite(got_lse), finite) and np.all(got_lse[~finite] == -np.inf))
    lse_error = float(np.abs(got_lse[finite] - ref_lse[finite]).max()) if finite.any() else 0.0
    if not same_inf:
        lse_error = float("inf")
    bound = tolerance(base)
    ok = unwritten == 0 and error <= bound and lse_error <= 1e-3 * max(1.0, float(np.abs(ref_lse[finite]).max(initial=1.0)))
    return AccuracyResult(case, error, base, bound, lse_error, unwritten, ok)
