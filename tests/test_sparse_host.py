"""Host side of block-sparse / windowed / split-KV attention: the split heuristic, the kernel's window
bounds, block-mask checks against the problem, and the reference's element masks (no GPU needed)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bsk_cupy.block_mask import BlockMask
from bsk_cupy.dispatch import choose_splits, select_spec
from bsk_cupy.launch import window_bounds
from bsk_cupy.mask_operand import mask_operand, tail_item_order
from bsk_cupy.reference import attention_reference, block_mask_keys, visible_keys, window_keys
from bsk_cupy.validation import AttentionProblem


def problem(b=1, hq=8, hkv=8, sq=512, sk=512, d=64, causal=False, window=None):
    return AttentionProblem(batch=b, heads_q=hq, heads_kv=hkv, seqlen_q=sq, seqlen_k=sk, head_dim=d,
                            dtype="float16", causal=causal, scale=0.125, layout="bhsd", device=0, window=window)


@pytest.mark.parametrize("kwargs,splits", [
    (dict(), 1),                                  # headline: 4 tiles per CTA, too few to pay for a combine
    (dict(sq=128, sk=8192), 16),                  # decode-like: 8 CTAs x 64 tiles -> 16 splits of 4
    (dict(hq=16, hkv=16, sq=1024, sk=1024), 1),   # 128 CTAs already fill the GPU
    (dict(hq=2, hkv=2, sq=1, sk=4097), 8),        # 33 tiles: at least 4 per split
    (dict(hq=4, hkv=4, sq=1024, sk=16384), 4),    # 32 CTAs: as many ways as fit in one wave
    (dict(sq=512, sk=100), 1),                    # one KV tile: nothing to split
])
def test_choose_splits(kwargs, splits):
    p = problem(**kwargs)
    assert choose_splits(p, select_spec(p), 132, masked=False) == splits
    assert choose_splits(p, select_spec(p), 132, masked=True) == 1


def test_window_bounds():
    assert window_bounds(problem()) == (-(1 << 30), 1 << 30)
    assert window_bounds(problem(window=(5, None))) == (-5, 1 << 30)
    assert window_bounds(problem(window=(None, 0))) == (-(1 << 30), 0)
    assert window_bounds(problem(window=(2**40, 2**31))) == (-(1 << 30), 1 << 30)   # beyond any sequence


def _mask(blocks, seq_lengths, block_size=128):
    return BlockMask.from_dense(np.asarray(blocks, bool), seq_lengths, block_size)


@pytest.mark.parametrize("mask,match,exc", [
    ("not a mask", "block_mask must be a bsk_cupy.BlockMask", TypeError),
    (_mask(np.ones((1, 1, 4, 8)), (512, 512), (128, 64)), r"block_size must be \(128, 128\) or \(64, 64\)",
     ValueError),
    (_mask(np.ones((1, 1, 4, 4)), (500, 512)), r"seq_lengths is \(500, 512\)", ValueError),
    (_mask(np.ones((2, 1, 4, 4)), (512, 512)), "batch dimension must be 1 or 1", ValueError),
    (_mask(np.ones((1, 3, 4, 4)), (512, 512)), "head dimension must be 1, Hq=8 or Hkv=2", ValueError),
    (dataclasses.replace(_mask(np.ones((1, 1, 4, 4)), (512, 512)), row_order=np.arange(4)),
     "block_mask: row_order must be an int32 array", ValueError),
    (dataclasses.replace(_mask(np.ones((1, 1, 4, 4)), (512, 512)), row_order=np.arange(3, dtype=np.int32)),
     r"row_order must be an int32 array of shape \(4,\)", ValueError),
    # counts whose shape disagrees with the index lists would be read past their end by the kernel
    (dataclasses.replace(_mask(np.ones((1, 1, 4, 4)), (512, 512)), kv_num_blocks=np.zeros((1, 1, 2), np.int32)),
     "block_mask: kv_indices has shape", ValueError),
    (dataclasses.replace(_mask(np.ones((1, 1, 4, 4)), (512, 512)), kv_num_blocks=np.zeros((4,), np.int32)),
     "kv_num_blocks must be an int32 array with 3 dimensions", ValueError),
    (dataclasses.replace(_mask(np.ones((1, 1, 4, 4)), (512, 512)), full_kv_num_blocks=np.zeros((1, 1, 4), np.int32),
                         full_kv_indices=np.zeros((1, 1, 1, 4), np.int32)), "full_kv_indices has shape", ValueError),
])
def test_mask_operand_rejects(mask, match, exc):
    with pytest.raises(exc, match=match):
        mask_operand(mask, problem(hkv=2))


def test_64_blocks_are_refused_at_head_dim_256():
    with pytest.raises(ValueError, match=r"must be \(128, 128\) at head dim 256"):
        mask_operand(_mask(np.ones((1, 1, 8, 8)), (512, 512), 64), problem(d=256))


def test_window_and_block_reference_masks():
    # window (None, 0) is the causal mask; (0, 0) the diagonal only
    assert np.array_equal(window_keys(7, 9, (None, 0)), visible_keys(7, 9, True))
    assert window_keys(4, 4, (0, 0)).sum() == 4
    blocks = np.array([[[[True, False], [False, True]]]])
    keys = block_mask_keys(blocks, (3, 5), (2, 3))
    assert keys.shape == (1, 1, 3, 5)
    assert keys[0, 0, 0].tolist() == [True, True, True, False, False]
    assert keys[0, 0, 2].tolist() == [False, False, False, True, True]


def test_reference_mask_argument_blanks_rows():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, 4, 8)) for _ in range(3))
    mask = np.ones((1, 1, 4, 4), bool)
    mask[0, 0, 2] = False
    out, lse = attention_reference(q, k, v, mask=mask)
    assert np.all(out[0, 0, 2] == 0) and lse[0, 0, 2] == -np.inf
    full, _ = attention_reference(q, k, v)
    np.testing.assert_allclose(out[0, 0, 3], full[0, 0, 3])


def test_tail_item_order_keeps_item_order_but_for_the_last_heads():
    """A per-head mask of 5 (b, h) x 4 query blocks: the first three (b, h) in the kernel's item order
    (query blocks last first), the last two in the mask's row order (most blocks first, ties in index
    order); with every (b, h) in the tail, the row order itself."""
    blocks = np.random.default_rng(5).random((1, 5, 4, 4)) < 0.5
    mask = BlockMask.from_dense(blocks)
    order = mask.row_order
    got = tail_item_order(order, 4, 1, 5, 1, 5, 2)
    assert got.dtype == np.int32 and np.array_equal(np.sort(got), np.arange(20))   # a permutation
    assert np.array_equal(got[:12], [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8])
    assert np.array_equal(got[12:], [r for r in order if r >= 12])
    counts = mask.kv_num_blocks.reshape(-1)[got[12:]]
    assert (np.diff(counts) <= 0).all()                                             # longest first
    assert np.array_equal(tail_item_order(order, 4, 1, 5, 1, 5, 5), order)         # every head: the row order
    assert np.array_equal(tail_item_order(order, 4, 1, 5, 1, 5, 9), order)


@pytest.mark.parametrize("batch,heads,mask_batch,mask_heads", [
    (1, 6, 1, 1),      # broadcast over heads
    (2, 3, 1, 1),      # over batch and heads
    (2, 4, 1, 4),      # over batch only
    (1, 6, 1, 2),      # per KV head: three query heads share a row
    (2, 4, 2, 2),
])
def test_tail_item_order_singles_out_the_last_heads_of_shared_rows(batch, heads, mask_batch, mask_heads):
    """Items of (b, h) that share mask rows: the head part in item order, then the last three (b, h)'s
    items by their row's place in the row order (longest first), the (b, h) of one row in turn."""
    n = 5
    blocks = np.random.default_rng(batch * 10 + heads).random((mask_batch, mask_heads, n, n)) < 0.5
    row_order = BlockMask.from_dense(blocks).row_order
    got = tail_item_order(row_order, n, batch, heads, mask_batch, mask_heads, 3)
    pairs = batch * heads
    assert np.array_equal(np.sort(got), np.arange(pairs * n))
    assert np.array_equal(got[:(pairs - 3) * n], [p * n + x for p in range(pairs - 3) for x in range(n - 1, -1, -1)])
    tail = got[(pairs - 3) * n:]
    pair, block = tail // n, tail % n
    mask_b = pair // heads if mask_batch > 1 else 0
    row = (mask_b * mask_heads + (pair % heads) // (heads // mask_heads)) * n + block
    rank = np.argsort(row_order)[row]
    assert (np.diff(rank) >= 0).all()                                   # rows in the row order
    assert (np.diff(pair)[np.diff(rank) == 0] > 0).all()                # a row's (b, h) in turn


def test_tail_item_order_of_a_malformed_row_order_still_lists_every_item_once():
    bad = np.array([7, 7, -3, 100, 2, 2, 0, 1], dtype=np.int32)        # out of range and repeated
    assert np.array_equal(np.sort(tail_item_order(bad, 4, 1, 2, 1, 2, 1)), np.arange(8))
    assert np.array_equal(np.sort(tail_item_order(bad[:4], 4, 2, 2, 1, 1, 4)), np.arange(16))
