"""Where the eager (host) time of one torch call goes: each step of attention_forward timed alone.

Run on the H100: ``PYTHONPATH=. python tools/host_overhead.py [PROFILE.txt]``. Prints microseconds per
step (median of repeats of 200 calls, synchronised between repeats so that launches never wait for a full
queue: host time only) for the headline shape B1 H8 S512 D64; then ``attention_forward`` back to back under
the conditions that differ between this loop and ``bsk_cupy.bench`` (keyword arguments, a CUDA graph
captured first, the cyclic garbage collector) and with ``out=`` (no allocation), with the GPU time of the
same calls from CUDA events; with a path, a cProfile of 5000 calls sorted by own time is written there.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import statistics
import sys
import time

import torch

import bsk_cupy as bsk
from bsk_cupy import interop
from bsk_cupy.bench import eager_time_us, graph_time_us
from bsk_cupy.dispatch import get_plan
from bsk_cupy.launch import LaunchPlan
from bsk_cupy.validation import check_attention_args


def per_call_us(fn, calls: int = 200, repeats: int = 15) -> float:
    samples = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t0) * 1e6 / calls)
    return statistics.median(samples)


def main() -> None:
    q, k, v = (torch.randn(1, 8, 512, 64, device="cuda", dtype=torch.float16) for _ in range(3))
    bsk.attention_forward(q, k, v)
    torch.cuda.synchronize()
    ops = [interop.describe(n, x) for n, x in (("q", q), ("k", k), ("v", v))]
    infos = [op.info for op in ops]
    problem = check_attention_args(*infos, causal=False, scale=None, layout="bhsd")
    plan = get_plan(problem, *infos)
    out = torch.empty_like(q)
    plain = LaunchPlan(plan.kernel, problem, *infos, num_splits=plan.num_splits, programmatic=False,
                       tall_blocks=plan.tall_blocks)
    steps = {
        "torch_call_key": lambda: interop.torch_call_key(q, k, v),
        "slow: describe x3": lambda: [interop.describe(n, x) for n, x in (("q", q), ("k", k), ("v", v))],
        "slow: check_attention_args": lambda: check_attention_args(*infos, causal=False, scale=None, layout="bhsd"),
        "slow: get_plan (hit)": lambda: get_plan(problem, *infos),
        "torch.empty out": lambda: torch.empty(problem.out_shape, dtype=q.dtype, device=q.device),
        "raw stream": lambda: torch._C._cuda_getCurrentRawStream(0),
        "launch (cuLaunchKernelEx, PDL)": lambda: plan.launch(out.data_ptr(), 0, torch._C._cuda_getCurrentRawStream(0)),
        "launch (cuLaunchKernel)": lambda: plain.launch(out.data_ptr(), 0, torch._C._cuda_getCurrentRawStream(0)),
        "is_current_stream_capturing": torch.cuda.is_current_stream_capturing,
        "attention_forward (fast path)": lambda: bsk.attention_forward(q, k, v),
    }
    for name, fn in steps.items():
        us = per_call_us(fn)
        torch.cuda.synchronize()
        print(f"{name:32s} {us:7.2f} us")

    def call_with(launch_plan):
        def call():
            result = torch.empty(problem.out_shape, dtype=q.dtype, device=q.device)
            launch_plan.launch(result.data_ptr(), 0, torch._C._cuda_getCurrentRawStream(0))
            return result
        return call

    print("back to back (bsk_cupy.bench: eager = wall per call of 50, graph = GPU per call of 20 replayed)")
    for name, launch_plan in (("PDL", plan), ("no PDL", plain)):
        fn = call_with(launch_plan)
        print(f"{name:32s} eager {eager_time_us(fn):7.2f} us   graph {graph_time_us(fn):7.2f} us")
    conditions(q, k, v)
    if len(sys.argv) > 1:
        write_profile(lambda: bsk.attention_forward(q, k, v, causal=False), sys.argv[1])


def gpu_us_per_call(fn, calls: int = 50, repeats: int = 15) -> float:
    """GPU time per call of ``calls`` eager calls, between CUDA events around them (gaps included)."""
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start.record()
        for _ in range(calls):
            fn()
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop) * 1000.0 / calls)
    return statistics.median(samples)


def conditions(q, k, v) -> None:
    def plain():
        return bsk.attention_forward(q, k, v)

    def keyword():
        return bsk.attention_forward(q, k, v, causal=False)

    given = torch.empty_like(q)

    def into_out():
        return bsk.attention_forward(q, k, v, out=given)

    print("attention_forward back to back: host-only / eager (bench) / GPU between events, us per call")

    def row(name, fn):
        print(f"{name:32s} {per_call_us(fn):7.2f} {eager_time_us(fn):7.2f} {gpu_us_per_call(fn):7.2f}")

    row("positional", plain)
    row("causal=False keyword", keyword)
    graph_time_us(keyword)
    row("after a graph capture", keyword)
    gc.disable()
    row("gc disabled", keyword)
    gc.enable()
    row("out= a preallocated tensor", into_out)


def write_profile(fn, path: str, calls: int = 5000, wait=None) -> None:
    """A cProfile of ``calls`` calls of ``fn``, sorted by own time, written to ``path``; ``wait`` (given the
    last call's result) waits for the GPU work, torch's device synchronisation by default."""
    if wait is None:
        def wait(_):
            torch.cuda.synchronize()
    wait(fn())
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        out = fn()
    wait(out)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    with open(path, "w") as f:
        f.write(text.getvalue())

if __name__ == "__main__":
    main()
