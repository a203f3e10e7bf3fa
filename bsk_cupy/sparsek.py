"""Public API: ``sparsek_select`` (SparseK-style top-k KV-block selection on the GPU) and
``sparsek_attention`` (selection + block-sparse attention)."""

from __future__ import annotations

import threading

from . import interop, jax_bridge
from .api import attention_forward, fast_call
from .block_mask import BlockMask
from .device import require_hopper
from .launch import is_capturing, keep_for_graphs
from .sparsek_launch import get_select_plan
from .sparsek_validation import check_scores_for_attention, check_sparsek_args
from .validation import check_attention_args, check_bool, check_layout


def sparsek_select(scores, topk: int, *, seqlen_q: int | None = None, block_size: int = 128, causal: bool = True,
                   local_blocks: int = 1, pool: str = "max") -> BlockMask:
    """Pick the KV blocks each query block attends to, from per-key importance scores (one kernel launch).

    Parameters
    ----------
    scores : CUDA array, (B, Hkv, Sk)
        float32, float16 or bfloat16, any strides; a torch tensor, CuPy array, JAX array or other DLPack
        CUDA array. The query-independent importance of every key (SparseK's scoring-network output).
    topk : int
        Blocks kept per query block beyond its local window (>= 0; more than there are candidates keeps them
        all).
    seqlen_q : int, optional
        Sq, defaults to Sk. Query blocks are bottom-right aligned with the keys, as in causal attention.
    block_size : {128, 64}
        Rows per query block and keys per KV block. At most 4096 KV blocks (Sk <= 524288 at 128, 262144 at 64).
    causal : bool
        Candidates are the blocks the bottom-right causal mask touches (query i sees key j iff
        ``j <= i + Sk - Sq``); a query block whose rows see no key keeps nothing. Otherwise every block is a
        candidate.
    local_blocks : int
        The local window, always kept (>= 0): the blocks holding the diagonal keys of the query block's rows
        (one, or two where ``Sk - Sq`` is not a multiple of ``block_size``, so that every row sees its own
        diagonal) and the ``local_blocks - 1`` blocks before them; none when 0.
    pool : {"max", "mean"}
        A KV block's score: the max or mean of its keys' scores, over the keys that exist (the last block
        may be partial) and are not NaN.

    Returns
    -------
    BlockMask
        ``kv_num_blocks`` int32 (B, Hkv, nQB) and ``kv_indices`` int32 (B, Hkv, nQB, nKB), CuPy arrays (JAX
        arrays for JAX scores) on ``scores``' device, ``seq_lengths=(Sq, Sk)``,
        ``block_size=(block_size, block_size)``, no full-block lists (the attention kernel applies the causal
        element mask itself). Row ``kv_indices[b, h, m]``
        lists the kept blocks ascending in its first ``kv_num_blocks[b, h, m]`` entries, then the other
        blocks ascending: every row is a permutation of ``0..nKB-1`` (the layout ``BlockMask.from_dense``
        writes), so the whole array is deterministic.

    Notes
    -----
    Selection (exactly :func:`bsk_cupy.reference.sparsek_blocks_reference`): a query block keeps its local
    window plus the ``topk`` other candidates with the highest pooled scores; ties go to the lower block
    index. NaN: keys whose score is NaN are left out of the pooling; a block with no non-NaN key pools to
    NaN and ranks below every number (``-inf`` included), NaN blocks among themselves by index: NumPy's
    ``argsort`` order, which the oracle uses. Max pooling reproduces the oracle exactly; means are summed
    in float64 but in another order than NumPy's, so two blocks whose means lie within a float64 rounding
    error of each other may rank differently (exact ties, such as small-integer scores, rank the same).

    Relation to SparseK (Lou et al., "Sparser is Faster and Less is More: Efficient Sparse Attention for
    Long-Range Transformers", arXiv 2406.16747): there a scoring network gives every key a
    query-independent score and each query attends to the k keys with the highest scores among those it may
    see (the differentiable SparseK operator makes that choice trainable). Here ``scores`` is that
    network's output; the choice is made per KV block of ``block_size`` keys, with block scores pooled
    from the key scores, and once per query block rather than per query, which is what a block-sparse
    attention kernel can use; the local window (the most recent blocks, always kept) is an addition of
    ours. Not included: the differentiable SparseK operator and its gradient (this is a hard top-k with no
    backward, for inference or for a frozen scorer) and per-query (rather than per-block) selection.

    The outputs are written on the caller's current stream (torch: ``torch.cuda.current_stream()``;
    CuPy / DLPack inputs: CuPy's current stream): read them on that stream or after synchronising. For
    torch inputs the outputs are allocated by torch (CuPy arrays over that memory), and the call makes no
    synchronisation and no host round trip, so it can be captured in ``torch.cuda.graph`` (call it once
    outside the capture first, to compile and plan). JAX scores, eager or traced inside ``jax.jit``, run as
    one XLA custom call on XLA's stream and give a mask of JAX arrays, which ``attention_forward`` with
    JAX inputs takes as it is (:mod:`bsk_cupy.jax_bridge`).

    Examples
    --------
    >>> import torch, bsk_cupy as bsk
    >>> scores = torch.randn(1, 8, 8192, device="cuda")          # (B, Hkv, Sk)
    >>> mask = bsk.sparsek_select(scores, topk=8, local_blocks=2)  # 10 blocks of 128 per query block
    >>> mask.kv_num_blocks.shape, mask.kv_indices.shape
    ((1, 8, 64), (1, 8, 64, 64))
    """
    options = (topk, seqlen_q, block_size, causal, local_blocks, pool)
    key = _call_key(scores, *options) or _jax_call_key(scores, options)
    fast = _select_calls.get(key) if key is not None else None
    if fast is not None:
        return fast(scores)
    if jax_bridge.is_jax(scores):
        mask, fast = jax_bridge.select(scores, topk, seqlen_q=seqlen_q, block_size=block_size, causal=causal,
                                       local_blocks=local_blocks, pool=pool)
        if fast is not None and key is not None:
            _remember(_select_calls, key, fast)
        return mask
    operand = interop.describe("scores", scores)
    problem = check_sparsek_args(operand.info, topk, seqlen_q=seqlen_q, block_size=block_size, causal=causal,
                                 local_blocks=local_blocks, pool=pool)
    require_hopper(problem.device)
    call = _SelectCall(get_select_plan(problem), problem, operand.adapter)
    if key is not None:
        _remember(_select_calls, key, call)
    return call(operand.handle)


