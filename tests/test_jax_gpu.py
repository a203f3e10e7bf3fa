"""JAX inputs on the GPU: attention_forward and sparsek_attention as XLA custom calls, eager and under
jax.jit, against float64 and bit for bit against the CuPy route (the same kernels); marked ``gpu``."""

from __future__ import annotations

import gc

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

import jax  # noqa: E402  (the jax extra; a missing JAX is an error, as a missing torch is)
import jax.numpy as jnp  # noqa: E402
import cupy  # noqa: E402

import bsk_cupy as bsk  # noqa: E402
from bsk_cupy import jax_bridge, sparsek  # noqa: E402
from bsk_cupy.reference import (attention_reference, block_mask_keys, sparsek_blocks_reference,  # noqa: E402
                                window_keys)

if not any(d.platform == "gpu" for d in jax.devices()):
    pytest.skip("JAX sees no GPU", allow_module_level=True)
GPU = jax.devices("gpu")[0]


def _rand(shape, seed, dtype=jnp.float16):
    host = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return jax.device_put(jnp.asarray(host, dtype=dtype), GPU)


def _poison():
    """Fill XLA's free memory with NaN, so that output elements left unwritten show."""
    jnp.full((1 << 24,), jnp.nan, dtype=jnp.float16, device=GPU).block_until_ready()


def _f64(x) -> np.ndarray:
    return np.asarray(x.astype(jnp.float32), dtype=np.float64)


def _cupy(x):
    """A CuPy copy of a float16 JAX array."""
    return cupy.asarray(np.asarray(x))


def _assert_close(out, lse, ref_out, ref_lse, dtype):
    got = _f64(out)
    assert not np.isnan(got).any(), "output elements left unwritten (NaN poison)"
    tol = 4e-3 if dtype == jnp.float16 else 2e-2
    assert np.abs(got - ref_out).max() < tol
    lse = np.asarray(lse, dtype=np.float64)
    seen = np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(lse), seen)
    assert np.abs(lse[seen] - ref_lse[seen]).max() < 1e-3


