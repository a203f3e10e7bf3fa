"""Timing helpers shared by ``bsk-cupy bench``, ``bsk-cupy validate`` and ``benchmarks/perf.py``.

GPU time per call comes from CUDA-graph replay (``calls`` launches captured once, replayed, timed with
events); eager time is Python wall time of back-to-back calls, synchronised at the end. Both are medians.
Needs PyTorch (the same-run SDPA baselines come from it).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .clocks import ClockReading, ClockSampler, gpu_id


def capture_graph(fn: Callable[[], object], calls: int):
    """A ``torch.cuda.CUDAGraph`` of ``calls`` back-to-back calls of ``fn``, after three warm-up calls on a
    side stream (compilation, plan caches and allocations stay out of the capture)."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    return graph


def graph_time_us(fn: Callable[[], object], calls: int = 20, replays: int = 25,
                  clock: ClockSampler | None = None) -> float:
    """Median GPU microseconds per call of ``fn`` replayed from a CUDA graph; ``clock`` (optional) samples
    the SM clock and power during the replays alone (not the warm-up and capture)."""
    import torch

    graph = capture_graph(fn, calls)
    graph.replay()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    with clock if clock is not None else contextlib.nullcontext():
        for _ in range(replays):
            start.record()
            graph.replay()
            stop.record()
            stop.synchronize()
            samples.append(start.elapsed_time(stop) * 1000.0 / calls)
    return statistics.median(samples)


def eager_time_us(fn: Callable[[], object], calls: int = 50, repeats: int = 15, warmup_s: float = 0.3,
                  min_seconds: float = 0.5) -> float:
    """Median wall microseconds per call of back-to-back eager calls (host overhead included).

    Calls run for ``warmup_s`` seconds first, so that one-time costs (plan creation, allocator growth) stay
    out of the samples. Samples of ``calls`` calls are taken until there are ``repeats`` of them and they
    span ``min_seconds``: on the virtual machines we measure on, the host stalls now and then for tens of
    milliseconds (one of eight rounds of the headline read 37 µs against 11.3 in the others, twelfth
    session), and 15 samples of a 10 µs call span only 8 ms, so one stall could become the median.
    """
    import torch

    deadline = time.perf_counter() + warmup_s
    while time.perf_counter() < deadline:
        fn()
    torch.cuda.synchronize()
    samples = []
    start = time.perf_counter()
    while len(samples) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - t0) * 1e6 / calls)
    return statistics.median(samples)


@dataclass
class BenchRow:
    batch: int
    heads: int
    seqlen: int
    head_dim: int
    causal: bool
    dtype: str
    ours_us: float
    ours_eager_us: float
    cudnn_us: float | None
    flash_us: float | None
    ours_eager_out_us: float | None = None   # eager with out= (no allocation); the eager target uses the plain call
    # SM clock (MHz) and board power (W) while the graph replays ran (bsk_cupy.clocks); None where the row
    # was too short to sample or nvidia-smi is missing
    ours_clock: ClockReading | None = None
    cudnn_clock: ClockReading | None = None

    @property
    def flops(self) -> float:
        """4 * B * H * S * S * D, halved for causal."""
        total = 4.0 * self.batch * self.heads * self.seqlen * self.seqlen * self.head_dim
        return total / 2 if self.causal else total

    def tflops(self, us: float | None) -> float | None:
        return None if us is None else self.flops / (us * 1e-6) / 1e12

    def as_dict(self) -> dict:
        row = asdict(self)
        row["ours_tflops"] = self.tflops(self.ours_us)
        row["cudnn_tflops"] = self.tflops(self.cudnn_us)
        row["flash_tflops"] = self.tflops(self.flash_us)
        return row


def sdpa_time_us(q, k, v, causal: bool, backend, clock: ClockSampler | None = None) -> float | None:
    """Median GPU µs per call of SDPA on ``backend`` (graph replay, as :func:`graph_time_us`); None where the
    backend does not take the shape or dtype."""
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel

    def call():
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    try:
        call()
        return graph_time_us(call, clock=clock)
    except RuntimeError:
        return None  # the backend does not take this shape / dtype on this build