# Per-call fast paths for torch and CuPy inputs, as attention_forward has: a call whose scores have the
# shape, strides, dtype and device of one already checked (and, for sparsek_attention, whose q, k and v are
# the same arrays, pointers included, as attention_forward's fast path wants them), with the same options
# (exact types: True and 1 hash alike), skips describing and checking them again.
_FAST_CALLS_MAX = 256
_KEY_TYPES = (int, bool, str, float, type(None))
_select_calls: dict[tuple, object] = {}  # _SelectCall, or jax_bridge.SelectFastCall
_attention_calls: dict[tuple, object] = {}  # _AttentionCall, or a compiled JAX call (jax_bridge)
_fast_calls_lock = threading.Lock()


def _call_key(scores, *options) -> tuple | None:
    """The fast-path key of a call on torch or CuPy ``scores`` with ``options``; None for other arrays, or
    options of other types (which the checks name, or which do not hash)."""
    if not all(type(o) in _KEY_TYPES for o in options):
        return None
    framework = type(scores).__module__
    if framework == "torch":
        return ("torch", scores.shape, scores.stride(), scores.dtype, scores.device,
                *((type(o), o) for o in options))
    if framework == "cupy":
        return ("cupy", scores.shape, scores.strides, scores.dtype, scores.data.device_id,
                *((type(o), o) for o in options))
    return None


def _jax_call_key(scores, options) -> tuple | None:
    """:func:`_call_key` for concrete JAX ``scores``."""
    scores_key = jax_bridge.scores_key(scores)
    if scores_key is None or not all(type(o) in _KEY_TYPES for o in options):
        return None
    return (*scores_key, *((type(o), o) for o in options))


