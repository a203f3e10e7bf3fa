"""Host side of the SparseK selection launch: variant choice, the packed ``Params`` struct, plans per problem.

``PARAMS_FORMAT`` mirrors ``struct Params`` in ``kernels_cu/sparsek_select.cu`` byte for byte (the kernel
static_asserts its 80 bytes). A :class:`SelectPlan` holds everything that depends only on the problem
(shapes, strides, options); a call writes the three pointers into the packed block and launches once on the
caller's stream through ``cuLaunchKernel`` (the attention kernel's launch path, ``bsk_cupy.launch``).
"""

from __future__ import annotations

import math
import struct
import threading
from collections import OrderedDict

from .compile.module import LoadedKernel, load_kernel
from .launch import PackedLaunch
from .sparsek_validation import SparseKProblem
from .specs import SparseKSelectSpec

# scores, kv_num_blocks, kv_indices pointers; scores strides (b, h, s); seqlen_q, seqlen_k, n_q_blocks,
# n_kv_blocks, topk, local_blocks, causal, mean_pool
PARAMS_FORMAT = "<QQQqqqiiiiiiii"
PARAMS_BYTES = struct.calcsize(PARAMS_FORMAT)
_PLAN_CACHE_SIZE = 256

_plans: OrderedDict[SparseKProblem, SelectPlan] = OrderedDict()
_plans_lock = threading.Lock()


def select_spec(problem: SparseKProblem) -> SparseKSelectSpec:
    """The variant for ``problem``: one per scores dtype and block size (the rest are launch parameters)."""
    return SparseKSelectSpec(dtype=problem.dtype, block_size=problem.block_size)


class SelectPlan(PackedLaunch):
    """Grid, block, shared memory and packed parameters of one problem; pointers are written per call."""

    def __init__(self, kernel: LoadedKernel, problem: SparseKProblem):
        spec = kernel.spec
        grid = (math.ceil(problem.n_q_blocks / spec.query_blocks_per_cta), problem.heads, problem.batch)
        super().__init__(kernel, grid, spec.smem_bytes_for(problem.n_kv_blocks), PARAMS_BYTES, slots_offset=0,
                         slots=3)  # scores, kv_num_blocks, kv_indices
        struct.pack_into(PARAMS_FORMAT, self._params, 0, 0, 0, 0, *problem.strides, problem.seqlen_q,
                         problem.seqlen_k, problem.n_q_blocks, problem.n_kv_blocks, problem.topk,
                         problem.local_blocks, int(problem.causal), int(problem.pool == "mean"))

    def launch(self, scores_ptr: int, num_blocks_ptr: int, indices_ptr: int, stream: int) -> None:
        """Launch on ``stream``: read scores at ``scores_ptr``, write the two int32 outputs."""
        self._launch(stream, scores_ptr, num_blocks_ptr, indices_ptr)


def get_select_plan(problem: SparseKProblem) -> SelectPlan:
    """The launch plan for ``problem`` (compiles and loads the variant on first use)."""
    with _plans_lock:
        plan = _plans.get(problem)
        if plan is not None:
            _plans.move_to_end(problem)
            return plan
    plan = SelectPlan(load_kernel(select_spec(problem), problem.device), problem)
    with _plans_lock:
        _plans[problem] = plan
        while len(_plans) > _PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    return plan
