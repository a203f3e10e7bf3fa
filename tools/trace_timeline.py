"""Where the time of a latency-bound attention call goes: one launch's timeline from inside the kernel.

    python tools/trace_timeline.py [--spec FIELD=VALUE,...] [B,H,S,D,CAUSAL[,DENSITY | ,tT] ...]
    (default: the four smallest speed targets)

``--spec FIELD=VALUE,...`` rebuilds each dispatched plan on the variant with those KernelSpec fields changed
(e.g. ``q_buffers=2``; the others, stages and bulk store included, as dispatched), plain and probed alike. DENSITY runs the shape under a random 128 x 128 block mask
(each block kept with that probability, the diagonal always; one mask per head, seed fixed), as
``attention_forward(block_mask=...)`` dispatches it; ``tT`` (e.g. ``t4``) instead a mask whose every row lists
exactly T random blocks (tools/item_cost_fit.py), so that every CTA's items are alike and, with two items
per CTA, the last one shows a boundary between items in steady state.

For each shape the dispatcher's plan is rebuilt with the kernel's timeline probe compiled in
(``KernelSpec.trace``, kernels_cu/attn/trace.cuh): each CTA writes %globaltimer at its entry, after
griddepcontrol.wait, when the loader issues Q, when consumer 0 has Q, its first S, consumer 0's and 1's
last P V, when split warpgroups have merged, when the output is stored, at consumer 0's exit, and when it began
waiting for its item's Q (a mark inside an item keeps the CTA's last item; for CTAs that ran several, the
steps of that last item are printed apart); then the CTA's first item alone: when the claiming thread has
decoded it (after the grid wait, where it reads a block mask), when the loader issues its Q and its first K
tile, when consumer 0 has that Q, and its first S. The probe's launch is the third of three back to back on one
stream (programmatic dependent launch on, as in a graph), so its griddepcontrol.wait shows how long the
previous launch held it. Printed per mark: the median and the latest CTA, in microseconds after the
earliest CTA's entry. Then the GPU time per call by CUDA-graph replay of the plain kernel, of the probe
build (the probe's own cost) and of a one-element torch kernel (the floor any launch pays in a graph).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch  # before NVRTC/CuPy (environment.import_torch says why)

from bsk_cupy import BlockMask, interop
from bsk_cupy.bench import TARGET_CONFIGS, graph_time_us
from bsk_cupy.compile.module import load_kernel
from bsk_cupy.dispatch import get_plan, persistent_ctas, sm_count
from bsk_cupy.launch import LaunchPlan
from bsk_cupy.mask_operand import mask_operand
from bsk_cupy.validation import check_attention_args

MARKS = ("entry", "grid wait done", "loader issues Q", "consumer 0 has Q", "first S", "last P V",
         "last P V (cons. 1)", "merged (wgsplit)", "stored", "consumer 0 exit", "waits for Q", "store entered",
         "rows staged", "1st item: claimed", "1st item: Q issued", "1st item: K issued", "1st item: has Q",
         "1st item: first S")
# The steps of a CTA's last work item, per CTA (marks in order; medians over the CTAs that ran more than one
# item, so that the Q wait follows a previous item's store rather than the launch).
ITEM_STEPS = (("waits for Q", "consumer 0 has Q"), ("consumer 0 has Q", "first S"), ("first S", "last P V"),
              ("last P V", "store entered"), ("store entered", "rows staged"), ("rows staged", "stored"),
              ("last P V", "stored"))


def replanned(plan: LaunchPlan, spec, problem, infos, mask=None) -> LaunchPlan:
    """``plan`` (mask, splits, persistent claims, item heights) launched on the kernel of ``spec``, with
    ``mask`` (a MaskOperand) instead of the plan's if given."""
    return LaunchPlan(load_kernel(spec, problem.device), problem, *infos, mask=mask or plan.mask,
                      num_splits=plan.num_splits, max_ctas=persistent_ctas(sm_count(problem.device)),
                      dynamic=plan.work_counter is not None, tall_blocks=plan.tall_blocks)


def probe_plan(plan: LaunchPlan, problem, infos) -> tuple[LaunchPlan, torch.Tensor]:
    """``plan`` rebuilt on the trace build of its kernel, and the trace buffer the kernel writes."""
    import cupy

    probe = replanned(plan, dataclasses.replace(plan.kernel.spec, trace=True), problem, infos)
    kernel = probe.kernel
    buffer = torch.zeros(plan.grid[0] * len(MARKS), dtype=torch.int64, device="cuda")
    slot = kernel.module.get_global_var("bsk_trace")   # the device address of the kernel's pointer
    value = np.array([buffer.data_ptr()], dtype=np.uint64)
    cupy.cuda.runtime.memcpy(slot, value.ctypes.data, value.nbytes, cupy.cuda.runtime.memcpyHostToDevice)
    return probe, buffer