def _pointer(array) -> int:
    """The data pointer of a torch tensor or CuPy array (one a fast-path key accepted)."""
    return array.data_ptr() if type(array).__module__ == "torch" else array.data.ptr


def _remember(calls: dict, key: tuple, call) -> None:
    with _fast_calls_lock:
        if len(calls) >= _FAST_CALLS_MAX:
            del calls[next(iter(calls))]
        calls[key] = call


class _SelectCall:
    """The per-call work of a checked selection problem: allocate the two outputs (one block of memory in the
    caller's framework), launch on the caller's current stream, wrap them in a BlockMask."""

    def __init__(self, plan, problem, adapter):
        self._plan, self._adapter, self._device = plan, adapter, problem.device
        self._shapes = (problem.num_blocks_shape, problem.indices_shape)
        self._seq_lengths = (problem.seqlen_q, problem.seqlen_k)
        self._block_size = (problem.block_size, problem.block_size)

    def __call__(self, scores) -> BlockMask:
        with interop.on_device(self._device):  # the kernel was loaded in that device's context
            (num_blocks, num_blocks_ptr), (indices, indices_ptr) = self._adapter.index_arrays(scores, self._shapes)
            self._plan.launch(_pointer(scores), num_blocks_ptr, indices_ptr, self._adapter.stream(self._device))
        return BlockMask(num_blocks, indices, self._seq_lengths, self._block_size)


_MASKS_MAX = 64
_masks: dict[tuple, BlockMask] = {}
_masks_lock = threading.Lock()


def _reused_mask(problem) -> BlockMask:
    """One device BlockMask per selection problem (the last 64 problems), rewritten by every call of that
    problem: the attention call then sees the same mask object and pointers each time, and a call allocates
    nothing. Calls of one problem must be stream-ordered. A mask a CUDA graph has captured stays alive with
    the process (launch.keep_for_graphs), evicted or not."""
    import cupy

    with _masks_lock:
        mask = _masks.get(problem)
        if mask is None:
            with cupy.cuda.Device(problem.device):
                num = cupy.empty(problem.num_blocks_shape, dtype=cupy.int32)  # every call rewrites all
                indices = cupy.empty(problem.indices_shape, dtype=cupy.int32)
            size = problem.block_size
            mask = BlockMask(num, indices, (problem.seqlen_q, problem.seqlen_k), (size, size))
            if len(_masks) >= _MASKS_MAX:
                evicted = _masks.pop(next(iter(_masks)))
                # its entries write and read it: they go with it (JAX entries, compiled calls, use scratch
                # buffers of their own)
                with _fast_calls_lock:
                    for key in [key for key, call in _attention_calls.items()
                                if getattr(call, "mask", None) is evicted]:
                        del _attention_calls[key]
            _masks[problem] = mask
    return mask


