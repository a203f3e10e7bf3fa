"""JAX calls checked at trace time, without a GPU (``jax.eval_shape`` traces without running): output shapes
and dtypes, the same argument errors as eager calls, and what JAX inputs cannot do."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import jax  # noqa: E402  (the jax extra; a missing JAX is an error, as a missing torch is)
import jax.numpy as jnp  # noqa: E402

import bsk_cupy as bsk  # noqa: E402
from bsk_cupy import interop, jax_bridge, sparsek  # noqa: E402

S = jax.ShapeDtypeStruct
Q, KV = S((2, 8, 300, 64), jnp.float16), S((2, 2, 300, 64), jnp.float16)
SCORES = S((2, 2, 300), jnp.float32)


def _shapes(fn, *args):
    return jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), jax.eval_shape(fn, *args))


def test_output_shapes():
    assert _shapes(lambda q, k, v: bsk.attention_forward(q, k, v, causal=True), Q, KV, KV) == \
        ((2, 8, 300, 64), jnp.float16)
    assert _shapes(lambda q, k, v: bsk.attention_forward(q, k, v, return_lse=True, window=(64, 0)), Q, KV, KV) == \
        (((2, 8, 300, 64), jnp.float16), ((2, 8, 300), jnp.float32))
    q, kv = S((1, 129, 4, 128), jnp.bfloat16), S((1, 1000, 2, 128), jnp.bfloat16)
    assert _shapes(lambda q, k, v: bsk.attention_forward(q, k, v, layout="bshd"), q, kv, kv) == \
        ((1, 129, 4, 128), jnp.bfloat16)
    mask = bsk.BlockMask.from_dense(np.ones((1, 1, 3, 3), bool), (300, 300))
    assert _shapes(lambda q, k, v: bsk.attention_forward(q, k, v, block_mask=mask), Q, KV, KV) == \
        ((2, 8, 300, 64), jnp.float16)
    assert _shapes(lambda q, k, v, s: bsk.sparsek_attention(q, k, v, s, 2, return_lse=True), Q, KV, KV, SCORES) == \
        (((2, 8, 300, 64), jnp.float16), ((2, 8, 300), jnp.float32))


@pytest.mark.parametrize("options, error, match", [
    (dict(layout="bxsd"), ValueError, "layout must be one of"),
    (dict(causal=1), TypeError, "causal must be a bool"),
    (dict(scale=-1.0), ValueError, "scale must be a finite positive"),
    (dict(window=(3, -1)), ValueError, "window right"),
    (dict(return_lse=1), TypeError, "return_lse must be a bool"),
    (dict(block_mask=3), TypeError, "block_mask must be a bsk_cupy.BlockMask"),
])
def test_option_errors_under_trace(options, error, match):
    with pytest.raises(error, match=match):
        jax.eval_shape(lambda q, k, v: bsk.attention_forward(q, k, v, **options), Q, KV, KV)


@pytest.mark.parametrize("shapes, error, match", [
    ((Q, KV, S((2, 2, 300, 32), jnp.float16)), ValueError, "k and v must have the same shape"),
    ((S((2, 8, 300, 96), jnp.float16), S((2, 2, 300, 96), jnp.float16), S((2, 2, 300, 96), jnp.float16)),
     ValueError, "head dim"),
    ((Q, S((2, 3, 300, 64), jnp.float16), S((2, 3, 300, 64), jnp.float16)), ValueError, "multiple of k/v heads"),
    ((S((2, 8, 300, 64), jnp.float32), S((2, 2, 300, 64), jnp.float32), S((2, 2, 300, 64), jnp.float32)),
     TypeError, "dtype float32"),
    ((Q, KV, S((2, 2, 300, 64), jnp.bfloat16)), TypeError, "share one dtype"),
    ((S((8, 300, 64), jnp.float16), KV, KV), ValueError, "must be 4-D"),
])
def test_array_errors_under_trace(shapes, error, match):
    with pytest.raises(error, match=match):
        jax.eval_shape(lambda q, k, v: bsk.attention_forward(q, k, v), *shapes)


def test_mixed_frameworks_and_masks_under_trace():
    k = np.zeros((2, 2, 300, 64), np.float16)
    with pytest.raises(TypeError, match="one framework"):
        jax.eval_shape(lambda q, v: bsk.attention_forward(q, k, v), Q, KV)
    wrong = bsk.BlockMask.from_dense(np.ones((1, 1, 3, 2), bool), (300, 256))
    with pytest.raises(ValueError, match="seq_lengths"):
        jax.eval_shape(lambda q, k, v: bsk.attention_forward(q, k, v, block_mask=wrong), Q, KV, KV)
    bad = bsk.BlockMask(np.full((1, 1, 3), 2, np.int32), np.zeros((1, 1, 3, 3), np.int32), (300, 300))
    with pytest.raises(ValueError, match="strictly increasing"):  # validated, as eager host masks are
        jax.eval_shape(lambda q, k, v: bsk.attention_forward(q, k, v, block_mask=bad), Q, KV, KV)


def test_sparsek_errors_under_trace():
    with pytest.raises(ValueError, match="scores must have shape"):
        jax.eval_shape(lambda q, k, v, s: bsk.sparsek_attention(q, k, v, s, 2), Q, KV, KV, S((2, 8, 300), jnp.float32))
    with pytest.raises(ValueError, match="topk must be an int >= 0"):
        jax.eval_shape(lambda q, k, v, s: bsk.sparsek_attention(q, k, v, s, -1), Q, KV, KV, SCORES)
    q, kv = S((1, 2, 300, 256), jnp.float16), S((1, 2, 300, 256), jnp.float16)
    with pytest.raises(ValueError, match=r"\(128, 128\) at head dim 256"):
        jax.eval_shape(lambda q, k, v, s: bsk.sparsek_attention(q, k, v, s, 2, block_size=64), q, kv, kv,
                       S((1, 2, 300), jnp.float32))
    with pytest.raises(ValueError, match="pool must be one of"):
        jax.eval_shape(lambda s: bsk.sparsek_select(s, 2, pool="min").kv_indices, SCORES)


def test_select_then_attend_under_trace():
    """sparsek_select on traced scores gives a mask of traced JAX arrays, which an attention call in the same
    trace takes; reading its values there is refused by name."""
    seen = []

    def step(q, k, v, s):
        mask = bsk.sparsek_select(s, 2)
        seen.append(repr(mask))
        with pytest.raises(TypeError, match=r"holds traced \(or abstract\) JAX arrays"):
            mask.to_dense()
        return bsk.attention_forward(q, k, v, causal=True, block_mask=mask)

    assert _shapes(step, Q, KV, KV, SCORES) == ((2, 8, 300, 64), jnp.float16)
    assert "nQB=3, nKB=3" in seen[0] and "density known when run" in seen[0] and seen[0].endswith("jax)")
    assert _shapes(lambda s: bsk.sparsek_select(s, 2, block_size=64).kv_indices, SCORES) == ((2, 2, 5, 5), jnp.int32)


def test_masks_of_concrete_jax_arrays():
    """Constructors read JAX inputs to the host; a mask given JAX arrays keeps them and reads them back for
    its queries."""
    blocks = jnp.asarray(np.tril(np.ones((1, 1, 3, 3), bool)))
    host = bsk.BlockMask.from_dense(blocks, (300, 300))
    assert isinstance(host.kv_indices, np.ndarray) and host.density == 6 / 9
    kept = bsk.BlockMask(jnp.asarray(host.kv_num_blocks), jnp.asarray(host.kv_indices), (300, 300))
    assert isinstance(kept.kv_indices, jax.Array) and kept.validate() is kept
    np.testing.assert_array_equal(kept.to_dense(), host.to_dense())
    bad = bsk.BlockMask(jnp.full((1, 1, 3), 2, jnp.int32), jnp.zeros((1, 1, 3, 3), jnp.int32), (300, 300))
    with pytest.raises(ValueError, match="strictly increasing"):
        bad.validate()


def test_cpu_arrays():
    """Eager CPU arrays are refused before any GPU work; traced ones when XLA runs the call on the CPU
    (the callback sees host buffers)."""
    q = jnp.zeros((1, 2, 64, 64), jnp.float16)
    with pytest.raises(TypeError, match="q is in host memory"):
        bsk.attention_forward(q, q, q)
    with pytest.raises(Exception, match="run on CUDA GPUs"):
        jax.block_until_ready(jax.jit(lambda q: bsk.attention_forward(q, q, q))(q))


def test_vmap_and_sharding_are_named():
    with pytest.raises(TypeError, match="batched by jax.vmap"):
        jax.eval_shape(jax.vmap(lambda q: bsk.attention_forward(q, q, q)), S((3, 1, 2, 64, 64), jnp.float16))
    script = ("import jax, jax.numpy as jnp, numpy as np, bsk_cupy as bsk\n"
              "mesh = jax.sharding.Mesh(np.array(jax.devices()), ('x',))\n"
              "q = jax.device_put(jnp.zeros((2, 2, 64, 64), jnp.float16),\n"
              "                   jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('x')))\n"
              "try:\n    bsk.attention_forward(q, q, q)\nexcept ValueError as e:\n    print(e)\n")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert "q is sharded over 2 devices" in done.stdout, done.stdout + done.stderr


def test_fast_path_keys():
    """Eager keys tell apart what the compiled call depends on, and take no tracers."""
    q, q32 = jnp.zeros((1, 2, 64, 64), jnp.float16), jnp.zeros((1, 2, 64, 64), jnp.bfloat16)
    assert jax_bridge.call_key(q, q, q) == jax_bridge.call_key(jnp.ones_like(q), q, q)  # values do not matter
    assert jax_bridge.call_key(q, q, q) != jax_bridge.call_key(q32, q32, q32)
    assert jax_bridge.call_key(q, q, q) != jax_bridge.call_key(q[:, :, :32], q, q)
    assert jax_bridge.call_key(q, q, np.zeros(3)) is None and interop.call_key(q, q, q) is None
    scores = jnp.zeros((1, 2, 64))
    assert sparsek._jax_call_key(scores, (2, True)) != sparsek._jax_call_key(scores, (2, 1))  # True == 1
    assert sparsek._jax_call_key(scores, ([2], True)) is None and sparsek._call_key(scores, 2) is None
    seen = []
    jax.eval_shape(lambda x: seen.append((jax_bridge.call_key(x, x, x), jax_bridge.is_traced(x))) or x, q)
    assert seen == [(None, True)]
    assert jax_bridge.takes((q, q, q)) and not jax_bridge.takes((np.zeros(3),) * 3)


def test_block_mask_is_a_pytree():
    """Its arrays are the leaves and its sizes static: a mask goes into and out of traced functions, and JAX
    may rebuild it around leaves of its own (no checks on the way back)."""
    host = bsk.BlockMask.sliding_window(300, 300, left=100)
    leaves, tree = jax.tree_util.tree_flatten(host)
    assert len(leaves) == 5 and all(isinstance(a, np.ndarray) for a in leaves)
    assert jax.tree_util.tree_unflatten(tree, leaves).seq_lengths == (300, 300)
    counted = jax.tree_util.tree_map(lambda a: a.size, host)  # ints where arrays were
    assert counted.kv_indices == host.kv_indices.size and counted.block_size == (128, 128)
    assert _shapes(lambda q, m: bsk.attention_forward(q, q, q, block_mask=m, window=(100, 0)),
                   S((1, 2, 300, 64), jnp.float16), host) == ((1, 2, 300, 64), jnp.float16)
    selected = jax.eval_shape(lambda s: bsk.sparsek_select(s, 2), SCORES)  # a mask as a traced result
    assert isinstance(selected, bsk.BlockMask) and selected.kv_indices.shape == (2, 2, 3, 3)
    assert "density known when run" in repr(selected)  # its leaves are shapes, not values
    assert selected.kv_num_blocks.dtype == jnp.int32 and selected.row_order is None


def test_registration_waits_for_jax():
    """bsk_cupy never imports JAX itself; a mask made once JAX is imported registers the pytree."""
    script = ("import sys, numpy as np, bsk_cupy as bsk\n"
              "bsk.BlockMask.causal(256, 256)\n"
              "assert 'jax' not in sys.modules, 'bsk_cupy imported jax'\n"
              "import jax\n"
              "assert len(jax.tree_util.tree_leaves(bsk.BlockMask.causal(256, 256))) == 5\n"
              "print('ok')\n")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stdout + done.stderr
