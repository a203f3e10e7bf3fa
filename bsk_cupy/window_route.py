"""Narrow sliding windows without a block mask run as their block mask.

A window alone runs each query block over the KV range it touches on the dense kernels. A narrow window
gives every item only a few KV tiles, so the per-item cost dominates; the block-mask kernels hide more of
it (128-row items claimed in the mask's row order, a second Q buffer loaded during the previous item, four
K/V stages at head dim 64). H100, the same window both ways (``tools/window_route_ab.py``, four rounds
interleaved; RESULTS.md, twentieth session): B1 H32 S2048 D64 (383, 0) 38.7 -> 29.3 µs (causal (383,
None): 31.0 -> 29.3), B4 H16 S4096 D64 (255, 0) 113.3 -> 87.3, B1 H16 S4096 D64 (127, 127) 33.5 -> 25.3,
B1 H32 S2048 D128 (383, 0) 47.3 -> 42.6 and causal (511, None) 53.1 -> 50.1. At head dim 128 the gain is
the second Q buffer's, which the masks take only while K and V fit in L2 (``dispatch.follows_row_order``):
past it (H200) B1 H16 S8192 D128 (255, 256) ran 99.7 -> 106.2 µs and B2 H8 S16384 D128 causal (511, 0)
208.9 -> 209.3, so those keep their KV ranges. At a span of 1024 keys the gain is gone (H200, B1 H16
S8192 (1023, 0) with the mask given: D64 -4.6%, D128 +3.7%), so only spans up to 512 keys are routed.
"""

from __future__ import annotations

import dataclasses
import functools
import math

from .block_mask import BlockMask
from .dispatch import follows_row_order, persistent_ctas, query_blocks
from .validation import AttentionProblem

MAX_SPAN = 512             # keys a query may see (left + right + 1) for the window to run as a block mask
_MAX_MASK_BLOCKS = 1 << 18  # query blocks x KV blocks of the mask built (1 MiB of int32 indices)
_BLOCK = 128


@functools.lru_cache(maxsize=32)
def _sliding_window_mask(seqlen_q: int, seqlen_k: int, left: int, right: int) -> BlockMask:
    """One host mask per shape and window: its device copy is made once (mask_operand) and kept with it."""
    return BlockMask.sliding_window(seqlen_q, seqlen_k, left=left, right=right)


@functools.lru_cache(maxsize=256)
def routed(problem: AttentionProblem, sms: int, l2: int) -> tuple[AttentionProblem, BlockMask | None]:
    """``problem`` and the block mask to run it with: its sliding window's (``BlockMask.sliding_window``)
    when the window is bounded on both sides (``causal`` bounds the right at the diagonal), spans at most
    ``MAX_SPAN`` keys, the grid has more 128-row items than persistent CTAs (``sms``: the row order and
    the second Q buffer act only then), and head dim is 64, or 128 with K and V within the ``l2``-byte L2
    cache's share (``follows_row_order``); else ``(problem, None)``. A causal window becomes the same
    window with its right side at 0 (the diagonal), without ``causal``: the same keys.

    Cached per problem: every windowed call asks, before its plan is looked up, and the answer depends on the
    shape alone (8 us of Python per call uncached, on our CPU host; the mask itself is shared by every problem
    with the same lengths and window).
    """
    if problem.window is None or problem.head_dim not in (64, 128):
        return problem, None
    left, right = problem.window
    if problem.causal:
        right = 0
    if left is None or right is None or left + right + 1 > MAX_SPAN:
        return problem, None
    mask_blocks = math.ceil(problem.seqlen_q / _BLOCK) * math.ceil(problem.seqlen_k / _BLOCK)
    if mask_blocks > _MAX_MASK_BLOCKS or query_blocks(problem, _BLOCK) <= persistent_ctas(sms):
        return problem, None
    new = dataclasses.replace(problem, causal=False, window=(left, right))
    if problem.head_dim == 128 and not follows_row_order(new, l2):
        return problem, None
    return new, _sliding_window_mask(problem.seqlen_q, problem.seqlen_k, left, right)