def sparsek_attention(q, k, v, scores, topk: int, *, block_size: int = 128, causal: bool = True,
                      local_blocks: int = 1, pool: str = "max", scale: float | None = None, layout: str = "bhsd",
                      return_lse: bool = False):
    """SparseK top-k sparse attention: :func:`sparsek_select` on ``scores``, then block-sparse
    :func:`~bsk_cupy.attention_forward` over the selected blocks, on the caller's stream.

    Parameters
    ----------
    q : CUDA array, (B, Hq, Sq, D) (``layout="bhsd"``) or (B, Sq, Hq, D) (``"bshd"``)
    k, v : CUDA arrays, (B, Hkv, Sk, D) or (B, Sk, Hkv, D)
    scores : CUDA array, (B, Hkv, Sk)
        Per-key importance (SparseK's scoring-network output), from q's framework and on its device; the
        query heads of a GQA group share their KV head's selection.
    topk, block_size, local_blocks, pool
        As in :func:`sparsek_select` (``seqlen_q`` = Sq): ``block_size`` 128 or 64 keys and query rows per
        block; 64 runs on 64 x 64 tiles (finer selection, lower tensor-core efficiency per block).
    causal : bool
        Selects among causal candidates and applies the causal element mask inside the kept blocks.
    scale, layout, return_lse
        As in :func:`~bsk_cupy.attention_forward`.

    Returns
    -------
    out, or (out, lse): as :func:`~bsk_cupy.attention_forward`.

    Notes
    -----
    Two kernel launches and no host round trip: CUDA-graph capturable (call once outside the capture
    first). The selection is written to a device mask kept per selection problem (shape, dtype, topk,
    options) and rewritten by every call, so concurrent calls of one problem on different streams must
    be ordered by the caller.

    JAX arrays (eager, or traced inside ``jax.jit``) run both launches in one XLA custom call on XLA's
    stream; the selected blocks live in scratch buffers of that call (:mod:`bsk_cupy.jax_bridge`).
    """
    options = (topk, block_size, causal, local_blocks, pool, scale, layout, return_lse)
    inputs_key = interop.call_key(q, k, v) or jax_bridge.call_key(q, k, v)
    key = (_call_key(scores, *options) or _jax_call_key(scores, options)) if inputs_key is not None else None
    fast = _attention_calls.get((inputs_key, key)) if key is not None else None
    if fast is not None:
        return fast(q, k, v, scores)
    if jax_bridge.takes((q, k, v, scores)):
        result, fast = jax_bridge.sparsek_attention(q, k, v, scores, topk, block_size=block_size, causal=causal,
                                                    local_blocks=local_blocks, pool=pool, scale=scale,
                                                    layout=layout, return_lse=return_lse)
        if fast is not None and key is not None:
            _remember(_attention_calls, (inputs_key, key), fast)
        return result
    # q, k and v are checked before the selection writes the problem's reused mask, which an earlier call's
    # attention may still read on this stream (a call that then failed would have changed it)
    layout = check_layout(layout)
    check_attention_args(*(interop.describe(name, x).info for name, x in (("q", q), ("k", k), ("v", v))),
                         causal=causal, scale=scale, layout=layout)
    check_bool("return_lse", return_lse)
    operand = interop.describe("scores", scores)
    q_info, k_info = interop.placement("q", q), interop.placement("k", k)
    check_scores_for_attention(operand.info, q_info, k_info, layout)
    s_q = q_info.shape[2 if layout == "bhsd" else 1]
    problem = check_sparsek_args(operand.info, topk, seqlen_q=s_q, block_size=block_size, causal=causal,
                                 local_blocks=local_blocks, pool=pool)
    require_hopper(problem.device)
    mask = _reused_mask(problem)
    with interop.on_device(problem.device):
        stream = operand.adapter.stream(problem.device)
        if is_capturing(stream):
            keep_for_graphs(mask)
        get_select_plan(problem).launch(operand.info.ptr, mask.kv_num_blocks.data.ptr, mask.kv_indices.data.ptr,
                                        stream)
    attention = dict(causal=causal, scale=scale, layout=layout, return_lse=return_lse, block_mask=mask)
    result = attention_forward(q, k, v, **attention)
    if key is not None:  # attention_forward has checked q, k, v and the options, and kept its fast call
        attention_call = fast_call(q, k, v, **attention)
        if attention_call is not None:
            _remember(_attention_calls, (inputs_key, key),
                      _AttentionCall(get_select_plan(problem), mask, attention_call, operand.adapter,
                                     problem.device))
    return result


class _AttentionCall:
    """sparsek_attention's per-call work for torch or CuPy inputs already checked: the selection into the
    problem's reused device mask, then attention_forward's own per-call work over it, both on the current
    stream."""

    def __init__(self, plan, mask: BlockMask, attention_call, adapter, device: int):
        self._plan, self._attention_call, self._adapter, self._device = plan, attention_call, adapter, device
        self.mask = mask  # kept alive: the plans hold its pointers
        self._pointers = (mask.kv_num_blocks.data.ptr, mask.kv_indices.data.ptr)

    def __call__(self, q, k, v, scores):
        with interop.on_device(self._device):
            stream = self._adapter.stream(self._device)
            if is_capturing(stream):
                keep_for_graphs(self.mask)
            self._plan.launch(_pointer(scores), *self._pointers, stream)
        return self._attention_call(q, k, v)
