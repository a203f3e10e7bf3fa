"""BlockMask construction, conversion and validation (host arrays; no GPU needed)."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from bsk_cupy.block_mask import BlockMask
from bsk_cupy.reference import visible_keys


def element_window(sq, sk, left, right):
    i = np.arange(sq)[:, None] + (sk - sq)
    j = np.arange(sk)[None, :]
    lo = -np.inf if left is None else i - left
    hi = np.inf if right is None else i + right
    return np.broadcast_to((j >= lo) & (j <= hi), (sq, sk))


def blocks_of(element, bq, bk):
    """(touched, full) block matrices of an element mask, by brute force."""
    sq, sk = element.shape
    nq, nk = -(-sq // bq), -(-sk // bk)
    touched = np.zeros((nq, nk), bool)
    full = np.zeros((nq, nk), bool)
    for a in range(nq):
        for b in range(nk):
            tile = element[a * bq:(a + 1) * bq, b * bk:(b + 1) * bk]
            touched[a, b] = tile.any()
            full[a, b] = tile.shape == (bq, bk) and tile.all()
    return touched, full


@pytest.mark.parametrize("sq,sk,left,right,bs", [
    (300, 500, None, 0, 128), (500, 300, None, 0, 128), (1024, 1024, 200, 0, 128), (1000, 1000, 300, 64, 64),
    (129, 700, None, None, 64), (640, 640, 128, 128, 128), (1, 1, None, 0, 64),
])
def test_window_blocks_match_brute_force(sq, sk, left, right, bs):
    mask = BlockMask.sliding_window(sq, sk, left, right, block_size=bs)
    touched, full = blocks_of(element_window(sq, sk, left, right), bs, bs)
    np.testing.assert_array_equal(mask.to_dense()[0, 0], touched)
    np.testing.assert_array_equal(mask.full_to_dense()[0, 0], full)


def test_causal_is_the_bottom_right_window():
    mask = BlockMask.causal(700, 900, block_size=64)
    touched, _ = blocks_of(visible_keys(700, 900, True), 64, 64)
    np.testing.assert_array_equal(mask.to_dense()[0, 0], touched)


def test_from_dense_round_trip_sorted_lists_and_broadcast():
    rng = np.random.default_rng()
    dense = rng.random((2, 1, 5, 7)) < 0.4
    dense[0, 0, 2] = False          # an empty row
    dense[1, 0, 3] = True           # a full row
    mask = BlockMask.from_dense(dense, seq_lengths=(600, 850))
    np.testing.assert_array_equal(mask.to_dense(), dense)
    np.testing.assert_array_equal(mask.kv_num_blocks, dense.sum(-1))
    for b, q in np.ndindex(2, 5):
        n = mask.kv_num_blocks[b, 0, q]
        np.testing.assert_array_equal(mask.kv_indices[b, 0, q, :n], np.flatnonzero(dense[b, 0, q]))
    assert mask.kv_indices.dtype == np.int32 and mask.kv_num_blocks.dtype == np.int32
    assert mask.density == pytest.approx(dense.mean())
    assert "nQB=5" in repr(mask) and "host" in repr(mask)


def test_full_blocks_must_be_a_subset():
    dense = np.ones((1, 1, 2, 2), bool)
    full = np.zeros_like(dense)
    full[0, 0, 1, 0] = True
    mask = BlockMask.from_dense(dense, full_blocks=full)
    assert mask.full_to_dense().sum() == 1 and mask.to_dense().all()
    with pytest.raises(ValueError, match="subset"):
        BlockMask.from_dense(np.zeros_like(dense), full_blocks=full)


def _good():
    return BlockMask.from_dense(np.tril(np.ones((1, 1, 3, 3), bool)), seq_lengths=(300, 300))


def _good_but(change: dict) -> BlockMask:
    """_good()'s lists, sequence lengths and block size (no full lists, no row order) with ``change``."""
    good = _good()
    fields = dict(kv_num_blocks=good.kv_num_blocks, kv_indices=good.kv_indices, seq_lengths=good.seq_lengths,
                  block_size=good.block_size)
    return BlockMask(**{**fields, **change})


