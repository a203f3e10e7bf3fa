"""Wall time per call of bsk_cupy from JAX, eager and under ``jax.jit``, beside JAX's own cuDNN attention
(``jax.nn.dot_product_attention(implementation="cudnn")``) on the same arrays.

Run on the H100: ``PYTHONPATH=. python tools/jax_host_overhead.py``. Each row: median over repeats of the
wall microseconds per call of 200 back-to-back calls, synchronised at the end of each repeat (host and GPU
time together: the small shape shows the host cost per call, the large ones the GPU time), then a check that
both routes agree with JAX's result. With a path argument, a cProfile of 2000 eager calls at the first shape
(sorted by own time) is written there. Works on trees without the XLA route too (their jit rows read
"unsupported"): an A/B runs it with PYTHONPATH at a copy of an older commit's bsk_cupy/ and kernels_cu/
(``git archive OLD bsk_cupy kernels_cu``), as tools/host_ab_run.sh does for the sparse calls.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from host_overhead import write_profile  # noqa: E402  (tools/host_overhead.py beside this; imports torch first)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import bsk_cupy as bsk  # noqa: E402

SPARSEK = (1, 32, 8, 8192, 128, 8)  # B, Hq, Hkv, S, D, topk: perf_sparse.py's first SparseK row
SHAPES = [(1, 8, 512, 64), (1, 16, 1024, 64), (4, 32, 4096, 128)]  # (B, H, S, D), layout bshd for JAX's


def wall_us(fn, calls: int, sync, repeats: int = 11, warmup: int = 50) -> float:
    for _ in range(warmup):
        out = fn()
    sync(out)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = fn()
        sync(out)
        samples.append((time.perf_counter() - t0) * 1e6 / calls)
    return statistics.median(samples)


def row(shape: str, name: str, fn, reference, calls: int, to_numpy=np.asarray, sync=jax.block_until_ready):
    try:
        result = to_numpy(fn()).astype(np.float32)
    except Exception as exc:  # noqa: BLE001 - an older tree without the route
        print(f"{shape:28s} {name:34s} unsupported ({type(exc).__name__})")
        return
    err = float(np.abs(result - reference).max())
    print(f"{shape:28s} {name:34s} {wall_us(fn, calls, sync):9.2f}   max |diff| vs the reference {err:.1e}")


def sparsek_rows(gpu) -> None:
    """sparsek_attention from JAX, eager and jitted, and from CuPy on copies of the same data (the
    reference: the same kernels)."""
    import cupy

    b, hq, hkv, s, d, topk = SPARSEK
    keys = jax.random.split(jax.random.key(5), 4)
    q = jax.device_put(jax.random.normal(keys[0], (b, hq, s, d), jnp.float16), gpu)
    k, v = (jax.device_put(jax.random.normal(key, (b, hkv, s, d), jnp.float16), gpu) for key in keys[1:3])
    scores = jax.device_put(jax.random.normal(keys[3], (b, hkv, s), jnp.float32), gpu)
    qc, kc, vc, sc = (cupy.asarray(np.asarray(x)) for x in (q, k, v, scores))
    reference = cupy.asnumpy(bsk.sparsek_attention(qc, kc, vc, sc, topk)).astype(np.float32)
    jitted = jax.jit(lambda q, k, v, s: bsk.sparsek_attention(q, k, v, s, topk))
    shape = f"sparsek {b},{hq}/{hkv},{s},{d} k{topk}"
    row(shape, "CuPy", lambda: bsk.sparsek_attention(qc, kc, vc, sc, topk), reference, 20, to_numpy=cupy.asnumpy,
        sync=lambda _: cupy.cuda.Device().synchronize())
    row(shape, "bsk_cupy eager", lambda: bsk.sparsek_attention(q, k, v, scores, topk), reference, 20)
    row(shape, "bsk_cupy in jax.jit", lambda: jitted(q, k, v, scores), reference, 20)
    selected = cupy.asnumpy(bsk.sparsek_select(sc, topk).kv_indices).astype(np.float32)
    row(shape, "sparsek_select, CuPy", lambda: bsk.sparsek_select(sc, topk).kv_indices, selected, 200,
        to_numpy=cupy.asnumpy, sync=lambda _: cupy.cuda.Device().synchronize())
    # an older tree answers JAX scores with CuPy arrays: read and wait for either
    row(shape, "sparsek_select, JAX eager", lambda: bsk.sparsek_select(scores, topk).kv_indices, selected, 200,
        to_numpy=lambda x: cupy.asnumpy(x) if isinstance(x, cupy.ndarray) else np.asarray(x),
        sync=lambda x: cupy.cuda.Device().synchronize() if isinstance(x, cupy.ndarray) else jax.block_until_ready(x))


def main() -> None:
    gpu = jax.devices("gpu")[0]
    print(f"jax {jax.__version__} on {gpu.device_kind}; bsk_cupy from {os.path.dirname(bsk.__file__)}")
    print(f"{'shape (B H S D), causal':28s} {'route':34s} {'us/call':>9s}")
    x = jax.device_put(jnp.zeros((8,), jnp.float32), gpu)
    plus_one = jax.jit(lambda x: x + 1)
    row("(8,)", "jax.jit(x + 1): JAX's dispatch floor", lambda: plus_one(x), np.ones(8, np.float32), 200)
    for b, h, s, d in SHAPES:
        calls = max(20, 200 * 512 * 512 // (s * s * b * h // 8))
        keys = jax.random.split(jax.random.key(s + h), 3)
        q, k, v = (jax.device_put(jax.random.normal(key, (b, s, h, d), jnp.float16), gpu) for key in keys)

        def ours():
            return bsk.attention_forward(q, k, v, causal=True, layout="bshd")

        jitted = jax.jit(lambda q, k, v: bsk.attention_forward(q, k, v, causal=True, layout="bshd"))
        cudnn = jax.jit(lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="cudnn"))
        routes = {"bsk_cupy eager": ours, "bsk_cupy in jax.jit": lambda: jitted(q, k, v),
                  "jax.nn.dot_product_attention cudnn": lambda: cudnn(q, k, v)}
        reference = np.asarray(cudnn(q, k, v), dtype=np.float32)
        for name, fn in routes.items():
            row(str((b, h, s, d)), name, fn, reference, min(calls, 200))
        if len(sys.argv) > 1 and (b, h, s, d) == SHAPES[0]:
            write_profile(ours, sys.argv[1], calls=2000, wait=jax.block_until_ready)
    sparsek_rows(gpu)


if __name__ == "__main__":
    main()
