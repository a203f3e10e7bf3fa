"""Choose the kernel variant for a checked problem, and cache launch plans per input buffers."""

from __future__ import annotations

import threading
from collections import OrderedDict

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


def get_plan(problem: AttentionProblem, q: ArrayInfo, k: ArrayInfo, v: ArrayInfo) -> LaunchPlan:
    """The launch plan for this problem on these buffers (tensor maps encode the pointers)."""
    key = (problem, q.ptr, q.strides, k.ptr, k.strides, v.ptr, v.strides)
    with _plans_lock:
        plan = _plans.get(key)
        if plan is not None:
            _plans.move_to_end(key)
            return plan
    plan = LaunchPlan(load_kernel(select_spec(problem), problem.device), problem, q, k, v)
    with _plans_lock:
        _plans[key] = plan
        while len(_plans) > _PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    return plan
