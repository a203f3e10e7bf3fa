"""Variant choice (CPU): the query-tile height and persistent grid the dispatcher picks."""

from __future__ import annotations

import pytest

from bsk_cupy.dispatch import (choose_splits, choose_variant, follows_row_order, mask_tile_spec, q_buffers_spec, select_spec,
                               split_warpgroups_spec, tail_heads)
from bsk_cupy.specs import KernelSpec, all_specs
from bsk_cupy.validation import AttentionProblem


def problem(b, h, s, d, causal=False, window=None):
    return AttentionProblem(batch=b, heads_q=h, heads_kv=h, seqlen_q=s, seqlen_k=s, head_dim=d, dtype="float16",
                            causal=causal, scale=0.125, layout="bhsd", device=0, window=window)


# Measured on the H100 (benchmarks/RESULTS.md, sessions 3 and 8; the session-8 figures with one CTA per work
# item, compare_variants' default launch; the eleventh session confirmed these calls with persistent CTAs):
# the faster tile height.
@pytest.mark.parametrize("shape,block_m", [
    ((1, 8, 512, 64), 128),       # 32 vs 24 CTAs: 9.1 vs 11.0 us
    ((1, 16, 1024, 64), 128),     # 128 vs 96 CTAs: 15.2 vs 18.6 us
    ((1, 32, 2048, 64), 192),     # 4 vs 3 rounds: 93.5 / 94.1 vs 89.3 / 90.9 us (session 8)
    ((2, 32, 1024, 64), 192),     # 55.6 / 54.2 vs 51.7 / 52.4 us (session 8)
    ((1, 16, 4096, 64), 192),     # 179.9 / 177.4 vs 166.4 / 167.5 us (session 8)
    ((1, 16, 8192, 64), 192),     # 8 rounds vs 5.2 of 192 with short items: 677.7 vs 647.6 us (session 26)
    ((1, 8, 16384, 64), 192),     # the same, 1364.3 vs 1328.1 us (session 26)
    ((2, 16, 16384, 64), 192),    # 32 vs 21 rounds: 5420 / 5612 vs 4892 us (session 8)
    ((4, 32, 4096, 128), 128),    # no 192-row tile at head dim 128
])
def test_tile_height(shape, block_m):
    assert select_spec(problem(*shape), sms=132).block_m == block_m


# Causal D64 on persistent CTAs (RESULTS.md, eleventh and thirteenth sessions): the faster tile height.
@pytest.mark.parametrize("shape,block_m", [
    ((1, 4, 8192), 192),      # 123.2 / 124.4 vs 107.6 / 109.3 us
    ((1, 16, 8192), 192),     # 384.0 / 384.4 vs 368.6 / 368.6 us
    ((2, 8, 8192), 192),      # 383.5 / 384.2 vs 371.2 / 366.0 us
    ((2, 16, 16384), 192),    # 2789-2792 vs 2581-2607 us
    ((4, 32, 4096), 192),     # 192 rows 1-2% faster
    ((4, 32, 512), 128),      # 27.5 / 27.1 vs 28.2 / 28.1 us
    ((8, 16, 512), 128),      # 26.8 / 26.8 vs 27.6 / 27.6 us
    ((1, 4, 16384), 128),     # 345.3 / 347.4 vs 382.9 / 377.2 us
])
def test_causal_tile_height(shape, block_m):
    assert select_spec(problem(*shape, 64, causal=True), sms=132).block_m == block_m


def test_block_masks_keep_128_row_tiles():
    assert select_spec(problem(2, 16, 16384, 64), sms=132, masked=True).block_m == 128


def _variant(prob, masked=False):
    spec = select_spec(prob, sms=132, masked=masked)
    splits = choose_splits(prob, spec, 132, masked)
    return split_warpgroups_spec(prob, spec, splits, 132, masked), splits


def test_split_warpgroups_for_grids_under_half_the_sms():
    spec, splits = _variant(problem(1, 8, 512, 64))               # 32 blocks of 128 rows
    assert spec.split_warpgroups and spec.block_m == 64 and splits == 1
    spec, _ = _variant(problem(1, 8, 512, 128, causal=True))
    assert spec.split_warpgroups
    assert not _variant(problem(1, 16, 1024, 64))[0].split_warpgroups   # 128 blocks: fills the GPU
    assert not _variant(problem(1, 8, 512, 64), masked=True)[0].split_warpgroups
    decode = AttentionProblem(batch=1, heads_q=8, heads_kv=8, seqlen_q=128, seqlen_k=8192, head_dim=64,
                              dtype="float16", causal=False, scale=0.125, layout="bhsd", device=0)
    spec, splits = _variant(decode)                                  # long KV: split-KV across CTAs instead
    assert splits == 16 and not spec.split_warpgroups


