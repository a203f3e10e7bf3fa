"""Public API: ``attention_forward``."""

from __future__ import annotations

import threading
import weakref

import numpy as np

from . import interop, jax_bridge, window_route
from .block_mask import ARRAY_FIELDS, BlockMask
from .device import require_hopper
from .dispatch import get_plan, l2_bytes, sm_count
from .mask_operand import mask_operand, mask_spans
from .validation import check_attention_args, check_bool

_FAST_CALLS_MAX = 256
_fast_calls: dict[tuple, "interop.TorchFastCall | interop.CupyFastCall | jax_bridge.JaxFastCall"] = {}
# Guards insertion and eviction (lookups are single dict reads); reentrant, as a mask's finalizer (_forget)
# may run inside a locked section when a garbage collection happens there.
_fast_calls_lock = threading.RLock()


class _Identity:
    """Hashes and compares by object identity (block masks hold arrays, which do not hash) without keeping
    the object alive: the fast-path entries that refer to it go when it does (_forget), so no later object
    at the same id can match them, and a loop making a host mask per call does not keep them all."""

    __slots__ = ("ref", "ident")

    def __init__(self, obj):
        self.ref = weakref.ref(obj)
        self.ident = id(obj)

    def __hash__(self) -> int:
        return self.ident

    def __eq__(self, other) -> bool:
        return isinstance(other, _Identity) and other.ident == self.ident and other.ref() is self.ref()


_watched: dict[int, weakref.finalize] = {}  # one finalizer per block mask that has fast-path entries


def _watch(mask) -> None:
    """Have ``mask``'s fast-path entries dropped when it goes (once per mask, however many entries)."""
    with _fast_calls_lock:
        finalizer = _watched.get(id(mask))
        if finalizer is None or not finalizer.alive:
            _watched[id(mask)] = weakref.finalize(mask, _forget, id(mask))


def _forget(ident: int) -> None:
    """Drop the fast-path entries of the block mask whose id was ``ident`` (it is gone)."""
    with _fast_calls_lock:
        _watched.pop(ident, None)
        for key in [key for key in list(_fast_calls) if isinstance(key[-2], _Identity) and key[-2].ident == ident]:
            del _fast_calls[key]


def _mask_key(mask, jax_inputs: bool):
    """A ``block_mask``'s part of the fast-path key, or None for an object that takes no fast path (not a
    BlockMask, or one that does not hash). A host mask goes by identity: its device copy belongs to the
    object. A device mask goes by its arrays' pointers, devices and layouts: the kernel reads them in place and a
    launch plan keeps only the pointers, so a new mask over the same memory with the same layout makes the
    same launch (a select-then-attend loop, whose masks the caching allocator places at one of a few
    addresses, takes the fast path: 140-295 -> 41-67 us of host time per loop step on the H100 machines;
    RESULTS.md, twenty-fourth session). Such entries outlive their masks, like entries for q, k and v,
    until the oldest-first eviction. With JAX inputs (``jax_inputs``) a mask of concrete JAX arrays goes by
    their shapes, dtypes and shardings: JAX calls pass the arrays to XLA on every call (traced ones take no
    fast path); with other inputs, by identity."""
    if not isinstance(mask, BlockMask):
        return None
    if isinstance(mask.kv_indices, np.ndarray):
        return _Identity(mask)
    sizes = (mask.seq_lengths, mask.block_size)
    if not all(type(pair) is tuple and len(pair) == 2 and all(type(n) is int for n in pair) for pair in sizes):
        return None  # 512.0 == 512 and True == 1 hash alike: such sizes are checked every call
    key = [sizes]
    for name in ARRAY_FIELDS:
        array = getattr(mask, name)
        if array is None:
            key.append(None)
        elif interop.is_jax(array):
            if jax_bridge.is_traced(array):
                return None
            if not jax_inputs:  # torch / CuPy plans keep the pointers of the arrays' DLPack views
                return _Identity(mask)
            # JAX calls take the mask's arrays as operands on every call: their layout is all the key needs
            key.append(("jax", array.shape, array.dtype, array.sharding))
        elif type(array).__module__.split(".")[0] != "cupy":
            return _Identity(mask)  # mixed host and device arrays: mask_operand names them
        else:
            data = array.data
            key.append((data.ptr, data.device_id, array.shape, array.strides, array.dtype))
    return tuple(key)


