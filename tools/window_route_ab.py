"""Sliding windows without a block mask: the dense kernels' KV ranges against the route through the
window's block mask (bsk_cupy.window_route).

    PYTHONPATH=. python tools/window_route_ab.py [--rounds N]

For each shape (fp16): the plan the dispatcher builds for the window alone (``dispatch.get_plan`` without
the route: each query block over the KV range its window touches) against ``attention_forward(causal=...,
window=...)``, which takes the route where ``window_route.routed`` says so (the table's ``routed``
column); where it does not, both run the same plan. GPU time per call by CUDA-graph replay, the two
interleaved round by round (order reversed every other round); the outputs must agree within fp16
rounding (the two sum the tiles in different orders). The table (mean µs, routed against not) comes last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch  # before NVRTC/CuPy (DESIGN.md)

import bsk_cupy as bsk
from bsk_cupy import interop, window_route
from bsk_cupy.bench import graph_time_us
from bsk_cupy.dispatch import get_plan, l2_bytes, sm_count
from bsk_cupy.validation import check_attention_args

SHAPES = (  # B, H, S, D, left, right, causal
    (1, 32, 2048, 64, 383, 0, False),
    (1, 32, 2048, 64, 383, None, True),
    (1, 32, 2048, 128, 383, 0, False),
    (1, 32, 2048, 128, 511, None, True),
    (4, 16, 4096, 64, 255, 0, False),
    (1, 16, 4096, 64, 127, 127, False),
    (1, 16, 8192, 128, 255, 256, False),
    (2, 8, 16384, 128, 511, 0, True),
    (1, 8, 1024, 64, 255, 0, False),          # one wave: not routed (the control)
    (1, 16, 8192, 64, 1023, 0, False),        # span 1024: not routed
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    rows = []
    for b, h, s, d, left, right, causal in SHAPES:
        gen = torch.Generator(device="cuda").manual_seed(s + d + left)
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.float16, generator=gen) for _ in range(3))
        window = (left, right)
        infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
        problem = check_attention_args(*infos, causal=causal, scale=None, layout="bhsd", window=window)
        plan = get_plan(problem, *infos)
        out_old = torch.empty_like(q)
        routed = window_route.routed(problem, sm_count(0), l2_bytes(0))[1] is not None

        def old():  # on the current stream, which graph capture switches
            plan.launch(out_old.data_ptr(), 0, torch.cuda.current_stream().cuda_stream)

        def new():
            return bsk.attention_forward(q, k, v, causal=causal, window=window)

        old()
        diff = (out_old.float() - new().float()).abs().max().item()
        calls = {"ranges": old, "route": new}
        times = {name: [] for name in calls}
        for r in range(args.rounds):
            for name in (list(calls) if r % 2 == 0 else list(reversed(calls))):
                times[name].append(graph_time_us(calls[name]))
        config = f"B{b} H{h} S{s} D{d} {'causal ' if causal else ''}window ({left}, {right})"
        print(config, {n: [round(t, 1) for t in ts] for n, ts in times.items()}, f"max diff {diff:.1e}", flush=True)
        rows.append((config, routed, np.mean(times["ranges"]), np.mean(times["route"]), diff))
    print(f"\n{'config':44s} {'routed':>6s} {'ranges':>9s} {'route':>9s} {'change':>8s} {'max diff':>9s}")
    for config, routed, old_us, new_us, diff in rows:
        print(f"{config:44s} {str(routed):>6s} {old_us:9.1f} {new_us:9.1f} {100 * (new_us / old_us - 1):+7.1f}% "
              f"{diff:9.1e}")


if __name__ == "__main__":
    main()
