"""Choose the kernel variant and KV split for a checked problem, and cache launch plans per input buffers."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from functools import lru_cache

from .compile.module import load_kernel
from .launch import LaunchPlan
from .specs import KernelSpec
from .validation import ArrayInfo, AttentionProblem

_PLAN_CACHE_SIZE = 256
_plans: "OrderedDict[tuple, LaunchPlan]" = OrderedDict()
_plans_lock = threading.Lock()


def select_spec(problem: AttentionProblem) -> KernelSpec:
    """The variant for ``problem``.

    One tile shape for now: 128 query rows (two consumer warpgroups of 64) by 128 keys, two stages. It
    fits both head dims in shared memory (84 KB / 166 KB) and in the 240-register consumer budget.
    """
    return KernelSpec(head_dim=problem.head_dim, dtype=problem.dtype, causal=problem.causal)


_MAX_SPLITS = 16
_MIN_TILES_PER_SPLIT = 4


@lru_cache(maxsize=None)
def sm_count(device: int) -> int:
    """Streaming multiprocessors of ``device`` (132 on an H100 SXM)."""
    import cupy

    return int(cupy.cuda.runtime.getDeviceProperties(device)["multiProcessorCount"])


def choose_splits(problem: AttentionProblem, spec: KernelSpec, sms: int, masked: bool) -> int:
    """How many CTAs share one query block's KV tiles (split-KV; 1 = no split).

    One CTA per (query block, head, batch) leaves most of the GPU idle when there are few of them, and each
    walks its KV tiles one after another. Splitting shortens that chain s-fold for a fixed price: fp32
    partials written and re-read through L2 and a combine pass, about as much as 3-4 tiles of work (H100,
    benchmarks/RESULTS.md: B1 H8 S512 D64, 4 tiles: 9.3 us unsplit, 9.6 us in 4 splits; B1 H8 Sq128
    Sk8192, 64 tiles: 78.7 us unsplit, 18.8 us in 16 splits). So: split only while the CTAs fill less than
    half of the SMs, as many ways as fit in one wave (one CTA per SM), keeping at least 4 KV tiles per split,
    at most 16 ways. Block-sparse calls do not split: their tile counts live on the device.
    """
    ctas = math.ceil(problem.seqlen_q / spec.block_m) * problem.heads_q * problem.batch
    tiles = math.ceil(problem.seqlen_k / spec.block_n)
    if masked or 2 * ctas > sms:
        return 1
    splits = min(sms // ctas, tiles // _MIN_TILES_PER_SPLIT, _MAX_SPLITS)
    return splits if splits >= 2 else 1


def get_plan(problem: AttentionProblem, q: ArrayInfo, k: ArrayInfo, v: ArrayInfo, mask=None) -> LaunchPlan:
    """The launch plan for this problem on these buffers (tensor maps encode the pointers); ``mask`` is a
    :class:`~bsk_cupy.mask_operand.MaskOperand` or None."""
    key = (problem, q.ptr, q.strides, k.ptr, k.strides, v.ptr, v.strides, mask)
    with _plans_lock:
        plan = _plans.get(key)
        if plan is not None:
            _plans.move_to_end(key)
            return plan
    spec = select_spec(problem)
    splits = choose_splits(problem, spec, sm_count(problem.device), masked=mask is not None)
    plan = LaunchPlan(load_kernel(spec, problem.device), problem, q, k, v, mask=mask, num_splits=splits)
    with _plans_lock:
        _plans[key] = plan
        while len(_plans) > _PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    return plan