def _fast_key(q, k, v, causal, scale, layout, return_lse, block_mask, window) -> tuple | None:
    """attention_forward's fast-path key for torch or CuPy q, k, v and these options; None for other inputs
    and for options whose calls are checked every time (a window other than a tuple of exact ints or None, a
    block mask without a key). Types go in the key: True == 1 and hash alike, and only validated (bool)
    options may hit."""
    inputs = interop.call_key(q, k, v) or jax_bridge.call_key(q, k, v)
    if inputs is None:
        return None
    if window is not None and not (isinstance(window, tuple) and all(x is None or type(x) is int for x in window)):
        return None
    mask_key = None if block_mask is None else _mask_key(block_mask, inputs[0] == "jax")
    if block_mask is not None and mask_key is None:
        return None
    return (inputs, type(causal), causal, type(scale), scale, layout, type(return_lse), return_lse, mask_key, window)


def fast_call(q, k, v, *, causal, scale, layout, return_lse, block_mask):
    """The per-call work (:class:`~bsk_cupy.interop.TorchFastCall`, :class:`~bsk_cupy.interop.CupyFastCall` or
    :class:`~bsk_cupy.jax_bridge.JaxFastCall`) attention_forward keeps for these inputs and options, once a
    call has made it (None otherwise): for callers that run it many times with the same arguments
    (sparsek_attention)."""
    key = _fast_key(q, k, v, causal, scale, layout, return_lse, block_mask, None)
    try:
        return _fast_calls.get(key) if key is not None else None
    except TypeError:
        return None


def _remember(key: tuple, fast, block_mask):
    """Keep ``fast`` as the per-call work of ``key`` (the oldest entry goes past _FAST_CALLS_MAX; a host
    mask's entries go with the mask) and return it."""
    with _fast_calls_lock:
        if len(_fast_calls) >= _FAST_CALLS_MAX:
            del _fast_calls[next(iter(_fast_calls))]
        _fast_calls[key] = fast
    if isinstance(key[-2], _Identity):
        _watch(block_mask)
    return fast