def test_derived_tiles_choose_their_own_bulk_store():
    # the dispatcher derives 64-row tiles from a 128-row spec: the 128-row bulk store must not ride along
    # (split warpgroups store from registers, the variant warmup and audit compile; the bulk store lost there)
    spec, _ = _variant(problem(1, 8, 512, 64))
    fresh = KernelSpec(head_dim=64, dtype="float16", causal=False, block_m=64, split_warpgroups=True)
    assert spec == fresh and not spec.bulk_store and spec.name in {s.name for s in all_specs()}
    assert _variant(problem(1, 8, 512, 128, causal=True))[0].name in {s.name for s in all_specs()}
    masked = mask_tile_spec(select_spec(problem(1, 8, 512, 128), sms=132, masked=True), 64)
    assert not masked.bulk_store and masked.name in {s.name for s in all_specs()}
    kept = select_spec(problem(1, 8, 512, 64), sms=132).retiled(block_m=64, split_warpgroups=True, bulk_store=True)
    assert kept.bulk_store and kept.name.endswith(".wgsplit.bulkstore")


def test_split_warpgroups_take_two_stages_each_where_they_fit():
    assert _variant(problem(1, 8, 512, 64))[0].stages == 4
    # at head dim 128, 64-key tiles (four stages of 128-key ones would not fit)
    assert (_variant(problem(1, 8, 512, 128))[0].block_n, _variant(problem(1, 8, 512, 128))[0].stages) == (64, 4)
    for prob in (problem(1, 8, 512, 64), problem(1, 8, 512, 128, causal=True)):
        assert mask_tile_spec(select_spec(prob, sms=132, masked=True), 64).stages == 4
    assert select_spec(problem(4, 32, 4096, 128), sms=132).stages == 2
    assert all(spec.smem_bytes <= 227 * 1024 for spec in all_specs())
    with pytest.raises(ValueError, match="need 315392 bytes of shared memory"):
        KernelSpec(head_dim=128, dtype="float16", causal=False, block_m=64, split_warpgroups=True, stages=4)
    with pytest.raises(ValueError, match="2 or 4 stages"):
        KernelSpec(head_dim=64, dtype="float16", causal=False, block_m=64, split_warpgroups=True, stages=3)


def test_mask_blocks_of_64_run_on_64_by_64_split_warpgroup_tiles():
    for prob in (problem(2, 16, 16384, 64), problem(1, 8, 512, 128, causal=True)):
        spec = select_spec(prob, sms=132, masked=True)
        assert mask_tile_spec(spec, 128) is spec and mask_tile_spec(spec, None) is spec
        tiles = mask_tile_spec(spec, 64)
        assert (tiles.block_m, tiles.block_n, tiles.split_warpgroups) == (64, 64, True)
        assert (tiles.head_dim, tiles.causal) == (prob.head_dim, prob.causal)


def test_head_dim_256_runs_128_by_64_tiles_with_ping_pong():
    # two stages of 128-key K and V tiles do not fit next to a 64 KB Q tile
    for prob in (problem(1, 8, 512, 256), problem(4, 32, 4096, 256, causal=True)):
        spec, splits = _variant(prob)
        assert (spec.block_m, spec.block_n, spec.pingpong, spec.split_warpgroups) == (128, 64, True, False)
        assert spec.smem_bytes <= 227 * 1024
    with pytest.raises(ValueError, match="head_dim 256 runs 128 x 64 tiles"):
        KernelSpec(head_dim=256, dtype="float16", causal=False, block_n=128)
    with pytest.raises(ValueError, match="head_dim 256 runs 128 x 64 tiles"):
        KernelSpec(head_dim=256, dtype="float16", causal=False, block_m=64, split_warpgroups=True)


