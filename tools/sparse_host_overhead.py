"""Where the eager (host) time of the sparse calls goes: ``sparsek_select``, attention with a block mask
(the same mask object each call, and a new one from each selection), and ``sparsek_attention``, from torch
and (on the same memory) from CuPy, with CuPy's dense causal call beside them.

Run on the H100: ``PYTHONPATH=. python tools/sparse_host_overhead.py [--calls-only] [PROFILE_PREFIX]``. For
each shape it prints, per call: host-only µs (``tools/host_overhead.py``'s ``per_call_us``: median of repeats
of 200 calls, synchronised between repeats so that launches never wait for a full queue), eager wall µs
(``bsk_cupy.bench.eager_time_us``) and GPU µs (``graph_time_us``); then, unless ``--calls-only`` (which also
runs on trees from before these steps existed; ``tools/host_ab_run.sh``), the steps of ``sparsek_select``
timed alone. With a prefix, cProfiles of 3000 calls of the select and of select-then-attend, sorted by own
time (``host_overhead.write_profile``), go to PREFIX-select.txt and PREFIX-select-attend.txt.
"""

from __future__ import annotations

import sys

import torch  # before NVRTC/CuPy (bsk_cupy.environment.import_torch)
import cupy
from host_overhead import per_call_us as host_us  # tools/host_overhead.py, beside this script
from host_overhead import write_profile

import bsk_cupy as bsk
from bsk_cupy import interop
from bsk_cupy.bench import eager_time_us, graph_time_us
from bsk_cupy.block_mask import BlockMask
from bsk_cupy.sparsek_launch import get_select_plan
from bsk_cupy.sparsek_validation import check_sparsek_args


def calls_for(b: int, hq: int, hkv: int, s: int, d: int, topk: int):
    """The calls of one shape (causal, fp16, scores float32 (B, Hkv, S)): torch's four, CuPy's three."""
    q = torch.randn(b, hq, s, d, device="cuda", dtype=torch.float16)
    k, v = (torch.randn(b, hkv, s, d, device="cuda", dtype=torch.float16) for _ in range(2))
    scores = torch.randn(b, hkv, s, device="cuda")
    fixed = bsk.sparsek_select(scores, topk)

    def select():
        return bsk.sparsek_select(scores, topk)

    def attend_fixed():
        return bsk.attention_forward(q, k, v, causal=True, block_mask=fixed)

    def select_then_attend():
        return bsk.attention_forward(q, k, v, causal=True, block_mask=bsk.sparsek_select(scores, topk))

    def fused():
        return bsk.sparsek_attention(q, k, v, scores, topk)

    qc, kc, vc, scores_c = (cupy.from_dlpack(x) for x in (q, k, v, scores))   # the same memory, as CuPy sees it
    calls = {"sparsek_select": select, "attention, same mask": attend_fixed,
             "select then attention": select_then_attend, "sparsek_attention": fused,
             "cupy: attention (causal)": lambda: bsk.attention_forward(qc, kc, vc, causal=True),
             "cupy: sparsek_select": lambda: bsk.sparsek_select(scores_c, topk),
             "cupy: sparsek_attention": lambda: bsk.sparsek_attention(qc, kc, vc, scores_c, topk)}
    return calls, scores, topk


def select_steps(scores, topk: int) -> dict:
    """The parts of one sparsek_select call, each as its own callable."""
    operand = interop.describe("scores", scores)
    problem = check_sparsek_args(operand.info, topk, seqlen_q=None, block_size=128, causal=True, local_blocks=1,
                                 pool="max")
    plan = get_select_plan(problem)
    adapter, like = operand.adapter, operand.handle
    shapes = (problem.num_blocks_shape, problem.indices_shape)
    (num, num_ptr), (idx, idx_ptr) = adapter.index_arrays(like, shapes)
    stream = adapter.stream(problem.device)
    seq = (problem.seqlen_q, problem.seqlen_k)
    return {
        "describe": lambda: interop.describe("scores", scores),
        "check_sparsek_args": lambda: check_sparsek_args(operand.info, topk, seqlen_q=None, block_size=128,
                                                         causal=True, local_blocks=1, pool="max"),
        "get_select_plan (hit)": lambda: get_select_plan(problem),
        "index_arrays (both)": lambda: adapter.index_arrays(like, shapes),
        "stream": lambda: adapter.stream(problem.device),
        "launch": lambda: plan.launch(operand.info.ptr, num_ptr, idx_ptr, stream),
        "BlockMask(...)": lambda: BlockMask(num, idx, seq, (128, 128)),
    }


def main() -> None:
    args = sys.argv[1:]
    calls_only = "--calls-only" in args
    args = [a for a in args if a != "--calls-only"]
    prefix = args[0] if args else None
    rows = []
    for shape in ((1, 32, 8, 8192, 128, 8), (1, 8, 8, 2048, 64, 4)):
        calls, scores, topk = calls_for(*shape)
        name = "B{} Hq{} Hkv{} S{} D{} topk={}".format(*shape)
        for call_name, fn in calls.items():
            fn()
            # CuPy calls run on CuPy's stream, which a torch graph capture does not record: no GPU column
            gpu = float("nan") if call_name.startswith("cupy") else graph_time_us(fn)
            rows.append((name, call_name, host_us(fn), eager_time_us(fn), gpu))
        if not calls_only:
            print(f"{name}: sparsek_select steps, host us per call")
            for step, fn in select_steps(scores, topk).items():
                print(f"  {step:24s} {host_us(fn):7.2f}")
        if prefix and shape[3] == 8192:
            write_profile(calls["sparsek_select"], f"{prefix}-select.txt", calls=3000)
            write_profile(calls["select then attention"], f"{prefix}-select-attend.txt", calls=3000)
    print(f"\n{'shape':34s} {'call':26s} {'host':>7s} {'eager':>7s} {'gpu':>7s}  (us per call)")
    for name, call_name, host, eager, gpu in rows:
        print(f"{name:34s} {call_name:26s} {host:7.2f} {eager:7.2f} {gpu:7.2f}")


if __name__ == "__main__":
    main()
