"""Do our kernels and cuDNN run at the same SM clock under sustained load? Time per call, SM clock and power.

    PYTHONPATH=. python tools/clock_power_probe.py [SECONDS [B,H,S,D,CAUSAL ...]]

Nsight Compute times one cold launch at whatever clock the card holds then (B4 H32 S4096 D128: 1742 µs,
eighth session), while graph replay, which the targets use, runs calls back to back for about a second
(2013 µs in the same session's validate): the card lowers its clock under sustained load. If our kernels
draw more power per FLOP than cuDNN's they run at a lower clock there, and part of the gap to cuDNN is
clock, not cycles. For each shape and implementation this replays a captured graph of calls for SECONDS
(default 3) while `nvidia-smi` samples SM clock, power and the active clock-event reasons every 50 ms, and
prints, over the second half of the window (steady state): GPU µs per call (median of the replays), median
SM clock and power (bsk_cupy.clocks), the clock-event reasons seen, and the call's cost in thousands of SM
cycles (time x clock), the clock-free comparison. One line per row. Shapes given after SECONDS (e.g.
``1,16,4096,128,0``) replace the default list.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

import bsk_cupy as bsk  # noqa: E402
from bsk_cupy.bench import capture_graph  # noqa: E402
from bsk_cupy.clocks import ClockReading, ClockSampler, gpu_id  # noqa: E402

SHAPES = [(4, 32, 4096, 128, False), (4, 32, 4096, 128, True), (2, 16, 16384, 64, False), (1, 32, 2048, 64, False)]


def sustained(fn, seconds: float, calls: int) -> tuple[float, ClockReading | None]:
    """Replay a graph of ``calls`` calls of ``fn`` back to back for ``seconds``: the median µs per call over
    the second half, and the clock reading (bsk_cupy.clocks: medians over the second half of the samples)."""
    graph = capture_graph(fn, calls)
    torch.cuda.synchronize()
    samples = []
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with ClockSampler(gpu_id(torch.cuda.current_device())) as clock:
        begin = time.time()
        while time.time() < begin + seconds:
            start.record()
            graph.replay()
            stop.record()
            stop.synchronize()
            if time.time() >= begin + seconds / 2:
                samples.append(start.elapsed_time(stop) * 1000.0 / calls)
    return statistics.median(samples), clock.reading


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    shapes = [(*(int(x) for x in arg.split(",")[:4]), arg.split(",")[4] == "1") for arg in sys.argv[2:]] or SHAPES
    print(f"{'shape':28s} {'impl':6s} {'us/call':>9s} {'TFLOPS':>7s} {'SM MHz':>7s} {'watts':>6s} "
          f"{'kcycles':>8s}  reasons")
    for b, h, s, d, causal in shapes:
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.float16) for _ in range(3))
        flops = 4 * b * h * s * s * d / (2 if causal else 1)
        calls = max(1, int(20e-3 / (flops / 500e12)))  # ~20 ms of work per replay

        def ours(q=q, k=k, v=v, causal=causal):
            return bsk.attention_forward(q, k, v, causal=causal)

        def cudnn(q=q, k=k, v=v, causal=causal):
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        for name, fn in (("ours", ours), ("cuDNN", cudnn), ("ours", ours)):
            time.sleep(1.0)  # let the clock recover between rows
            us, clock = sustained(fn, seconds, calls)
            shape = f"B{b} H{h} S{s} D{d}{' causal' if causal else ''}"
            if clock is None:
                print(f"{shape:28s} {name:6s} {us:9.1f} {flops / us / 1e6:7.1f}  (no clock reading)")
                continue
            print(f"{shape:28s} {name:6s} {us:9.1f} {flops / us / 1e6:7.1f} {clock.sm_mhz:7.0f} {clock.watts:6.0f} "
                  f"{us * clock.sm_mhz / 1e3:8.1f}  {clock.reasons or '-'}")


if __name__ == "__main__":
    main()
