"""sparsek_select on the GPU against the NumPy oracle sparsek_blocks_reference (needs an H100; marked ``gpu``).

Every result is compared whole: the dense block matrix against the oracle, and kv_num_blocks / kv_indices
against BlockMask.from_dense of the oracle (kept blocks ascending, then the others ascending), on output
memory that the allocator has just handed out full of poison.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gpu_helpers import max_seq_len

import bsk_cupy as bsk
from bsk_cupy.block_mask import BlockMask
from bsk_cupy.interop import _packed_offsets
from bsk_cupy.reference import sparsek_blocks_reference

pytestmark = pytest.mark.gpu

import torch  # noqa: E402
import cupy  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
BATCH, HEADS = 2, 3
POISON = -7


def _scores(shape, dtype, seed, kind="normal"):
    """Random scores: normal, small integers with signed zeros (many ties), or normal with NaN / inf keys,
    whole NaN blocks and blocks holding both infinities (mean NaN)."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    if kind == "ties":
        x = torch.randint(-2, 3, shape, device="cuda", generator=gen).float()
        x = torch.where(torch.rand(shape, device="cuda", generator=gen) < 0.5, -x, x)   # -0.0 ties +0.0
    else:
        x = torch.randn(shape, device="cuda", generator=gen)
    if kind == "nan":
        u = torch.rand(shape, device="cuda", generator=gen)
        x = torch.where(u < 0.15, float("nan"), x)
        x = torch.where((u >= 0.15) & (u < 0.18), float("inf"), x)
        x = torch.where((u >= 0.18) & (u < 0.21), float("-inf"), x)
        x[..., 256:512] = float("nan")                                 # whole NaN blocks at either size
        x[0, 0, 200:210] = float("inf")
        x[0, 0, 210:220] = float("-inf")
    return x.to(DTYPES[dtype])


def _expected(scores, topk, sq, **options):
    host = scores.float().cpu().numpy().astype(np.float64)   # fp16 / bf16 / fp32 widen exactly
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # all-NaN blocks
        return sparsek_blocks_reference(host, topk, seqlen_q=sq, **options)


def _poison(shapes, xp):
    """Leave the allocator's next block for these outputs full of POISON (freed, then handed out again):
    sparsek_select allocates them as one block laid out by interop._packed_offsets."""
    words = _packed_offsets(shapes)[1] // 4
    block = torch.full((words,), POISON, dtype=torch.int32, device="cuda") if xp is torch else \
        cupy.full((words,), POISON, dtype=cupy.int32)
    del block


def _check(mask, expected, seq_lengths, block_size):
    torch.cuda.synchronize()
    cupy.cuda.get_current_stream().synchronize()
    assert isinstance(mask.kv_indices, cupy.ndarray) and isinstance(mask.kv_num_blocks, cupy.ndarray)
    assert mask.kv_indices.dtype == cupy.int32 and mask.kv_num_blocks.dtype == cupy.int32
    assert mask.seq_lengths == seq_lengths and mask.block_size == (block_size, block_size)
    assert mask.full_kv_num_blocks is None
    np.testing.assert_array_equal(cupy.asnumpy(mask.to_dense()), expected)
    num, idx = cupy.asnumpy(mask.kv_num_blocks), cupy.asnumpy(mask.kv_indices)
    ref = BlockMask.from_dense(expected, seq_lengths, block_size)
    np.testing.assert_array_equal(num, ref.kv_num_blocks)
    np.testing.assert_array_equal(idx, ref.kv_indices)               # every entry written, no poison left
    kept = np.arange(idx.shape[-1] - 1) < num[..., None] - 1
    assert (np.diff(idx, axis=-1)[kept] > 0).all()                   # kept lists strictly ascending
    mask.validate()