def bench_config(batch: int, heads: int, seqlen: int, head_dim: int, causal: bool,
                 dtype: str = "float16") -> BenchRow:
    """Time ours and SDPA's cuDNN and flash backends on one square self-attention shape."""
    import torch
    from torch.nn.attention import SDPBackend

    from .api import attention_forward

    torch_dtype = getattr(torch, dtype)
    q, k, v = (torch.randn(batch, heads, seqlen, head_dim, device="cuda", dtype=torch_dtype) for _ in range(3))

    def ours():
        return attention_forward(q, k, v, causal=causal)

    given = torch.empty_like(q)

    def ours_into():
        return attention_forward(q, k, v, causal=causal, out=given)

    gpu = gpu_id(q.device.index)
    ours_clock, cudnn_clock = ClockSampler(gpu), ClockSampler(gpu)
    ours_us = graph_time_us(ours, clock=ours_clock)
    cudnn_us = sdpa_time_us(q, k, v, causal, SDPBackend.CUDNN_ATTENTION, clock=cudnn_clock)
    return BenchRow(batch, heads, seqlen, head_dim, causal, dtype,
                    ours_us=ours_us, ours_eager_us=eager_time_us(ours), cudnn_us=cudnn_us,
                    flash_us=sdpa_time_us(q, k, v, causal, SDPBackend.FLASH_ATTENTION),
                    ours_eager_out_us=eager_time_us(ours_into),
                    ours_clock=ours_clock.reading, cudnn_clock=cudnn_clock.reading if cudnn_us else None)


def load_targets() -> dict:
    """The speed targets (``bsk_cupy/targets.json``): GPU-time rows and eager-time rows."""
    return json.loads((Path(__file__).with_name("targets.json")).read_text())


TARGET_CONFIGS = [tuple(row["config"]) for row in load_targets()["gpu"]]


@dataclass
class Verdict:
    config: tuple
    kind: str        # "gpu" or "eager"
    metric: str      # "us" (lower is better) or "tflops" (higher is better)
    target: float
    measured: float
    met: bool
    gap: str


def analyze(rows: list[BenchRow]) -> list[Verdict]:
    """Mark every target MET or MISSED against measured rows (same config)."""
    by_config = {(r.batch, r.heads, r.seqlen, r.head_dim, r.causal): r for r in rows}
    verdicts = []
    targets = load_targets()
    for kind in ("gpu", "eager"):
        for t in targets[kind]:
            row = by_config.get(tuple(t["config"]))
            if row is None:
                continue
            us = row.ours_us if kind == "gpu" else row.ours_eager_us
            if t["metric"] == "us":
                measured, met = us, us <= t["target"]
                gap = f"{us / t['target']:.2f}x the target time"
            else:
                measured = row.tflops(row.ours_us)
                met = measured >= t["target"]
                gap = f"{measured / t['target'] * 100:.0f}% of the target rate"
            verdicts.append(Verdict(tuple(t["config"]), kind, t["metric"], t["target"], measured, met, gap))
    return verdicts


def format_verdicts(verdicts: list[Verdict]) -> str:
    lines = ["| config (B, H, S, D, causal) | time | metric | target | measured | verdict | gap |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for v in verdicts:
        lines.append(f"| {v.config} | {v.kind} | {v.metric} | {v.target:g} | {v.measured:.1f} | "
                     f"{'MET' if v.met else 'MISSED'} | {v.gap} |")
    return "\n".join(lines)


def format_clock_table(rows: list[BenchRow]) -> str:
    """Markdown table of the SM clock and power under the rows long enough to sample, and each call's cost
    in SM cycles (GPU time x clock), which the power-capped clock does not enter."""
    def clock(reading: ClockReading | None, us: float | None) -> str:
        if reading is None or us is None:
            return "— | — | —"
        return f"{reading.sm_mhz:.0f} | {reading.watts:.0f} | {us * reading.sm_mhz / 1e3:.1f}"

    lines = ["| B | H | S | D | causal | ours MHz | ours W | ours kcycles | cuDNN MHz | cuDNN W | cuDNN kcycles "
             "| clock-event reasons (ours / cuDNN) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r.ours_clock is None and r.cudnn_clock is None:
            continue
        reasons = " / ".join((c.reasons or "none") if c is not None else "—" for c in (r.ours_clock, r.cudnn_clock))
        lines.append(f"| {r.batch} | {r.heads} | {r.seqlen} | {r.head_dim} | {r.causal} | "
                     f"{clock(r.ours_clock, r.ours_us)} | {clock(r.cudnn_clock, r.cudnn_us)} | {reasons} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def format_table(rows: list[BenchRow]) -> str:
    """Markdown table of bench rows."""
    def fmt(x, spec=".1f"):
        return "—" if x is None else format(x, spec)

    lines = ["| B | H | S | D | causal | ours µs (graph) | ours µs (eager) | eager, out= | cuDNN µs | flash µs "
             "| ours TFLOPS | cuDNN TFLOPS | ours / cuDNN time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = None if r.cudnn_us is None else r.ours_us / r.cudnn_us
        lines.append(f"| {r.batch} | {r.heads} | {r.seqlen} | {r.head_dim} | {r.causal} | {fmt(r.ours_us)} | "
                     f"{fmt(r.ours_eager_us)} | {fmt(r.ours_eager_out_us)} | {fmt(r.cudnn_us)} | {fmt(r.flash_us)} | "
                     f"{fmt(r.tflops(r.ours_us))} | {fmt(r.tflops(r.cudnn_us))} | {fmt(ratio, '.2f')} |")
    return "\n".join(lines)