CASES = [
    # (q shape, kv shape, layout, dtype, options)
    ((2, 8, 300, 64), (2, 2, 300, 64), "bhsd", jnp.float16, dict(causal=True)),
    ((1, 1000, 4, 128), (1, 1000, 4, 128), "bshd", jnp.bfloat16, dict()),
    ((1, 4, 700, 64), (1, 4, 900, 64), "bhsd", jnp.float16, dict(window=(100, 20))),
    ((1, 2, 513, 256), (1, 1, 513, 256), "bhsd", jnp.float16, dict(causal=True, scale=0.05)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_jit_against_float64(case):
    q_shape, kv_shape, layout, dtype, options = CASES[case]
    q = _rand(q_shape, 10 * case, dtype)
    k, v = _rand(kv_shape, 10 * case + 1, dtype), _rand(kv_shape, 10 * case + 2, dtype)
    call = jax.jit(lambda q, k, v: bsk.attention_forward(q, k, v, layout=layout, return_lse=True, **options))
    _poison()
    out, lse = call(q, k, v)
    assert out.shape == q.shape and out.dtype == dtype and lse.dtype == jnp.float32
    window = options.get("window")
    sq, sk = (q_shape[2], kv_shape[2]) if layout == "bhsd" else (q_shape[1], kv_shape[1])
    ref_out, ref_lse = attention_reference(_f64(q), _f64(k), _f64(v), causal=options.get("causal", False),
                                           scale=options.get("scale"), layout=layout,
                                           mask=window_keys(sq, sk, window)[None, None])
    _assert_close(out, lse, ref_out, ref_lse, dtype)


def test_eager_jit_and_cupy_agree_bit_for_bit():
    """One problem three ways (eager JAX, jitted JAX, CuPy): the same kernel, so the same bits; and a second
    jitted run repeats them."""
    q, k, v = _rand((1, 8, 1000, 128), 1), _rand((1, 2, 1000, 128), 2), _rand((1, 2, 1000, 128), 3)
    eager, eager_lse = bsk.attention_forward(q, k, v, causal=True, return_lse=True)
    call = jax.jit(lambda q, k, v: bsk.attention_forward(q, k, v, causal=True, return_lse=True))
    jitted, jitted_lse = call(q, k, v)
    again, _ = call(q, k, v)
    theirs, theirs_lse = bsk.attention_forward(_cupy(q), _cupy(k), _cupy(v), causal=True, return_lse=True)
    for x in (jitted, again):
        assert np.array_equal(np.asarray(x), np.asarray(eager))
    assert np.array_equal(np.asarray(eager), cupy.asnumpy(theirs).astype(np.float16))
    assert np.array_equal(np.asarray(eager_lse), np.asarray(jitted_lse))
    assert np.array_equal(np.asarray(eager_lse), cupy.asnumpy(theirs_lse))


def test_producers_and_consumers_in_one_jit():
    """q made by an XLA op in the same computation, the output consumed by another, new buffers per run:
    the kernel must run after its producer and before its consumer on XLA's stream."""
    @jax.jit
    def step(x, k, v):
        out = bsk.attention_forward(x * 1.5 + 0.25, k, v)
        return out * 2.0, out.astype(jnp.float32).sum()

    for seed in range(3):
        x, k, v = (_rand((2, 4, 384, 64), offset + seed) for offset in (100, 200, 300))
        doubled, total = step(x, k, v)
        ref, _ = attention_reference(_f64(x * 1.5 + 0.25), _f64(k), _f64(v))
        assert np.abs(_f64(doubled) - 2 * ref).max() < 8e-3
        # the consumer read the finished output: its sum is the output's (poison or stale memory would not be)
        assert abs(float(total) - _f64(doubled).sum() / 2) < 1e-2


def test_host_block_mask_under_jit():
    rng = np.random.default_rng(7)
    blocks = rng.random((1, 4, 8, 8)) < 0.4
    blocks[0, 0, 3] = False  # a query block that sees no key: 0 and lse -inf
    mask = bsk.BlockMask.from_dense(blocks, (1000, 1000))
    q, k, v = _rand((1, 4, 1000, 64), 11), _rand((1, 4, 1000, 64), 12), _rand((1, 4, 1000, 64), 13)
    _poison()
    out, lse = jax.jit(lambda q, k, v: bsk.attention_forward(q, k, v, block_mask=mask, return_lse=True))(q, k, v)
    visible = block_mask_keys(blocks, (1000, 1000), (128, 128))
    ref_out, ref_lse = attention_reference(_f64(q), _f64(k), _f64(v), mask=visible)
    _assert_close(out, lse, ref_out, ref_lse, jnp.float16)


def _cupy_forward(q, k, v, **options):
    return cupy.asnumpy(bsk.attention_forward(_cupy(q), _cupy(k), _cupy(v), **options))


def test_eager_options_on_the_same_arrays():
    """One set of arrays, several options, eager: each call gets its own compiled call (a key that missed an
    option would hand one call another's), bit for bit the CuPy route's."""
    q, k, v = _rand((1, 4, 700, 64), 51), _rand((1, 4, 700, 64), 52), _rand((1, 4, 700, 64), 53)
    mask = bsk.BlockMask.from_dense(np.random.default_rng(54).random((1, 4, 6, 6)) < 0.5, (700, 700))
    for options in (dict(), dict(causal=True), dict(window=(100, 0)), dict(window=[100, 0]), dict(block_mask=mask),
                    dict(block_mask=mask, causal=True), dict(scale=0.3)):
        for _ in range(2):
            ours = np.asarray(bsk.attention_forward(q, k, v, **options))
            assert np.array_equal(ours, _cupy_forward(q, k, v, **options)), options
        out, lse = bsk.attention_forward(q, k, v, return_lse=True, **options)
        assert np.array_equal(np.asarray(out), ours)


def test_eager_calls_compile_once_per_problem():
    """Options the fast path cannot key (a list window, an np.int64 topk) are checked every call but compile
    once; a host mask's device copies go with the mask."""
    q = _rand((1, 2, 512, 64), 61)
    scores = jax.device_put(jnp.asarray(np.random.default_rng(62).standard_normal((1, 2, 512)), jnp.float32), GPU)
    bsk.attention_forward(q, q, q, window=[64, 0])
    bsk.sparsek_attention(q, q, q, scores, np.int64(2))
    compiled = set(jax_bridge._compiled)
    for _ in range(3):
        bsk.attention_forward(q, q, q, window=[64, 0])
        bsk.sparsek_attention(q, q, q, scores, np.int64(2))
    assert set(jax_bridge._compiled) == compiled
    mask = bsk.BlockMask.from_dense(np.ones((1, 1, 4, 4), bool), (512, 512))
    bsk.attention_forward(q, q, q, block_mask=mask)
    ident = id(mask)
    assert ident in jax_bridge._mask_copies
    del mask
    gc.collect()
    assert ident not in jax_bridge._mask_copies


def test_window_routed_and_tail_ordered_under_jit():
    """A narrow window on a grid of several waves runs as a sliding-window block mask, and a mask past L2
    in its tail order: both built when XLA first runs the call, both bit for bit the CuPy route's."""
    q, k, v = _rand((1, 8, 4096, 64), 71), _rand((1, 8, 4096, 64), 72), _rand((1, 8, 4096, 64), 73)
    call = jax.jit(lambda q, k, v: bsk.attention_forward(q, k, v, window=(255, 0)))
    assert np.array_equal(np.asarray(call(q, k, v)), _cupy_forward(q, k, v, window=(255, 0)))
    q, k, v = _rand((1, 16, 16384, 64), 74), _rand((1, 16, 16384, 64), 75), _rand((1, 16, 16384, 64), 76)
    mask = bsk.BlockMask.from_dense(np.random.default_rng(77).random((1, 16, 128, 128)) < 0.05, (16384, 16384))
    assert mask.row_order is not None
    call = jax.jit(lambda q, k, v: bsk.attention_forward(q, k, v, block_mask=mask))
    assert np.array_equal(np.asarray(call(q, k, v)), _cupy_forward(q, k, v, block_mask=mask))


def test_many_buffer_addresses():
    """More pointer sets than a custom call keeps plans for: each run still reads its own inputs."""
    call = jax.jit(lambda q, k, v: bsk.attention_forward(q, k, v, causal=True))
    inputs = [tuple(_rand((1, 2, 256, 64), 80 + 3 * i + j) for j in range(3)) for i in range(20)]
    outs = [call(*x) for x in inputs]  # all alive: 20 distinct sets of addresses
    for x, out in list(zip(inputs, outs))[::6]:
        assert np.array_equal(np.asarray(out), _cupy_forward(*x, causal=True))


def test_sparsek_attention_under_jit():
    """Selection and attention in one custom call: bit for bit the CuPy route's, and float64 over the
    reference selection's blocks."""
    q, k, v = _rand((1, 8, 2048, 64), 21), _rand((1, 2, 2048, 64), 22), _rand((1, 2, 2048, 64), 23)
    scores = jax.device_put(jnp.asarray(np.random.default_rng(24).standard_normal((1, 2, 2048)), jnp.float32), GPU)
    call = jax.jit(lambda q, k, v, s: bsk.sparsek_attention(q, k, v, s, 3, local_blocks=1, return_lse=True))
    _poison()
    out, lse = call(q, k, v, scores)
    theirs, theirs_lse = bsk.sparsek_attention(_cupy(q), _cupy(k), _cupy(v), cupy.asarray(np.asarray(scores)), 3,
                                               local_blocks=1, return_lse=True)
    assert np.array_equal(np.asarray(out), cupy.asnumpy(theirs))
    assert np.array_equal(np.asarray(lse), cupy.asnumpy(theirs_lse))
    other = jax.device_put(jnp.asarray(np.random.default_rng(25).standard_normal((1, 2, 2048)), jnp.float32), GPU)
    again, _ = call(q, k, v, other)  # the same custom call, another selection
    theirs = bsk.sparsek_attention(_cupy(q), _cupy(k), _cupy(v), cupy.asarray(np.asarray(other)), 3, local_blocks=1)
    assert np.array_equal(np.asarray(again), cupy.asnumpy(theirs))
    assert not np.array_equal(np.asarray(again), np.asarray(out))
    eager, _ = bsk.sparsek_attention(q, k, v, scores, 3, local_blocks=1, return_lse=True)
    assert np.array_equal(np.asarray(eager), np.asarray(out))
    blocks = sparsek_blocks_reference(np.asarray(scores), 3, seqlen_q=2048, local_blocks=1)
    visible = np.repeat(block_mask_keys(blocks, (2048, 2048), (128, 128)), 4, axis=1)  # per KV head
    ref_out, ref_lse = attention_reference(_f64(q), _f64(k), _f64(v), causal=True, mask=visible)
    _assert_close(out, lse, ref_out, ref_lse, jnp.float16)


def _scores(seed, shape=(1, 2, 1024)):
    return jax.device_put(jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32), GPU)


def test_select_from_jax_scores():
    """Eager: the mask holds JAX arrays equal to CuPy's selection on the same scores, and attention over it is
    sparsek_attention's result bit for bit; under jit: one selection feeds two attention calls."""
    q, v2 = _rand((1, 2, 1024, 64), 31), _rand((1, 2, 1024, 64), 33)
    scores = _scores(32)
    mask = bsk.sparsek_select(scores, 2)
    assert isinstance(mask.kv_indices, jax.Array) and isinstance(mask.kv_num_blocks, jax.Array)
    theirs = bsk.sparsek_select(cupy.asarray(np.asarray(scores)), 2)
    assert np.array_equal(np.asarray(mask.kv_indices), cupy.asnumpy(theirs.kv_indices))
    assert np.array_equal(np.asarray(mask.kv_num_blocks), cupy.asnumpy(theirs.kv_num_blocks))
    np.testing.assert_array_equal(mask.to_dense(), sparsek_blocks_reference(np.asarray(scores), 2, seqlen_q=1024))
    out = bsk.attention_forward(q, q, q, causal=True, block_mask=mask)
    assert np.array_equal(np.asarray(out), np.asarray(bsk.sparsek_attention(q, q, q, scores, 2)))
    key = sparsek._jax_call_key(scores, (2, None, 128, True, 1, "max"))
    assert isinstance(sparsek._select_calls[key], jax_bridge.SelectFastCall)
    again = bsk.sparsek_select(_scores(39), 2)  # the fast path, other scores
    theirs = bsk.sparsek_select(cupy.asarray(np.asarray(_scores(39))), 2)
    assert np.array_equal(np.asarray(again.kv_indices), cupy.asnumpy(theirs.kv_indices))

    @jax.jit
    def two_layers(q, v2, s):
        shared = bsk.sparsek_select(s, 2)
        first = bsk.attention_forward(q, q, q, causal=True, block_mask=shared)
        return first, bsk.attention_forward(first, q, v2, causal=True, block_mask=shared)

    for seed in (34, 35):  # the same compiled call, new scores
        scores = _scores(seed)
        first, second = two_layers(q, v2, scores)
        assert np.array_equal(np.asarray(first), np.asarray(bsk.sparsek_attention(q, q, q, scores, 2)))
        assert np.array_equal(np.asarray(second), np.asarray(bsk.sparsek_attention(first, q, v2, scores, 2)))


_FIELDS = ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices", "row_order")


def _as_jax_mask(mask):
    """The same mask over JAX arrays on the GPU (full lists and row order included)."""
    arrays = [None if getattr(mask, n) is None else jax.device_put(getattr(mask, n), GPU) for n in _FIELDS]
    return bsk.BlockMask(*arrays[:2], mask.seq_lengths, mask.block_size, *arrays[2:])


def test_jax_array_masks():
    """Masks of JAX arrays with full lists and a row order (256 items: the kernel reads the order), eager and
    jitted, traced beside concrete q; two masks of one layout share a fast-path entry but each call reads
    its own; a CuPy caller takes such a mask too (through DLPack)."""
    q, k, v = _rand((1, 8, 4096, 64), 91), _rand((1, 8, 4096, 64), 92), _rand((1, 8, 4096, 64), 93)
    window = bsk.BlockMask.sliding_window(4096, 4096, left=700, right=0)
    assert window.full_kv_indices is not None and window.row_order is not None
    expected = _cupy_forward(q, k, v, window=(700, 0), block_mask=window)
    jax_mask = _as_jax_mask(window)
    for _ in range(2):  # the slow path, then the fast path
        got = bsk.attention_forward(q, k, v, window=(700, 0), block_mask=jax_mask)
        assert np.array_equal(np.asarray(got), expected)
    closed_over = jax.jit(lambda q, k, v: bsk.attention_forward(q, k, v, window=(700, 0), block_mask=jax_mask))
    assert np.array_equal(np.asarray(closed_over(q, k, v)), expected)

    def traced_mask(*arrays):  # concrete q, k, v; the mask's arrays traced
        mask = bsk.BlockMask(*arrays[:2], (4096, 4096), 128, *arrays[2:])
        return bsk.attention_forward(q, k, v, window=(700, 0), block_mask=mask)

    got = jax.jit(traced_mask)(*(getattr(jax_mask, n) for n in _FIELDS))
    assert np.array_equal(np.asarray(got), expected)
    other = bsk.BlockMask.sliding_window(4096, 4096, left=200, right=0)
    other_jax = _as_jax_mask(other)
    assert [getattr(other_jax, n).shape for n in _FIELDS] == [getattr(jax_mask, n).shape for n in _FIELDS]
    got = bsk.attention_forward(q, k, v, window=(700, 0), block_mask=other_jax)  # the same key, other arrays
    assert np.array_equal(np.asarray(got), _cupy_forward(q, k, v, window=(700, 0), block_mask=other))
    scores = _scores(94, (1, 8, 4096))
    selected = bsk.sparsek_select(scores, 3)
    theirs = bsk.sparsek_attention(_cupy(q), _cupy(k), _cupy(v), cupy.asarray(np.asarray(scores)), 3)
    cupy_route = bsk.attention_forward(_cupy(q), _cupy(k), _cupy(v), causal=True, block_mask=selected)
    assert np.array_equal(cupy.asnumpy(cupy_route), cupy.asnumpy(theirs))


def test_a_mask_of_jax_host_arrays_is_an_upload_the_plan_keeps():
    """JAX arrays on the CPU device become uploads made here (like a NumPy mask's), not the caller's device
    arrays: the operand a plan (and a captured graph) keeps must hold them."""
    from bsk_cupy import interop
    from bsk_cupy.mask_operand import mask_operand, retained
    from bsk_cupy.validation import check_attention_args

    q, k, v = (cupy.asarray(np.asarray(_rand((1, 2, 1000, 64), 961 + i))) for i in range(3))
    host = bsk.BlockMask.from_dense(np.random.default_rng(964).random((1, 2, 8, 8)) < 0.5, (1000, 1000))
    cpu = jax.devices("cpu")[0]
    arrays = [None if getattr(host, n) is None else jax.device_put(getattr(host, n), cpu) for n in _FIELDS]
    on_cpu = bsk.BlockMask(*arrays[:2], host.seq_lengths, host.block_size, *arrays[2:])
    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    operand = mask_operand(on_cpu, check_attention_args(*infos, causal=False, scale=None, layout="bhsd"))
    assert not operand.borrowed and retained(operand).arrays[:2] == operand.arrays[:2]
    got = bsk.attention_forward(q, k, v, block_mask=on_cpu)
    assert cupy.array_equal(got, bsk.attention_forward(q, k, v, block_mask=host))


def test_host_masks_with_closed_over_and_named_sharding_inputs():
    """Concrete q, k, v closed over by a jitted function with a host mask (its device copies must be made
    outside the trace, or later eager calls meet leaked tracers); q on a one-device mesh."""
    q, k, v = _rand((1, 2, 1000, 64), 95), _rand((1, 2, 1000, 64), 96), _rand((1, 2, 1000, 64), 97)
    mask = bsk.BlockMask.from_dense(np.random.default_rng(98).random((1, 2, 8, 8)) < 0.5, (1000, 1000))
    expected = _cupy_forward(q, k, v, block_mask=mask)
    inside = jax.jit(lambda x: bsk.attention_forward(q, k, v, block_mask=mask) + x)
    assert np.array_equal(np.asarray(inside(jnp.zeros((), jnp.float16))), expected)
    assert np.array_equal(np.asarray(bsk.attention_forward(q, k, v, block_mask=mask)), expected)
    mesh = jax.sharding.Mesh(np.array([GPU]), ("x",))
    named = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x", None, None, None))
    qn, kn, vn = (jax.device_put(x, named) for x in (q, k, v))
    assert np.array_equal(np.asarray(bsk.attention_forward(qn, kn, vn, block_mask=mask)), expected)


def test_masks_cross_jit_boundaries():
    """A BlockMask is a JAX pytree: the result of a jitted selection, an argument of a jitted attention (JAX
    arrays, or a host mask's NumPy arrays, which jit moves to the GPU)."""
    q, scores = _rand((1, 2, 1024, 64), 101), _scores(102)
    selected = jax.jit(lambda s: bsk.sparsek_select(s, 2))(scores)
    assert isinstance(selected, bsk.BlockMask) and isinstance(selected.kv_indices, jax.Array)
    assert np.array_equal(np.asarray(selected.kv_indices), np.asarray(bsk.sparsek_select(scores, 2).kv_indices))
    step = jax.jit(lambda q, m: bsk.attention_forward(q, q, q, causal=True, block_mask=m))
    assert np.array_equal(np.asarray(step(q, selected)), np.asarray(bsk.sparsek_attention(q, q, q, scores, 2)))
    host = bsk.BlockMask.sliding_window(1024, 1024, left=200)
    assert np.array_equal(np.asarray(step(q, host)), _cupy_forward(q, q, q, causal=True, block_mask=host))


def test_cupy_mask_keeps_the_dlpack_route():
    """A mask of CuPy arrays with eager JAX inputs runs on CuPy's stream, where such a mask is written; traced
    inputs refuse it by name."""
    q = _rand((1, 2, 1024, 64), 36)
    scores = _scores(37)
    mask = bsk.sparsek_select(cupy.asarray(np.asarray(scores)), 2)
    out = bsk.attention_forward(q, q, q, causal=True, block_mask=mask)
    assert isinstance(out, jax.Array)
    assert np.array_equal(np.asarray(out), np.asarray(bsk.sparsek_attention(q, q, q, scores, 2)))
    with pytest.raises(TypeError, match="a mask of CuPy arrays works with eager JAX arrays only"):
        jax.jit(lambda q: bsk.attention_forward(q, q, q, causal=True, block_mask=mask))(q)


def test_jax_errors():
    q = _rand((1, 2, 256, 64), 41)
    with pytest.raises(TypeError, match="out is for torch tensors and CuPy arrays"):
        bsk.attention_forward(q, q, q, out=q)
    with pytest.raises(ValueError, match="(?i)jvp"):  # forward only
        jax.grad(lambda q: bsk.attention_forward(q, q, q).astype(jnp.float32).sum())(q)
    host = jax.device_put(q, jax.devices("cpu")[0])
    with pytest.raises(TypeError, match="host memory"):
        bsk.attention_forward(host, host, host)
    with pytest.raises(Exception, match="run on CUDA GPUs"):  # traced: known only when XLA runs it on the CPU
        jax.jit(lambda q: bsk.attention_forward(q, q, q))(host).block_until_ready()
