"""Where a consumer warpgroup's time goes, KV tile by KV tile: the per-tile cycle trace of the main loop.

    python tools/tile_timeline.py B,H,S,D,CAUSAL[:field=value,...] ...

For each shape the dispatcher's plan (its spec retiled by the given KernelSpec fields, e.g. ``block_m=192``)
is rebuilt with the per-tile probe compiled in (``KernelSpec.trace = 2``, kernels_cu/attn/trace.cuh):
thread 0 of every consumer warpgroup reads the SM's cycle counter at eight points of each iteration of the
tile loop (loop top; K_t and V_{t-1} landed; the ping-pong turn taken; S_t and P_{t-1} V_{t-1} issued; S_t
landed; softmax done; P_{t-1} V_{t-1} landed; P_t packed). Printed per shape, over every CTA, consumer and
steady-state tile (the first and last tile of an item left out): the median and 90th percentile cycles of
each step and of the whole iteration, and how far apart in time the consumers issue (their phase). Then
the GPU time per call by CUDA-graph replay, plain and with the probe (the probe's own cost).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch  # before NVRTC/CuPy (environment.import_torch says why)

from bsk_cupy import interop
from bsk_cupy.bench import graph_time_us
from bsk_cupy.compile.module import load_kernel
from bsk_cupy.dispatch import get_plan, persistent_ctas, sm_count
from bsk_cupy.launch import LaunchPlan
from bsk_cupy.validation import check_attention_args

EVENTS = ("top", "loaded", "turn", "issued", "scores", "softmax", "pv landed", "packed")
TILES = 128        # kTileTraceTiles
CONSUMER_SLOTS = 3


def parse(text: str) -> tuple[tuple[int, ...], dict]:
    shape, _, fields = text.partition(":")
    overrides = {}
    for item in filter(None, fields.split(",")):
        key, value = item.split("=")
        overrides[key] = int(value)
    return tuple(int(x) for x in shape.split(",")), overrides


def trace_shape(config: tuple[int, ...], overrides: dict) -> None:
    import cupy

    b, h, s, d, causal = config
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.float16) for _ in range(3))
    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    problem = check_attention_args(*infos, causal=bool(causal), scale=None, layout="bhsd")
    plan = get_plan(problem, *infos)
    spec = plan.kernel.spec.retiled(**overrides) if overrides else plan.kernel.spec
    max_ctas = persistent_ctas(sm_count(problem.device))
    tall_blocks = plan.tall_blocks if spec.block_m == plan.kernel.spec.block_m else None  # 192-row tiles only
    plain = LaunchPlan(load_kernel(spec, problem.device), problem, *infos, mask=None, num_splits=plan.num_splits,
                       max_ctas=max_ctas, dynamic=plan.work_counter is not None, tall_blocks=tall_blocks)
    kernel = load_kernel(dataclasses.replace(spec, trace=2), problem.device)
    probe = LaunchPlan(kernel, problem, *infos, mask=None, num_splits=plan.num_splits, max_ctas=max_ctas,
                       dynamic=plan.work_counter is not None, tall_blocks=tall_blocks)
    buffer = torch.zeros(probe.grid[0] * CONSUMER_SLOTS * TILES * len(EVENTS), dtype=torch.int64, device="cuda")
    slot = kernel.module.get_global_var("bsk_tile_trace")
    value = np.array([buffer.data_ptr()], dtype=np.uint64)
    cupy.cuda.runtime.memcpy(slot, value.ctypes.data, value.nbytes, cupy.cuda.runtime.memcpyHostToDevice)
    out = torch.empty_like(q)
    stream = torch.cuda.current_stream().cuda_stream
    for _ in range(3):
        probe.launch(out.data_ptr(), 0, stream)
    torch.cuda.synchronize()
    cycles = buffer.view(-1, CONSUMER_SLOTS, TILES, len(EVENTS)).cpu().numpy()
    consumers = spec.consumers
    cycles = cycles[:, :consumers]
    written = (cycles > 0).all(axis=-1)                       # tiles this CTA's last item reached
    last = written.sum(axis=-1, keepdims=True)                # tiles 1 .. last were traced
    index = np.arange(TILES)[None, None, :]
    steady = written & (index >= 2) & (index < last)          # a next tile exists; the first is left out
    steady[..., :-1] &= written[..., 1:]
    print(f"== B{b} H{h} S{s} D{d} causal={causal}: {spec.name}, {probe.grid[0]} CTAs, "
          f"{plan.num_splits} split(s), {int(steady.sum())} steady tiles")
    print(f"{'step (cycles)':<24}{'median':>8}{'p90':>8}")
    steps = [(f"{EVENTS[i]} -> {EVENTS[i + 1]}", cycles[..., i + 1] - cycles[..., i]) for i in range(len(EVENTS) - 1)]
    following = np.roll(cycles[..., 0], -1, axis=-1)          # the next iteration's top
    steps.append((f"{EVENTS[-1]} -> next top", following - cycles[..., -1]))
    steps.append(("iteration", following - cycles[..., 0]))
    for name, delta in steps:
        values = delta[steady]
        print(f"{name:<24}{np.median(values):>8.0f}{np.percentile(values, 90):>8.0f}")
    if consumers > 1:   # consumer w issues how long after consumer w - 1 did, same tile
        issued = cycles[..., EVENTS.index("issued")]
        both = steady[:, 1:] & steady[:, :-1]
        phase = (issued[:, 1:] - issued[:, :-1])[both]
        print(f"{'issue phase w-1 -> w':<24}{np.median(phase):>8.0f}{np.percentile(phase, 90):>8.0f}")
    plain_us = graph_time_us(lambda: plain.launch(out.data_ptr(), 0, torch.cuda.current_stream().cuda_stream))
    probe_us = graph_time_us(lambda: probe.launch(out.data_ptr(), 0, torch.cuda.current_stream().cuda_stream))
    print(f"graph replay per call: plain {plain_us:.2f} us, with the probe {probe_us:.2f} us")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for arg in sys.argv[1:]:
        trace_shape(*parse(arg))


if __name__ == "__main__":
    main()
