"""Which sliding windows run as their block mask (bsk_cupy.window_route), and that the mask lists every
block the window touches and nothing else (no GPU needed)."""

from __future__ import annotations

import numpy as np
import pytest

from bsk_cupy.reference import block_mask_keys, window_keys
from bsk_cupy.validation import AttentionProblem
from bsk_cupy.window_route import MAX_SPAN, routed

SMS, L2 = 132, 50 * 2**20   # an H100 SXM


def problem(b=1, h=32, sq=2048, sk=2048, d=64, causal=False, window=(383, 0)):
    return AttentionProblem(batch=b, heads_q=h, heads_kv=h, seqlen_q=sq, seqlen_k=sk, head_dim=d,
                            dtype="float16", causal=causal, scale=0.125, layout="bhsd", device=0, window=window)


@pytest.mark.parametrize("kwargs,window", [
    (dict(), (383, 0)),
    (dict(causal=True, window=(383, None)), (383, 0)),        # causal bounds the right side at the diagonal
    (dict(causal=True, window=(383, 7)), (383, 0)),
    (dict(d=128, window=(100, 100)), (100, 100)),            # 32 MiB of K and V: within the L2 rule
    (dict(h=16, sq=8192, sk=8192, window=(255, 0)), (255, 0)),  # past it, but head dim 64
    (dict(sq=1000, sk=3000, window=(MAX_SPAN - 1, 0)), (MAX_SPAN - 1, 0)),   # Sq != Sk: bottom-right aligned
])
def test_narrow_windows_run_as_their_block_mask(kwargs, window):
    p = problem(**kwargs)
    new, mask = routed(p, SMS, L2)
    assert mask is not None and not new.causal and new.window == window
    assert (new.seqlen_q, new.seqlen_k, new.head_dim) == (p.seqlen_q, p.seqlen_k, p.head_dim)
    assert routed(p, SMS, L2)[1] is mask                     # one mask (and one device copy) per shape and window
    assert routed(p, SMS, L2) is routed(p, SMS, L2)          # decided once per problem, not on every call
    listed = block_mask_keys(mask.to_dense(), mask.seq_lengths, mask.block_size)[0, 0]
    visible = window_keys(p.seqlen_q, p.seqlen_k, window)
    assert not (visible & ~listed).any(), "a visible key outside the listed blocks"
    blocks = mask.to_dense()[0, 0]
    touched = np.add.reduceat(np.add.reduceat(visible, np.arange(0, p.seqlen_q, 128), 0),
                              np.arange(0, p.seqlen_k, 128), 1) > 0
    assert np.array_equal(blocks, touched), "a listed block the window does not touch"


@pytest.mark.parametrize("kwargs", [
    dict(window=None),
    dict(window=(MAX_SPAN, 0)),                 # span MAX_SPAN + 1
    dict(window=(None, 0)),
    dict(window=(100, None)),                   # unbounded right without causal
    dict(causal=True, window=(None, 10)),
    dict(d=256),
    dict(h=8, sq=1024, sk=1024),                # 64 items: one wave of persistent CTAs
    dict(h=1, sq=131072, sk=131072),            # a 1024 x 1024-block mask is not built
    dict(h=16, sq=8192, sk=8192, d=128, window=(255, 256)),   # 64 MiB of K and V: past the L2 rule
])
def test_other_calls_keep_their_problem(kwargs):
    p = problem(**kwargs)
    assert routed(p, SMS, L2) == (p, None)
