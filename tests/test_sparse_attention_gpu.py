"""GPU correctness of block-sparse, windowed and split-KV attention against float64 (H100; marked ``gpu``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

import torch  # noqa: E402
import cupy  # noqa: E402
import bsk_cupy as bsk  # noqa: E402
from bsk_cupy.accuracy import to_numpy  # noqa: E402
from bsk_cupy.reference import attention_reference, block_mask_keys, visible_keys, window_keys  # noqa: E402


def _rand(shape, seed, dtype=torch.float16):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(shape, device="cuda", dtype=torch.float32, generator=gen).to(dtype)


def _poison():
    """Fill the caching allocator's free memory with NaN so that unwritten outputs show."""
    block = torch.full((1 << 24,), float("nan"), dtype=torch.float16, device="cuda")
    del block


def _expected_visibility(q, k, causal, window, mask):
    """Element mask (B', Hq', Sq, Sk) the call should apply, besides causal."""
    sq, sk = q.shape[2], k.shape[2]
    visible = window_keys(sq, sk, window)[None, None]
    if mask is not None:
        blocks = block_mask_keys(to_numpy_bool(mask.to_dense()), mask.seq_lengths, mask.block_size)
        group = q.shape[1] // k.shape[1]
        if blocks.shape[1] == k.shape[1] and group > 1:
            blocks = np.repeat(blocks, group, axis=1)
        visible = visible & blocks
    return visible


def to_numpy_bool(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)


def _check(q, k, v, *, causal=False, window=None, mask=None):
    """Ours on NaN-poisoned memory vs float64 with the same element mask; returns (out, lse)."""
    _poison()
    out, lse = bsk.attention_forward(q, k, v, causal=causal, window=window, block_mask=mask, return_lse=True)
    torch.cuda.synchronize()
    visible = _expected_visibility(q, k, causal, window, mask)
    ref_out, ref_lse = attention_reference(to_numpy(q), to_numpy(k), to_numpy(v), causal=causal, mask=visible)
    got, got_lse = to_numpy(out), lse.cpu().numpy()
    assert not np.isnan(got).any(), "output elements left unwritten (NaN poison)"
    err = np.abs(got - ref_out).max()
    tol = 4e-3 if q.dtype == torch.float16 else 2e-2   # a few output ulps (bf16 has 8 mantissa bits)
    assert err < tol, f"max abs error {err:.3e}"
    seen = np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(got_lse), seen), "-inf lse on the wrong rows"
    assert np.all(got_lse[~seen] == -np.inf)
    assert np.all(got[np.broadcast_to(~seen[..., None], got.shape)] == 0), "rows that see no key must be 0"
    if seen.any():
        assert np.abs(got_lse[seen] - ref_lse[seen]).max() < 2e-3
    return out, lse


WINDOWS = [(0, 0), (1, 0), (127, 0), (128, 0), (300, None), (None, 5), (64, 64), (None, None), (0, None)]


@pytest.mark.parametrize("window", WINDOWS, ids=str)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("seqlens", [(700, 700), (300, 1000), (1000, 300), (5, 2000)], ids=str)
def test_window(window, causal, seqlens):
    sq, sk = seqlens
    q, k, v = _rand((2, 2, sq, 64), 1), _rand((2, 2, sk, 64), 2), _rand((2, 2, sk, 64), 3)
    _check(q, k, v, causal=causal, window=window)


@pytest.mark.parametrize("causal,window", [(False, (200, 0)), (True, (300, None)), (False, (100, 60))], ids=str)
def test_narrow_windows_run_as_their_block_mask(causal, window):
    """B1 H16 S1152 D64 (144 items: more than one wave): a narrow window without a block mask runs as its
    sliding-window block mask (bsk_cupy.window_route), correct against float64 and bit-identical to the
    same call with that mask given."""
    from bsk_cupy import interop, window_route
    from bsk_cupy.dispatch import l2_bytes, sm_count
    from bsk_cupy.validation import check_attention_args

    s = 1152
    q, k, v = (_rand((1, 16, s, 64), 40 + i) for i in range(3))
    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    problem = check_attention_args(*infos, causal=causal, scale=None, layout="bhsd", window=window)
    new_problem, mask = window_route.routed(problem, sm_count(0), l2_bytes(0))
    assert mask is not None
    out, _ = _check(q, k, v, causal=causal, window=window)
    given = bsk.attention_forward(q, k, v, window=new_problem.window,
                                  block_mask=bsk.BlockMask.sliding_window(s, s, *new_problem.window))
    assert torch.equal(out, given)