def _run(scores, topk, sq, block_size, causal, local_blocks, pool, xp=torch):
    sk = scores.shape[-1]
    n_qb, n_kb = -(-sq // block_size), -(-sk // block_size)
    b, h = scores.shape[:2]
    _poison([(b, h, n_qb), (b, h, n_qb, n_kb)], xp)
    x = scores if xp is torch else cupy.from_dlpack(scores)
    mask = bsk.sparsek_select(x, topk, seqlen_q=sq, block_size=block_size, causal=causal,
                              local_blocks=local_blocks, pool=pool)
    expected = _expected(scores, topk, sq, block_size=block_size, causal=causal, local_blocks=local_blocks,
                         pool=pool)
    _check(mask, expected, (sq, sk), block_size)
    return mask


SEQ_PAIRS = [(1, 1), (1000, 1000), (256, 256), (700, 1500), (1500, 700), (1, 4097), (4097, 33), (333, 4097)]
OPTIONS = [(topk, local) for topk in (0, 1, 5, 1000) for local in (0, 1, 3)]


def _pairs():
    cap = max_seq_len()
    return [(sq, sk) for sq, sk in SEQ_PAIRS if max(sq, sk) <= cap]


@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("block_size", [64, 128])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("seqlens", _pairs(), ids=lambda p: f"q{p[0]}k{p[1]}")
def test_matches_reference(seqlens, dtype, block_size, causal, pool):
    sq, sk = seqlens
    scores = _scores((BATCH, HEADS, sk), dtype, hash((sq, sk, dtype, block_size, causal, pool)) % 2**31)
    for topk, local in OPTIONS:
        _run(scores, topk, sq, block_size, causal, local, pool)


@pytest.mark.parametrize("kind", ["ties", "nan"])
@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("block_size", [64, 128])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_ties_and_nans(kind, pool, block_size, dtype):
    scores = _scores((BATCH, HEADS, 3000), dtype, hash((kind, pool, block_size, dtype)) % 2**31, kind)
    for causal in (True, False):
        for sq in (3000, 1234):
            for topk, local in ((3, 1), (1000, 0), (7, 2)):
                _run(scores, topk, sq, block_size, causal, local, pool)


def test_all_scores_equal_keep_the_lowest_blocks():
    scores = torch.zeros(BATCH, HEADS, 2048, device="cuda")
    mask = _run(scores, 2, 2048, 128, True, 1, "max")
    assert np.flatnonzero(cupy.asnumpy(mask.to_dense())[1, 2, -1]).tolist() == [0, 1, 15]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_cupy_inputs(dtype):
    scores = _scores((BATCH, HEADS, 1111), dtype, 7)
    mask = _run(scores, 4, 900, 64, True, 2, "mean", xp=cupy)
    assert mask.kv_indices.device.id == scores.device.index


def test_strided_views():
    base = _scores((BATCH, 2000, HEADS), "bfloat16", 8)          # (B, Sk, H) memory
    _run(base.permute(0, 2, 1), 5, 2000, 128, True, 1, "max")
    wide = _scores((BATCH, HEADS, 4000), "float16", 9)
    _run(wide[..., ::2], 3, 1500, 64, False, 2, "mean")           # stride 2 along Sk
    one = _scores((1, 1, 1000), "float32", 10)
    _run(one.expand(BATCH, HEADS, 1000), 2, 1000, 64, True, 1, "max")   # zero strides
    flipped = cupy.from_dlpack(_scores((BATCH, HEADS, 777), "float32", 11))[..., ::-1]   # negative stride
    mask = bsk.sparsek_select(flipped, 3, block_size=64, pool="mean")
    expected = _expected(torch.from_dlpack(cupy.ascontiguousarray(flipped)), 3, 777, block_size=64, causal=True,
                         local_blocks=1, pool="mean")
    _check(mask, expected, (777, 777), 64)


def test_largest_supported_shape():
    """S = 131072 at block size 128 (1024 KV blocks) and 4096 KV blocks at block size 64, the limit."""
    for sk, block_size in ((131072, 128), (4096 * 64, 64)):
        scores = _scores((1, 1, sk), "bfloat16", sk)
        _run(scores, 16, sk, block_size, True, 2, "max")
    with pytest.raises(ValueError, match="at most 4096 KV blocks"):
        bsk.sparsek_select(_scores((1, 1, 4096 * 64 + 1), "float32", 12), 4, block_size=64)


def test_repeat_is_bit_identical():
    scores = _scores((BATCH, HEADS, 5000), "float32", 13)
    first = bsk.sparsek_select(scores, 6, local_blocks=2, pool="mean")
    for _ in range(3):
        again = bsk.sparsek_select(scores, 6, local_blocks=2, pool="mean")
        assert cupy.array_equal(first.kv_num_blocks, again.kv_num_blocks)
        assert cupy.array_equal(first.kv_indices, again.kv_indices)


def test_checked_calls_take_the_fast_path_and_option_types_still_count():
    """A repeated torch call is served by its fast-path entry (no second entry, the same result; new scores
    in the same tensor are selected anew), while an option of another type (True for 1) or value misses it
    and is checked; the two outputs share one allocation without overlapping."""
    from bsk_cupy import sparsek

    scores = _scores((BATCH, HEADS, 2000), "float32", 20)
    first = bsk.sparsek_select(scores, 1)
    key = sparsek._call_key(scores, 1, None, 128, True, 1, "max")
    served = sparsek._select_calls[key]
    again = bsk.sparsek_select(scores, 1)
    assert sparsek._select_calls[key] is served
    assert cupy.array_equal(first.kv_num_blocks, again.kv_num_blocks)
    assert cupy.array_equal(first.kv_indices, again.kv_indices)
    with pytest.raises(TypeError, match="topk must be an int >= 0, got bool"):
        bsk.sparsek_select(scores, True)
    with pytest.raises(TypeError, match="causal must be a bool"):
        bsk.sparsek_select(scores, 1, causal=1)
    with pytest.raises(ValueError, match="pool must be one of"):
        bsk.sparsek_select(scores, 1, pool="sum")
    scores.copy_(_scores(scores.shape, "float32", 21))
    _poison([first.kv_num_blocks.shape, first.kv_indices.shape], torch)
    mask = bsk.sparsek_select(scores, 1)
    _check(mask, _expected(scores, 1, 2000, block_size=128, causal=True, local_blocks=1, pool="max"), (2000, 2000),
           128)
    num_end = mask.kv_num_blocks.data.ptr + mask.kv_num_blocks.nbytes
    assert num_end <= mask.kv_indices.data.ptr and mask.kv_indices.data.ptr % 256 == 0


def test_runs_on_the_callers_stream():
    scores = _scores((BATCH, HEADS, 3000), "float16", 14)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        mask = bsk.sparsek_select(scores, 4, block_size=64)
    side.synchronize()
    _check(mask, _expected(scores, 4, 3000, block_size=64, causal=True, local_blocks=1, pool="max"), (3000, 3000),
           64)


def test_cuda_graph_capture_and_replay():
    scores = _scores((BATCH, HEADS, 3000), "bfloat16", 15)
    options = {"seqlen_q": 2000, "block_size": 64, "causal": True, "local_blocks": 2, "pool": "mean"}
    bsk.sparsek_select(scores, 4, **options)                     # compile + plan outside the capture
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        bsk.sparsek_select(scores, 4, **options)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        mask = bsk.sparsek_select(scores, 4, **options)
    for seed in (16, 17):
        scores.copy_(_scores(scores.shape, "bfloat16", seed))  # new data in the captured buffer
        graph.replay()
        expected = _expected(scores, 4, 2000, block_size=64, causal=True, local_blocks=2, pool="mean")
        _check(mask, expected, (2000, 3000), 64)


def test_jax_input():
    """JAX scores give a mask of JAX arrays (an XLA custom call; tests/test_jax_gpu.py covers jit)."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("JAX sees no GPU")
    scores = _scores((BATCH, HEADS, 1000), "float32", 18)
    x = jnp.asarray(scores.cpu().numpy(), device=jax.devices("gpu")[0])
    mask = bsk.sparsek_select(x, 3, block_size=64)
    assert isinstance(mask.kv_indices, jax.Array) and mask.kv_indices.dtype == jnp.int32
    as_cupy = BlockMask(*(cupy.asarray(np.asarray(a)) for a in (mask.kv_num_blocks, mask.kv_indices)),
                        mask.seq_lengths, mask.block_size)
    _check(as_cupy, _expected(scores, 3, 1000, block_size=64, causal=True, local_blocks=1, pool="max"),
           (1000, 1000), 64)


def test_gpu_argument_errors():
    scores = _scores((1, 2, 100), "float32", 19)
    with pytest.raises(TypeError, match="scores is in host memory"):
        bsk.sparsek_select(scores.cpu(), 2)
    with pytest.raises(TypeError, match="scores has dtype float64"):
        bsk.sparsek_select(scores.double(), 2)
    with pytest.raises(TypeError, match="scores has dtype int32"):
        bsk.sparsek_select(scores.int(), 2)
    with pytest.raises(ValueError, match="scores must be 3-D"):
        bsk.sparsek_select(scores[0], 2)
    with pytest.raises(ValueError, match="topk must be an int >= 0"):
        bsk.sparsek_select(scores, -1)
    with pytest.raises(ValueError, match="pool must be one of"):
        bsk.sparsek_select(scores, 2, pool="sum")


def test_sparsek_attention_checks_q_k_v_before_it_selects():
    """A call with bad q, k or v raises before its selection rewrites the problem's reused mask (which the
    previous call's fast path reads)."""
    from bsk_cupy import sparsek

    q, k, v = (torch.randn(1, 4, 1024, 64, device="cuda", dtype=torch.float16) for _ in range(3))
    scores, other = _scores((1, 4, 1024), "float32", 20), _scores((1, 4, 1024), "float32", 21)
    first = bsk.sparsek_attention(q, k, v, scores, 2)
    torch.cuda.synchronize()
    before = [(m.kv_num_blocks.copy(), m.kv_indices.copy()) for m in sparsek._masks.values()]
    narrow = torch.randn(1, 4, 1024, 48, device="cuda", dtype=torch.float16)
    with pytest.raises(ValueError, match="head dim"):
        bsk.sparsek_attention(narrow, narrow, narrow, other, 2)
    with pytest.raises(TypeError, match="return_lse must be a bool"):
        bsk.sparsek_attention(q, k, v, other, 2, return_lse=1)
    torch.cuda.synchronize()
    after = [(m.kv_num_blocks, m.kv_indices) for m in sparsek._masks.values()]
    assert len(after) == len(before)
    assert all(cupy.array_equal(a, b) for pair_a, pair_b in zip(after, before) for a, b in zip(pair_a, pair_b))
    assert torch.equal(bsk.sparsek_attention(q, k, v, scores, 2), first)