@pytest.mark.parametrize("change,match", [
    (dict(kv_num_blocks=np.array([[[1, 2, 4]]], np.int32)), r"kv_num_blocks must lie in \[0, 3\]"),
    (dict(kv_num_blocks=np.array([[[1, 2, 3]]], np.int64)), "int32"),
    (dict(kv_indices=np.array([[[[0, 1, 2], [0, 1, 2], [0, 0, 2]]]], np.int32)), "strictly increasing"),
    (dict(kv_indices=np.array([[[[3, 1, 2], [0, 1, 2], [0, 1, 2]]]], np.int32)), r"lie in \[0, 3\)"),
    (dict(seq_lengths=(300, 600)), "need"),
    (dict(block_size=(96, 128)), "block_size"),
    (dict(full_kv_num_blocks=np.array([[[1, 0, 0]]], np.int32)), "given together"),
    (dict(full_kv_num_blocks=np.array([[[1, 0, 0]]], np.int32),
          full_kv_indices=np.zeros((1, 1, 3, 3), np.int32)), "both in kv_indices and in full_kv_indices"),
    (dict(row_order=np.array([2, 1, 0], np.int64)), "row_order must be an int32 array of shape"),
    (dict(row_order=np.array([2, 1], np.int32)), r"shape \(3,\)"),
    (dict(row_order=np.array([2, 2, 0], np.int32)), "permutation of 0 .. 2"),
    (dict(row_order=np.array([3, 1, 0], np.int32)), "permutation"),
])
def test_validation_names_the_problem(change, match):
    with pytest.raises(ValueError, match=match):
        _good_but(change).validate()


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="block_size"):
        BlockMask.causal(100, 100, block_size=32)
    with pytest.raises(ValueError, match="left"):
        BlockMask.sliding_window(100, 100, left=-1)
    with pytest.raises(ValueError, match="seqlen_q"):
        BlockMask.causal(0, 100)
    with pytest.raises(ValueError, match="4-D bool"):
        BlockMask.from_dense(np.ones((3, 3), bool))
    with pytest.raises(TypeError, match="NumPy, CuPy or torch"):
        BlockMask.from_dense([[True]])


