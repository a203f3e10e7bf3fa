"""GPU correctness of attention_forward against the float64 reference (needs an H100; marked ``gpu``)."""

from __future__ import annotations

import numpy as np
import pytest

from gpu_helpers import batch_size, max_seq_len

pytestmark = pytest.mark.gpu

import torch  # noqa: E402
import bsk_cupy as bsk  # noqa: E402
from bsk_cupy.accuracy import check_case, reference_for, to_numpy  # noqa: E402

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def _rand(shape, dtype, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(shape, device="cuda", dtype=torch.float32, generator=gen).to(DTYPES[dtype])


def _check(q, k, v, causal, layout="bhsd", scale=None):
    """Ours on NaN-poisoned memory vs float64; the bound is 2 x SDPA's error + 1e-3; lse within 1e-3."""
    result = check_case("test", q, k, v, causal, layout=layout, scale=scale)
    assert result.unwritten == 0, f"{result.unwritten} output elements left unwritten (NaN poison)"
    assert result.error <= result.bound, f"max abs error {result.error:.3e} > bound {result.bound:.3e}"
    assert result.ok, f"lse error {result.lse_error:.3e} (inf: -inf on the wrong rows)"
    return bsk.attention_forward(q, k, v, causal=causal, layout=layout, scale=scale)


SEQ_PAIRS = [(1, 1), (7, 7), (113, 113), (1000, 1000), (4097, 4097), (113, 1000), (1000, 113), (1, 4097),
             (7, 300)]


def _pairs():
    cap = max_seq_len()
    return [(sq, sk) for sq, sk in SEQ_PAIRS if max(sq, sk) <= cap]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("head_dim", [64, 128, 256])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("seqlens", _pairs(), ids=lambda p: f"q{p[0]}k{p[1]}")
def test_matches_float64_reference(dtype, head_dim, causal, seqlens):
    sq, sk = seqlens
    heads = 2 if max(sq, sk) > 2000 else 3
    batch = 1 if max(sq, sk) > 2000 else batch_size()
    seed = hash((dtype, head_dim, causal, sq, sk)) % 2**31
    q = _rand((batch, heads, sq, head_dim), dtype, seed)
    k = _rand((batch, heads, sk, head_dim), dtype, seed + 1)
    v = _rand((batch, heads, sk, head_dim), dtype, seed + 2)
    _check(q, k, v, causal)


@pytest.mark.parametrize("heads_kv", [1, 2])
@pytest.mark.parametrize("causal", [False, True])
def test_gqa_and_mqa(heads_kv, causal):
    q = _rand((batch_size(), 8, 300, 128), "float16", 11)
    k = _rand((batch_size(), heads_kv, 421, 128), "float16", 12)
    v = _rand((batch_size(), heads_kv, 421, 128), "float16", 13)
    _check(q, k, v, causal)


@pytest.mark.parametrize("head_dim", [64, 128, 256])
def test_bshd_views_of_packed_qkv(head_dim):
    """q, k, v sliced from one (B, S, 3, H, D) tensor are read in place in the 'bshd' layout."""
    qkv = _rand((batch_size(), 517, 3, 4, head_dim), "bfloat16", 21)
    q, k, v = qkv.unbind(dim=2)
    assert not q.is_contiguous()
    _check(q, k, v, causal=True, layout="bshd")


def test_bhsd_view_of_bshd_memory():
    x = _rand((batch_size(), 200, 6, 64), "float16", 31)  # (B, S, H, D) memory
    q = x.transpose(1, 2)                                    # (B, H, S, D) view
    _check(q, q, q, causal=False)


def test_custom_scale_and_cross_attention():
    q = _rand((1, 4, 129, 64), "float16", 41)
    k = _rand((1, 4, 77, 64), "float16", 42)
    _check(q, k, k, causal=False, scale=0.3)


def test_causal_rows_without_keys_are_zero():
    """Sq > Sk causal: the first Sq - Sk rows see nothing -> out 0, lse -inf."""
    q = _rand((1, 2, 300, 64), "float16", 51)
    k = _rand((1, 2, 100, 64), "float16", 52)
    out = _check(q, k, k, causal=True)
    assert torch.count_nonzero(out[:, :, :200]).item() == 0


def test_repeat_is_bit_identical():
    q = _rand((2, 4, 1000, 128), "bfloat16", 61)
    k = _rand((2, 4, 1000, 128), "bfloat16", 62)
    first = bsk.attention_forward(q, k, k, causal=True)
    for _ in range(3):
        assert torch.equal(first, bsk.attention_forward(q, k, k, causal=True))


def test_out_buffer_gets_the_same_bits_as_a_fresh_output():
    q = _rand((2, 4, 1000, 128), "bfloat16", 63)
    k = _rand((2, 4, 1000, 128), "bfloat16", 64)
    fresh, lse = bsk.attention_forward(q, k, k, causal=True, return_lse=True)
    given = torch.full_like(q, float("nan"))
    for _ in range(2):   # the first call plans, the second takes the fast path
        result, lse_given = bsk.attention_forward(q, k, k, causal=True, return_lse=True, out=given)
        assert result is given and torch.equal(given, fresh) and torch.equal(lse_given, lse)
    with pytest.raises(ValueError, match="out overlaps q"):
        bsk.attention_forward(q, k, k, causal=True, out=q)
    with pytest.raises(ValueError, match="must have q's shape"):
        bsk.attention_forward(q, k, k, causal=True, out=given[:, :2])


def test_unaligned_out_is_refused():
    """The kernel writes the output in 4-byte pieces: an out= view 2 bytes off (a contiguous slice of a
    larger buffer) would fault; it is refused, on the first call and on the fast path after a good one."""
    q = _rand((1, 4, 333, 64), "float16", 81)
    good = torch.empty_like(q)
    backing = torch.empty(q.numel() + 8, device="cuda", dtype=torch.float16)
    for _ in range(2):
        with pytest.raises(ValueError, match="out must start at a 16-byte aligned address"):
            bsk.attention_forward(q, q, q, out=backing[1:q.numel() + 1].view(q.shape))
        assert bsk.attention_forward(q, q, q, out=good) is good
    assert torch.equal(good, bsk.attention_forward(q, q, q))


@pytest.mark.parametrize("framework", ["torch", "cupy"])
def test_out_overlapping_a_device_mask_is_refused(framework):
    """The kernel reads a device mask's lists while it writes the output: an out= over the same memory is
    refused, on the first call and on the fast path after a good one."""
    cupy = pytest.importorskip("cupy")
    q = _rand((1, 2, 256, 64), "float16", 95)
    backing = torch.zeros(2 * q.numel(), device="cuda", dtype=torch.float16)
    if framework == "cupy":
        q, backing = cupy.from_dlpack(q), cupy.from_dlpack(backing)
    raw = cupy.from_dlpack(backing).view(cupy.int32)  # the mask's lists in the first bytes of backing
    made = bsk.BlockMask.from_dense(cupy.ones((1, 2, 2, 2), bool))
    num, idx = raw[:4].reshape(1, 2, 2), raw[16:24].reshape(1, 2, 2, 2)
    num[...], idx[...] = made.kv_num_blocks, made.kv_indices
    mask = bsk.BlockMask(num, idx, (256, 256))
    overlapping = backing[:q.numel() if framework == "torch" else q.size].reshape(q.shape)
    good = torch.empty_like(q) if framework == "torch" else cupy.empty_like(q)
    for _ in range(2):
        with pytest.raises(ValueError, match="out overlaps block_mask"):
            bsk.attention_forward(q, q, q, block_mask=mask, out=overlapping)
        assert bsk.attention_forward(q, q, q, block_mask=mask, out=good) is good
    expected = bsk.attention_forward(q, q, q, block_mask=made)
    assert (torch.equal(good, expected) if framework == "torch" else bool(cupy.array_equal(good, expected)))


def test_cupy_out_buffer():
    cupy = pytest.importorskip("cupy")
    qc = cupy.from_dlpack(_rand((1, 4, 333, 64), "float16", 94))
    given = cupy.empty_like(qc)
    assert bsk.attention_forward(qc, qc, qc, out=given) is given
    assert cupy.array_equal(given, bsk.attention_forward(qc, qc, qc))
    with pytest.raises(TypeError, match="out must be a cupy array like q"):
        bsk.attention_forward(qc, qc, qc, out=torch.empty(1, 4, 333, 64, device="cuda", dtype=torch.float16))


def test_runs_on_the_callers_stream():
    q = _rand((1, 4, 512, 64), "float16", 71)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = bsk.attention_forward(q, q, q)
    side.synchronize()
    ref_out, _ = reference_for(q, q, q, False)
    assert np.abs(to_numpy(out) - ref_out).max() < 1e-2


def test_cuda_graph_capture_and_replay():
    q = _rand((1, 8, 512, 64), "float16", 81)
    k = _rand((1, 8, 512, 64), "float16", 82)
    bsk.attention_forward(q, k, k, causal=True)  # compile + plan outside capture
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        bsk.attention_forward(q, k, k, causal=True)
    torch.cuda.current_stream().wait_stream(stream)
    with torch.cuda.graph(graph):
        out = bsk.attention_forward(q, k, k, causal=True)
    q.copy_(_rand(q.shape, "float16", 83))          # new data in the captured buffers
    graph.replay()
    torch.cuda.synchronize()
    ref_out, _ = reference_for(q, k, k, True)
    assert np.abs(to_numpy(out) - ref_out).max() < 1e-2


def test_cupy_round_trip():
    cupy = pytest.importorskip("cupy")
    q = _rand((1, 4, 333, 128), "float16", 91)
    qc = cupy.from_dlpack(q)
    out = bsk.attention_forward(qc, qc, qc, causal=True)
    assert isinstance(out, cupy.ndarray) and out.dtype == qc.dtype and out.shape == qc.shape
    ref_out, _ = reference_for(q, q, q, True)
    assert np.abs(cupy.asnumpy(out).astype(np.float64) - ref_out).max() < 1e-2


def test_cupy_bfloat16():
    cupy = pytest.importorskip("cupy")
    q = _rand((1, 2, 130, 64), "bfloat16", 92)
    qc = cupy.from_dlpack(q)
    out = bsk.attention_forward(qc, qc, qc)
    ref_out, _ = reference_for(q, q, q, False)
    got = torch.from_dlpack(out).float().cpu().numpy()
    assert np.abs(got - ref_out).max() < 3e-2


def test_cupy_calls_take_a_fast_path_and_check_out():
    """Repeated CuPy calls are served by one fast-path entry (the same result bit for bit, lse too); a given
    out is written in place, and a bad one gets the slow path's errors; sparsek_select and sparsek_attention
    on CuPy arrays take their fast paths as well."""
    cupy = pytest.importorskip("cupy")
    from bsk_cupy import api, interop, sparsek

    q = cupy.from_dlpack(_rand((1, 4, 640, 64), "float16", 94))
    k, v = (cupy.from_dlpack(_rand((1, 2, 640, 64), "float16", seed)) for seed in (95, 96))
    first, first_lse = bsk.attention_forward(q, k, v, causal=True, return_lse=True)
    key = api._fast_key(q, k, v, True, None, "bhsd", True, None, None)
    entry = api._fast_calls[key]
    assert isinstance(entry, interop.CupyFastCall) and key[0][0] == "cupy"
    again, again_lse = bsk.attention_forward(q, k, v, causal=True, return_lse=True)
    assert api._fast_calls[key] is entry
    assert cupy.array_equal(first, again) and cupy.array_equal(first_lse, again_lse)
    ref_out, _ = reference_for(torch.from_dlpack(q), torch.from_dlpack(k), torch.from_dlpack(v), True)
    assert np.abs(cupy.asnumpy(first).astype(np.float64) - ref_out).max() < 1e-2
    given = cupy.full(q.shape, cupy.nan, dtype=q.dtype)
    assert bsk.attention_forward(q, k, v, causal=True, out=given) is given and cupy.array_equal(given, first)
    size_one = cupy.lib.stride_tricks.as_strided(cupy.empty(q.size, q.dtype), q.shape, (2,) + q.strides[1:])
    assert bsk.attention_forward(q, k, v, causal=True, out=size_one) is size_one   # batch 1: any stride
    assert cupy.array_equal(size_one, first)
    unaligned = cupy.empty(q.size + 1, q.dtype)[1:].reshape(q.shape)
    for bad, exc, match in ((cupy.empty(q.shape, cupy.float32), TypeError, "out must have q's dtype float16"),
                            (cupy.empty((1, 4, 640, 32), q.dtype), ValueError, "out must have q's shape"),
                            (q, ValueError, "out overlaps q"),
                            (unaligned, ValueError, "16-byte aligned"),
                            (cupy.empty((1, 4, 64, 640), q.dtype).transpose(0, 1, 3, 2), ValueError,
                             "must be contiguous"),
                            (torch.empty(q.shape, dtype=torch.float16, device="cuda"), TypeError,
                             "out must be a cupy array like q")):
        with pytest.raises(exc, match=match):
            bsk.attention_forward(q, k, v, causal=True, out=bad)
    odd = cupy.lib.stride_tricks.as_strided(cupy.empty(q.size + 64, q.dtype), q.shape,
                                            q.strides[:2] + (129, 2))
    with pytest.raises(ValueError, match=r"q has byte strides \(.*\), not multiples of its 2-byte elements"):
        bsk.attention_forward(odd, k, v)
    scores = cupy.random.default_rng(97).standard_normal((1, 2, 640), dtype=cupy.float32)
    mask = bsk.sparsek_select(scores, 2)
    served = sparsek._select_calls[sparsek._call_key(scores, 2, None, 128, True, 1, "max")]
    again_mask = bsk.sparsek_select(scores, 2)
    assert sparsek._select_calls[sparsek._call_key(scores, 2, None, 128, True, 1, "max")] is served
    assert cupy.array_equal(mask.kv_indices, again_mask.kv_indices)
    assert cupy.array_equal(mask.kv_num_blocks, again_mask.kv_num_blocks)
    fused = bsk.sparsek_attention(q, k, v, scores, 2)
    key = (interop.call_key(q, k, v), sparsek._call_key(scores, 2, 128, True, 1, "max", None, "bhsd", False))
    entry = sparsek._attention_calls[key]
    assert cupy.array_equal(bsk.sparsek_attention(q, k, v, scores, 2), fused)
    assert sparsek._attention_calls[key] is entry
    assert cupy.array_equal(fused, bsk.attention_forward(q, k, v, causal=True, block_mask=mask))


def test_cupy_fast_call_launches_on_cupys_current_stream():
    """A CuPy fast-path call launches on CuPy's current stream (a non-default one here), allocating there."""
    cupy = pytest.importorskip("cupy")
    from recording_plan import RecordingPlan

    from bsk_cupy import interop
    from bsk_cupy.validation import check_attention_args

    q = cupy.from_dlpack(_rand((1, 2, 128, 64), "float16", 98))
    infos = tuple(interop.describe(n, q).info for n in ("q", "k", "v"))
    problem = check_attention_args(*infos, causal=False, scale=None, layout="bhsd")
    plan = RecordingPlan()
    call = interop.CupyFastCall(plan, q, problem, infos, (1, 2, 128))
    with cupy.cuda.Stream(non_blocking=True) as side:
        out, lse = call(q, q, q)
    assert plan.calls == [(out.data.ptr, lse.data.ptr, side.ptr)] and side.ptr != 0
    assert out.shape == q.shape and out.dtype == q.dtype and lse.dtype == cupy.float32


def test_jax_round_trip():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("JAX sees no GPU")
    q = _rand((1, 4, 257, 64), "float16", 93)
    qj = jnp.asarray(q.cpu().numpy(), device=jax.devices("gpu")[0])
    out, lse = bsk.attention_forward(qj, qj, qj, causal=True, return_lse=True)
    assert isinstance(out, jax.Array) and out.dtype == jnp.float16 and out.shape == qj.shape
    assert isinstance(lse, jax.Array) and lse.dtype == jnp.float32
    ref_out, _ = reference_for(q, q, q, True)
    assert np.abs(np.asarray(out, dtype=np.float64) - ref_out).max() < 1e-2
    with pytest.raises(TypeError, match="out is for torch tensors and CuPy arrays"):
        bsk.attention_forward(qj, qj, qj, out=qj)


def test_gpu_argument_errors():
    q = _rand((1, 2, 64, 64), "float16", 101)
    with pytest.raises(TypeError, match="q is in host memory"):
        bsk.attention_forward(q.cpu(), q, q)
    with pytest.raises(TypeError, match="dtype float32"):
        bsk.attention_forward(q.float(), q.float(), q.float())
    with pytest.raises(ValueError, match="head dim"):
        x = _rand((1, 2, 64, 96), "float16", 102)
        bsk.attention_forward(x, x, x)
    with pytest.raises(ValueError, match="stride"):
        wide = _rand((1, 2, 64, 68), "float16", 103)[..., :64]   # 136-byte rows: not 16-byte aligned
        bsk.attention_forward(wide, wide, wide)
    with pytest.raises(ValueError, match="multiple of k/v heads"):
        bsk.attention_forward(q, q[:, :1].expand(1, 3, 64, 64).contiguous(), q[:, :1].expand(1, 3, 64, 64).contiguous())
    with pytest.raises(NotImplementedError, match="no backward"):
        g = q.clone().requires_grad_(True)
        bsk.attention_forward(g, g, g)
    cupy = pytest.importorskip("cupy")
    with pytest.raises(TypeError, match="one framework"):
        bsk.attention_forward(q, cupy.from_dlpack(q), q)
