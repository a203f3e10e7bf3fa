"""Host-side torch paths that need no GPU: the per-call fast path's bookkeeping, CPU-tensor errors,
BlockMask from torch tensors (CI runs them on a CPU build of torch)."""

from unittest import mock

import numpy as np
import pytest
import torch
from recording_plan import RecordingPlan

import bsk_cupy as bsk
from bsk_cupy import interop
from bsk_cupy.validation import AttentionProblem


def fast_call(plan, q, k, v, lse_shape=None):
    """A TorchFastCall over CPU tensors (the problem's device None, as their ArrayInfo's)."""
    infos = tuple(interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v)))
    b, h, s, d = q.shape
    problem = AttentionProblem(batch=b, heads_q=h, heads_kv=k.shape[1], seqlen_q=s, seqlen_k=k.shape[2],
                               head_dim=d, dtype="float16", causal=False, scale=0.125, layout="bhsd", device=None)
    return interop.TorchFastCall(plan, q, problem, infos, lse_shape)


def test_fast_call_allocates_and_launches_on_the_current_stream():
    q = torch.randn(1, 2, 8, 64, dtype=torch.float16)
    plan = RecordingPlan()
    with mock.patch.object(torch._C, "_cuda_getCurrentRawStream", lambda index: 77, create=True):
        out, lse = fast_call(plan, q, q, q, (1, 2, 8))(q, q, q)
        only_out = fast_call(plan, q, q, q)(q, q, q)
    assert out.shape == q.shape and out.dtype == q.dtype and lse.dtype == torch.float32
    assert plan.calls[0] == (out.data_ptr(), lse.data_ptr(), 77)
    assert plan.calls[1] == (only_out.data_ptr(), 0, 77)


def test_fast_call_writes_into_a_given_out():
    q = torch.randn(1, 2, 8, 64, dtype=torch.float16)
    given = torch.empty_like(q)
    plan = RecordingPlan()
    with mock.patch.object(torch._C, "_cuda_getCurrentRawStream", lambda index: 5, create=True):
        assert fast_call(plan, q, q, q)(q, q, q, given) is given
    assert plan.calls == [(given.data_ptr(), 0, 5)]


@pytest.mark.parametrize("make,exc,match", [
    (lambda q: torch.empty(1, 2, 8, 32, dtype=torch.float16), ValueError, "out must have q's shape"),
    (lambda q: torch.empty_like(q, dtype=torch.bfloat16), TypeError, "out must have q's dtype float16"),
    (lambda q: torch.empty(1, 2, 64, 8, dtype=torch.float16).transpose(2, 3), ValueError, "must be contiguous"),
    (lambda q: q, ValueError, "out overlaps q"),
    (lambda q: torch.empty_like(q, requires_grad=True), ValueError, "must not require grad"),
    (lambda q: q.numpy().copy(), TypeError, "out must be a torch array like q"),
])
def test_fast_call_refuses_a_bad_out(make, exc, match):
    q = torch.randn(1, 2, 8, 64, dtype=torch.float16)
    plan = RecordingPlan()
    with pytest.raises(exc, match=match):
        fast_call(plan, q, q.clone(), q.clone())(q, q, q, make(q))
    assert plan.calls == []


