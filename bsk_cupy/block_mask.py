"""``BlockMask``: which KV blocks each (batch, head, query block) computes, in FlexAttention's layout.

For every batch b, head h and query block qb (``block_size[0]`` rows), ``kv_indices[b, h, qb, :n]`` with
``n = kv_num_blocks[b, h, qb]`` lists the KV blocks (``block_size[1]`` keys each) to compute, ascending.
Optional ``full_kv_num_blocks`` / ``full_kv_indices`` list further blocks whose every element is visible,
so the kernel may skip element masking there; as in FlexAttention, when the full lists are given the
``kv_*`` lists hold only the partial blocks and a block is in at most one of the two lists. Batch and head
dimensions may be 1 (broadcast). Element masks (``causal``, ``window``) still apply inside listed blocks.

Arrays are int32 NumPy arrays (host), CuPy arrays (device) or JAX arrays (device, kept as they are: JAX
calls pass them to XLA, and ``sparsek_select`` makes them from JAX scores, inside ``jax.jit`` too); torch
inputs are taken through DLPack. A mask keeps read-only copies of the host arrays it is given (a read-only
view the caller's memory could still change is copied too): its device copy is made once per mask, so the
arrays it reads must never change.
"""

from __future__ import annotations

import math
import numbers
import sys
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from .interop import array_module as _xp
from .interop import as_numpy_or_cupy as _as_array
from .interop import is_jax as _is_jax

BLOCK_SIZES = (64, 128)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_block_size(block_size) -> tuple[int, int]:
    pair = (block_size, block_size) if _is_int(block_size) else block_size
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(_is_int(b) and b in BLOCK_SIZES for b in pair):
        raise ValueError(f"block_size must be one of {BLOCK_SIZES} or a pair of them, got {block_size!r}")
    return int(pair[0]), int(pair[1])


def _check_seq_lengths(seq_lengths) -> tuple[int, int]:
    if (not isinstance(seq_lengths, (tuple, list)) or len(seq_lengths) != 2
            or not all(_is_int(n) and n >= 1 for n in seq_lengths)):
        raise ValueError(f"seq_lengths must be a pair of positive ints (Sq, Sk), got {seq_lengths!r}")
    return int(seq_lengths[0]), int(seq_lengths[1])


def _kept(name: str, value):
    """An array as a mask keeps it: JAX arrays as they are, others as read-only NumPy or as CuPy arrays."""
    return value if _is_jax(value) else _frozen(_as_array(name, value))


def _readable(array, name: str | None = None):
    """``array``'s values in a NumPy or CuPy array: a JAX array is read back to the host; TypeError for one
    traced inside ``jax.jit``, whose values exist only when the computation runs (``name``: a constructor's
    input of that name, else one of the mask's own arrays)."""
    if not _is_jax(array):
        return array
    import jax

    if isinstance(array, jax.Array) and not isinstance(array, jax.core.Tracer):
        return np.asarray(array)
    if name is not None:
        raise TypeError(f"{name} is traced (inside jax.jit), but BlockMask constructors read their inputs on "
                        f"the host: build the mask outside jit, or select on the GPU with sparsek_select")
    raise TypeError("this BlockMask holds traced (or abstract) JAX arrays: their values exist only when the "
                    "computation runs; pass the mask to attention_forward there, or read it outside jit")


def _as_input(name: str, value):
    """A constructor's input array: JAX arrays read to the host (the constructors build host masks from
    them), others as :func:`~bsk_cupy.interop.as_numpy_or_cupy` takes them."""
    return _readable(value, name) if _is_jax(value) else _as_array(name, value)


# Host arrays a mask made or copied itself, by id (read-only, referenced by no caller): kept without a copy.
_frozen_arrays: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _owned(array):
    """Mark a host array made here read-only and as the masks' own, so that a mask keeps it without a copy."""
    if isinstance(array, np.ndarray):
        array.setflags(write=False)
        _frozen_arrays[id(array)] = array
    return array


