"""A/B of kernel-spec changes on the dispatcher's own plans, the variants interleaved shape by shape.

    PYTHONPATH=. python tools/dispatched_ab.py [--rounds N] --variant FIELD=VALUE,... [--variant ...]
        B,H,S,D[,DENSITY] ...

For each shape (non-causal fp16; DENSITY: a random 128 x 128 block mask, each block kept with that
probability and the diagonal always, one mask per head, seed fixed) the plan ``attention_forward`` would
launch is built by the dispatcher (its variant, persistent CTAs, row order or tail order), then rebuilt on
each ``--variant``'s spec (the dispatched spec with those KernelSpec fields changed; an empty variant ``-``
is the dispatched spec itself). The pseudo-field ``tail=K`` also replaces the mask's order by the tail
order with K (b, h) (``mask_operand.with_tail_order``; ``tail=0``: the kernel's item order). GPU time per
call by CUDA-graph replay, all variants of one shape back to back in each round, the order reversed every
other round, so that the card's clock and temperature drift (which moves a kernel timed early or late in a
process by several percent) falls on every variant alike.
Every variant's output must equal the first variant's bit for bit (checked once per shape, after
poisoning the output with NaN), or with ``--max-diff X`` (variants that add in another order, such as
64-key tiles against 128-key ones) lie within X of it, element by element, with no NaN left; ``--no-compare``
skips the check (probes that drop work to bound its cost). The table (mean µs over the rounds, each variant
against the first) is printed last.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch  # before NVRTC/CuPy (environment.import_torch says why)

from bsk_cupy import interop
from bsk_cupy.bench import graph_time_us
from bsk_cupy.dispatch import get_plan
from bsk_cupy.launch import LaunchPlan
from bsk_cupy.mask_operand import with_tail_order
from bsk_cupy.validation import check_attention_args
from trace_timeline import random_mask_operand, replanned


def parse_fields(text: str) -> dict:
    return {} if text == "-" else {k: int(v) for k, v in (item.split("=") for item in text.split(","))}


def rebuilt(plan: LaunchPlan, fields: dict, problem, infos, operand) -> LaunchPlan:
    """``plan`` (mask and its order, splits, CTAs, item heights) on its spec with ``fields`` changed (stages
    and bulk store kept unless named; ``tail`` as in the module docstring, from ``operand``, the mask as
    ``mask_operand`` made it)."""
    fields = dict(fields)
    tail = fields.pop("tail", None)
    mask = plan.mask
    if tail == 0:
        mask = dataclasses.replace(mask, row_order_ptr=0, order_items=False)
    elif tail is not None:
        mask = with_tail_order(operand, problem, tail, torch.cuda.current_stream().cuda_stream)
    return replanned(plan, dataclasses.replace(plan.kernel.spec, **fields), problem, infos, mask=mask)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--max-diff", type=float, default=0.0)
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("configs", nargs="+")
    args = parser.parse_args()
    variants = [parse_fields(v) for v in args.variant]
    rows = []
    for text in args.configs:
        parts = text.split(",")
        b, h, s, d = (int(x) for x in parts[:4])
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.float16) for _ in range(3))
        infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
        problem = check_attention_args(*infos, causal=False, scale=None, layout="bhsd")
        mask = random_mask_operand(problem, float(parts[4])) if len(parts) > 4 else None
        plan = get_plan(problem, *infos, mask=mask)
        plans = [rebuilt(plan, fields, problem, infos, mask) for fields in variants]
        outs = []
        stream = torch.cuda.current_stream().cuda_stream
        for p in plans:
            out = torch.full_like(q, float("nan"))
            p.launch(out.data_ptr(), 0, stream)
            outs.append(out)
        torch.cuda.synchronize()
        for i, out in enumerate(outs[1:] if not args.no_compare else [], 1):
            if args.max_diff > 0:
                diff = (out.float() - outs[0].float()).abs().max().item()
                if not diff <= args.max_diff:  # NaN (an unwritten element) fails too
                    raise SystemExit(f"{text}: variant {args.variant[i]} lies {diff} from {args.variant[0]}")
            elif not torch.equal(out.view(torch.int16), outs[0].view(torch.int16)):
                raise SystemExit(f"{text}: variant {args.variant[i]} differs from {args.variant[0]}")
        label = f"B{b} H{h} S{s} D{d}" + (f" d{parts[4]}" if len(parts) > 4 else " dense")
        rows.append((label, plan.kernel.spec.name, plans, outs[0], (q, k, v)))  # the plans hold raw pointers
    times = [[[] for _ in variants] for _ in rows]
    for r in range(args.rounds):
        for i, (label, _, plans, out, _) in enumerate(rows):
            order = range(len(plans)) if r % 2 == 0 else reversed(range(len(plans)))
            for j in order:
                p = plans[j]
                times[i][j].append(graph_time_us(
                    lambda p=p, out=out: p.launch(out.data_ptr(), 0, torch.cuda.current_stream().cuda_stream)))
            print(f"round {r} {label}: " + " / ".join(f"{t[-1]:.1f}" for t in times[i]), flush=True)
    print(f"\n{'shape':<28}{'dispatched spec':<46}" + "".join(f"{v:>22}" for v in args.variant))
    for i, (label, name, *_) in enumerate(rows):
        means = [float(np.mean(t)) for t in times[i]]
        cells = [f"{means[0]:.1f}"] + [f"{m:.1f} ({(m / means[0] - 1) * 100:+.1f}%)" for m in means[1:]]
        print(f"{label:<28}{name:<46}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