def attention_forward(q, k, v, *, causal: bool = False, scale: float | None = None, layout: str = "bhsd",
                      return_lse: bool = False, block_mask=None, window=None, out=None):
    """Scaled dot-product attention forward on Hopper (wgmma + TMA kernels).

    Parameters
    ----------
    q : CUDA array, (B, Hq, Sq, D) for ``layout="bhsd"`` or (B, Sq, Hq, D) for ``layout="bshd"``
        float16 or bfloat16; a torch tensor, CuPy array, JAX array or other DLPack CUDA array.
    k, v : CUDA arrays, (B, Hkv, Sk, D) or (B, Sk, Hkv, D)
        Same framework, dtype and device as ``q``; ``Hq % Hkv == 0`` (GQA/MQA). D is 64, 128 or 256;
        any Sq, Sk >= 1. Strided views (e.g. slices of one packed qkv tensor) are read in place when the
        last dimension is contiguous and the other strides are multiples of 8 elements.
    causal : bool
        Query i sees key j iff ``j <= i + (Sk - Sq)`` (bottom-right aligned, as FlashAttention). Equal to
        ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)`` only when Sq == Sk.
    scale : float, optional
        Softmax scale, > 0; defaults to ``1 / sqrt(D)``.
    layout : {"bhsd", "bshd"}
    return_lse : bool
        Also return the log-sum-exp of the scaled scores.
    block_mask : bsk_cupy.BlockMask, optional
        Compute only the KV blocks it lists for each (batch, head, query block); block size 128 x 128, or
        64 x 64 at head dim 64 and 128, batch dimension 1 or B, head dimension 1, Hq (per query head) or
        Hkv (per KV head, shared by the query heads of a GQA group). ``causal`` and ``window`` still mask
        elements inside listed blocks. Host masks are validated and copied to the GPU once per mask object;
        device masks are used in place. Rows run longest first when the mask has a ``row_order`` and K
        and V fit in L2 (``bsk_cupy.dispatch.follows_row_order``); past that, head by head and only the
        last heads' rows longest first (``bsk_cupy.dispatch.tail_heads``).
    window : (int or None, int or None), optional
        ``(left, right)``: query i sees key j only if ``i + off - left <= j <= i + off + right`` with
        ``off = Sk - Sq`` (sliding-window / local attention; None = unbounded). Only the KV tiles the window
        touches are visited, so the cost follows the window size. Without ``block_mask``, a window bounded
        on both sides (``causal`` bounds the right) that spans at most 512 keys, on a grid of more than one
        wave, at head dim 64 (or 128 with K and V in L2), runs as ``BlockMask.sliding_window``
        (``bsk_cupy.window_route``).
    out : torch tensor or CuPy array, optional
        Where to write the result: q's framework, shape, dtype and device, contiguous, 16-byte aligned,
        overlapping none of q, k, v and block_mask's device arrays (checked; ValueError / TypeError
        otherwise). Saves the allocation (on the torch path about a quarter of the host time of a small
        call); it is returned. Not for JAX arrays (immutable).

    Returns
    -------
    out : array of the caller's framework, same shape, dtype and layout as ``q`` (contiguous); ``out``
        itself when given
    lse : float32 array (B, Hq, Sq), natural log, only when ``return_lse``; -inf for rows that see no key
        (their ``out`` row is 0), which block masks and windows can produce.

    Notes
    -----
    Runs on the caller's current stream (torch: ``torch.cuda.current_stream()``; CuPy and DLPack inputs:
    CuPy's current stream). Works inside ``torch.cuda.graph`` capture. Forward only: torch inputs that
    require grad raise unless grad mode is off.

    JAX arrays run as one XLA custom call on XLA's stream (``jax.experimental.buffer_callback``), eagerly
    or inside ``jax.jit`` (checked once per trace). Their block mask holds NumPy arrays or JAX arrays (such
    as ``sparsek_select`` makes from JAX scores), passed to the call as operands; a mask of CuPy arrays
    works with eager JAX arrays only (through DLPack, on CuPy's current stream). Not under ``jax.grad`` or
    ``jax.vmap`` (:mod:`bsk_cupy.jax_bridge`).

    Examples
    --------
    >>> import torch, bsk_cupy as bsk
    >>> q = torch.randn(1, 8, 512, 64, device="cuda", dtype=torch.float16)
    >>> out = bsk.attention_forward(q, q, q, causal=True)
    """
    key = _fast_key(q, k, v, causal, scale, layout, return_lse, block_mask, window)
    if key is not None:
        try:
            fast = _fast_calls.get(key)
        except TypeError:  # an option that does not hash (the checks below name it)
            fast = key = None
        if fast is not None:
            return fast(q, k, v, out, block_mask)
    if jax_bridge.takes((q, k, v), block_mask):
        if out is not None:
            raise TypeError("out is for torch tensors and CuPy arrays; jax inputs get a new array")
        result, fast = jax_bridge.attention(q, k, v, causal=causal, scale=scale, layout=layout,
                                            return_lse=return_lse, block_mask=block_mask, window=window)
        if fast is not None and key is not None:
            _remember(key, fast, block_mask)
        return result
    operands = [interop.describe(name, x) for name, x in (("q", q), ("k", k), ("v", v))]
    check_bool("return_lse", return_lse)
    infos = tuple(op.info for op in operands)
    problem = check_attention_args(*infos, causal=causal, scale=scale, layout=layout, window=window)
    require_hopper(problem.device)
    if block_mask is None and problem.window is not None:
        device = problem.device
        problem, block_mask = window_route.routed(problem, sm_count(device), l2_bytes(device))
    mask = mask_operand(block_mask, problem) if block_mask is not None else None
    adapter, like = operands[0].adapter, operands[0].handle
    stream = adapter.stream(problem.device)
    plan = get_plan(problem, *infos, mask=mask, stream=stream)
    lse_shape = (problem.batch, problem.heads_q, problem.seqlen_q) if return_lse else None
    if adapter.name in ("torch", "cupy"):
        make = interop.TorchFastCall if adapter.name == "torch" else interop.CupyFastCall
        fast = make(plan, q, problem, infos, lse_shape, mask_spans(mask))
        if key is not None:
            _remember(key, fast, block_mask)
        return fast(q, k, v, out)
    # other DLPack producers (and JAX arrays with a device mask), computed through CuPy views
    if out is not None:
        raise TypeError(f"out is for torch tensors and CuPy arrays; {adapter.name} inputs get a new array")
    out, out_ptr = adapter.empty(like, problem.out_shape)
    lse, lse_ptr = adapter.empty(like, lse_shape, float32=True) if return_lse else (None, 0)
    plan.launch(out_ptr, lse_ptr, stream)
    if return_lse:
        return adapter.finish(out), adapter.finish(lse)
    return adapter.finish(out)
