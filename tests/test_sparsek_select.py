"""sparsek_select without a GPU: argument checks, the variant registry, the packed launch parameters, and the
sm_90a compile + audit of every selection variant."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import bsk_cupy as bsk
from bsk_cupy.audit import audit_spec
from bsk_cupy.compile.module import LoadedKernel
from bsk_cupy.device import gpu_available
from bsk_cupy.sparsek_launch import PARAMS_BYTES, PARAMS_FORMAT, SelectPlan, select_spec
from bsk_cupy.sparsek_validation import MAX_KV_BLOCKS, check_scores_for_attention, check_sparsek_args
from bsk_cupy.specs import SparseKSelectSpec, all_kernel_specs, sparsek_select_specs
from bsk_cupy.validation import ArrayInfo


def info(shape=(2, 3, 1000), dtype="float32", device=0, strides=None, framework="torch"):
    strides = strides or (shape[1] * shape[2], shape[2], 1)
    return ArrayInfo(framework, tuple(shape), tuple(strides), dtype, device, 1 << 20)


def check(scores=None, topk=4, seqlen_q=None, block_size=128, causal=True, local_blocks=1, pool="max"):
    return check_sparsek_args(scores or info(), topk, seqlen_q=seqlen_q, block_size=block_size, causal=causal,
                              local_blocks=local_blocks, pool=pool)


def test_valid_problem_defaults_and_clamping():
    p = check(info((2, 3, 1000), "bfloat16", strides=(1, 2, 6)), topk=10**9, local_blocks=99, block_size=64)
    assert (p.batch, p.heads, p.seqlen_q, p.seqlen_k, p.n_q_blocks, p.n_kv_blocks) == (2, 3, 1000, 1000, 16, 16)
    assert (p.topk, p.local_blocks, p.strides, p.dtype, p.block_size) == (16, 16, (1, 2, 6), "bfloat16", 64)
    assert p.num_blocks_shape == (2, 3, 16) and p.indices_shape == (2, 3, 16, 16)
    p = check(seqlen_q=np.int64(77), topk=np.int32(0), local_blocks=0, causal=False, pool="mean")
    assert (p.seqlen_q, p.n_q_blocks, p.topk, p.local_blocks, p.causal, p.pool) == (77, 1, 0, 0, False, "mean")


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_sparsek_attention_scores_must_match_q_and_k(layout):
    """(B, Hkv, Sk) of k, q's framework and device; each refusal names scores (or the host array)."""
    def qk(b, h, s, d=64):
        return info((b, h, s, d) if layout == "bhsd" else (b, s, h, d), "float16", strides=(1, 1, 1, 1))
    q, k = qk(2, 8, 1000), qk(2, 4, 1500)
    check_scores_for_attention(info((2, 4, 1500)), q, k, layout)
    for scores, exc, match in (
            (info((2, 8, 1500)), ValueError, r"scores must have shape \(B, Hkv, Sk\) = \(2, 4, 1500\)"),
            (info((2, 4, 1000)), ValueError, "scores must have shape"),
            (info((1, 4, 1500)), ValueError, "scores must have shape"),
            (info((2, 4, 1500), framework="cupy"), TypeError, "scores is a cupy array but q is a torch one"),
            (info((2, 4, 1500), device=1), ValueError, "scores is on cuda:1 but q is on cuda:0")):
        with pytest.raises(exc, match=match):
            check_scores_for_attention(scores, q, k, layout)
    with pytest.raises(ValueError, match="k must be 4-D"):
        check_scores_for_attention(info((2, 4, 1500)), q, info((2, 4, 1500)), layout)
    with pytest.raises(TypeError, match="q is in host memory"):
        check_scores_for_attention(info((2, 4, 1500)), info(q.shape, device=None, strides=(1, 1, 1, 1)), k, layout)


