"""Sliding windows without a block mask: the dense kernels' KV ranges against the route through the
window's block mask (bsk_cupy.window_route).

    PYTHONPATH=. python tools/window_route_ab.py [--rounds N]

For each shape (fp16): the plan the dispatcher builds for the window alone (``dispatch.get_plan`` without
the route: each query block over the KV range its window touches) against ``attention_forward(causal=...,
window=...)``, which takes the route where ``window_route.routed`` says so (the table's ``routed``
column); where it does not, both run the same plan. A non-causal window whose right side is 0 also runs in
its causal form, ``causal=True, window=(left, None)`` (the same keys; the causal kernels, claiming each
head's longest rows first), which at B1 H32 S2048 D64 (383, 0) ran 31.0 µs against 38.7 (RESULTS.md,
twentieth session): the wide windows below, which are not routed, show whether that form should be their
dispatch. GPU time per call by CUDA-graph replay, the variants interleaved round by round (order reversed
every other round); the outputs must agree within fp16 rounding (they sum the tiles in different orders).
The table (mean µs, each form against the KV ranges) comes last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch  # before NVRTC/CuPy (environment.import_torch says why)

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
    (1, 16, 8192, 64, 1023, 0, False),        # spans past 512 keys: not routed
    (1, 16, 8192, 128, 1023, 0, False),
    (1, 16, 8192, 64, 4095, 0, False),
    (1, 16, 16384, 128, 2047, 0, False),
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

        def causal_form():
            return bsk.attention_forward(q, k, v, causal=True, window=(left, None))

        calls = {"ranges": old, "route": new}
        if right == 0 and not causal:
            calls["causal form"] = causal_form
        old()
        diff = max((out_old.float() - fn().float()).abs().max().item()
                   for name, fn in calls.items() if name != "ranges")
        times = {name: [] for name in calls}
        for r in range(args.rounds):
            for name in (list(calls) if r % 2 == 0 else list(reversed(calls))):
                times[name].append(graph_time_us(calls[name]))
        config = f"B{b} H{h} S{s} D{d} {'causal ' if causal else ''}window ({left}, {right})"
        print(config, {n: [round(t, 1) for t in ts] for n, ts in times.items()}, f"max diff {diff:.1e}", flush=True)
        means = {name: np.mean(ts) for name, ts in times.items()}
        rows.append((config, routed, means["ranges"], means["route"], means.get("causal form"), diff))
    print(f"\n{'config':44s} {'routed':>6s} {'ranges':>9s} {'route':>9s} {'change':>8s} {'causal form':>12s} "
          f"{'change':>8s} {'max diff':>9s}")
    for config, routed, old_us, new_us, causal_us, diff in rows:
        causal_cols = (f"{causal_us:12.1f} {100 * (causal_us / old_us - 1):+7.1f}%" if causal_us is not None
                       else f"{'—':>12s} {'':>8s}")
        print(f"{config:44s} {str(routed):>6s} {old_us:9.1f} {new_us:9.1f} {100 * (new_us / old_us - 1):+7.1f}% "
              f"{causal_cols} {diff:9.1e}")


if __name__ == "__main__":
    main()
