"""A :class:`BlockMask` as the attention kernel reads it: int32 device arrays, broadcast strides, head map.

Host (NumPy) masks are validated once and copied to the device once per mask object (the copy lives as
long as the mask). Device (CuPy) masks are used in place and not read on the host, which would cost a
synchronisation: the kernel clamps every count to the row length and masks keys outside [0, Sk), so a
malformed device mask gives wrong blocks, never an out-of-bounds access. Validate it with
``BlockMask.validate()`` when in doubt.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, field, replace

from .block_mask import BlockMask
from .interop import array_module, cupy_stream
from .validation import AttentionProblem

KERNEL_BLOCKS = (128, 64)  # square mask blocks the kernel runs: 128 x 128 tiles, or 64 x 64 (split warpgroups)

_uploads: dict[int, tuple] = {}
_uploads_lock = threading.Lock()


@dataclass(frozen=True)
class MaskOperand:
    """Device pointers and geometry of one block mask for one attention problem."""

    num_ptr: int
    idx_ptr: int
    full_num_ptr: int          # 0: no full-block lists
    full_idx_ptr: int
    stride_b: int              # elements of the (B, H, nQB) count arrays; 0 broadcasts
    stride_h: int
    kv_blocks: int             # nKB, the row length of the index arrays
    head_div: int              # the mask head of query head h is h // head_div
    block: int                 # the mask's square block size: the kernel's query-block rows and tile keys
    row_order_ptr: int = 0     # BlockMask.row_order (0: the kernel's item order), or an item order
    order_items: bool = False  # row_order_ptr lists items (tail_item_order), not the mask's rows
    arrays: tuple = field(default=(), compare=False, repr=False)  # the device arrays: kept alive with it


def _device_arrays(mask: BlockMask, device: int) -> tuple:
    """The mask's five arrays (None for absent full lists or row order) as contiguous int32 CuPy arrays on
    ``device``."""
    import cupy
    import numpy as np

    arrays = (mask.kv_num_blocks, mask.kv_indices, mask.full_kv_num_blocks, mask.full_kv_indices, mask.row_order)
    if all(a is None or not isinstance(a, np.ndarray) for a in arrays):
        for a in arrays:
            if a is not None and a.device.id != device:
                raise ValueError(f"block_mask arrays are on cuda:{a.device.id} but q is on cuda:{device}")
        with cupy.cuda.Device(device):
            return tuple(None if a is None else cupy.ascontiguousarray(a) for a in arrays)
    key = id(mask)
    with _uploads_lock:
        cached = _uploads.get(key)
        if cached is not None and cached[0]() is mask and cached[1] == device:
            return cached[2]
    mask.validate()
    with cupy.cuda.Device(device):
        uploaded = tuple(None if a is None else cupy.asarray(np.ascontiguousarray(a)) for a in arrays)
    with _uploads_lock:
        _uploads[key] = (weakref.ref(mask), device, uploaded)
    weakref.finalize(mask, _uploads.pop, key, None)
    return uploaded


def mask_operand(mask, problem: AttentionProblem) -> MaskOperand:
    """Check ``mask`` against ``problem`` and return the kernel's view of it (which holds its device arrays).

    Raises
    ------
    TypeError
        ``mask`` is not a BlockMask, or its arrays are not int32.
    ValueError
        Block size other than 128 x 128 or 64 x 64, sequence lengths, batch or head counts that do not match
        q / k.
    """
    if not isinstance(mask, BlockMask):
        raise TypeError(f"block_mask must be a bsk_cupy.BlockMask or None, got {type(mask).__name__}")
    block = mask.block_size[0]
    if mask.block_size[1] != block or block not in KERNEL_BLOCKS:
        raise ValueError(f"block_mask.block_size must be (128, 128) or (64, 64) for attention_forward (the "
                         f"kernel's tiles), got {tuple(mask.block_size)}")
    if problem.head_dim == 256 and block != 128:
        raise ValueError("block_mask.block_size must be (128, 128) at head dim 256 (64 x 64 blocks run on "
                         "split-warpgroup tiles, which head dim 256 does not fit in shared memory)")
    if tuple(mask.seq_lengths) != (problem.seqlen_q, problem.seqlen_k):
        raise ValueError(f"block_mask.seq_lengths is {tuple(mask.seq_lengths)} but (Sq, Sk) is "
                         f"({problem.seqlen_q}, {problem.seqlen_k})")
    n_qb, n_kb = math.ceil(problem.seqlen_q / block), math.ceil(problem.seqlen_k / block)
    mask_b, mask_h, mask_qb, mask_kb = mask.shape
    if (mask_qb, mask_kb) != (n_qb, n_kb):
        raise ValueError(f"block_mask has {mask_qb} x {mask_kb} blocks; (Sq, Sk) needs {n_qb} x {n_kb}")
    if mask_b not in (1, problem.batch):
        raise ValueError(f"block_mask batch dimension must be 1 or {problem.batch}, got {mask_b}")
    if mask_h == problem.heads_q or mask_h == 1:
        head_div = 1
    elif mask_h == problem.heads_kv:
        head_div = problem.heads_q // problem.heads_kv
    else:
        raise ValueError(f"block_mask head dimension must be 1, Hq={problem.heads_q} or Hkv={problem.heads_kv}; "
                         f"got {mask_h}")
    for name in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices", "row_order"):
        array = getattr(mask, name)
        if array is not None and str(array.dtype) != "int32":
            raise TypeError(f"block_mask.{name} must be int32, got {array.dtype}")
    if (mask.full_kv_num_blocks is None) != (mask.full_kv_indices is None):
        raise ValueError("block_mask.full_kv_num_blocks and full_kv_indices must be given together")
    rows = math.prod(mask.kv_num_blocks.shape)
    if mask.row_order is not None and tuple(mask.row_order.shape) != (rows,):
        raise ValueError(f"block_mask.row_order must have shape ({rows},), one entry per row of kv_num_blocks; "
                         f"got {tuple(mask.row_order.shape)}")
    arrays = _device_arrays(mask, problem.device)
    num, idx, full_num, full_idx, row_order = arrays
    return MaskOperand(
        num_ptr=num.data.ptr, idx_ptr=idx.data.ptr,
        full_num_ptr=0 if full_num is None else full_num.data.ptr,
        full_idx_ptr=0 if full_idx is None else full_idx.data.ptr,
        stride_b=0 if mask_b == 1 else mask_h * n_qb, stride_h=0 if mask_h == 1 else n_qb,
        kv_blocks=n_kb, head_div=head_div, block=block,
        row_order_ptr=0 if row_order is None else row_order.data.ptr, arrays=arrays)


def tail_item_order(row_order, query_blocks: int, batch: int, heads: int, mask_batch: int, mask_heads: int,
                    tail_heads: int):
    """The claim order of a mask too large to run longest first throughout: int32 items, each (b, h,
    query block) flattened as ``(b * heads + h) * query_blocks + block``, in ``row_order``'s array module.
    Its (b, h) run in turn, each one's query blocks last first (the kernel's own item order), but for the
    last ``tail_heads`` (b, h), whose items run in the order ``row_order`` gives their mask rows (longest
    first), the (b, h) sharing a row (a mask broadcast over heads or batch, or given per KV head) one after
    another. The tail's long rows then start before its short ones, so that the CTAs finish together,
    while the items before it keep few heads in flight, for L2.

    ``row_order`` orders the rows of the mask's (mask_batch, mask_heads, query_blocks) count arrays; query
    head h reads mask head ``h // (heads // mask_heads)``, batch b mask batch ``b if mask_batch > 1``. No
    host synchronisation on the device. A malformed ``row_order`` (values out of range or repeated) still
    gives every item once: its rows are clamped, and rows it leaves out run last.
    """
    xp = array_module(row_order)
    pairs, rows = batch * heads, mask_batch * mask_heads * query_blocks
    cut = max(pairs - tail_heads, 0)
    blocks = xp.arange(query_blocks, dtype=xp.int64)
    head = (xp.arange(cut, dtype=xp.int64)[:, None] * query_blocks + blocks[::-1][None, :]).reshape(-1)
    rank = xp.full(rows, rows, dtype=xp.int64)
    rank[xp.clip(row_order.astype(xp.int64), 0, rows - 1)] = xp.arange(rows, dtype=xp.int64)
    tail = xp.arange(cut, pairs, dtype=xp.int64)
    mask_row = ((tail // heads if mask_batch > 1 else 0) * mask_heads
                + (tail % heads) // (heads // mask_heads)) * query_blocks
    position = tail - cut
    # unique keys: the row's rank, then the (b, h), then the block
    key = ((rank[mask_row[:, None] + blocks[None, :]] * (pairs - cut) + position[:, None]) * query_blocks
           + blocks[None, :])
    items = (tail[:, None] * query_blocks + blocks[None, :]).reshape(-1)[xp.argsort(key.reshape(-1))]
    return xp.concatenate([head, items]).astype(xp.int32)


def with_tail_order(mask: MaskOperand, problem: AttentionProblem, tail_heads: int, stream: int) -> MaskOperand:
    """``mask`` claimed in :func:`tail_item_order` (computed on ``stream``), or in the kernel's item order
    where it has no row order."""
    import cupy

    row_order = mask.arrays[4] if mask.arrays else None  # mask_operand's order of the five arrays
    if row_order is None:
        return replace(mask, row_order_ptr=0)
    mask_batch = 1 if mask.stride_b == 0 else problem.batch
    mask_heads = 1 if mask.stride_h == 0 else problem.heads_q // mask.head_div
    with cupy.cuda.Device(problem.device), cupy_stream(stream):
        order = tail_item_order(row_order, math.ceil(problem.seqlen_q / mask.block), problem.batch, problem.heads_q,
                                mask_batch, mask_heads, tail_heads)
    return replace(mask, row_order_ptr=order.data.ptr, order_items=True, arrays=mask.arrays + (order,))
