"""The float64 oracle itself: vectorised reference vs a naive loop, and the contract's edge cases."""

import numpy as np
import pytest

from bsk_cupy.reference import attention_naive, attention_reference, visible_keys


@pytest.mark.parametrize("sq,sk,hq,hkv,causal", [
    (5, 9, 4, 2, True), (9, 5, 2, 1, True), (7, 7, 2, 2, False), (1, 6, 3, 1, True), (6, 1, 2, 2, False),
])
def test_reference_matches_naive_loop(sq, sk, hq, hkv, causal):
    rng = np.random.default_rng(sq * 1000 + sk * 10 + hq)
    q = rng.standard_normal((2, hq, sq, 8))
    k = rng.standard_normal((2, hkv, sk, 8))
    v = rng.standard_normal((2, hkv, sk, 8))
    out, lse = attention_reference(q, k, v, causal=causal, scale=0.7)
    out_naive, lse_naive = attention_naive(q, k, v, causal=causal, scale=0.7)
    np.testing.assert_allclose(out, out_naive, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.isinf(lse), np.isinf(lse_naive))
    finite = np.isfinite(lse)
    # absolute slack too: an lse near 0 (one key) differs by float64 rounding of the sums, ~1e-16
    np.testing.assert_allclose(lse[finite], lse_naive[finite], rtol=1e-12, atol=1e-12)


def test_causal_is_bottom_right_aligned():
    mask = visible_keys(2, 4, causal=True)
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0], [1, 1, 1, 1]])
    mask = visible_keys(4, 2, causal=True)
    np.testing.assert_array_equal(mask, [[0, 0], [0, 0], [1, 0], [1, 1]])


def test_rows_without_keys_give_zero_and_minus_inf():
    rng = np.random.default_rng()
    q, k, v = (rng.standard_normal((1, 1, n, 4)) for n in (5, 2, 2))
    out, lse = attention_reference(q, k, v, causal=True)
    assert np.all(out[0, 0, :3] == 0) and np.all(lse[0, 0, :3] == -np.inf)
    assert np.all(np.isfinite(lse[0, 0, 3:]))


def test_bshd_layout_is_a_transpose_of_bhsd():
    rng = np.random.default_rng()
    q = rng.standard_normal((2, 3, 5, 8))
    k = rng.standard_normal((2, 3, 7, 8))
    out_bhsd, lse_bhsd = attention_reference(q, k, k, causal=True)
    out_bshd, lse_bshd = attention_reference(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3),
                                             k.transpose(0, 2, 1, 3), causal=True, layout="bshd")
    np.testing.assert_allclose(out_bshd.transpose(0, 2, 1, 3), out_bhsd, atol=1e-14)
    np.testing.assert_allclose(lse_bshd, lse_bhsd)


def test_softmax_rows_sum_to_one_through_constant_values():
    rng = np.random.default_rng()
    q = rng.standard_normal((1, 2, 4, 8))
    k = rng.standard_normal((1, 2, 6, 8))
    v = np.ones((1, 2, 6, 8))
    out, _ = attention_reference(q, k, v)
    np.testing.assert_allclose(out, 1.0, atol=1e-14)


def test_reference_rejects_bad_layout_and_heads():
    x = np.zeros((1, 3, 4, 8))
    with pytest.raises(ValueError, match="layout"):
        attention_reference(x, x, x, layout="sbhd")
    with pytest.raises(ValueError, match="multiple"):
        attention_reference(x, np.zeros((1, 2, 4, 8)), np.zeros((1, 2, 4, 8)))
