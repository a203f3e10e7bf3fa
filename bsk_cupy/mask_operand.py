"""A :class:`BlockMask` as the attention kernel reads it: int32 device arrays, broadcast strides, head map.

Host (NumPy) masks are validated once and copied to the device once per mask object (the copy lives as
long as the mask, and as the cached launch plans that use it). Device masks (CuPy arrays, JAX arrays
through DLPack, or XLA's buffers in a JAX custom call: :func:`operand_at`) must be C-contiguous; they are
used in place, and like q, k and v stay the caller's: cached plans keep their pointers, not the arrays.
Their shapes and dtypes are checked, their contents are not read on the host, which would cost a
synchronisation: the kernel clamps every count to the row length and every listed block to its range, and
masks keys outside [0, Sk), so a malformed device mask gives wrong blocks, never an out-of-bounds access
or an unwritten output row. A device row order the constructors did not make reaches the kernel as an
item order built from it on the device (:func:`tail_item_order`), which runs every item once whatever the
array holds. Validate a mask with ``BlockMask.validate()`` when in doubt.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, field, replace

import numpy as np

from .block_mask import ARRAY_FIELDS, BlockMask, made_row_order
from .interop import array_module, as_numpy_or_cupy, cupy_stream, is_jax
from .validation import AttentionProblem

KERNEL_BLOCKS = (128, 64)  # square mask blocks the kernel runs: 128 x 128 tiles, or 64 x 64 (split warpgroups)

_uploads: dict[int, tuple] = {}  # id(mask): (weakref to it, {device: its five arrays there})
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
    order_checked: bool = True  # the row order is a permutation (validated on the host, or a constructor's)
    # The mask's five device arrays (mask_operand's order; None where absent), then any made from them
    # (tail orders): kept alive with the operand.
    arrays: tuple = field(default=(), compare=False, repr=False)
    borrowed: bool = False     # the five are the caller's device arrays (see retained)


def retained(mask: MaskOperand | None) -> MaskOperand | None:
    """``mask`` as a cached launch plan keeps it: without the caller's own device arrays (which the caller
    owns, as it owns q, k and v: a plan holding them would keep every mask a loop makes alive), with the
    arrays made here (host uploads, tail orders)."""
    if mask is None or not mask.borrowed:
        return mask
    return replace(mask, arrays=mask.arrays[5:])


def _device_arrays(mask: BlockMask, device: int) -> tuple[tuple, bool]:
    """The mask's five arrays (None for absent full lists or row order) as contiguous int32 CuPy arrays on
    ``device``: a device mask's own, or a host mask's uploads (validated first, one per device, complete
    before this returns, so a launch on any stream reads them); and whether they are uploads made here."""
    import cupy

    # JAX arrays (a mask sparsek_select made from JAX scores, used with torch or CuPy q): CuPy views through
    # DLPack, which orders JAX's producer before CuPy's current stream
    arrays = tuple(as_numpy_or_cupy(f"block_mask.{name}", a) if is_jax(a) else a
                   for name, a in ((name, getattr(mask, name)) for name in ARRAY_FIELDS))
    if all(a is None or isinstance(a, cupy.ndarray) for a in arrays):
        for name, a in zip(ARRAY_FIELDS, arrays):
            if a is not None and a.device.id != device:
                raise ValueError(f"block_mask.{name} is on cuda:{a.device.id} but q is on cuda:{device}")
            if a is not None and not a.flags.c_contiguous:
                raise ValueError(f"block_mask.{name} must be C-contiguous on the device (the kernel reads it in "
                                 f"place); got strides {a.strides}")
        return arrays, False
    if not all(a is None or isinstance(a, np.ndarray) for a in arrays):
        raise TypeError("block_mask arrays must all be NumPy (host) or all device (CuPy, JAX) arrays")
    key = id(mask)
    with _uploads_lock:
        cached = _uploads.get(key)
        if cached is not None and cached[0]() is mask and device in cached[1]:
            return cached[1][device], True
    mask.validate()
    with cupy.cuda.Device(device):
        uploaded = tuple(None if a is None else cupy.asarray(np.ascontiguousarray(a)) for a in arrays)
        # the copies run on CuPy's current stream; the kernels, on the caller's (any stream, later ones too)
        cupy.cuda.get_current_stream().synchronize()
    with _uploads_lock:
        cached = _uploads.get(key)
        if cached is None or cached[0]() is not mask:
            cached = _uploads[key] = (weakref.ref(mask), {})
            weakref.finalize(mask, _uploads.pop, key, None)
        cached[1][device] = uploaded
    return uploaded, True


@dataclass(frozen=True)
class MaskGeometry:
    """How a block mask's arrays map onto an attention problem (what :func:`mask_geometry` checks)."""

    mask_batch: int  # 1 (broadcast) or B
    mask_heads: int  # 1, Hq or Hkv
    query_blocks: int
    kv_blocks: int
    head_div: int    # the mask head of query head h is h // head_div
    block: int