# Row orders the constructors made (permutations by construction), by id: a device one is used as it is.
_made_orders: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def made_row_order(order) -> bool:
    """Whether ``order`` is a row order a BlockMask constructor made (so a permutation, device ones too)."""
    return order is not None and _made_orders.get(id(order)) is order


def _frozen(array):
    """A host array as the mask keeps it: its own read-only copy, unless the array is already one (a caller's
    array, writeable or a read-only view of memory that may still change, is copied)."""
    if isinstance(array, np.ndarray) and _frozen_arrays.get(id(array)) is not array:
        array = _owned(array.copy())
    return array


ARRAY_FIELDS = ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices", "row_order")


@dataclass(frozen=True, repr=False)
class BlockMask:
    """Block-sparse attention pattern (see the module docstring for the layout).

    Parameters
    ----------
    kv_num_blocks : int32 array, (B or 1, H or 1, nQB)
    kv_indices : int32 array, (B or 1, H or 1, nQB, nKB)
    seq_lengths : (int, int)
        (Sq, Sk); ``nQB = ceil(Sq / block_size[0])`` and ``nKB = ceil(Sk / block_size[1])``.
    block_size : (int, int)
        Query-block rows and KV-block keys, each 64 or 128.
    full_kv_num_blocks, full_kv_indices : int32 arrays, optional
        Blocks that need no element mask, same shapes as ``kv_num_blocks`` / ``kv_indices``.
    row_order : int32 array, (B or 1) * (H or 1) * nQB, optional
        The order in which the attention kernel starts the rows (flattened (b, h, query block) indices of
        ``kv_num_blocks``): a permutation, rows listing the most blocks first (stable), so that the GPU's
        persistent CTAs take the longest rows first and finish together (longest-processing-time
        scheduling). The constructors set it; None runs the rows in the kernel's index order, as do calls
        with at most one item per SM (each has its own CTA from the start). Calls whose K and V outgrow
        two thirds of the L2 cache, half at head dim 64 (``bsk_cupy.dispatch.follows_row_order``), run
        their heads one after another, which keeps the heads in flight in L2, and take only the last
        heads' rows in this order (``bsk_cupy.dispatch.tail_heads``; the heads that share a row of a
        broadcast or per-KV-head mask run it one after another). It decides which CTA computes a row and
        when, never a value of the result. A device row order no constructor made is turned into an item
        order on the device when a launch plan is made for its memory (plans are cached by pointer), so an
        array that is not a permutation still runs every row once, and contents written there later move
        work between CTAs as the first ones did.

    Build one with :meth:`from_dense`, :meth:`causal`, :meth:`sliding_window` or :meth:`from_flex`; the
    constructor takes torch tensors through DLPack and otherwise only stores (call :meth:`validate` to check
    arrays built by hand). With JAX imported, a BlockMask is a JAX pytree (:func:`register_with_jax`): it
    can go in and out of ``jax.jit``.
    """

    kv_num_blocks: object
    kv_indices: object
    seq_lengths: tuple[int, int]
    block_size: tuple[int, int] = (128, 128)
    full_kv_num_blocks: object = None
    full_kv_indices: object = None
    row_order: object = None

    def __post_init__(self) -> None:
        if not _registered_with_jax:
            register_with_jax()
        if _is_int(self.block_size):  # one int for both sides, as the constructors take it
            object.__setattr__(self, "block_size", (int(self.block_size), int(self.block_size)))
        for name in ARRAY_FIELDS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _kept(name, value))

    # ----------------------------------------------------------------------------------- constructors
    @classmethod
    def from_dense(cls, blocks, seq_lengths: tuple[int, int] | None = None, block_size=128,
                   full_blocks=None) -> "BlockMask":
        """From a boolean block matrix.

        Parameters
        ----------
        blocks : bool array, (B or 1, H or 1, nQB, nKB)
            True where the block is computed.
        seq_lengths : (int, int), optional
            (Sq, Sk); defaults to (nQB * block_size[0], nKB * block_size[1]).
        block_size : int or (int, int)
        full_blocks : bool array, optional, same shape
            True where the whole block is visible (a subset of ``blocks``): such blocks go to the full lists.

        Examples
        --------
        >>> import numpy as np
        >>> m = BlockMask.from_dense(np.tril(np.ones((1, 1, 4, 4), bool)))
        >>> m.density
        0.625
        """
        block_size = _check_block_size(block_size)
        blocks = _as_input("blocks", blocks)
        xp = _xp(blocks)
        if blocks.ndim != 4 or blocks.dtype != xp.bool_:
            raise ValueError(f"blocks must be a 4-D bool array (B, H, nQB, nKB), got {blocks.dtype} {blocks.shape}")
        n_qb, n_kb = blocks.shape[2:]
        if seq_lengths is None:
            seq_lengths = (n_qb * block_size[0], n_kb * block_size[1])
        partial = blocks
        full_num = full_idx = None
        if full_blocks is not None:
            full_blocks = _as_input("full_blocks", full_blocks)
            if full_blocks.shape != blocks.shape or full_blocks.dtype != xp.bool_:
                raise ValueError(f"full_blocks must be a bool array of shape {blocks.shape}")
            if bool((full_blocks & ~blocks).any()):
                raise ValueError("full_blocks must be a subset of blocks")
            partial = blocks & ~full_blocks
            full_num, full_idx = _lists_from_dense(full_blocks)
        num, idx = _lists_from_dense(partial)
        arrays = (num, idx, full_num, full_idx, _rows_by_blocks(num, full_num))
        for array in arrays:
            _owned(array)  # made here: kept without a copy
        mask = cls(*arrays[:2], _check_seq_lengths(seq_lengths), block_size, *arrays[2:])
        mask.validate()
        return mask

    @classmethod
    def causal(cls, seqlen_q: int, seqlen_k: int, block_size=128) -> "BlockMask":
        """Blocks a bottom-right-aligned causal mask touches (query i sees key j iff j <= i + Sk - Sq).

        Blocks entirely below the diagonal and inside (Sq, Sk) go to the full lists. Pass ``causal=True``
        to the attention call as well: it masks the elements of the partial blocks.

        Parameters
        ----------
        seqlen_q, seqlen_k, block_size
            As in :meth:`sliding_window`.

        Returns
        -------
        BlockMask
            As :meth:`sliding_window` with ``left=None, right=0``.
        """
        return cls.sliding_window(seqlen_q, seqlen_k, left=None, right=0, block_size=block_size)

    @classmethod
    def sliding_window(cls, seqlen_q: int, seqlen_k: int, left: int | None, right: int | None = 0,
                       block_size=128) -> "BlockMask":
        """Blocks a window touches: query i sees key j iff ``i + off - left <= j <= i + off + right``
        with ``off = Sk - Sq`` (bottom-right aligned; ``None`` means unbounded on that side).

        Blocks whose every element is visible and inside (Sq, Sk) go to the full lists. Pass the same
        ``window=(left, right)`` to the attention call: it masks the elements of the partial blocks.

        Parameters
        ----------
        seqlen_q, seqlen_k : int
            Sq and Sk, >= 1.
        left, right : int or None
            Keys visible before and after each query's diagonal (>= 0), None for no limit.
        block_size : int or (int, int)
            64 or 128, or a pair of them.

        Returns
        -------
        BlockMask
            Host arrays of shape (1, 1, nQB) and (1, 1, nQB, nKB), broadcast over batch and heads.
        """
        block_size = _check_block_size(block_size)
        for name, value in (("seqlen_q", seqlen_q), ("seqlen_k", seqlen_k)):
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name, value in (("left", left), ("right", right)):
            if value is not None and (not _is_int(value) or value < 0):
                raise ValueError(f"{name} must be None or an int >= 0, got {value!r}")
        seqlen_q, seqlen_k = int(seqlen_q), int(seqlen_k)
        left, right = (None if x is None else int(x) for x in (left, right))
        bq, bk = block_size
        n_qb, n_kb = math.ceil(seqlen_q / bq), math.ceil(seqlen_k / bk)
        off = seqlen_k - seqlen_q
        q_lo = np.arange(n_qb)[:, None] * bq
        q_hi = np.minimum(q_lo + bq, seqlen_q) - 1                    # last real row of the block
        k_lo = np.arange(n_kb)[None, :] * bk
        k_hi = np.minimum(k_lo + bk, seqlen_k) - 1
        far_left = -np.inf if left is None else -left
        far_right = np.inf if right is None else right
        # some (i, j) visible: the band [i + off - left, i + off + right] meets [k_lo, k_hi] for some i
        touched = (k_hi >= q_lo + off + far_left) & (k_lo <= q_hi + off + far_right)
        # every (i, j) visible: for all rows and keys of the block (full-size blocks only)
        whole = (q_lo + bq <= seqlen_q) & (k_lo + bk <= seqlen_k)
        full = whole & (k_lo >= q_hi + off + far_left) & (k_hi <= q_lo + off + far_right)
        return cls.from_dense(touched[None, None], (seqlen_q, seqlen_k), block_size, full_blocks=full[None, None])

    @classmethod
    def from_flex(cls, flex_block_mask) -> "BlockMask":
        """From ``torch.nn.attention.flex_attention.BlockMask``: its partial and full KV block lists, block
        size and sequence lengths (each row's listed blocks re-sorted ascending). The ``mask_mod`` is not
        carried: pass ``causal`` / ``window`` to the attention call for the element masks. Those are aligned
        to the bottom-right corner (query i sees key j <= i + Sk - Sq), while FlexAttention's usual causal
        ``mask_mod`` (``q_idx >= kv_idx``) is aligned to the top-left: the two agree only where Sq = Sk.

        Parameters
        ----------
        flex_block_mask : torch.nn.attention.flex_attention.BlockMask
            Counts (B, H, nQB) and indices (B, H, nQB, nKB) (partial, and optionally full), on the host or a
            CUDA device; ``BLOCK_SIZE`` 64 or 128 per side. Counts must lie in [0, nKB] and the listed
            entries of each row in [0, nKB), without repeats.

        Returns
        -------
        BlockMask
            The same blocks, in the arrays' memory space (NumPy or CuPy), with a row order.
        """
        block_size = _check_block_size(tuple(int(b) for b in flex_block_mask.BLOCK_SIZE))
        seq_lengths = _check_seq_lengths(tuple(int(x) for x in flex_block_mask.seq_lengths))
        n_kb = math.ceil(seq_lengths[1] / block_size[1])
        partial = _dense_from_checked_lists("kv", _as_input("kv_num_blocks", flex_block_mask.kv_num_blocks),
                                            _as_input("kv_indices", flex_block_mask.kv_indices), n_kb)
        if flex_block_mask.full_kv_num_blocks is None:
            return cls.from_dense(partial, seq_lengths, block_size)
        full = _dense_from_checked_lists("full_kv",
                                         _as_input("full_kv_num_blocks", flex_block_mask.full_kv_num_blocks),
                                         _as_input("full_kv_indices", flex_block_mask.full_kv_indices), n_kb)
        if partial.shape != full.shape:
            raise ValueError(f"flex_block_mask's full lists have shape {tuple(full.shape)}, its partial lists "
                             f"{tuple(partial.shape)}")
        if bool((partial & full).any()):
            raise ValueError("flex_block_mask lists a block both in kv_indices and in full_kv_indices")
        return cls.from_dense(partial | full, seq_lengths, block_size, full_blocks=full)

    # ------------------------------------------------------------------------------------- queries
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(B or 1, H or 1, nQB, nKB)."""
        return tuple(int(x) for x in self.kv_indices.shape)

    def to_dense(self):
        """Bool array (B or 1, H or 1, nQB, nKB): True for every computed block (partial or full); NumPy for
        a mask of JAX arrays. ValueError for host lists with counts or listed entries out of range (device
        lists are not read on the host: see :meth:`validate`)."""
        dense = _dense_from_lists(*self._readable_lists("kv"))
        if self.full_kv_num_blocks is not None:
            dense |= _dense_from_lists(*self._readable_lists("full_kv"))
        return dense

    def full_to_dense(self):
        """Bool array like :meth:`to_dense`, True for the blocks listed as full (no element mask)."""
        if self.full_kv_num_blocks is None:
            xp = _xp(_readable(self.kv_indices))
            return xp.zeros(self.shape, dtype=xp.bool_)
        return _dense_from_lists(*self._readable_lists("full_kv"))

    def _readable_lists(self, prefix: str) -> tuple:
        """(counts, indices) of the ``prefix`` lists as NumPy or CuPy arrays, host ones range-checked."""
        num = _readable(getattr(self, f"{prefix}_num_blocks"))
        idx = _readable(getattr(self, f"{prefix}_indices"))
        if isinstance(idx, np.ndarray):
            _check_list_ranges(prefix, np.asarray(num), idx, idx.shape[-1])
        return num, idx

    @property
    def density(self) -> float:
        """Fraction of the (nQB x nKB) blocks computed, averaged over batch and heads."""
        return float(self.to_dense().mean())

    def __repr__(self) -> str:
        try:
            self.check_layout()
        except ValueError as exc:
            return f"BlockMask(malformed: {exc})"
        b, h, n_qb, n_kb = self.shape
        where = "jax" if _is_jax(self.kv_indices) else "cuda" if _xp(self.kv_indices) is not np else "host"
        full = "" if self.full_kv_num_blocks is None else ", with full-block lists"
        try:
            density = f"density={self.density:.1%}"
        except TypeError:  # traced JAX arrays
            density = "density known when run"
        except ValueError:  # lists out of range
            density = "lists out of range"
        return (f"BlockMask(shape=(B={b}, H={h}, nQB={n_qb}, nKB={n_kb}), block_size={self.block_size}, "
                f"seq_lengths={self.seq_lengths}, {density}{full}, {where})")

    # ---------------------------------------------------------------------------------- validation
    def _lists(self) -> list:
        """(prefix, counts, indices) of the partial and (if given) full lists."""
        pairs = [("kv", self.kv_num_blocks, self.kv_indices)]
        if self.full_kv_num_blocks is not None:
            pairs.append(("full_kv", self.full_kv_num_blocks, self.full_kv_indices))
        return pairs

    def check_layout(self) -> tuple[int, int, int, int]:
        """Check block size, sequence lengths, and every array's dtype and shape, without reading the arrays
        (no device sync); raise ValueError naming what is wrong. Returns (B or 1, H or 1, nQB, nKB)."""
        bq, bk = _check_block_size(self.block_size)
        sq, sk = _check_seq_lengths(self.seq_lengths)
        n_qb, n_kb = math.ceil(sq / bq), math.ceil(sk / bk)
        if (self.full_kv_num_blocks is None) != (self.full_kv_indices is None):
            raise ValueError("full_kv_num_blocks and full_kv_indices must be given together")
        for prefix, num, idx in self._lists():
            for name, arr, ndim in ((f"{prefix}_num_blocks", num, 3), (f"{prefix}_indices", idx, 4)):
                if not hasattr(arr, "dtype") or str(arr.dtype) != "int32" or arr.ndim != ndim:
                    raise ValueError(f"{name} must be an int32 array with {ndim} dimensions, got {_described(arr)}")
            if tuple(idx.shape) != tuple(num.shape) + (n_kb,) or num.shape[2] != n_qb:
                raise ValueError(f"{prefix}_indices has shape {tuple(idx.shape)} and {prefix}_num_blocks "
                                 f"{tuple(num.shape)}; seq_lengths {self.seq_lengths} with block_size "
                                 f"{self.block_size} need (B, H, {n_qb}) and (B, H, {n_qb}, {n_kb})")
            if tuple(num.shape) != tuple(self.kv_num_blocks.shape):
                raise ValueError(f"{prefix}_num_blocks must have the shape of kv_num_blocks")
        if min(self.kv_num_blocks.shape[:2]) < 1:
            raise ValueError(f"kv_num_blocks has an empty batch or head dimension: {tuple(self.kv_num_blocks.shape)}")
        if self.row_order is not None:
            rows = math.prod(self.kv_num_blocks.shape)
            order = self.row_order
            if not hasattr(order, "dtype") or str(order.dtype) != "int32" or tuple(order.shape) != (rows,):
                raise ValueError(f"row_order must be an int32 array of shape ({rows},) (one entry per row of "
                                 f"kv_num_blocks), got {_described(order)}")
        return tuple(int(x) for x in self.kv_indices.shape)

    def validate(self) -> "BlockMask":
        """Check dtypes, shapes, ranges, order and duplicates; raise ValueError naming what is wrong.

        Reads the arrays (a device sync for CuPy arrays). Returns ``self``.
        """
        n_kb = self.check_layout()[3]
        for prefix, num, idx in self._lists():
            host_num, host_idx = _to_host(num), _to_host(idx)
            _check_list_ranges(prefix, host_num, host_idx, n_kb)
            valid = np.arange(n_kb) < host_num[..., None]
            steps = np.diff(np.where(valid, host_idx, 0), axis=-1)
            if (valid[..., 1:] & (steps <= 0)).any():
                raise ValueError(f"{prefix}_indices must be strictly increasing (no duplicates) in the first "
                                 f"{prefix}_num_blocks entries of each row")
        if self.row_order is not None:
            rows = math.prod(self.kv_num_blocks.shape)
            if not np.array_equal(np.sort(_to_host(self.row_order)), np.arange(rows)):
                raise ValueError(f"row_order must be a permutation of 0 .. {rows - 1} (every row once)")
        if self.full_kv_num_blocks is not None:
            partial = _to_host(_dense_from_lists(_readable(self.kv_num_blocks), _readable(self.kv_indices)))
            full = _to_host(self.full_to_dense())
            if (partial & full).any():
                raise ValueError("a block is listed both in kv_indices and in full_kv_indices")
        return self


def _described(array) -> str:
    """dtype and shape of an array, or the type of what is not one (for error messages)."""
    if not hasattr(array, "dtype"):
        return type(array).__name__
    return f"{array.dtype} {tuple(array.shape)}"


def _to_host(array) -> np.ndarray:
    array = _readable(array)
    return array if isinstance(array, np.ndarray) else array.get()


def _rows_by_blocks(num, full_num):
    """``row_order``: the flattened rows of the count arrays, most listed blocks (partial and full) first,
    ties in index order (registered as made here: see :func:`made_row_order`)."""
    xp = _xp(num)
    total = (num if full_num is None else num + full_num).reshape(-1).astype(xp.int64)
    rows = total.shape[0]
    order = xp.argsort(xp.arange(rows) - total * rows).astype(xp.int32)  # unique keys: any sort is stable
    _made_orders[id(order)] = order
    return order


def _lists_from_dense(blocks):
    """(num, indices) of a bool block matrix: indices of True entries first, ascending, then the rest."""
    xp = _xp(blocks)
    n_kb = blocks.shape[-1]
    order_key = xp.where(blocks, 0, n_kb) + xp.arange(n_kb)   # selected blocks first, each group ascending
    indices = xp.argsort(order_key, axis=-1).astype(xp.int32)
    return blocks.sum(axis=-1).astype(xp.int32), indices


def _check_list_ranges(prefix: str, num: np.ndarray, indices: np.ndarray, n_kb: int) -> None:
    """Counts in [0, nKB] and the listed entries of each row in [0, nKB) (host arrays)."""
    if num.min(initial=0) < 0 or num.max(initial=0) > n_kb:
        raise ValueError(f"{prefix}_num_blocks must lie in [0, {n_kb}]")
    used = np.where(np.arange(n_kb) < num[..., None], indices, 0)
    if used.min(initial=0) < 0 or used.max(initial=0) >= n_kb:
        raise ValueError(f"{prefix}_indices must lie in [0, {n_kb}) in the first {prefix}_num_blocks entries of "
                         f"each row")


def _dense_from_checked_lists(prefix: str, num, indices, n_kb: int):
    """:func:`_dense_from_lists` of lists in any order, once their shapes, ranges and uniqueness are checked
    (FlexAttention's lists need not be sorted)."""
    for name, arr, ndim in ((f"{prefix}_num_blocks", num, 3), (f"{prefix}_indices", indices, 4)):
        if arr.ndim != ndim or arr.dtype.kind not in "iu":
            raise ValueError(f"flex_block_mask.{name} must be an integer array with {ndim} dimensions, got "
                             f"{arr.dtype} {tuple(arr.shape)}")
    if tuple(indices.shape) != tuple(num.shape) + (n_kb,):
        raise ValueError(f"flex_block_mask.{prefix}_indices has shape {tuple(indices.shape)}; with "
                         f"{prefix}_num_blocks {tuple(num.shape)} and seq_lengths it must be "
                         f"{tuple(num.shape) + (n_kb,)}")
    _check_list_ranges(prefix, _to_host(num), _to_host(indices), n_kb)
    dense = _dense_from_lists(num, indices)
    if bool((dense.sum(axis=-1) != num).any()):
        raise ValueError(f"flex_block_mask.{prefix}_indices repeats a block within the first "
                         f"{prefix}_num_blocks entries of a row")
    return dense


def _dense_from_lists(num, indices):
    """Bool (..., nKB) matrix with True at the first ``num`` entries of each row of ``indices``."""
    xp = _xp(indices)
    n_kb = indices.shape[-1]
    valid = xp.arange(n_kb) < num[..., None]
    row_ids = xp.arange(math.prod(valid.shape[:-1]), dtype=xp.int64).reshape(valid.shape[:-1] + (1,))
    dense = xp.zeros(valid.shape, dtype=xp.bool_)
    dense.reshape(-1)[(row_ids * n_kb + indices.astype(xp.int64))[valid]] = True
    return dense


_registered_with_jax = False
_registration_lock = threading.Lock()


def register_with_jax() -> None:
    """Make BlockMask a JAX pytree, once: its five arrays are the leaves (absent ones None), its sequence
    lengths and block size static, so a mask can be an argument or a result of ``jax.jit``, a ``lax.scan``
    carry, and so on. A no-op until JAX has been imported (bsk_cupy never imports it for this): it runs when
    bsk_cupy is imported, when a mask is made and when a JAX call starts, so import JAX before making the
    masks you hand to it."""
    global _registered_with_jax
    if _registered_with_jax or "jax" not in sys.modules:
        return
    with _registration_lock:
        if _registered_with_jax:
            return
        import jax

        jax.tree_util.register_pytree_node(BlockMask, _flatten, _unflatten)
        _registered_with_jax = True


def _flatten(mask: BlockMask):
    return tuple(getattr(mask, name) for name in ARRAY_FIELDS), (mask.seq_lengths, mask.block_size)


def _unflatten(static, leaves) -> BlockMask:
    """A mask over ``leaves`` as JAX hands them back (tracers, shapes, or any placeholder of its own):
    stored without checks or conversion."""
    mask = object.__new__(BlockMask)
    for name, value in zip(ARRAY_FIELDS, leaves):
        object.__setattr__(mask, name, value)
    object.__setattr__(mask, "seq_lengths", static[0])
    object.__setattr__(mask, "block_size", static[1])
    return mask