def test_bulk_store_epilogue_on_128_row_tiles():
    for spec in all_specs():
        assert spec.bulk_store == (spec.block_m == 128 and spec.head_dim != 256), spec.name
        assert "store" not in spec.name and spec.defines()["BULK_STORE"] == int(spec.bulk_store)
        assert spec.smem_bytes <= 227 * 1024
    plain = KernelSpec(head_dim=128, dtype="float16", causal=False, bulk_store=False)
    assert plain.name.endswith(".registerstore") and plain.defines()["BULK_STORE"] == 0
    assert KernelSpec(head_dim=128, dtype="float16", causal=False).smem_bytes == plain.smem_bytes + 32768
    split = KernelSpec(head_dim=64, dtype="float16", causal=False, block_m=64, split_warpgroups=True,
                       bulk_store=True)
    assert split.name.endswith(".wgsplit.bulkstore")
    with pytest.raises(ValueError, match="bulk_store does not fit at head_dim 256"):
        KernelSpec(head_dim=256, dtype="float16", causal=False, bulk_store=True)


def test_cluster_of_two_splits_small_grids_of_split_warpgroups():
    names = {s.name for s in all_specs()}
    long_kv = AttentionProblem(batch=1, heads_q=8, heads_kv=8, seqlen_q=128, seqlen_k=8192, head_dim=64,
                               dtype="float16", causal=False, scale=0.125, layout="bhsd", device=0)
    for prob in (problem(1, 8, 512, 64), problem(1, 8, 512, 128, causal=True), problem(2, 4, 512, 64),
                 problem(1, 4, 1024, 64), problem(1, 2, 2048, 64), problem(1, 4, 1024, 128)):
        spec, splits = choose_variant(prob, 132)
        assert spec.split_warpgroups and spec.cluster_split == 2 and splits == 2, prob
        assert spec.name.endswith(".wgsplit.cluster2") and spec.name in names
        assert spec.smem_bytes <= 227 * 1024 and spec.stages == 4
        assert spec.block_n == (64 if prob.head_dim == 128 else 128)
    # 128 blocks of 64 rows would need 256 CTAs; masks keep their tiles; 2 KV tiles cannot feed 4 warpgroups;
    # a long KV row splits 16 ways across CTAs (4 tiles + the combine) rather than 4 (16 tiles per warpgroup)
    spec, splits = choose_variant(problem(1, 16, 512, 64), 132)
    assert spec.split_warpgroups and spec.cluster_split == 1 and splits == 1
    assert choose_variant(problem(1, 8, 512, 64), 132, mask_block=64)[0].cluster_split == 1
    assert choose_variant(problem(1, 8, 512, 64), 132, mask_block=128)[0].cluster_split == 1
    assert choose_variant(problem(1, 8, 256, 64), 132)[0].cluster_split == 1
    spec, splits = choose_variant(long_kv, 132)
    assert (spec.block_m, spec.cluster_split, splits) == (128, 1, 16)
    assert choose_variant(problem(1, 2, 2048, 256), 132)[0].cluster_split == 1
    assert choose_variant(problem(1, 32, 2048, 64), 132)[0].block_m == 192


def test_every_dispatched_variant_is_compiled_by_warmup_and_audit():
    names = {s.name for s in all_specs()}
    shapes = [(b, h, s, d) for b in (1, 4) for h in (1, 8, 32) for s in (128, 512, 1024, 4096) for d in (64, 128, 256)]
    for b, h, s, d in shapes:
        for causal in (False, True):
            for mask_block in (None, 64, 128):
                if mask_block == 64 and d == 256:
                    continue
                spec, splits = choose_variant(problem(b, h, s, d, causal), 132, mask_block)
                assert spec.name in names, (b, h, s, d, causal, mask_block, spec.name)
                assert splits >= 1 and (not spec.split_warpgroups or splits == spec.cluster_split)


def test_two_q_buffers_where_persistent_ctas_walk_uniform_items():
    assert choose_variant(problem(1, 32, 2048, 64), 132)[0].q_buffers == 2      # 352 items of 192 rows
    assert choose_variant(problem(8, 32, 1024, 64), 132)[0].q_buffers == 2
    spec = choose_variant(problem(2, 16, 1024, 64), 132)[0]   # 256 items of 128 rows: their bulk store covers Q
    assert spec.block_m == 128 and spec.q_buffers == 1
    assert choose_variant(problem(1, 16, 1024, 64), 132)[0].q_buffers == 1      # 128 items: one per CTA
    assert choose_variant(problem(1, 32, 2048, 64, causal=True), 132)[0].q_buffers == 1
    assert choose_variant(problem(1, 32, 2048, 64, window=(256, 0)), 132)[0].q_buffers == 1
    assert choose_variant(problem(1, 32, 2048, 64), 132, mask_block=128)[0].q_buffers == 1   # index order
    assert choose_variant(problem(1, 32, 2048, 128), 132)[0].q_buffers == 1
    assert choose_variant(problem(1, 16, 4096, 64), 132)[0].q_buffers == 1      # 32 KV tiles per item
    assert choose_variant(problem(2, 16, 16384, 64), 132)[0].q_buffers == 1
    long = problem(1, 32, 2048, 64)
    assert q_buffers_spec(long, select_spec(long), 1, sms=352, masked=False).q_buffers == 1   # one item per SM
    assert q_buffers_spec(long, select_spec(long), 1, sms=351, masked=False).q_buffers == 2