def mask_geometry(mask, problem: AttentionProblem) -> MaskGeometry:
    """Check ``mask``'s type, block size, sequence lengths and array shapes against ``problem`` without
    touching its arrays' memory (no device, no upload): what :func:`mask_operand` checks first, and all a
    traced JAX call can check before it runs.

    Raises
    ------
    TypeError
        ``mask`` is not a BlockMask.
    ValueError
        Arrays that are not int32 or whose shapes disagree with each other or with the mask's sequence
        lengths; block size other than 128 x 128 or 64 x 64 (64 not at head dim 256); sequence lengths,
        batch or head counts that do not match q / k.
    """
    if not isinstance(mask, BlockMask):
        raise TypeError(f"block_mask must be a bsk_cupy.BlockMask or None, got {type(mask).__name__}")
    try:
        mask_b, mask_h, mask_qb, mask_kb = mask.check_layout()
    except ValueError as exc:
        raise ValueError(f"block_mask: {exc}") from None
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
    return MaskGeometry(mask_b, mask_h, n_qb, n_kb, head_div, block)


def mask_operand(mask, problem: AttentionProblem) -> MaskOperand:
    """Check ``mask`` against ``problem`` (:func:`mask_geometry`) and return the kernel's view of it (which
    holds its device arrays).

    Raises
    ------
    TypeError
        As :func:`mask_geometry`, or a mask that mixes host and device arrays.
    ValueError
        As :func:`mask_geometry`, or device arrays on another device than q or not C-contiguous.
    """
    geometry = mask_geometry(mask, problem)
    arrays, uploaded = _device_arrays(mask, problem.device)
    pointers = tuple(0 if a is None else a.data.ptr for a in arrays)
    return _operand(geometry, pointers, arrays, not uploaded, uploaded or made_row_order(mask.row_order))


def mask_spans(mask: MaskOperand | None) -> tuple[tuple[int, int], ...]:
    """[start, end) byte spans of the device arrays the kernel reads for ``mask`` (what ``out`` must not
    overlap); none without a mask."""
    if mask is None:
        return ()
    return tuple((a.data.ptr, a.data.ptr + a.nbytes) for a in mask.arrays if a is not None)


def operand_at(geometry: MaskGeometry, pointers: tuple[int, int, int, int, int], device: int) -> MaskOperand:
    """The kernel's view of a mask whose arrays (``ARRAY_FIELDS`` order, 0 where absent) are C-contiguous int32
    device memory at ``pointers`` on ``device``, owned by the caller (XLA's buffers in a JAX custom call). A
    row order is wrapped as a CuPy view, from which a plan past L2 derives its tail order when it is made
    (:func:`with_tail_order`): a plan reused for the same address keeps that order if the contents change,
    which moves work between CTAs, never a value (every item still runs once)."""
    import cupy

    order = None
    if pointers[4]:
        rows = geometry.mask_batch * geometry.mask_heads * geometry.query_blocks
        memory = cupy.cuda.UnownedMemory(pointers[4], 4 * rows, None, device_id=device)
        order = cupy.ndarray((rows,), dtype=cupy.int32, memptr=cupy.cuda.MemoryPointer(memory, 0))
    return _operand(geometry, pointers, (None, None, None, None, order), True, False)


def _operand(geometry: MaskGeometry, pointers: tuple[int, ...], arrays: tuple, borrowed: bool,
             order_checked: bool) -> MaskOperand:
    num, idx, full_num, full_idx, row_order = pointers
    return MaskOperand(
        num_ptr=num, idx_ptr=idx, full_num_ptr=full_num, full_idx_ptr=full_idx,
        stride_b=0 if geometry.mask_batch == 1 else geometry.mask_heads * geometry.query_blocks,
        stride_h=0 if geometry.mask_heads == 1 else geometry.query_blocks,
        kv_blocks=geometry.kv_blocks, head_div=geometry.head_div, block=geometry.block,
        row_order_ptr=row_order, arrays=arrays, borrowed=borrowed, order_checked=order_checked)


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

    if len(mask.arrays) < 5:
        raise ValueError("with_tail_order needs mask_operand's operand (its arrays), not a cached plan's copy")
    row_order = mask.arrays[4]  # mask_operand's order of the five arrays
    if row_order is None:
        return replace(mask, row_order_ptr=0)
    mask_batch = 1 if mask.stride_b == 0 else problem.batch
    mask_heads = 1 if mask.stride_h == 0 else problem.heads_q // mask.head_div
    with cupy.cuda.Device(problem.device), cupy_stream(stream):
        order = tail_item_order(row_order, math.ceil(problem.seqlen_q / mask.block), problem.batch, problem.heads_q,
                                mask_batch, mask_heads, tail_heads)
    return replace(mask, row_order_ptr=order.data.ptr, order_items=True, arrays=mask.arrays + (order,))
