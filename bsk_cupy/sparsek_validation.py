"""Argument checks for :func:`bsk_cupy.sparsek_select`, on framework-neutral array descriptions.

Pure Python over :class:`~bsk_cupy.validation.ArrayInfo`, so it runs (and is tested) without a GPU. Each error
names the argument and says what is allowed.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from .specs import SCORE_DTYPE_CODES, SELECT_BLOCK_SIZES, SparseKSelectSpec
from .validation import ArrayInfo, check_bool

POOLS = ("max", "mean")
MAX_KV_BLOCKS = SparseKSelectSpec.max_kv_blocks
_MAX_SEQLEN = 2**31 - 1
_MAX_GRID_YZ = 65535  # CUDA's limit on grid.y (KV heads) and grid.z (batch)


@dataclass(frozen=True)
class SparseKProblem:
    """A checked ``sparsek_select`` call.

    ``topk`` and ``local_blocks`` are clamped to ``n_kv_blocks`` (a row has no more blocks to keep), so
    calls that differ only beyond that share one launch plan.
    """

    batch: int
    heads: int
    seqlen_q: int
    seqlen_k: int
    strides: tuple[int, int, int]  # of scores, elements
    dtype: str
    block_size: int
    topk: int
    local_blocks: int
    causal: bool
    pool: str
    device: int

    @property
    def n_q_blocks(self) -> int:
        return -(-self.seqlen_q // self.block_size)

    @property
    def n_kv_blocks(self) -> int:
        return -(-self.seqlen_k // self.block_size)

    @property
    def num_blocks_shape(self) -> tuple[int, int, int]:
        """Shape of ``kv_num_blocks``: (B, Hkv, nQB)."""
        return (self.batch, self.heads, self.n_q_blocks)

    @property
    def indices_shape(self) -> tuple[int, int, int, int]:
        """Shape of ``kv_indices``: (B, Hkv, nQB, nKB)."""
        return (self.batch, self.heads, self.n_q_blocks, self.n_kv_blocks)


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 0, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value}")
    return int(value)


def _check_scores(info: ArrayInfo) -> None:
    if info.device is None:
        raise TypeError("scores is in host memory; sparsek_select needs a CUDA device array "
                        "(torch CUDA tensor, CuPy array or JAX GPU array)")
    if info.dtype not in SCORE_DTYPE_CODES:
        raise TypeError(f"scores has dtype {info.dtype}; allowed: {', '.join(SCORE_DTYPE_CODES)}")
    if len(info.shape) != 3:
        raise ValueError(f"scores must be 3-D (B, Hkv, Sk), got shape {info.shape}")
    if any(n < 1 for n in info.shape):
        raise ValueError(f"scores has an empty dimension: shape {info.shape}; every dimension must be >= 1")


def check_sparsek_args(scores: ArrayInfo, topk, *, seqlen_q, block_size, causal, local_blocks,
                       pool) -> SparseKProblem:
    """Validate ``sparsek_select``'s arguments; return the problem.

    Raises
    ------
    TypeError
        Host arrays, a dtype other than float32 / float16 / bfloat16, non-int counts, non-bool ``causal``.
    ValueError
        Wrong rank or empty scores, negative counts, ``block_size`` other than 64 / 128, unknown ``pool``,
        ``seqlen_q`` < 1, more than ``MAX_KV_BLOCKS`` KV blocks, batch or heads above 65535.
    """
    _check_scores(scores)
    batch, heads, seqlen_k = scores.shape
    if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral) or \
            block_size not in SELECT_BLOCK_SIZES:
        raise ValueError(f"block_size must be one of {SELECT_BLOCK_SIZES}, got {block_size!r}")
    block_size = int(block_size)
    topk = _check_count("topk", topk)
    local_blocks = _check_count("local_blocks", local_blocks)
    check_bool("causal", causal)
    if not isinstance(pool, str) or pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if seqlen_q is None:
        seqlen_q = seqlen_k
    elif isinstance(seqlen_q, bool) or not isinstance(seqlen_q, numbers.Integral):
        raise TypeError(f"seqlen_q must be an int >= 1 or None, got {type(seqlen_q).__name__}")
    if not 1 <= seqlen_q <= _MAX_SEQLEN:
        raise ValueError(f"seqlen_q must lie in [1, 2**31 - 1], got {seqlen_q}")
    n_kv_blocks = -(-seqlen_k // block_size)
    if n_kv_blocks > MAX_KV_BLOCKS:
        raise ValueError(f"scores has Sk = {seqlen_k} keys, {n_kv_blocks} KV blocks of {block_size}; "
                         f"sparsek_select handles at most {MAX_KV_BLOCKS} KV blocks (Sk <= "
                         f"{MAX_KV_BLOCKS * block_size} at block_size {block_size})")
    if batch > _MAX_GRID_YZ or heads > _MAX_GRID_YZ:
        raise ValueError(f"scores has batch {batch} and {heads} heads; each must be <= {_MAX_GRID_YZ}")
    return SparseKProblem(batch=batch, heads=heads, seqlen_q=int(seqlen_q), seqlen_k=seqlen_k,
                          strides=tuple(scores.strides), dtype=scores.dtype, block_size=block_size,
                          topk=min(topk, n_kv_blocks), local_blocks=min(local_blocks, n_kv_blocks),
                          causal=causal, pool=pool, device=scores.device)


def check_scores_for_attention(scores: ArrayInfo, q: ArrayInfo, k: ArrayInfo, layout: str) -> None:
    """``sparsek_attention``: ``scores`` must be (B, Hkv, Sk) of ``q`` and ``k`` (in ``layout``), from q's
    framework (whose current stream both launches use) and on q's device. ``q`` and ``k`` are otherwise
    checked by ``attention_forward``.

    Raises
    ------
    TypeError
        ``q`` or ``k`` in host memory, ``scores`` from another framework than ``q``.
    ValueError
        ``q`` or ``k`` not 4-D, ``scores`` of another shape or on another device.
    """
    for name, info in (("q", q), ("k", k)):
        if info.device is None:
            raise TypeError(f"{name} is in host memory; sparsek_attention needs CUDA arrays")
        if len(info.shape) != 4:
            raise ValueError(f"{name} must be 4-D (B, H, S, D) or (B, S, H, D), got shape {info.shape}")
    if scores.framework != q.framework:
        raise TypeError(f"scores is a {scores.framework} array but q is a {q.framework} one; pass both from one "
                        f"framework (its current stream orders the selection before the attention)")
    batch, heads_kv, seqlen_k = (k.shape[0], k.shape[1], k.shape[2]) if layout == "bhsd" else \
        (k.shape[0], k.shape[2], k.shape[1])
    if tuple(scores.shape) != (batch, heads_kv, seqlen_k):
        raise ValueError(f"scores must have shape (B, Hkv, Sk) = {(batch, heads_kv, seqlen_k)} of k, got "
                         f"{tuple(scores.shape)}")
    if scores.device != q.device:
        raise ValueError(f"scores is on cuda:{scores.device} but q is on cuda:{q.device}")