def test_two_q_buffers_for_block_masks_claimed_longest_first():
    for head_dim in (64, 128):
        ordered = choose_variant(problem(1, 32, 2048, head_dim), 132, mask_block=128, ordered_rows=True)[0]
        assert ordered.block_m == 128 and ordered.q_buffers == 2 and ordered in all_specs()
        assert ordered.stages == (4 if head_dim == 64 else 2)  # the second Q leaves two stages' room at 128
        assert choose_variant(problem(1, 32, 2048, head_dim), 132, mask_block=128)[0].q_buffers == 1  # item order
    assert choose_variant(problem(1, 32, 2048, 64, window=(256, 0)), 132, mask_block=128,
                          ordered_rows=True)[0].q_buffers == 2
    for prob, block in ((problem(1, 32, 2048, 64, causal=True), 128),   # no causal two-Q kernel
                        (problem(1, 32, 2048, 256), 128),               # head dim 256: no room
                        (problem(1, 8, 1024, 64), 128),                 # 64 items: one per CTA
                        (problem(1, 32, 2048, 64), 64)):                # 64 x 64 blocks: cluster tiles
        assert choose_variant(prob, 132, mask_block=block, ordered_rows=True)[0].q_buffers == 1


def test_two_q_buffers_only_at_head_dim_64_or_128_without_causal_split_or_cluster():
    for head_dim in (64, 128):
        spec = KernelSpec(head_dim=head_dim, dtype="float16", causal=False, q_buffers=2)
        plain = spec.retiled(q_buffers=1)
        assert spec.defines()["Q_BUFFERS"] == 2 and plain.defines()["Q_BUFFERS"] == 1
        assert spec.name.endswith(".q2") and not plain.name.endswith(".q2")
        # the second Q (its barriers fit the padding); at head dim 128 it leaves 1 KiB of the CTA's 227 KiB
        assert spec.smem_bytes - plain.smem_bytes == 128 * head_dim * 2
    assert spec.smem_bytes == 226 * 1024
    for fields in ({"head_dim": 256}, {"causal": True}, {"block_m": 64, "split_warpgroups": True},
                   {"q_buffers": 3}):
        with pytest.raises(ValueError, match="q_buffers must be 1, or 2 at head_dim 64 or 128"):
            KernelSpec(**{"head_dim": 64, "dtype": "float16", "causal": False, "q_buffers": 2, **fields})


def test_cluster_split_needs_split_warpgroups():
    with pytest.raises(ValueError, match="cluster_split must be 1, or 2 with split_warpgroups"):
        KernelSpec(head_dim=64, dtype="float16", causal=False, cluster_split=2)
    with pytest.raises(ValueError, match="cluster_split must be 1, or 2 with split_warpgroups"):
        KernelSpec(head_dim=64, dtype="float16", causal=False, block_m=64, split_warpgroups=True, cluster_split=4)
    with pytest.raises(ValueError, match="bulk_store must be off"):
        KernelSpec(head_dim=64, dtype="float16", causal=False, block_m=64, split_warpgroups=True, cluster_split=2,
                   bulk_store=True)
    spec = KernelSpec(head_dim=64, dtype="float16", causal=False, block_m=64, split_warpgroups=True, cluster_split=2)
    plain = spec.retiled(cluster_split=1)
    assert spec.defines()["CLUSTER_SPLIT"] == 2 and plain.defines()["CLUSTER_SPLIT"] == 1
    assert spec.smem_bytes - plain.smem_bytes == 18432  # 128 threads x (32 O floats + 4) x 4 bytes


