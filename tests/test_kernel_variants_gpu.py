"""GPU correctness of every tunable kernel option the dispatcher may pick, and of programmatic dependent launch.

Each variant runs through its own LaunchPlan (not the dispatcher, whose choice depends on the shape) on
NaN-poisoned outputs and is checked against float64 with causal masks, windows, ragged lengths, GQA and
split-KV (H100; marked ``gpu``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

import torch  # noqa: E402
import bsk_cupy as bsk  # noqa: E402
from bsk_cupy import interop  # noqa: E402
from bsk_cupy.accuracy import reference_for, to_numpy  # noqa: E402
from bsk_cupy.compile.module import load_kernel  # noqa: E402
from bsk_cupy.dispatch import masked_two_q_spec, select_spec  # noqa: E402
from bsk_cupy.launch import LaunchPlan  # noqa: E402
from bsk_cupy.reference import attention_reference, window_keys  # noqa: E402
from bsk_cupy.validation import check_attention_args  # noqa: E402

# Spec fields, plus "ctas": a cap on the grid, so that persistent CTAs walk several work items each
# (claimed from a device counter, or handed out statically with "dynamic": False), and "tall": LaunchPlan's
# tall_blocks (192-row blocks per head before the 128-row items; no split-KV).
VARIANTS = {
    "m128": {"block_m": 128},
    "m128_persistent": {"block_m": 128, "ctas": 5},
    "m128_persistent_static": {"block_m": 128, "ctas": 5, "dynamic": False},
    "m128_registerstore": {"block_m": 128, "bulk_store": False},   # the epilogue without the bulk store
    "wgsplit_bulkstore": {"block_m": 64, "split_warpgroups": True, "bulk_store": True},
    "m192": {"block_m": 192},
    "m192_persistent": {"block_m": 192, "ctas": 3},
    # two Q buffers: one item per CTA, and persistent CTAs that claim the next item early where items are uniform
    "m128_q2": {"block_m": 128, "q_buffers": 2},
    "m128_q2_persistent": {"block_m": 128, "q_buffers": 2, "ctas": 5},
    "m128_q2_s4_persistent": {"block_m": 128, "q_buffers": 2, "stages": 4, "ctas": 5},  # masks at head dim 64
    "m192_q2_persistent": {"block_m": 192, "q_buffers": 2, "ctas": 3},
    "m192_q2_bulkstore_persistent": {"block_m": 192, "q_buffers": 2, "bulk_store": True, "ctas": 3},
    # short items: one 192-row block per head, then 128-row items (two consumers work, the third idles);
    # every item 128 rows, claimed early by persistent CTAs
    "m192_short": {"block_m": 192, "tall": 1},
    "m192_q2_short_persistent": {"block_m": 192, "q_buffers": 2, "tall": 0, "ctas": 3},
    "wgsplit": {"block_m": 64, "split_warpgroups": True},     # four stages at head dim 64, two at 128
    "wgsplit_s2": {"block_m": 64, "split_warpgroups": True, "stages": 2},
    "wgsplit_persistent": {"block_m": 64, "split_warpgroups": True, "ctas": 3},
    "wgsplit_n64": {"block_m": 64, "block_n": 64, "split_warpgroups": True},   # the 64 x 64 mask tiles
    "wgsplit_n64_persistent": {"block_m": 64, "block_n": 64, "split_warpgroups": True, "ctas": 3},
    # a cluster of two CTAs splits each block's KV tiles (every case runs 2 splits)
    "wgsplit_cluster2": {"block_m": 64, "split_warpgroups": True, "cluster_split": 2},
    "wgsplit_n64_cluster2": {"block_m": 64, "block_n": 64, "split_warpgroups": True, "cluster_split": 2},
}

# (Sq, Sk, causal, window, splits, heads_q, heads_kv, q_gain): q_gain scales Q so that scores span far more
# than exp2's range within a row (the running max moves often and by a lot).
CASES = {
    "dense": (1000, 1000, False, None, 1, 4, 4, 1.0),
    "causal": (1000, 1000, True, None, 1, 4, 4, 1.0),
    "ragged_causal_gqa": (300, 777, True, None, 1, 6, 2, 1.0),
    "window": (700, 700, False, (100, 50), 1, 2, 2, 1.0),
    "split": (200, 4097, False, None, 4, 2, 2, 1.0),
    "split_causal": (1, 4097, True, None, 8, 2, 1, 1.0),
    "wide_scores": (513, 1500, False, None, 1, 2, 2, 6.0),
    "wide_scores_causal": (513, 1500, True, None, 1, 2, 2, 6.0),
}


def _rand(shape, seed, gain=1.0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return (gain * torch.randn(shape, device="cuda", dtype=torch.float32, generator=gen)).to(torch.float16)


@pytest.mark.parametrize("head_dim", [64, 128, 256])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_matches_float64(variant, case, head_dim):
    sq, sk, causal, window, splits, hq, hkv, gain = CASES[case]
    seed = hash((variant, case, head_dim)) % 2**31
    q = _rand((2, hq, sq, head_dim), seed, gain)
    k, v = _rand((2, hkv, sk, head_dim), seed + 1), _rand((2, hkv, sk, head_dim), seed + 2)
    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    problem = check_attention_args(*infos, causal=causal, scale=None, layout="bhsd", window=window)
    fields = dict(VARIANTS[variant])
    max_ctas = fields.pop("ctas", None)
    dynamic = fields.pop("dynamic", True)
    tall_blocks = fields.pop("tall", None)
    try:
        spec = select_spec(problem).retiled(**fields)
    except ValueError:
        pytest.skip(f"{variant} does not exist at head_dim {head_dim}")
    if tall_blocks is not None and splits > 1:
        pytest.skip("short items are never split")
    if spec.split_warpgroups:
        if splits > 1 and spec.cluster_split == 1:
            pytest.skip("split warpgroups split KV only across a cluster")
        splits = spec.cluster_split
    plan = LaunchPlan(load_kernel(spec, 0), problem, *infos, num_splits=splits, max_ctas=max_ctas,
                      dynamic=dynamic, tall_blocks=tall_blocks)
    out = torch.full_like(q, float("nan"))
    lse = torch.full((2, hq, sq), float("nan"), device="cuda", dtype=torch.float32)
    plan.launch(out.data_ptr(), lse.data_ptr(), torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    visible = window_keys(sq, sk, window)[None, None]
    ref_out, ref_lse = attention_reference(*(to_numpy(x) for x in (q, k, v)), causal=causal, mask=visible)
    got = to_numpy(out)
    assert not np.isnan(got).any(), "output elements left unwritten (NaN poison)"
    err = np.abs(got - ref_out).max()
    assert err < 4e-3, f"max abs error {err:.3e}"
    got_lse = lse.cpu().numpy()
    seen = np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(got_lse), seen), "-inf lse on the wrong rows"
    assert np.abs(got_lse[seen] - ref_lse[seen]).max() < 1e-3 * max(1.0, np.abs(ref_lse[seen]).max())
    again = torch.full_like(q, float("nan"))
    plan.launch(again.data_ptr(), 0, torch.cuda.current_stream().cuda_stream)
    assert torch.equal(out, again), "a repeated launch is not bit-identical"


@pytest.mark.parametrize("shape", [(1, 8, 512, 64), (4, 16, 1024, 128)])
def test_programmatic_launch_waits_for_the_previous_kernel(shape):
    """Chained calls, each reading the output the previous one is writing: with programmatic dependent
    launch the next kernel starts early, so a missing or late griddepcontrol.wait reads stale data."""
    q, k, v = (_rand(shape, 200 + i) for i in range(3))
    steps = [q]
    for _ in range(6):
        steps.append(bsk.attention_forward(steps[-1], k, v))
    torch.cuda.synchronize()
    for before, after in zip(steps[:-1], steps[1:]):
        ref_out, _ = reference_for(before, k, v, False)
        assert np.abs(to_numpy(after) - ref_out).max() < 4e-3


def _masked_gqa_case(seed: int, causal: bool, head_dim: int = 64):
    """q (2, 4, 1100, head_dim), k and v (2, 2, 1300, head_dim) and a 0.4-dense 128 x 128 block pattern per
    KV head whose query block 2 of (0, 0) lists no KV block: (q, k, v, blocks, infos, problem)."""
    sq, sk, hq, hkv = 1100, 1300, 4, 2
    q = _rand((2, hq, sq, head_dim), seed)
    k, v = _rand((2, hkv, sk, head_dim), seed + 1), _rand((2, hkv, sk, head_dim), seed + 2)
    blocks = np.random.default_rng(seed + 3).random((2, hkv, -(-sq // 128), -(-sk // 128))) < 0.4
    blocks[0, 0, 2] = False
    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    return q, k, v, blocks, infos, check_attention_args(*infos, causal=causal, scale=None, layout="bhsd")


def _launch_each(plans, q) -> list:
    """Each plan launched once into NaN-filled out and LSE; their (out, lse) pairs, synchronised."""
    results = []
    for plan in plans:
        out = torch.full_like(q, float("nan"))
        lse = torch.full(q.shape[:3], float("nan"), device="cuda", dtype=torch.float32)
        plan.launch(out.data_ptr(), lse.data_ptr(), torch.cuda.current_stream().cuda_stream)
        results.append((out, lse))
    torch.cuda.synchronize()
    return results


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("splits", [1, 3])
def test_persistent_ctas_match_one_cta_per_item_bit_for_bit(causal, splits):
    """Block-sparse rows of every length (empty ones too) walked by 3 persistent CTAs (items claimed from the
    device counter, or handed out statically) give the same bits as one CTA per work item: items are
    computed alike whichever CTA takes them."""
    from bsk_cupy.mask_operand import mask_operand

    q, k, v, blocks, infos, problem = _masked_gqa_case(300, causal)
    operand = mask_operand(bsk.BlockMask.from_dense(blocks, (problem.seqlen_q, problem.seqlen_k)), problem)
    kernel = load_kernel(select_spec(problem, masked=True), 0)
    (out_a, lse_a), *others = _launch_each(
        [LaunchPlan(kernel, problem, *infos, mask=operand, num_splits=splits, max_ctas=max_ctas, dynamic=dynamic)
         for max_ctas, dynamic in ((None, False), (3, True), (3, False))], q)
    assert not torch.isnan(out_a).any()
    for out_b, lse_b in others:
        assert torch.equal(out_a, out_b)
        assert torch.equal(lse_a, lse_b)
    assert torch.all(out_a[0, :2, 256:384] == 0) and torch.all(lse_a[0, :2, 256:384] == float("-inf"))


@pytest.mark.parametrize("row_order", [True, False])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_masked_rows_claimed_early_into_two_q_buffers(head_dim, row_order):
    """Block-mask rows on two Q buffers (as dispatched: four K/V stages at head dim 64), walked by 3
    persistent CTAs: in the mask's row order, each next one claimed as soon as the current one's loads are
    issued and its Q loaded into the other buffer, or in item order, claimed after those loads (rows with
    no block and with every block): the same bits as one CTA per item with one Q buffer, and float64's
    values with the equivalent element mask."""
    from bsk_cupy.mask_operand import mask_operand

    q, k, v, blocks, infos, problem = _masked_gqa_case(310, False, head_dim)
    blocks[1, 1, 3] = True                                            # a query block with every KV block
    sq, sk, hq, hkv = problem.seqlen_q, problem.seqlen_k, problem.heads_q, problem.heads_kv
    operand = mask_operand(bsk.BlockMask.from_dense(blocks, (sq, sk)), problem)
    assert operand.row_order_ptr
    if not row_order:
        operand = dataclasses.replace(operand, row_order_ptr=0)
    one = select_spec(problem, masked=True)
    two_q = masked_two_q_spec(one)
    (out_a, lse_a), *others = _launch_each(
        [LaunchPlan(load_kernel(spec, 0), problem, *infos, mask=operand, max_ctas=max_ctas)
         for spec, max_ctas in ((one, None), (two_q, 3), (two_q, None))], q)
    for out_b, lse_b in others:
        assert torch.equal(out_a, out_b) and torch.equal(lse_a, lse_b)
    elements = np.repeat(np.repeat(np.repeat(blocks, 128, axis=2), 128, axis=3)[..., :sq, :sk], hq // hkv, axis=1)
    ref_out, ref_lse = attention_reference(*(to_numpy(x) for x in (q, k, v)), causal=False, mask=elements)
    got = to_numpy(out_a)
    assert not np.isnan(got).any(), "output elements left unwritten (NaN poison)"
    assert np.abs(got - ref_out).max() < 4e-3
    assert np.array_equal(np.isfinite(lse_a.cpu().numpy()), np.isfinite(ref_lse))


@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("causal", [False, True])
def test_cluster_split_with_a_block_mask(head_dim, causal):
    """64 x 64 block masks (rows with no block, one block, every block) on split warpgroups whose cluster of
    two CTAs splits each row's listed blocks: against float64 with the equivalent element mask, and
    bit-identical to itself."""
    from bsk_cupy.mask_operand import mask_operand

    sq, sk, hq = 700, 900, 3
    q = _rand((1, hq, sq, head_dim), 400)
    k, v = _rand((1, hq, sk, head_dim), 401), _rand((1, hq, sk, head_dim), 402)
    nq, nk = -(-sq // 64), -(-sk // 64)
    blocks = np.random.default_rng(403).random((1, hq, nq, nk)) < 0.3
    blocks[0, 0, 1] = False
    blocks[0, 1, 2] = np.arange(nk) == 3
    blocks[0, 2, 4] = True
    mask = bsk.BlockMask.from_dense(blocks, (sq, sk), block_size=64)
    infos = [interop.describe(n, x).info for n, x in (("q", q), ("k", k), ("v", v))]
    problem = check_attention_args(*infos, causal=causal, scale=None, layout="bhsd")
    spec = select_spec(problem, masked=True).retiled(block_m=64, block_n=64, split_warpgroups=True, cluster_split=2)
    plan = LaunchPlan(load_kernel(spec, 0), problem, *infos, mask=mask_operand(mask, problem), num_splits=2)
    outs = []
    for _ in range(2):
        out = torch.full_like(q, float("nan"))
        lse = torch.full((1, hq, sq), float("nan"), device="cuda", dtype=torch.float32)
        plan.launch(out.data_ptr(), lse.data_ptr(), torch.cuda.current_stream().cuda_stream)
        outs.append((out, lse))
    torch.cuda.synchronize()
    elements = np.repeat(np.repeat(blocks, 64, axis=2), 64, axis=3)[..., :sq, :sk]
    ref_out, ref_lse = attention_reference(*(to_numpy(x) for x in (q, k, v)), causal=causal, mask=elements)
    (out, lse), (again, lse_again) = outs
    got = to_numpy(out)
    assert not np.isnan(got).any(), "output elements left unwritten (NaN poison)"
    assert np.abs(got - ref_out).max() < 4e-3
    got_lse, seen = lse.cpu().numpy(), np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(got_lse), seen), "-inf lse on the wrong rows"
    assert np.abs(got_lse[seen] - ref_lse[seen]).max() < 1e-3 * max(1.0, np.abs(ref_lse[seen]).max())
    assert torch.equal(out, again) and torch.equal(lse, lse_again), "a repeated launch is not bit-identical"
