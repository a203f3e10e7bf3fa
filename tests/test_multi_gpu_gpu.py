"""Inputs on a GPU other than the caller's current one (as with ``device_map="auto"``): every route launches
on the inputs' device, leaves the current device where it was, and gives the bits the same call gives on
the current device; a host mask gets an upload per device. Marked ``gpu``; skipped below two GPUs."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

import torch  # noqa: E402
import cupy  # noqa: E402

import bsk_cupy as bsk  # noqa: E402

if torch.cuda.device_count() < 2:
    pytest.skip("needs two GPUs", allow_module_level=True)


def _pair(shape, seed):
    """The same float16 tensor on cuda:0 and cuda:1."""
    gen = torch.Generator().manual_seed(seed)
    host = torch.randn(shape, generator=gen).to(torch.float16)
    return host.to("cuda:0"), host.to("cuda:1")


def test_torch_inputs_on_the_other_device():
    torch.cuda.set_device(0)
    (q0, q1), (k0, k1), (v0, v1) = (_pair((1, 4, 1000, 64), 11 + i) for i in range(3))
    mask = bsk.BlockMask.from_dense(np.random.default_rng(14).random((1, 4, 8, 8)) < 0.5, (1000, 1000))
    for options in (dict(causal=True), dict(block_mask=mask), dict(window=(200, 0))):
        here = bsk.attention_forward(q0, k0, v0, **options)
        for _ in range(2):  # the slow path, then the fast path; the mask's upload per device
            there = bsk.attention_forward(q1, k1, v1, **options)
            assert there.device == q1.device and torch.cuda.current_device() == 0
            assert torch.equal(there.cpu(), here.cpu())
            assert torch.equal(bsk.attention_forward(q0, k0, v0, **options), here)


def test_cupy_inputs_on_the_other_device():
    (q0, q1), (k0, k1), (v0, v1) = (_pair((1, 4, 700, 128), 21 + i) for i in range(3))
    here = cupy.from_dlpack(bsk.attention_forward(q0, k0, v0, causal=True))
    with cupy.cuda.Device(1):
        q, k, v = (cupy.asarray(x.cpu().numpy()) for x in (q1, k1, v1))
    with cupy.cuda.Device(0):
        for _ in range(2):
            there = bsk.attention_forward(q, k, v, causal=True)
            assert there.device.id == 1 and cupy.cuda.runtime.getDevice() == 0
            assert np.array_equal(cupy.asnumpy(there), cupy.asnumpy(here))


def test_sparsek_on_the_other_device():
    torch.cuda.set_device(0)
    (q0, q1), (k0, k1), (v0, v1) = (_pair((1, 8, 2048, 64), 31 + i) for i in range(3))
    scores0 = torch.randn((1, 8, 2048), generator=torch.Generator().manual_seed(34)).to("cuda:0")
    scores1 = scores0.to("cuda:1")
    here = bsk.sparsek_attention(q0, k0, v0, scores0, 4)
    for _ in range(2):
        there = bsk.sparsek_attention(q1, k1, v1, scores1, 4)
        assert torch.cuda.current_device() == 0
        assert torch.equal(there.cpu(), here.cpu())
    selected = bsk.sparsek_select(scores1, 4)
    assert selected.kv_indices.device.id == 1
    assert torch.equal(bsk.attention_forward(q1, k1, v1, causal=True, block_mask=selected).cpu(), here.cpu())
