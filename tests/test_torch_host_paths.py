"""Host-side torch paths that need no GPU: the per-call fast path's bookkeeping, CPU-tensor errors,
BlockMask from torch tensors. Skipped where torch is not installed (as in CI)."""

from unittest import mock

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import bsk_cupy as bsk  # noqa: E402
from bsk_cupy import interop  # noqa: E402


class RecordingPlan:
    def __init__(self):
        self.calls = []

    def launch(self, out_ptr, lse_ptr, stream):
        self.calls.append((out_ptr, lse_ptr, stream))


def test_fast_call_allocates_and_launches_on_the_current_stream():
    q = torch.randn(1, 2, 8, 64, dtype=torch.float16)
    plan = RecordingPlan()
    with mock.patch.object(torch._C, "_cuda_getCurrentRawStream", lambda index: 77, create=True):
        out, lse = interop.TorchFastCall(plan, q, (1, 2, 8, 64), (1, 2, 8))(q, q, q)
        only_out = interop.TorchFastCall(plan, q, (1, 2, 8, 64), None)(q, q, q)
    assert out.shape == q.shape and out.dtype == q.dtype and lse.dtype == torch.float32
    assert plan.calls[0] == (out.data_ptr(), lse.data_ptr(), 77)
    assert plan.calls[1] == (only_out.data_ptr(), 0, 77)


def test_fast_call_refuses_inputs_that_need_gradients():
    q = torch.randn(1, 2, 8, 64, dtype=torch.float16, requires_grad=True)
    with pytest.raises(NotImplementedError, match="no backward"):
        interop.TorchFastCall(RecordingPlan(), q, (1, 2, 8, 64), None)(q, q, q)


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