def test_placement_reads_a_dlpack_producer_without_converting_it():
    """sparsek_attention's early checks see a JAX-like array's framework, shape and device from
    ``__dlpack_device__`` alone."""
    from bsk_cupy.interop import placement

    class FakeJaxArray:
        __module__ = "jaxlib.xla_extension"
        shape, dtype = (2, 4, 1500), "float32"

        def __dlpack__(self, stream=None):
            raise AssertionError("converted")

        def __dlpack_device__(self):
            return (2, 1)

    placed = placement("scores", FakeJaxArray())
    assert (placed.framework, placed.shape, placed.device) == ("jax", (2, 4, 1500), 1)
    assert placement("q", np.zeros((1, 2, 3, 4), np.float16)).device is None
    import torch
    host = placement("q", torch.zeros(1, 2, 3, 4, dtype=torch.float16))
    assert (host.framework, host.shape, host.dtype, host.device) == ("torch", (1, 2, 3, 4), "float16", None)


def test_largest_problem_is_accepted():
    p = check(info((1, 1, MAX_KV_BLOCKS * 64)), block_size=64)
    assert p.n_kv_blocks == MAX_KV_BLOCKS == 4096


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"scores": info(device=None)}, TypeError, "scores is in host memory"),
    ({"scores": info(dtype="float64")}, TypeError, "scores has dtype float64; allowed: float16, bfloat16, float32"),
    ({"scores": info(dtype="int32")}, TypeError, "scores has dtype int32"),
    ({"scores": info((2, 1000), strides=(1000, 1))}, ValueError, r"scores must be 3-D \(B, Hkv, Sk\)"),
    ({"scores": info((2, 3, 10, 10), strides=(300, 100, 10, 1))}, ValueError, "scores must be 3-D"),
    ({"scores": info((2, 0, 1000))}, ValueError, "empty dimension"),
    ({"topk": -1}, ValueError, "topk must be an int >= 0, got -1"),
    ({"topk": 2.0}, TypeError, "topk must be an int >= 0, got float"),
    ({"topk": True}, TypeError, "topk must be an int"),
    ({"topk": None}, TypeError, "topk must be an int"),
    ({"local_blocks": -3}, ValueError, "local_blocks must be an int >= 0, got -3"),
    ({"local_blocks": 1.5}, TypeError, "local_blocks must be an int"),
    ({"block_size": 32}, ValueError, r"block_size must be one of \(64, 128\), got 32"),
    ({"block_size": 128.0}, ValueError, "block_size must be one of"),
    ({"block_size": (128, 128)}, ValueError, "block_size must be one of"),
    ({"pool": "sum"}, ValueError, r"pool must be one of \('max', 'mean'\), got 'sum'"),
    ({"pool": np.array("max")}, ValueError, "pool must be one of"),
    ({"causal": 1}, TypeError, "causal must be a bool, got int"),
    ({"seqlen_q": 0}, ValueError, r"seqlen_q must lie in \[1, 2\*\*31 - 1\], got 0"),
    ({"seqlen_q": 2**31}, ValueError, "seqlen_q must lie in"),
    ({"seqlen_q": 10.0}, TypeError, "seqlen_q must be an int >= 1 or None, got float"),
    ({"scores": info((1, 1, MAX_KV_BLOCKS * 128 + 1))}, ValueError,
     r"4097 KV blocks of 128; sparsek_select handles at most 4096 KV blocks \(Sk <= 524288 at block_size 128\)"),
    ({"scores": info((1, 1, MAX_KV_BLOCKS * 64 + 1)), "block_size": 64}, ValueError, r"Sk <= 262144 at block_size 64"),
    ({"scores": info((65536, 1, 100))}, ValueError, "batch 65536 and 1 heads; each must be <= 65535"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        check(**kwargs)


def test_public_function_refuses_host_arrays():
    with pytest.raises(TypeError, match="scores is in host memory"):
        bsk.sparsek_select(np.zeros((1, 2, 100), np.float32), 2)
    with pytest.raises(TypeError, match="scores must be a torch tensor, CuPy array"):
        bsk.sparsek_select([[[1.0]]], 2)


def test_public_function_refuses_torch_cpu_tensors():
    import torch
    with pytest.raises(TypeError, match="scores is in host memory"):
        bsk.sparsek_select(torch.zeros(1, 2, 100), 2)


def test_registry_covers_every_dtype_and_block_size():
    specs = sparsek_select_specs()
    assert [s.name for s in specs] == [f"sparsek_select.{t}.b{b}" for t in ("fp16", "bf16", "fp32") for b in (64, 128)]
    assert set(specs) <= set(all_kernel_specs())
    assert select_spec(check(info(dtype="float16"), block_size=64)) == SparseKSelectSpec("float16", 64)
    with pytest.raises(ValueError, match="dtype must be one of"):
        SparseKSelectSpec("float64")
    with pytest.raises(ValueError, match="block_size must be one of"):
        SparseKSelectSpec("float32", 256)


def test_shared_memory_sizes():
    spec = SparseKSelectSpec("float32")
    # sort pairs padded to a power of two (12 bytes each) + 16 warps x ceil(nKB / 32) bitmap words
    assert spec.smem_bytes_for(1) == 12 + 16 * 4
    assert spec.smem_bytes_for(33) == 64 * 12 + 16 * 2 * 4
    assert spec.smem_bytes_for(1024) == 14336
    assert spec.smem_bytes == spec.smem_bytes_for(4096) == 57344
    assert spec.defines()["SMEM_BYTES"] == 57344


def test_plan_packs_the_kernel_parameters():
    spec = SparseKSelectSpec("bfloat16", 64)
    problem = check(info((2, 3, 1000), "bfloat16", strides=(3000, 1, 3)), topk=5, seqlen_q=4100, block_size=64,
                    causal=False, local_blocks=2, pool="mean")
    plan = SelectPlan(LoadedKernel(spec, 0, 0xABC, None), problem)
    assert PARAMS_BYTES == 80  # sizeof(Params), static_asserted in the kernel
    assert plan.grid == (2, 3, 2) and plan.block == (512, 1, 1)      # 65 query blocks in chunks of 64
    assert plan.smem == spec.smem_bytes_for(16)
    plan._pack_slots(plan._params, plan._slots_offset, 11, 22, 33)   # what a launch writes first
    fields = struct.unpack(PARAMS_FORMAT, bytes(plan._params))
    assert fields == (11, 22, 33, 3000, 1, 3, 4100, 1000, 65, 16, 5, 2, 0, 1)


@pytest.mark.parametrize("spec", sparsek_select_specs(), ids=lambda s: s.name)
def test_variant_passes_audit(spec):
    record = audit_spec(spec)
    assert record.ok, record.as_dict()
    if not gpu_available():  # no driver, no ComputeCache: ptxas's report (and its warnings) must be there
        assert record.ptxas_report, record.as_dict()
    assert record.registers > 0 and record.stack_bytes == 0 and record.spill_stores == record.spill_loads == 0
    assert record.shared_bytes >= spec.smem_bytes and not record.missing


def test_selection_kernel_is_not_asked_for_wgmma(tmp_path, monkeypatch):
    """A selection kernel with no HGMMA passes; one that does not compile fails (the audit can fail)."""
    from bsk_cupy.compile import source

    (tmp_path / "common").mkdir()
    (tmp_path / "sparsek_select.cu").write_text(
        'extern "C" __global__ void sparsek_select(float* x) { x[threadIdx.x] = 1.f; }\n')
    monkeypatch.setattr(source, "kernels_dir", lambda: tmp_path)
    assert audit_spec(sparsek_select_specs()[0]).ok
    (tmp_path / "sparsek_select.cu").write_text('extern "C" __global__ void sparsek_select() { nope(); }\n')
    record = audit_spec(sparsek_select_specs()[1])
    assert not record.ok and "nope" in record.error