def random_mask_operand(problem, density: float):
    """A random 128 x 128 block mask of ``density`` (diagonal kept, one per head) as the kernel takes it."""
    import cupy

    n = -(-problem.seqlen_q // 128)
    blocks = np.random.default_rng(0).random((problem.batch, problem.heads_q, n, n)) < density
    blocks[..., np.arange(n), np.arange(n)] = True
    mask = BlockMask.from_dense(cupy.asarray(blocks))
    print(f"block mask: density {blocks.mean():.3f}")
    return mask_operand(mask, problem)


def timeline(config, overrides: dict) -> None:
    b, h, s, d, causal = (int(x) for x in config[:5])
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.float16) for _ in range(3))
    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    problem = check_attention_args(*infos, causal=bool(causal), scale=None, layout="bhsd")
    if len(config) <= 5:
        mask = None
    elif isinstance(config[5], str):
        from item_cost_fit import equal_rows_mask

        mask = mask_operand(equal_rows_mask(h, -(-s // 128), int(config[5][1:]), seed=0), problem)
    else:
        mask = random_mask_operand(problem, config[5])
    plan = get_plan(problem, *infos, mask=mask)
    if overrides:
        plan = replanned(plan, dataclasses.replace(plan.kernel.spec, **overrides), problem, infos)
    probe, buffer = probe_plan(plan, problem, infos)
    out = torch.empty_like(q)
    stream = torch.cuda.current_stream().cuda_stream
    for _ in range(3):
        probe.launch(out.data_ptr(), 0, stream)
    torch.cuda.synchronize()
    marks = buffer.view(-1, len(MARKS)).cpu().numpy().astype(np.int64)
    t0 = marks[:, 0].min()
    print(f"== B{b} H{h} S{s} D{d} causal={int(causal)}: {plan.kernel.spec.name}, {plan.grid[0]} CTAs, "
          f"{plan.num_splits} split(s)")
    print(f"{'mark':<20}{'median us':>10}{'latest us':>10}")
    for i, name in enumerate(MARKS):
        written = marks[:, i][marks[:, i] > 0]   # marks a variant does not reach stay 0
        if written.size:
            rel = (written - t0) / 1000.0
            print(f"{name:<20}{np.median(rel):>10.2f}{rel.max():>10.2f}")
    item_breakdown(marks, plan, problem)
    plain_us = graph_time_us(lambda: plan.launch(out.data_ptr(), 0, torch.cuda.current_stream().cuda_stream))
    probe_us = graph_time_us(lambda: probe.launch(out.data_ptr(), 0, torch.cuda.current_stream().cuda_stream))
    print(f"graph replay per call: plain {plain_us:.2f} us, with the probe {probe_us:.2f} us")


def item_breakdown(marks: np.ndarray, plan: LaunchPlan, problem) -> None:
    """The last item of every CTA that ran several, step by step (medians, microseconds): where a persistent
    CTA spends the time between one item's store and the next's, and the item's tile loop."""
    column = {name: i for i, name in enumerate(MARKS)}
    wait, grid_wait = marks[:, column["waits for Q"]], marks[:, column["grid wait done"]]
    repeat = (wait > 0) & (wait > grid_wait + 1000)  # its last Q wait began >= 1 us after its grid wait
    if not repeat.any():
        return
    spec = plan.kernel.spec
    tiles = -(-problem.seqlen_k // spec.block_n) // plan.num_splits
    what = "tiles vary under the block mask" if plan.mask is not None else \
        f"{tiles} KV tiles each without a causal mask or window"
    print(f"last item of the {int(repeat.sum())} CTAs that ran several ({what}): medians, us")
    for start, stop in ITEM_STEPS:
        begin, end = marks[repeat, column[start]], marks[repeat, column[stop]]
        if (begin > 0).all() and (end > 0).all():  # marks a variant does not reach stay 0
            print(f"  {start + ' -> ' + stop:<36}{np.median(end - begin) / 1000.0:>8.2f}")


def main() -> None:
    args, overrides = sys.argv[1:], {}
    if args[:1] == ["--spec"]:
        overrides = {k: int(v) for k, v in (item.split("=") for item in args[1].split(","))}
        args = args[2:]
    configs = [tuple(x if x.startswith("t") else float(x) if "." in x else int(x) for x in arg.split(","))
               for arg in args]
    if not configs:
        configs = [(b, h, s, d, int(c)) for b, h, s, d, c in TARGET_CONFIGS if b * h * s <= 64 * 1024]
    tiny = torch.zeros(1, device="cuda")
    print(f"one-element torch kernel, graph replay per call: {graph_time_us(lambda: tiny.add_(1)):.2f} us")
    for config in configs:
        timeline(config, overrides)


if __name__ == "__main__":
    main()