def test_from_flex_layout_with_unsorted_lists():
    # FlexAttention's BlockMask fields; rows past kv_num_blocks hold junk; lists may be unsorted
    flex = SimpleNamespace(
        BLOCK_SIZE=(128, 128), seq_lengths=(256, 384),
        kv_num_blocks=np.array([[[1, 2]]], np.int32),
        kv_indices=np.array([[[[0, 9, 9], [2, 1, 9]]]], np.int32) % 3,
        full_kv_num_blocks=np.array([[[0, 1]]], np.int32),
        full_kv_indices=np.array([[[[0, 0, 0], [0, 0, 0]]]], np.int32))
    mask = BlockMask.from_flex(flex)
    np.testing.assert_array_equal(mask.to_dense()[0, 0], [[1, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(mask.full_to_dense()[0, 0], [[0, 0, 0], [1, 0, 0]])


@pytest.mark.parametrize("kv_indices,kv_num_blocks,match", [
    ([[[[0, 9, 9], [-1, 9, 9]]]], [[[1, 1]]], r"lie in \[0, 3\)"),      # would land in the row before
    ([[[[3, 9, 9], [0, 9, 9]]]], [[[1, 1]]], r"lie in \[0, 3\)"),       # would land in the next row
    ([[[[0, 1, 2], [0, 1, 2]]]], [[[4, 1]]], r"must lie in \[0, 3\]"),
    ([[[[1, 1, 9], [0, 9, 9]]]], [[[2, 1]]], "repeats a block"),
    ([[[0, 1, 2]]], [[[1, 1]]], "4 dimensions"),
])
def test_from_flex_checks_the_lists_before_reading_them(kv_indices, kv_num_blocks, match):
    flex = SimpleNamespace(BLOCK_SIZE=(128, 128), seq_lengths=(256, 384), full_kv_num_blocks=None,
                           kv_num_blocks=np.array(kv_num_blocks, np.int32), kv_indices=np.array(kv_indices, np.int32))
    with pytest.raises(ValueError, match=match):
        BlockMask.from_flex(flex)


def test_from_flex_refuses_a_block_in_both_lists():
    flex = SimpleNamespace(
        BLOCK_SIZE=(128, 128), seq_lengths=(256, 384),
        kv_num_blocks=np.array([[[1, 1]]], np.int32), kv_indices=np.array([[[[0, 9, 9], [2, 9, 9]]]], np.int32),
        full_kv_num_blocks=np.array([[[0, 1]]], np.int32), full_kv_indices=np.array([[[[0, 0, 0], [2, 0, 0]]]], np.int32))
    with pytest.raises(ValueError, match="both in kv_indices and in full_kv_indices"):
        BlockMask.from_flex(flex)


def test_host_arrays_are_kept_read_only():
    """The device copy of a host mask is made once per mask, so its arrays cannot change afterwards: a
    caller's writeable array is copied, the constructors' own are kept as they are."""
    good = _good()
    assert not good.kv_indices.flags.writeable and not good.row_order.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        good.kv_num_blocks[0, 0, 0] = 0
    mine = np.array(good.kv_num_blocks)
    hand_built = BlockMask(mine, good.kv_indices, good.seq_lengths)
    assert hand_built.kv_num_blocks is not mine and mine.flags.writeable
    mine[0, 0, 0] = 0
    assert hand_built.kv_num_blocks[0, 0, 0] == good.kv_num_blocks[0, 0, 0]
    assert dataclasses.replace(good, row_order=None).kv_indices is good.kv_indices


@pytest.mark.parametrize("view", [
    lambda base: np.broadcast_to(base, base.shape),
    lambda base: np.frombuffer(base.data, dtype=base.dtype).reshape(base.shape),
    lambda base: _read_only(base.view()),
], ids=["broadcast_to", "frombuffer", "read-only view"])
def test_read_only_views_of_the_callers_memory_are_copied(view):
    """A read-only view whose memory the caller can still write is copied too: the mask's lists (what
    to_dense, density and the device copy read) never change after the mask is made."""
    good = _good()
    base = np.array(good.kv_indices)
    mask = BlockMask(good.kv_num_blocks, view(base), good.seq_lengths)
    assert not np.shares_memory(mask.kv_indices, base) and not mask.kv_indices.flags.writeable
    before = mask.to_dense()
    base[...] = base[..., ::-1]
    assert np.array_equal(mask.to_dense(), before)


def _read_only(array):
    array.setflags(write=False)
    return array


def test_malformed_masks_raise_value_errors_and_print():
    """A missing list is named (not an AttributeError), lists out of range make to_dense raise instead of
    marking other blocks (a negative index would wrap around), and repr says what is wrong."""
    good = _good()
    missing = BlockMask(None, good.kv_indices, good.seq_lengths)
    with pytest.raises(ValueError, match="kv_num_blocks must be an int32 array with 3 dimensions, got NoneType"):
        missing.check_layout()
    assert "malformed: kv_num_blocks" in repr(missing)
    indices = np.array(good.kv_indices)
    indices[0, 0, 0, 0] = -1
    wrapped = BlockMask(np.maximum(good.kv_num_blocks, 1), indices, good.seq_lengths)
    with pytest.raises(ValueError, match=r"kv_indices must lie in \[0, "):
        wrapped.to_dense()
    assert "lists out of range" in repr(wrapped)


def test_from_dense_names_a_bad_seq_lengths():
    with pytest.raises(ValueError, match="seq_lengths must be a pair of positive ints"):
        BlockMask.from_dense(np.ones((1, 1, 3, 3), bool), 300)


@pytest.mark.parametrize("change,match", [
    (dict(seq_lengths=(255.5, 256)), "seq_lengths must be a pair of positive ints"),
    (dict(seq_lengths=(256,)), "seq_lengths must be a pair"),
    (dict(block_size=128.0), "block_size must be one of"),
    (dict(kv_num_blocks=np.zeros((0, 1, 3), np.int32), kv_indices=np.zeros((0, 1, 3, 3), np.int32)),
     "empty batch or head dimension"),
])
def test_layout_checks_name_the_argument(change, match):
    with pytest.raises(ValueError, match=match):
        _good_but(change).check_layout()


def test_window_sides_must_be_ints_not_bools():
    with pytest.raises(ValueError, match="left must be None or an int"):
        BlockMask.sliding_window(256, 256, left=True)
    assert BlockMask.sliding_window(256, 256, left=np.int64(100), right=np.int32(0)).shape == (1, 1, 2, 2)


def test_constructor_row_orders_are_marked_as_made():
    """dispatch.get_plan uses a device row order as it is only where a constructor made it (a permutation);
    others become an item order that runs every row once."""
    from bsk_cupy.block_mask import made_row_order

    good = _good()
    assert made_row_order(good.row_order)
    assert made_row_order(dataclasses.replace(good, kv_num_blocks=np.array(good.kv_num_blocks)).row_order)
    assert not made_row_order(np.array(good.row_order)) and not made_row_order(None)


def test_row_order_puts_the_longest_rows_first_ties_in_index_order():
    rng = np.random.default_rng()
    dense = rng.random((2, 3, 6, 9)) < 0.4
    full = dense & (rng.random(dense.shape) < 0.5)
    mask = BlockMask.from_dense(dense, full_blocks=full)
    order = mask.row_order
    assert order.dtype == np.int32 and order.shape == (2 * 3 * 6,)
    counts = dense.sum(-1).reshape(-1)          # partial plus full blocks of each flattened (b, h, qb) row
    expected = sorted(range(counts.size), key=lambda row: (-counts[row], row))
    np.testing.assert_array_equal(order, expected)
    mask.validate()


def test_window_row_order_runs_the_short_first_blocks_last():
    mask = BlockMask.sliding_window(1024, 1024, left=383, right=0)
    # query blocks 0, 1, 2 see 1, 2, 3 blocks (partial and full together); every later one sees 4
    np.testing.assert_array_equal(mask.row_order, [3, 4, 5, 6, 7, 2, 1, 0])


def test_a_mask_built_by_hand_has_no_row_order():
    good = _good()
    assert BlockMask(good.kv_num_blocks, good.kv_indices, good.seq_lengths).validate().row_order is None