def test_fast_call_refuses_an_out_that_partly_overlaps_an_input():
    shape, n = (1, 2, 8, 64), 2 * 8 * 64
    buffer = torch.randn(2 * n, dtype=torch.float16)
    k = buffer[:n].view(shape)
    out = buffer[n // 2:n // 2 + n].view(shape)       # the second half of k and beyond
    q = torch.randn(shape, dtype=torch.float16)
    with pytest.raises(ValueError, match="out overlaps k"):
        fast_call(RecordingPlan(), q, k, k)(q, k, k, out)
    plan = RecordingPlan()
    with mock.patch.object(torch._C, "_cuda_getCurrentRawStream", lambda index: 5, create=True):
        fast_call(plan, q, k, k)(q, k, k, buffer[n:].view(shape))   # adjacent, not overlapping
    assert plan.calls == [(buffer[n:].data_ptr(), 0, 5)]


def test_fast_call_refuses_inputs_that_need_gradients():
    q = torch.randn(1, 2, 8, 64, dtype=torch.float16, requires_grad=True)
    with pytest.raises(NotImplementedError, match="no backward"):
        fast_call(RecordingPlan(), q.detach(), q.detach(), q.detach())(q, q, q)


def test_call_key_changes_with_any_geometry():
    q = torch.randn(1, 2, 8, 64, dtype=torch.float16)
    key = interop.torch_call_key(q, q, q)
    assert key == interop.torch_call_key(q, q, q)
    assert key != interop.torch_call_key(q, q, q.transpose(1, 2))
    assert key != interop.torch_call_key(q, q, q.clone())
    assert interop.torch_call_key(q, q, q.numpy()) is None


def test_cpu_tensors_are_rejected():
    q = torch.randn(1, 2, 8, 64, dtype=torch.float16)
    with pytest.raises(TypeError, match="q is in host memory"):
        bsk.attention_forward(q, q, q)


def test_block_mask_from_torch_tensors():
    dense = torch.rand(1, 2, 3, 4) < 0.5
    mask = bsk.BlockMask.from_dense(dense)
    np.testing.assert_array_equal(mask.to_dense(), dense.numpy())


def test_fast_path_entries_of_a_block_mask_go_with_it():
    """Fast-path entries refer to their block mask weakly, with one finalizer per mask however many entries
    it has: once the mask goes, so do they (a loop making a mask per call would otherwise keep 256)."""
    import gc

    from bsk_cupy import api

    mask = bsk.BlockMask.from_dense(np.ones((1, 1, 2, 2), bool))
    keys = [("geometry", i, api._Identity(mask), None) for i in range(3)]
    with mock.patch.dict(api._fast_calls, {key: object() for key in keys}):
        api._watch(mask)
        first = api._watched[id(mask)]
        api._watch(mask)
        api._watch(mask)
        assert api._watched[id(mask)] is first and first.alive
        assert ("geometry", 0, api._Identity(mask), None) in api._fast_calls   # looked up by identity
        ident = id(mask)
        del mask
        gc.collect()
        assert not any(getattr(key[-2], "ident", None) == ident for key in api._fast_calls)
        assert ident not in api._watched


def test_index_outputs_are_laid_out_in_one_aligned_block():
    """sparsek_select's two outputs come from one allocation, each 256-byte aligned."""
    assert interop._packed_offsets([(1, 2, 3), (1, 2, 3, 5)]) == ([0, 256], 512)
    assert interop._packed_offsets([(2, 64, 64), (1,)]) == ([0, 32768], 33024)


def test_fast_path_keys_tell_option_types_apart():
    """True and 1 (or 1.0 and 1) hash alike, so the keys carry the types; options that do not hash, arrays
    other than torch tensors and CuPy arrays, and objects other than block masks get no key (their calls are
    checked)."""
    from bsk_cupy import api, sparsek

    scores = torch.zeros(1, 2, 300)
    assert sparsek._call_key(scores, 1, True) == sparsek._call_key(scores.clone(), 1, True)
    assert sparsek._call_key(scores, 1, True) != sparsek._call_key(scores, True, True)
    assert sparsek._call_key(scores, 1.0, True) != sparsek._call_key(scores, 1, True)
    assert sparsek._call_key(scores.transpose(1, 2), 1) != sparsek._call_key(scores, 1)
    assert sparsek._call_key(scores, [1]) is None and sparsek._call_key(scores.numpy(), 1) is None
    assert sparsek._call_key(scores, 1)[0] == "torch"
    assert interop.call_key(scores, scores, scores) == interop.torch_call_key(scores, scores, scores)
    assert interop.cupy_call_key(scores, scores, scores) is None and interop.call_key(1, 2, 3) is None
    host = bsk.BlockMask.from_dense(np.ones((1, 1, 2, 2), bool))
    assert api._mask_key(host, False) == api._Identity(host)
    assert api._mask_key("mask", False) is None and api._mask_key(None, False) is None


def test_a_launch_under_graph_capture_keeps_its_plan():
    """Every plan launch goes through PackedLaunch._launch: one made while the stream captures a CUDA graph
    keeps a plan that owns device memory (which the graph uses) alive for good; one made outside a capture,
    or by a plan that owns none, keeps nothing."""
    from bsk_cupy import launch

    plan = launch.PackedLaunch.__new__(launch.PackedLaunch)   # no kernel: the launch itself is recorded
    launched = []
    plan._launch_once = lambda stream, pointers: launched.append((stream, pointers)) or 0
    plan.owns_device_memory = True
    with mock.patch.object(launch, "is_capturing", lambda stream: False):
        plan._launch(5, 1, 2)
    assert id(plan) not in launch._kept_for_graphs
    with mock.patch.object(launch, "is_capturing", lambda stream: stream == 5):
        plan._launch(5, 1, 2)
    try:
        assert launch._kept_for_graphs[id(plan)] is plan and launched == [(5, (1, 2))] * 2
    finally:
        launch._kept_for_graphs.pop(id(plan), None)
    plan.owns_device_memory = False   # its launches need nothing kept: nothing kept
    with mock.patch.object(launch, "is_capturing", lambda stream: True):
        plan._launch(5, 1, 2)
    assert id(plan) not in launch._kept_for_graphs and len(launched) == 3
    assert launch.is_capturing(0) is False   # no capture here (and no GPU on CI: an error reads as none)