def _random_blocks(shape, density, seed):
    rng = np.random.default_rng(seed)
    blocks = rng.random(shape) < density
    blocks[..., 0, :] = False            # an empty row: its queries see nothing
    if shape[2] > 1:
        blocks[..., 1, :] = True         # a full row
    if shape[2] > 2:
        blocks[..., 2, :] = False
        blocks[..., 2, shape[3] // 2] = True   # a single block
    return blocks


@pytest.mark.parametrize("mask_heads", ["q", "kv", "broadcast"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("with_full", [False, True])
@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("block", [128, 64])
def test_block_mask(mask_heads, causal, with_full, on_device, block):
    b, hq, hkv, s, d = 2, 4, 2, 1000, 128
    q, k, v = _rand((b, hq, s, d), 10, torch.bfloat16), _rand((b, hkv, s, d), 11, torch.bfloat16), \
        _rand((b, hkv, s, d), 12, torch.bfloat16)
    h_mask = {"q": hq, "kv": hkv, "broadcast": 1}[mask_heads]
    n = -(-s // block)
    blocks = _random_blocks((b if mask_heads != "broadcast" else 1, h_mask, n, n), 0.4, 7)
    full = blocks & (np.random.default_rng(8).random(blocks.shape) < 0.5) if with_full else None
    if on_device:
        blocks_in = cupy.asarray(blocks)
        full_in = None if full is None else cupy.asarray(full)
    else:
        blocks_in, full_in = blocks, full
    mask = bsk.BlockMask.from_dense(blocks_in, (s, s), block, full_blocks=full_in)
    _check(q, k, v, causal=causal, mask=mask)


@pytest.mark.parametrize("mask_heads,mask_batch", [("q", 2), ("kv", 2), ("kv", 1), ("broadcast", 1),
                                                    ("broadcast", 2)])
@pytest.mark.parametrize("block", [128, 64])
def test_row_order_changes_no_bit(mask_heads, mask_batch, block):
    # The constructor's row order (longest rows first) against none, reversed and random: each row's items
    # run whole on one CTA in any order, so the outputs must agree bit for bit. 256 items or more, so that
    # the dispatcher keeps the order (it drops it for grids of one item per SM).
    from bsk_cupy import interop
    from bsk_cupy.mask_operand import mask_operand
    from bsk_cupy.validation import check_attention_args

    b, hq, hkv, s = 2, 16, 8, 1000
    q, k, v = _rand((b, hq, s, 64), 40), _rand((b, hkv, s, 64), 41), _rand((b, hkv, s, 64), 42)
    n = -(-s // block)
    blocks = _random_blocks((mask_batch, {"q": hq, "kv": hkv, "broadcast": 1}[mask_heads], n, n), 0.4, 43)
    mask = bsk.BlockMask.from_dense(cupy.asarray(blocks), (s, s), block)
    infos = [interop.describe(name, x).info for name, x in (("q", q), ("k", k), ("v", v))]
    assert mask_operand(mask, check_attention_args(*infos, causal=False, scale=None, layout="bhsd")).row_order_ptr
    ordered, ordered_lse = _check(q, k, v, mask=mask)
    rows = mask.row_order.size
    rng = np.random.default_rng(44)
    # hand-made device orders, permutations or not (repeated rows, entries out of range): each becomes an
    # item order (dispatch.get_plan) that runs every row once
    for order in (None, cupy.arange(rows - 1, -1, -1, dtype=cupy.int32), cupy.asarray(rng.permutation(rows), cupy.int32),
                  cupy.zeros(rows, cupy.int32), cupy.full(rows, rows + 7, cupy.int32),
                  cupy.asarray(rng.integers(-3, rows + 3, rows), cupy.int32)):
        _poison()
        out, lse = bsk.attention_forward(q, k, v, block_mask=dataclasses.replace(mask, row_order=order),
                                         return_lse=True)
        assert torch.equal(out, ordered) and torch.equal(lse, ordered_lse)


@pytest.mark.parametrize("block", [128, 64])
def test_block_mask_composes_with_window_and_uneven_lengths(block):
    q, k, v = _rand((1, 2, 333, 64), 20), _rand((1, 2, 900, 64), 21), _rand((1, 2, 900, 64), 22)
    shape = (1, 2, -(-333 // block), -(-900 // block))
    mask = bsk.BlockMask.from_dense(_random_blocks(shape, 0.6, 23), (333, 900), block)
    _check(q, k, v, causal=True, window=(200, None), mask=mask)


@pytest.mark.parametrize("causal", [False, True])
def test_block_mask_at_head_dim_256(causal):
    # 128-key blocks over 64-key tiles: each listed block is two tiles
    q, k, v = _rand((1, 2, 700, 256), 28), _rand((1, 2, 700, 256), 29), _rand((1, 2, 700, 256), 30)
    blocks = _random_blocks((1, 2, 6, 6), 0.5, 31)
    full = blocks & (np.random.default_rng(32).random(blocks.shape) < 0.5)
    _check(q, k, v, causal=causal, mask=bsk.BlockMask.from_dense(blocks, (700, 700), full_blocks=full))


def test_block_masks_of_64_agree_with_the_same_pattern_in_128_blocks():
    # a 128 x 128 pattern written as 64 x 64 blocks: the same keys in the same order, summed by the two
    # warpgroups of a 64-row block instead of one 128-key tile per step, so only close, not equal
    q, k, v = _rand((1, 4, 1024, 64), 24), _rand((1, 4, 1024, 64), 25), _rand((1, 4, 1024, 64), 26)
    coarse = _random_blocks((1, 4, 8, 8), 0.5, 27)
    fine = coarse.repeat(2, axis=2).repeat(2, axis=3)
    out_128, _ = _check(q, k, v, mask=bsk.BlockMask.from_dense(coarse, (1024, 1024)))
    out_64, _ = _check(q, k, v, mask=bsk.BlockMask.from_dense(fine, (1024, 1024), 64))
    assert (out_128.float() - out_64.float()).abs().max().item() < 2e-3


def test_sliding_window_block_mask_matches_window_argument():
    shape = (1, 8, 2048, 64)   # 128 CTAs: no split-KV
    q, k, v = _rand(shape, 30), _rand(shape, 31), _rand(shape, 32)
    mask = bsk.BlockMask.sliding_window(2048, 2048, left=256, right=0)
    _check(q, k, v, window=(256, 0), mask=mask)           # partial blocks first, then the full ones
    via_window, _ = _check(q, k, v, window=(256, 0))
    ascending = bsk.BlockMask.from_dense(mask.to_dense(), (2048, 2048))   # one ascending list per row
    via_mask = bsk.attention_forward(q, k, v, window=(256, 0), block_mask=ascending)
    assert torch.equal(via_mask, via_window)   # the same tiles in the same order: the same bits


def test_empty_mask_gives_zero_and_minus_inf():
    q = _rand((1, 2, 256, 64), 40)
    mask = bsk.BlockMask.from_dense(np.zeros((1, 1, 2, 2), bool), (256, 256))
    out, lse = bsk.attention_forward(q, q, q, block_mask=mask, return_lse=True)
    assert torch.all(out == 0) and torch.all(lse == float("-inf"))


@pytest.mark.parametrize("shape", [(1, 8, 512, 64), (1, 2, 4097, 64), (3, 1, 1000, 128), (1, 1, 2048, 128)])
@pytest.mark.parametrize("causal", [False, True])
def test_split_kv_shapes_are_exact_and_deterministic(shape, causal):
    b, h, s, d = shape
    q, k, v = _rand(shape, 50), _rand(shape, 51), _rand(shape, 52)
    first, lse = _check(q, k, v, causal=causal)
    again, lse_again = bsk.attention_forward(q, k, v, causal=causal, return_lse=True)
    assert torch.equal(first, again) and torch.equal(lse, lse_again)


def test_split_kv_is_used_on_small_grids():
    from bsk_cupy import interop
    from bsk_cupy.dispatch import choose_splits, select_spec, sm_count
    from bsk_cupy.validation import check_attention_args

    q, k = _rand((1, 8, 128, 64), 60), _rand((1, 8, 8192, 64), 61)
    q_info, k_info = interop.describe("q", q).info, interop.describe("k", k).info
    problem = check_attention_args(q_info, k_info, k_info, causal=False, scale=None, layout="bhsd")
    assert choose_splits(problem, select_spec(problem), sm_count(0), masked=False) == 16
    _check(q, k, k)


def test_causal_reference_visibility_sanity():
    # the reference's causal mask and window (None, 0) are the same thing
    assert np.array_equal(visible_keys(5, 9, True), window_keys(5, 9, (None, 0)))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("block", [128, 64])
def test_sparsek_attention_matches_the_oracle_selection(causal, block):
    from bsk_cupy.reference import sparsek_blocks_reference

    b, hq, hkv, s, d = 2, 4, 2, 1000, 64
    q, k, v = _rand((b, hq, s, d), 70), _rand((b, hkv, s, d), 71), _rand((b, hkv, s, d), 72)
    for seed in (73, 74):   # the second call rewrites the reused device mask
        scores = _rand((b, hkv, s), seed, torch.float32)
        _poison()
        out, lse = bsk.sparsek_attention(q, k, v, scores, 2, block_size=block, causal=causal, local_blocks=1,
                                         return_lse=True)
        keep = sparsek_blocks_reference(scores.cpu().numpy(), 2, seqlen_q=s, block_size=block, causal=causal,
                                        local_blocks=1)
        visible = np.repeat(block_mask_keys(keep, (s, s), (block, block)), hq // hkv, axis=1)
        ref_out, ref_lse = attention_reference(to_numpy(q), to_numpy(k), to_numpy(v), causal=causal, mask=visible)
        assert np.abs(to_numpy(out) - ref_out).max() < 4e-3
        seen = np.isfinite(ref_lse)
        assert np.abs(lse.cpu().numpy()[seen] - ref_lse[seen]).max() < 2e-3


def test_masks_past_l2_run_their_last_heads_longest_first():
    """B1 H16 S8192 D128 (64 MiB of K and V, past the L2 rule): a per-head device mask runs its heads in
    the kernel's item order but the last heads' rows longest first (dispatch.tail_heads: four on an H100),
    the order a permutation of the items computed on the caller's stream (a side stream here); the output
    bit-identical to the same mask without a row order (item order throughout), rows no block lists
    included. A mask broadcast over heads gets the same kind of tail over its heads' items, also
    bit-identical to its item order."""
    from bsk_cupy import interop
    from bsk_cupy.dispatch import get_plan, l2_bytes, tail_heads
    from bsk_cupy.mask_operand import mask_operand, tail_item_order
    from bsk_cupy.validation import check_attention_args

    q, k, v = (_rand((1, 16, 8192, 128), 901 + i) for i in range(3))
    blocks = np.random.default_rng(9).random((1, 16, 64, 64)) < 0.1
    blocks[0, 15, 7] = False                                          # a row of the tail with no block
    mask = bsk.BlockMask.from_dense(cupy.asarray(blocks))
    shared = bsk.BlockMask.from_dense(cupy.asarray(blocks[:, 15:]))   # broadcast over heads
    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    problem = check_attention_args(*infos, causal=False, scale=None, layout="bhsd")
    tail = tail_heads(problem, l2_bytes(0))   # 4 on an H100 (50 MiB of L2), 5 on an H200 (60 MiB)
    assert 1 <= tail < 16
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        plans = [get_plan(problem, *infos, mask=mask_operand(m, problem), stream=side.cuda_stream)
                 for m in (mask, shared)]
        _poison()
        outs = [bsk.attention_forward(q, k, v, block_mask=m) for m in (mask, shared)]
        item_orders = [bsk.attention_forward(q, k, v, block_mask=dataclasses.replace(m, row_order=None))
                       for m in (mask, shared)]
    side.synchronize()
    for plan, m, mask_heads in zip(plans, (mask, shared), (16, 1)):
        order = plan.mask.arrays[-1]
        assert plan.mask.row_order_ptr == order.data.ptr and plan.mask.order_items
        assert plan.kernel.spec.q_buffers == 1
        assert np.array_equal(order.get(), tail_item_order(m.row_order.get(), 64, 1, 16, 1, mask_heads, tail))
        assert np.array_equal(np.sort(order.get()), np.arange(16 * 64))
    for ours, item_order in zip(outs, item_orders):
        assert torch.equal(ours, item_order)
        assert not torch.isnan(ours).any() and (ours[0, 15, 7 * 128:8 * 128] == 0).all()


def test_head_dim_64_masks_past_l2_claim_their_tail_early():
    """B1 H24 S8192 D64 (48 MiB of K and V, past the L2 rule): the tail order runs on two Q buffers and four
    K/V stages, claiming early (dispatch.q_buffers_spec), bit-identical to the item order on one buffer."""
    from bsk_cupy import interop
    from bsk_cupy.dispatch import get_plan
    from bsk_cupy.mask_operand import mask_operand
    from bsk_cupy.validation import check_attention_args

    q, k, v = (_rand((1, 24, 8192, 64), 911 + i) for i in range(3))
    blocks = np.random.default_rng(10).random((1, 24, 64, 64)) < 0.1
    mask = bsk.BlockMask.from_dense(cupy.asarray(blocks))
    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    problem = check_attention_args(*infos, causal=False, scale=None, layout="bhsd")
    plan = get_plan(problem, *infos, mask=mask_operand(mask, problem))
    assert plan.mask.order_items and (plan.kernel.spec.q_buffers, plan.kernel.spec.stages) == (2, 4)
    unordered = dataclasses.replace(mask, row_order=None)
    assert get_plan(problem, *infos, mask=mask_operand(unordered, problem)).kernel.spec.q_buffers == 1
    _poison()
    ours = bsk.attention_forward(q, k, v, block_mask=mask)
    assert torch.equal(ours, bsk.attention_forward(q, k, v, block_mask=unordered))
    assert not torch.isnan(ours).any()


def test_device_row_orders_run_as_made_or_as_item_orders():
    """A constructor's device row order (a permutation) reaches the kernel as it is; a hand-made one, which
    no host check reads, as the item order built from it (every item once)."""
    from bsk_cupy import interop
    from bsk_cupy.dispatch import get_plan
    from bsk_cupy.mask_operand import mask_operand
    from bsk_cupy.validation import check_attention_args

    q, k, v = (_rand((1, 16, 4096, 64), 931 + i) for i in range(3))
    mask = bsk.BlockMask.from_dense(cupy.asarray(np.random.default_rng(12).random((1, 16, 32, 32)) < 0.3))
    infos = [interop.describe(name, x).info for name, x in (("q", q), ("k", k), ("v", v))]
    problem = check_attention_args(*infos, causal=False, scale=None, layout="bhsd")
    made = get_plan(problem, *infos, mask=mask_operand(mask, problem))
    assert made.mask.row_order_ptr == mask.row_order.data.ptr and not made.mask.order_items
    copied = dataclasses.replace(mask, row_order=mask.row_order.copy())
    hand = get_plan(problem, *infos, mask=mask_operand(copied, problem))
    assert hand.mask.order_items and hand.mask.row_order_ptr != copied.row_order.data.ptr


def test_one_wave_masks_skip_the_row_order():
    """A masked grid of at most one item per SM launches without the mask's row order (each item has its
    own CTA from the start); a larger one keeps it."""
    from bsk_cupy import interop
    from bsk_cupy.dispatch import get_plan
    from bsk_cupy.mask_operand import mask_operand
    from bsk_cupy.validation import check_attention_args

    for heads, seqlen, ordered in ((8, 1024, False), (16, 4096, True)):
        q, k, v = (_rand((1, heads, seqlen, 64), 921 + i) for i in range(3))
        n = seqlen // 128
        mask = bsk.BlockMask.from_dense(cupy.asarray(np.random.default_rng(11).random((1, heads, n, n)) < 0.3))
        infos = [interop.describe(name, x).info for name, x in (("q", q), ("k", k), ("v", v))]
        problem = check_attention_args(*infos, causal=False, scale=None, layout="bhsd")
        plan = get_plan(problem, *infos, mask=mask_operand(mask, problem))
        assert (plan.mask.row_order_ptr != 0) == ordered


def test_sparsek_rows_see_their_diagonal_when_lengths_are_not_block_aligned():
    """Sk - Sq not a multiple of the block: with no top-k blocks and a one-block window, every row still
    sees its own diagonal key (the window spans the diagonals of all the block's rows), and the result is
    float64's over the selection the oracle makes."""
    from bsk_cupy.reference import sparsek_blocks_reference

    b, h, sq, sk, d = 1, 2, 600, 1000, 64
    q, k, v = _rand((b, h, sq, d), 80), _rand((b, h, sk, d), 81), _rand((b, h, sk, d), 82)
    scores = _rand((b, h, sk), 83, torch.float32)
    for block in (128, 64):
        _poison()
        out, lse = bsk.sparsek_attention(q, k, v, scores, 0, block_size=block, local_blocks=1, return_lse=True)
        keep = sparsek_blocks_reference(scores.cpu().numpy(), 0, seqlen_q=sq, block_size=block, local_blocks=1)
        ref_out, ref_lse = attention_reference(to_numpy(q), to_numpy(k), to_numpy(v), causal=True,
                                               mask=block_mask_keys(keep, (sq, sk), (block, block)))
        assert np.isfinite(ref_lse).all() and torch.isfinite(lse).all()
        assert np.abs(to_numpy(out) - ref_out).max() < 4e-3


def test_sparsek_attention_names_scores_that_do_not_fit():
    q, k, v = _rand((1, 4, 256, 64), 84), _rand((1, 2, 256, 64), 85), _rand((1, 2, 256, 64), 86)
    with pytest.raises(ValueError, match=r"scores must have shape \(B, Hkv, Sk\) = \(1, 2, 256\)"):
        bsk.sparsek_attention(q, k, v, _rand((1, 4, 256), 87, torch.float32), 2)
    with pytest.raises(TypeError, match="scores is a cupy array but q is a torch one"):
        bsk.sparsek_attention(q, k, v, cupy.zeros((1, 2, 256), cupy.float32), 2)


def test_device_masks_stay_the_callers():
    """A device mask is read in place and not kept by the launch plans and fast-path entries cached for it:
    once the caller drops it, nothing of ours holds it (a loop making a mask per call keeps none)."""
    import gc
    import weakref

    from bsk_cupy import dispatch

    q, k, v = _rand((1, 2, 512, 64), 88), _rand((1, 2, 512, 64), 89), _rand((1, 2, 512, 64), 90)
    mask = bsk.sparsek_select(_rand((1, 2, 512), 91, torch.float32), 1)
    first = bsk.attention_forward(q, k, v, causal=True, block_mask=mask)
    again = bsk.attention_forward(q, k, v, causal=True, block_mask=mask)   # the fast path
    assert torch.equal(first, again)
    held = [a for plan in list(dispatch._plans.values()) if plan.mask is not None for a in plan.mask.arrays]
    assert not any(a is mask.kv_indices or a is mask.kv_num_blocks for a in held)
    dead = weakref.ref(mask)
    del mask
    gc.collect()
    assert dead() is None


def test_a_device_mask_over_the_same_memory_shares_the_fast_path_and_is_read_anew():
    """A new device mask over the arrays of one already used (what a select-then-attend loop gets back from
    the caching allocator) is served by the same fast-path entry, and the kernel reads what the arrays
    hold now; sizes that only equal ints (512.0, True) get no key and are checked every call."""
    from bsk_cupy import api

    q, k, v = _rand((1, 2, 512, 64), 97), _rand((1, 2, 512, 64), 98), _rand((1, 2, 512, 64), 99)
    rng = np.random.default_rng(100)
    made = bsk.BlockMask.from_dense(cupy.asarray(rng.random((1, 2, 4, 4)) < 0.5))
    num, idx = made.kv_num_blocks, made.kv_indices
    first = bsk.BlockMask(num, idx, (512, 512))
    _check(q, k, v, mask=first)
    key = api._fast_key(q, k, v, False, None, "bhsd", True, first, None)
    entry = api._fast_calls[key]
    other = bsk.BlockMask.from_dense(cupy.asarray(rng.random((1, 2, 4, 4)) < 0.5))
    assert not cupy.array_equal(other.kv_indices, idx)
    num[...] = other.kv_num_blocks
    idx[...] = other.kv_indices
    second = bsk.BlockMask(num, idx, (512, 512))
    assert api._fast_key(q, k, v, False, None, "bhsd", True, second, None) == key
    _check(q, k, v, mask=second)
    assert api._fast_calls[key] is entry
    for sizes in ({"seq_lengths": (512.0, 512)}, {"seq_lengths": [512, 512]}, {"block_size": (128.0, 128)}):
        assert api._mask_key(dataclasses.replace(second, **sizes), False) is None
    with pytest.raises(ValueError, match="seq_lengths must be a pair of positive ints"):
        bsk.attention_forward(q, k, v, block_mask=dataclasses.replace(second, seq_lengths=(512.0, 512)))
    assert bsk.BlockMask(num, idx, (512, 512), 128).block_size == (128, 128)
    assert torch.equal(bsk.attention_forward(q, k, v, block_mask=bsk.BlockMask(num, idx, (512, 512), 128)),
                       bsk.attention_forward(q, k, v, block_mask=second))
    with pytest.raises(TypeError, match="block_mask must be a bsk_cupy.BlockMask or None, got int"):
        bsk.attention_forward(q, k, v, block_mask=3)


def test_sparsek_attention_fast_path_selects_every_call():
    """Repeated torch calls are served by sparsek_attention's fast-path entry, give bit-identical results,
    select anew when the scores change in place, and still check options of another type."""
    from bsk_cupy import interop, sparsek

    q, k, v = _rand((1, 4, 1024, 64), 101), _rand((1, 2, 1024, 64), 102), _rand((1, 2, 1024, 64), 103)
    scores = _rand((1, 2, 1024), 104, torch.float32)
    first = bsk.sparsek_attention(q, k, v, scores, 2)
    key = (interop.call_key(q, k, v), sparsek._call_key(scores, 2, 128, True, 1, "max", None, "bhsd", False))
    entry = sparsek._attention_calls[key]
    assert torch.equal(first, bsk.sparsek_attention(q, k, v, scores, 2))
    assert sparsek._attention_calls[key] is entry
    scores.copy_(_rand((1, 2, 1024), 105, torch.float32))
    mask = bsk.sparsek_select(scores, 2)
    assert torch.equal(bsk.sparsek_attention(q, k, v, scores, 2), bsk.attention_forward(q, k, v, causal=True,
                                                                                         block_mask=mask))
    assert sparsek._attention_calls[key] is entry
    with pytest.raises(TypeError, match="topk must be an int >= 0, got bool"):
        bsk.sparsek_attention(q, k, v, scores, True)


def test_captured_launches_outlive_the_caches():
    """A CUDA graph keeps what its launches use: once the plans, fast-path entries and SparseK masks it
    captured are dropped from every cache, and the memory they freed is handed out again full of garbage,
    its replay still gives the eager results bit for bit (persistent CTAs: a work counter per plan)."""
    import gc

    from bsk_cupy import api, dispatch, sparsek

    q, k, v = _rand((1, 16, 2048, 64), 106), _rand((1, 16, 2048, 64), 107), _rand((1, 16, 2048, 64), 108)
    scores = _rand((1, 16, 2048), 109, torch.float32)
    eager = bsk.attention_forward(q, k, v, causal=True)
    eager_sparse = bsk.sparsek_attention(q, k, v, scores, 4)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        bsk.attention_forward(q, k, v, causal=True)
        bsk.sparsek_attention(q, k, v, scores, 4)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = bsk.attention_forward(q, k, v, causal=True)
        out_sparse = bsk.sparsek_attention(q, k, v, scores, 4)
    for cache in (dispatch._plans, api._fast_calls, sparsek._masks, sparsek._attention_calls):
        cache.clear()
    gc.collect()
    garbage = [cupy.full(n, 123456, dtype=cupy.int32) for n in (2, 256, 4096) for _ in range(200)]
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager) and torch.equal(out_sparse, eager_sparse)
    del garbage


def test_device_masks_must_be_c_contiguous_and_torch_ones_are_taken():
    q, k, v = _rand((1, 2, 512, 64), 92), _rand((1, 2, 512, 64), 93), _rand((1, 2, 512, 64), 94)
    mask = bsk.BlockMask.from_dense(cupy.asarray(np.random.default_rng(95).random((1, 2, 4, 4)) < 0.5))
    strided = dataclasses.replace(mask, kv_indices=cupy.asfortranarray(mask.kv_indices), row_order=None)
    with pytest.raises(ValueError, match="block_mask.kv_indices must be C-contiguous"):
        bsk.attention_forward(q, k, v, block_mask=strided)
    by_hand = bsk.BlockMask(torch.from_dlpack(mask.kv_num_blocks), torch.from_dlpack(mask.kv_indices), (512, 512))
    assert isinstance(by_hand.kv_indices, cupy.ndarray)
    assert torch.equal(bsk.attention_forward(q, k, v, block_mask=by_hand),
                       bsk.attention_forward(q, k, v, block_mask=dataclasses.replace(mask, row_order=None)))
