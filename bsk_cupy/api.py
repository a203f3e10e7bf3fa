"""Public API: ``attention_forward``."""

from __future__ import annotations

import threading

from . import interop
from .device import require_hopper
from .dispatch import get_plan
from .validation import check_attention_args

_FAST_CALLS_MAX = 256
_fast_calls: dict[tuple, interop.TorchFastCall] = {}
_fast_calls_lock = threading.Lock()  # guards insertion and eviction; lookups are single dict reads


def attention_forward(q, k, v, *, causal: bool = False, scale: float | None = None, layout: str = "bhsd",
                      return_lse: bool = False):
    """Scaled dot-product attention forward on Hopper (wgmma + TMA kernels).

    Parameters
    ----------
    q : CUDA array, (B, Hq, Sq, D) for ``layout="bhsd"`` or (B, Sq, Hq, D) for ``layout="bshd"``
        float16 or bfloat16; a torch tensor, CuPy array, JAX array or other DLPack CUDA array.
    k, v : CUDA arrays, (B, Hkv, Sk, D) or (B, Sk, Hkv, D)
        Same framework, dtype and device as ``q``; ``Hq % Hkv == 0`` (GQA/MQA). D is 64 or 128;
        any Sq, Sk >= 1. Strided views (e.g. slices of one packed qkv tensor) are read in place when the
        last dimension is contiguous and the other strides are multiples of 8 elements.
    causal : bool
        Query i sees key j iff ``j <= i + (Sk - Sq)`` (bottom-right aligned, as FlashAttention). Equal to
        ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)`` only when Sq == Sk.
    scale : float, optional
        Softmax scale; defaults to ``1 / sqrt(D)``.
    layout : {"bhsd", "bshd"}
    return_lse : bool
        Also return the log-sum-exp of the scaled scores.

    Returns
    -------
    out : array of the caller's framework, same shape, dtype and layout as ``q`` (contiguous)
    lse : float32 array (B, Hq, Sq), natural log, only when ``return_lse``; -inf for rows that see no key
        (their ``out`` row is 0).

    Notes
    -----
    Runs on the caller's current stream (torch: ``torch.cuda.current_stream()``; CuPy and DLPack inputs:
    CuPy's current stream). Works inside ``torch.cuda.graph`` capture. Forward only: torch inputs that
    require grad raise unless grad mode is off.

    Examples
    --------
    >>> import torch, bsk_cupy as bsk
    >>> q = torch.randn(1, 8, 512, 64, device="cuda", dtype=torch.float16)
    >>> out = bsk.attention_forward(q, q, q, causal=True)
    """
    torch_key = interop.torch_call_key(q, k, v)
    if torch_key is not None:
        # types in the key: True == 1 and hash alike, and only validated (bool) options may hit
        torch_key = (torch_key, type(causal), causal, type(scale), scale, layout, type(return_lse), return_lse)
        fast = _fast_calls.get(torch_key)
        if fast is not None:
            return fast(q, k, v)
    operands = [interop.describe(name, x) for name, x in (("q", q), ("k", k), ("v", v))]
    if not isinstance(return_lse, bool):
        raise TypeError(f"return_lse must be a bool, got {type(return_lse).__name__}")
    problem = check_attention_args(*(op.info for op in operands), causal=causal, scale=scale, layout=layout)
    require_hopper(problem.device)
    plan = get_plan(problem, *(op.info for op in operands))
    lse_shape = (problem.batch, problem.heads_q, problem.seqlen_q) if return_lse else None
    if torch_key is not None:
        fast = interop.TorchFastCall(plan, q, problem.out_shape, lse_shape)
        with _fast_calls_lock:
            if len(_fast_calls) >= _FAST_CALLS_MAX:
                del _fast_calls[next(iter(_fast_calls))]
            _fast_calls[torch_key] = fast
        return fast(q, k, v)
    adapter, like = operands[0].adapter, operands[0].handle
    out, out_ptr = adapter.empty(like, problem.out_shape)
    lse, lse_ptr = adapter.empty(like, lse_shape, float32=True) if return_lse else (None, 0)
    plan.launch(out_ptr, lse_ptr, adapter.stream(problem.device))
    if return_lse:
        return adapter.finish(out), adapter.finish(lse)
    return adapter.finish(out)
