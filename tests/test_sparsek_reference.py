"""The SparseK block-selection oracle: candidates, local window, top-k, tie-breaking."""

import numpy as np
import pytest

from bsk_cupy.reference import sparsek_blocks_reference


def test_hand_checked_causal_case():
    # 4 KV blocks of 2 keys; block scores (max) = [5, 1, 9, 3]; Sq = Sk = 8
    scores = np.array([[[5, 0, 1, 0, 9, 2, 3, 3]]], float)
    keep = sparsek_blocks_reference(scores, topk=1, seqlen_q=8, block_size=2, causal=True, local_blocks=1)
    np.testing.assert_array_equal(keep[0, 0].astype(int), [
        [1, 0, 0, 0],   # qb0: only block 0 visible (local)
        [1, 1, 0, 0],   # qb1: local 1 + best other (0)
        [1, 0, 1, 0],   # qb2: local 2 + best of {0, 1} -> 0
        [0, 0, 1, 1],   # qb3: local 3 + best of {0, 1, 2} -> 2 (score 9)
    ])


def test_ties_go_to_the_lower_block_and_results_repeat():
    scores = np.zeros((2, 3, 1000))
    a = sparsek_blocks_reference(scores, topk=2, seqlen_q=1000, block_size=64)
    b = sparsek_blocks_reference(scores, topk=2, seqlen_q=1000, block_size=64)
    np.testing.assert_array_equal(a, b)
    # last query block: local = its diagonal block 15; ties -> blocks 0 and 1
    np.testing.assert_array_equal(np.flatnonzero(a[0, 0, -1]), [0, 1, 15])


@pytest.mark.parametrize("causal", [True, False])
def test_counts_and_visibility(causal):
    rng = np.random.default_rng()
    sq, sk, bs, k, local = 700, 1100, 64, 3, 2
    keep = sparsek_blocks_reference(rng.standard_normal((2, 2, sk)), topk=k, seqlen_q=sq, block_size=bs,
                                    causal=causal, local_blocks=local)
    n_qb, n_kb = keep.shape[2:]
    assert (sk - sq) % bs != 0        # the first and last rows of a query block have their diagonals apart
    for qb in range(n_qb):
        diag = min(((min((qb + 1) * bs, sq) - 1) + sk - sq) // bs, n_kb - 1)
        first = (qb * bs + sk - sq) // bs
        row = keep[0, 0, qb]
        if causal:
            assert not row[diag + 1:].any()
        candidates = diag + 1 if causal else n_kb
        window = diag - max(first - local + 1, 0) + 1
        assert row.sum() == min(candidates, window + k)
        assert row[max(first - local + 1, 0):diag + 1].all()


@pytest.mark.parametrize("sq, sk, bs", [(100, 300, 128), (700, 1100, 64), (1000, 1000, 64), (130, 500, 64)])
def test_every_row_keeps_its_own_diagonal_block(sq, sk, bs):
    """With no top-k blocks and a one-block window, every row that sees a key still sees its diagonal key:
    the window spans the diagonals of all the block's rows (two blocks where Sk - Sq is not a multiple of
    the block size)."""
    keep = sparsek_blocks_reference(np.zeros((1, 1, sk)), topk=0, seqlen_q=sq, block_size=bs, causal=True,
                                    local_blocks=1)
    rows = np.arange(sq)
    diagonal = rows + sk - sq
    seen = diagonal >= 0
    assert keep[0, 0, rows[seen] // bs, diagonal[seen] // bs].all()
    assert (keep[0, 0].sum(axis=1) <= 2).all()


def test_mean_pool_and_rows_that_see_nothing():
    scores = np.array([[[0, 10, 1, 1, 2, 2]]], float)      # block means [5, 1, 2], maxes [10, 1, 2]
    keep = sparsek_blocks_reference(scores, topk=1, seqlen_q=10, block_size=2, causal=True, local_blocks=0,
                                    pool="mean")
    assert not keep[0, 0, :2].any()                         # Sq > Sk: the first 4 rows see no key
    np.testing.assert_array_equal(keep[0, 0, 4].astype(int), [1, 0, 0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="scores must be"):
        sparsek_blocks_reference(np.zeros((3, 4)), 1, seqlen_q=4)
    with pytest.raises(ValueError, match="pool"):
        sparsek_blocks_reference(np.zeros((1, 1, 4)), 1, seqlen_q=4, pool="sum")
