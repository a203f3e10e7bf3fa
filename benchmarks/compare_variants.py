"""A/B kernel variants on the target shapes in one run: accuracy vs float32 SDPA, GPU time vs cuDNN.

    python benchmarks/compare_variants.py VARIANT [VARIANT ...] [--json PATH]

A variant is ``name`` or ``name:field=value,field=value`` over :class:`bsk_cupy.specs.KernelSpec` fields
(e.g. ``default`` and ``serial:pingpong=0``); ``splits=N`` forces N-way split-KV instead of the heuristic,
``pdl=0`` launches without programmatic dependent launch, ``ctas=N`` caps the grid at N persistent CTAs
(``ctas=0``: one per SM, as the dispatcher launches them) that claim items from a device counter
(``dyn=0``: static hand-out); ``tall=N`` keeps N 192-row blocks per head and makes the rest 128-row
items (``tall=-1``: as ``dispatch.short_items_plan`` chooses, all 192-row where it declines);
``order=0`` runs a block mask's rows in the kernel's item order instead of its ``row_order``, ``order=W``
(W >= 2) in windows of W (b, h) mask heads taken in turn, each window's rows longest first, ``order=-K``
in item order but for the last K (b, h) mask heads, whose rows run longest first; without
``ctas`` every work item gets its own CTA, so changes to how a
persistent CTA moves from one item to the next need ``ctas=0`` to show; a variant
illegal for a shape (``block_m=192`` at D 128) shows as "-" there. Each variant is launched through its
own LaunchPlan on the same inputs, so the only difference is the compiled kernel. The output is checked
against SDPA's math backend in float32 (on the first two heads, to bound memory) after poisoning it with
NaN; GPU time is the median of CUDA-graph replays (bsk_cupy.bench.graph_time_us), cuDNN timed in the same
run.

``--density d`` runs every shape under a random block mask instead (``--mask-block`` 128 or 64: its square
block size; each block kept with probability d, the diagonal always; one mask per query head, seed
fixed); the reference then is SDPA's math backend with the equivalent element mask, and cuDNN stays dense
(its column shows the unmasked time).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch  # before NVRTC/CuPy (environment.import_torch says why)
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from bsk_cupy import BlockMask, interop
from bsk_cupy.bench import TARGET_CONFIGS, graph_time_us
from bsk_cupy.clocks import ClockSampler, gpu_id
from bsk_cupy.compile.module import load_kernel
from bsk_cupy.dispatch import choose_splits, mask_tile_spec, select_spec, short_items_plan, sm_count
from bsk_cupy.launch import LaunchPlan
from bsk_cupy.mask_operand import mask_operand, with_tail_order
from bsk_cupy.validation import check_attention_args


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, fields = text.partition(":")
    overrides = {}
    for item in filter(None, fields.split(",")):
        key, _, value = item.partition("=")
        overrides[key] = int(value)
    return name, overrides


def tflops(config, us: float | None) -> float | None:
    b, h, sq, sk, d, causal = config
    return None if us is None else 4 * b * h * sq * sk * d / (2 if causal else 1) / us / 1e6


def parse_config(text: str) -> tuple:
    b, h, sq, sk, d, causal = (int(x) for x in text.split(","))
    return (b, h, sq, sk, d, bool(causal))


def random_mask(b: int, h: int, sq: int, sk: int, density: float, block: int) -> tuple[BlockMask, torch.Tensor]:
    """A random block mask (diagonal kept) and its element mask for the first two heads."""
    nq, nk = -(-sq // block), -(-sk // block)
    blocks = np.random.default_rng(0).random((b, h, nq, nk)) < density
    blocks[..., np.arange(min(nq, nk)), np.arange(min(nq, nk))] = True
    dense = torch.from_numpy(blocks[:, :2]).cuda()
    elements = dense.repeat_interleave(block, 2).repeat_interleave(block, 3)[..., :sq, :sk]
    return BlockMask.from_dense(blocks, seq_lengths=(sq, sk), block_size=block), elements


def windowed_row_order(block_mask: BlockMask, window: int) -> np.ndarray:
    """A row order (of a host mask): windows of ``window`` (b, h) mask heads in turn, each window's rows most
    listed blocks first (ties in index order)."""
    counts = np.asarray(block_mask.kv_num_blocks).reshape(-1).astype(np.int64)
    rows, row = counts.shape[0], np.arange(counts.shape[0], dtype=np.int64)
    head_batch = row // block_mask.kv_num_blocks.shape[-1]
    key = (head_batch // window) * (rows * (counts.max(initial=0) + 2)) + row - counts * rows
    return np.argsort(key).astype(np.int32)


def run_config(config, variants, density: float | None = None, mask_block: int = 128, clocks: bool = False) -> dict:
    b, h, sq, sk, d, causal = config
    q = torch.randn(b, h, sq, d, device="cuda", dtype=torch.float16)
    k, v = (torch.randn(b, h, sk, d, device="cuda", dtype=torch.float16) for _ in range(2))
    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    problem = check_attention_args(*infos, causal=causal, scale=None, layout="bhsd")
    mask, ref_mask = None, None
    if density is not None:
        block_mask, ref_mask = random_mask(b, h, sq, sk, density, mask_block)
        if causal:
            ref_mask = ref_mask & torch.ones(sq, sk, dtype=torch.bool, device="cuda").tril(sk - sq)
        mask = mask_operand(block_mask, problem)
    with sdpa_kernel(SDPBackend.MATH):
        ref = F.scaled_dot_product_attention(*(x[:, :2].float() for x in (q, k, v)), attn_mask=ref_mask,
                                             is_causal=causal and ref_mask is None)
    ref = torch.nan_to_num(ref)  # rows with no visible key: ours are 0, the math backend's NaN
    row = {"config": list(config), "density": density, "mask_block": mask_block if density else None}

    def cudnn():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    try:
        cudnn()  # eagerly first: a shape cuDNN refuses must not fail inside a graph capture
        row["cudnn_us"] = graph_time_us(cudnn)
    except RuntimeError:  # cuDNN does not take this shape on this build
        row["cudnn_us"] = None
    orders = {}  # order=W: the device row orders, alive until the variants are timed
    for name, overrides in variants:
        overrides = dict(overrides)
        splits = overrides.pop("splits", None)
        programmatic = bool(overrides.pop("pdl", 1))
        max_ctas = overrides.pop("ctas", None)
        dynamic = bool(overrides.pop("dyn", 1))
        tall_blocks = overrides.pop("tall", None)
        order = overrides.pop("order", 1)
        if mask is None or order == 1:
            variant_mask = mask
        elif order == 0:
            variant_mask = dataclasses.replace(mask, row_order_ptr=0)
        elif order < 0:
            variant_mask = with_tail_order(mask, problem, -order, torch.cuda.current_stream().cuda_stream)
        else:
            if order not in orders:
                import cupy

                orders[order] = cupy.asarray(windowed_row_order(block_mask, order))
            variant_mask = dataclasses.replace(mask, row_order_ptr=orders[order].data.ptr)
        if max_ctas == 0:
            max_ctas = sm_count(problem.device)
        try:
            spec = mask_tile_spec(select_spec(problem, masked=mask is not None), None if mask is None else mask.block)
            spec = spec.retiled(**overrides)
        except ValueError:
            row[name] = None
            continue
        if splits is None and spec.split_warpgroups:
            splits = spec.cluster_split
        if splits is None:
            splits = choose_splits(problem, spec, sm_count(problem.device), masked=mask is not None)
        if tall_blocks == -1:
            tall_blocks = short_items_plan(problem, spec, splits, sm_count(problem.device), mask is not None)
        try:
            plan = LaunchPlan(load_kernel(spec, problem.device), problem, *infos, mask=variant_mask, num_splits=splits,
                              max_ctas=max_ctas, dynamic=dynamic, programmatic=programmatic, tall_blocks=tall_blocks)
        except ValueError:  # e.g. tall= on a shape without 192-row tiles
            row[name] = None
            continue
        out = torch.full_like(q, float("nan"))

        def launch(plan=plan, out=out):  # on the current stream: graph_time_us captures on its own
            plan.launch(out.data_ptr(), 0, torch.cuda.current_stream().cuda_stream)

        launch()
        err = (out[:, :2].float() - ref).abs().max().item()
        clock = ClockSampler(gpu_id(problem.device)) if clocks else None
        row[name] = {"spec": spec.name, "splits": splits, "max_err": err, "us": graph_time_us(launch, clock=clock),
                     "clock": clock.reading if clock is not None else None}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--clocks", action="store_true",
                        help="sample SM clock and power during each variant's replays (bsk_cupy.clocks) and print "
                             "them with its kilocycles per call after the table")
    parser.add_argument("--config", action="append", type=parse_config, metavar="B,H,SQ,SK,D,CAUSAL",
                        help="shapes to run instead of the speed targets (repeatable)")
    parser.add_argument("--density", type=float, help="run under a random block mask of this density")
    parser.add_argument("--mask-block", type=int, default=128, choices=(128, 64), help="the mask's block size")
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variants]
    configs = args.config or [(b, h, s, s, d, c) for b, h, s, d, c in TARGET_CONFIGS]
    rows = [run_config(c, variants, args.density, args.mask_block, args.clocks) for c in configs]
    if args.json:
        args.json.write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "rows": rows}, indent=1, default=vars))
    head = f"{'B H Sq Sk D causal':<24}{'cuDNN us':>10}" + "".join(f"{n + ' us':>14}{'TFLOPS':>8}{'err':>9}"
                                                           for n, _ in variants)
    print(head)
    for row in rows:
        cudnn_us = "-" if row["cudnn_us"] is None else f"{row['cudnn_us']:.1f}"
        line = f"{' '.join(str(x) for x in row['config']):<24}{cudnn_us:>10}"
        for name, _ in variants:
            r = row[name]
            if r is None:
                line += f"{'-':>14}{'-':>8}{'-':>9}"
                continue
            line += f"{r['us']:>14.1f}{tflops(row['config'], r['us']):>8.0f}{r['max_err']:>9.1e}"
        print(line)
    if args.clocks:  # MHz / W / kilocycles per call of each variant ("-": too short to sample)
        print(f"{'clocks: MHz / W / kcycles':<34}" + "".join(f"{n:>24}" for n, _ in variants))
        for row in rows:
            cells = []
            for name, _ in variants:
                c = row[name]["clock"] if row[name] is not None else None
                kcycles = None if c is None else row[name]["us"] * c.sm_mhz / 1e3
                cells.append("-" if c is None else f"{c.sm_mhz:.0f} / {c.watts:.0f} / {kcycles:.0f}")
            print(f"{' '.join(str(x) for x in row['config']):<34}" + "".join(f"{x:>24}" for x in cells))


if __name__ == "__main__":
    main()