def test_short_items_fill_the_last_round_of_192_row_grids():
    """B1 H32 S2048 D64: 352 items of 192 rows make 2.67 rounds on 132 SMs; 8 tall and 4 short blocks per
    head leave no SM a third tall item (model: 72.4 -> 66.7 tiles of makespan)."""
    from bsk_cupy.dispatch import short_items_plan

    def plan(prob, masked=False):
        spec, splits = choose_variant(prob, 132, mask_block=128 if masked else None)
        return short_items_plan(prob, spec, splits, 132, masked)

    assert plan(problem(1, 32, 2048, 64)) == 8
    assert plan(problem(2, 16, 2048, 64)) == 8
    assert plan(problem(1, 16, 4096, 64)) == 16
    assert plan(problem(1, 16, 8192, 64)) == 35      # 192-row tiles only because of this plan (select_spec)
    assert plan(problem(1, 32, 2048, 64, causal=True)) is None        # causal items come longest first
    assert plan(problem(1, 32, 2048, 64, window=(256, 0))) is None     # windowed items differ in length
    assert plan(problem(1, 32, 2048, 64), masked=True) is None          # 128-row mask blocks
    assert plan(problem(1, 32, 2048, 128)) is None                      # no 192-row tiles at head dim 128
    assert plan(problem(1, 8, 2048, 64)) is None                        # one item per SM at most
    assert plan(problem(2, 16, 16384, 64)) is None                      # many rounds: little to gain
    assert plan(problem(4, 32, 2048, 64)) is None                       # under 3% predicted


def test_claimed_makespan_follows_the_claim_order():
    from bsk_cupy.dispatch import _claimed_makespan

    assert _claimed_makespan([3.0, 3.0, 3.0], 2) == 6.0
    assert _claimed_makespan([3.0, 3.0, 1.0, 1.0, 1.0], 2) == 5.0    # the short ones fill in after the long
    assert _claimed_makespan([1.0, 1.0, 1.0, 3.0, 3.0], 2) == 5.0
    assert _claimed_makespan([1.0, 1.0, 3.0, 3.0, 1.0], 2) == 5.0


def test_short_items_per_head_cover_the_rows_after_the_tall_blocks():
    from bsk_cupy.launch import short_items_per_head

    assert short_items_per_head(2048, 192, 8) == 4      # 1536 + 4 x 128
    assert short_items_per_head(2048, 192, 10) == 1     # 1920 + 128
    assert short_items_per_head(1000, 192, 2) == 5      # 384 + 616 rows: the last item holds 104
    assert short_items_per_head(300, 192, 0) == 3


@pytest.mark.parametrize("b,hkv,s,d,follows", [
    (1, 32, 2048, 64, True),      # 16 MiB of K and V
    (1, 12, 8192, 64, True),      # 24 MiB: at most half of L2 at head dim 64
    (1, 16, 8192, 64, False),     # 32 MiB: past half at head dim 64
    (1, 16, 4096, 128, True),     # 32 MiB: within two thirds at head dim 128
    (1, 8, 8192, 128, True),      # 32 MiB: the GQA mask of perf_sparse's SparseK rows
    (1, 16, 16384, 64, False),    # 64 MiB
    (2, 16, 8192, 64, False),
])
def test_rows_follow_the_row_order_while_k_and_v_fit_in_l2(b, hkv, s, d, follows):
    problem = AttentionProblem(batch=b, heads_q=hkv * 2, heads_kv=hkv, seqlen_q=s, seqlen_k=s, head_dim=d,
                               dtype="float16", causal=False, scale=0.125, layout="bhsd", device=0)
    assert follows_row_order(problem, 50 << 20) is follows


@pytest.mark.parametrize("hq,hkv,s,d,heads", [
    (16, 16, 8192, 128, 4),        # 4 MiB of K and V per head: four fit in a third of 50 MiB
    (16, 16, 16384, 128, 2),       # 8 MiB: two
    (16, 16, 16384, 64, 4),
    (32, 8, 16384, 128, 8),        # GQA: the 4 query heads of each KV head's group too
    (8, 8, 131072, 128, 1),        # 64 MiB per head: still one
])
def test_tail_heads_fit_a_third_of_l2(hq, hkv, s, d, heads):
    problem = AttentionProblem(batch=1, heads_q=hq, heads_kv=hkv, seqlen_q=s, seqlen_k=s, head_dim=d,
                               dtype="float16", causal=False, scale=0.125, layout="bhsd", device=0)
    assert tail_heads(problem, 50 << 20) == heads
