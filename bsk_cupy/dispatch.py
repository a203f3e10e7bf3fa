"""Choose the kernel variant and KV split for a checked problem, and cache launch plans per input buffers."""

from __future__ import annotations

import dataclasses
import heapq
import math
import threading
from collections import OrderedDict
from functools import lru_cache

from .compile.module import load_kernel
from .launch import SHORT_ROWS, LaunchPlan, short_items_per_head
from .mask_operand import retained, with_tail_order
from .specs import KernelSpec
from .validation import ArrayInfo, AttentionProblem

_PLAN_CACHE_SIZE = 256
_plans: "OrderedDict[tuple, LaunchPlan]" = OrderedDict()
_plans_lock = threading.Lock()


# Three consumer warpgroups (192-row query tiles, FlashAttention-3's choice at head dim 64) keep the tensor
# cores busier than two while one warpgroup's softmax runs: per query row a 192-row CTA is 1.11x as fast
# as a 128-row one (H100, one CTA per work item as benchmarks/compare_variants.py launches them by default,
# B2 H16 S16384 D64 after the 192-row max tree: 5420 / 5612 us in 32 rounds of 128 rows vs 4892 in 21
# rounds of 192; benchmarks/RESULTS.md, eighth session). The rules below were tuned on such launches; with
# the persistent CTAs get_plan launches their calls held on 15 of 16 shapes (RESULTS.md, eleventh session:
# B2 H16 S16384 read 5489-5528 us on 128 rows, 4826-4893 on 192).
_TALL_TILE_GAIN = 1.11
# What a work item costs besides its KV tiles (its Q load, first S and epilogue), in 128 x 128 tiles:
# with it the estimate below calls the measured cases (eighth session: 192 rows 4-7% faster at B1 H32
# S2048, B2 H16 S2048, B1 H16 S4096, B2 H32 S1024; 128 rows 1-5% faster at B1 H16 S8192). Of the eleven
# shapes it moves to 192 rows (ninth session, tools/tall_tile_flip_ab.sh), eight ran 2.5-9% faster, two
# tied and one, B1 H32 S4096 (estimates 0.5% apart), ran 1-3% slower.
_ITEM_COST_TILES = 2.5
# Causal grids: the same gain, but a fixed cost per item of one tile. Fitted to the nine causal D64 shapes
# measured on persistent CTAs (RESULTS.md, eleventh and thirteenth sessions), it calls all nine (192 rows
# 12.5% faster at B1 H4 S8192, 4% at B1 H16 S8192 and B2 H8 S8192, 1-2% at B4 H32 S4096, 7% at B2 H16
# S16384, a tie at B4 H16 S2048; 128 rows 3% faster at B4 H32 S512 and B8 H16 S512, 10% at B1 H4 S16384);
# with 2.5, as for uniform rows, it misses the two S512 shapes.
_CAUSAL_ITEM_COST_TILES = 1.0
# Past this many items per SM, claims balance any item mix; the estimate is then the mean load per SM.
_CLAIM_MODEL_MAX_ROUNDS = 64


def select_spec(problem: AttentionProblem, sms: int = 132, masked: bool = False) -> KernelSpec:
    """The variant for ``problem`` on a GPU with ``sms`` multiprocessors.

    Tiles are 128 keys by 128 query rows (two consumer warpgroups), or 192 rows (three) at head dim 64 when
    that finishes sooner: a grid's time is estimated as its rounds of work items (one CTA per SM) times
    what an item costs, its KV tiles times its rows (discounted by the measured gain of the taller tile)
    plus a fixed cost per item. Round quantisation decides most shapes (B1 H32 S2048: 3 rounds of 192 beat 4
    of 128, whose items pay the fixed cost once more). Where ``short_items_plan`` would re-plan the 192-row
    grid (its last round filled with 128-row items), the 192-row estimate is that plan's makespan: B1 H16
    S8192 D64, 8 rounds of 128 rows against 5.2 of 192, is 532 tiles of work against 489 so (H100, persistent
    CTAs, six listings in both orders, RESULTS.md twenty-sixth session: 677.7 -> 647.6 us, faster in 6 of
    6; B1 H8 S16384 -2.7%, B1 H4 S32768 -3.1%, B2 H48 S1024 (two Q buffers) -3.1%, B2 H8 / B4 H4 / B8 H2
    S8192 -3.2 / -1.2 / +1.0%). Causal items differ in length (their KV tiles end at the diagonal) and are
    claimed longest first per head, so causal grids are estimated by replaying those claims
    (``_causal_estimate``). Block masks, whose query blocks are 128 rows, always use 128. Both fit in shared
    memory (84 / 92 / 166 KB) and in the register budgets without spills.
    """
    spec = KernelSpec(head_dim=problem.head_dim, dtype=problem.dtype, causal=problem.causal)
    if problem.head_dim != 64 or masked:
        return spec

    if problem.causal:
        heads = problem.heads_q * problem.batch
        taller = (_causal_estimate(problem.seqlen_q, problem.seqlen_k, heads, sms, 192)
                  < _causal_estimate(problem.seqlen_q, problem.seqlen_k, heads, sms, 128))
    else:
        tiles = math.ceil(problem.seqlen_k / 128)

        def estimate(block_m: int) -> float:
            rounds = math.ceil(query_blocks(problem, block_m) / sms)
            return rounds * _item_cost(tiles, block_m, _ITEM_COST_TILES)

        tall = estimate(192)
        if _short_items_apply(problem, query_blocks(problem, 192), sms):
            plan, makespan = _best_tall_plan(problem.seqlen_q, problem.seqlen_k, problem.heads_q * problem.batch, sms)
            if plan is not None:  # 192-row blocks then 128-row items (short_items_plan)
                tall = makespan
        taller = tall < estimate(128)
    if taller:
        return KernelSpec(head_dim=64, dtype=problem.dtype, causal=problem.causal, block_m=192)
    return spec


def _item_cost(tiles: int, block_m: int, fixed: float) -> float:
    """A work item's cost in 128 x 128 tiles of work: its KV tiles times its rows, 192-row tiles discounted
    by their measured gain, plus ``fixed``."""
    return tiles * block_m / 128 / (_TALL_TILE_GAIN if block_m == 192 else 1.0) + fixed


def _unwindowed(problem: AttentionProblem) -> bool:
    """Whether ``problem`` has no sliding window (every item then sees the same keys, causal aside)."""
    return problem.window is None or problem.window == (None, None)


@lru_cache(maxsize=256)
def _causal_estimate(seqlen_q: int, seqlen_k: int, heads: int, sms: int, block_m: int) -> float:
    """When a causal grid of ``block_m``-row items finishes, in 128 x 128 tiles of work: each item costs
    its KV tiles up to the diagonal (bottom-right aligned) times its rows, discounted by the taller tile's
    gain, plus a fixed cost; the items are claimed as the kernel numbers them, each head's longest first."""
    per_head = []
    for block in reversed(range(math.ceil(seqlen_q / block_m))):
        last_key = min((block + 1) * block_m, seqlen_q) - 1 + seqlen_k - seqlen_q
        per_head.append(_item_cost(max(last_key, -1) // 128 + 1, block_m, _CAUSAL_ITEM_COST_TILES))
    if len(per_head) * heads > _CLAIM_MODEL_MAX_ROUNDS * sms:
        return sum(per_head) * heads / sms
    return _claimed_makespan(per_head * heads, sms)


def query_blocks(problem: AttentionProblem, block_m: int) -> int:
    """Work items of ``problem`` without split-KV: its ``block_m``-row query blocks over every head and batch."""
    return math.ceil(problem.seqlen_q / block_m) * problem.heads_q * problem.batch


def persistent_ctas(sms: int) -> int:
    """Grid cap for persistent CTAs: one per SM, every call.

    Persistent CTAs load the next item while finishing the last and claim items from a device counter in
    index order (longest causal rows first), as the hardware would start one CTA per item. H100, one run
    (benchmarks/RESULTS.md, fourth session), one CTA per item -> persistent: B8 H16 S512 D64 35.4 -> 31.4
    us, B4 H32 S4096 D128 2116 -> 2090, causal 1177 -> 1136, B8 H16 S2048 D128 causal 344 -> 325, block
    masks at density 0.3: B1 H32 S2048 D64 49.9 -> 45.3, B2 H16 S4096 D128 causal 213 -> 201; the worst
    case seen was a tie (B1 H16 S8192 D128 masked 354 -> 356). A static hand-out (CTA c takes c, c + 132,
    ...) lost on causal rows (1177 -> 1296) and tied on dense ones.
    """
    return sms


_MAX_SPLITS = 16
_MIN_TILES_PER_SPLIT = 4


@lru_cache(maxsize=None)
def _device_properties(device: int) -> dict:
    """``cudaGetDeviceProperties`` of ``device``, queried once: a plan is built for every new set of buffers,
    and the properties do not change."""
    import cupy

    return cupy.cuda.runtime.getDeviceProperties(device)


def sm_count(device: int) -> int:
    """Streaming multiprocessors of ``device`` (132 on an H100 SXM)."""
    return int(_device_properties(device)["multiProcessorCount"])


def l2_bytes(device: int) -> int:
    """L2 cache of ``device`` in bytes (50 MiB on an H100 SXM)."""
    return int(_device_properties(device)["l2CacheSize"])


def follows_row_order(problem: AttentionProblem, l2: int) -> bool:
    """Whether a block-masked call claims its rows in the mask's ``row_order`` (longest first) rather than
    in the kernel's index order with only the last heads longest first (``tail_heads``): only while the K
    and V of every head fit in two thirds of the ``l2``-byte L2 cache together, half of it at head dim 64.

    Sorting by length interleaves the heads, so the CTAs at work read the K and V of all of them at once.
    H100 (50 MiB L2), random masks at d 0.1 and 0.25, persistent CTAs, both orders in one process,
    alternated (benchmarks/RESULTS.md, fourteenth session): with 16 MiB of K and V the row order ran 5-15%
    faster (B1 H32 S2048 D64, B1 H16 S4096 D64); with 32 MiB it tied (B1 H16 S8192 D64) or ran 5% faster
    on average (B1 H16 S4096 D128); with 64 MiB it ran 3-10% slower (B1 H16 S16384 D64, S8192 D128), its
    tiles read from DRAM. Against the tail order (eighteenth session, tools/l2_edge_order_ab.sh, three
    rounds): at head dim 64 and 32 MiB the tail order ran 4.6-8.7% faster at d 0.5 (B1 H32 S4096, H16
    S8192, H8 S16384; -5.3% in a second run at S8192) and within 2% at d 0.1; at 24 MiB -2.0 to +3.2%; at
    head dim 128 the row order stayed ahead (B1 H8 S8192 d 0.1 +5.2% for the tail, B1 H16 S4096 +3.2%).
    """
    kv_bytes = 2 * problem.batch * problem.heads_kv * problem.seqlen_k * problem.head_dim * 2
    return (2 if problem.head_dim == 64 else 3) * kv_bytes <= (1 if problem.head_dim == 64 else 2) * l2


def tail_heads(problem: AttentionProblem, l2: int) -> int:
    """For a block mask that does not follow its row order throughout (``follows_row_order``): how many of
    its last (b, h) (batch entry, query head) run their rows longest first after the rest ran in the
    kernel's item order (``mask_operand.tail_item_order``): those whose K and V fit in a third of the
    ``l2``-byte L2 cache (each KV head's, times the query heads that share it), at least one.

    In item order the last rows claimed are of any length, and a long one claimed late holds one SM while
    the others idle: replaying the claims (persistent CTAs, 1.8 us per D128 tile and 3.3 per item) puts
    the makespan 7-14% above the average CTA's work at B1 H16 S8192 D128, 4-6% at S16384, against 1-3%
    with the tail longest first. H100, random masks, item order against the last two and four heads
    longest first, both listings, twice (RESULTS.md, seventeenth session): B1 H16 S8192 D128 -4.6 / -10.8
    / -3.1% at d 0.1 / 0.25 / 0.5 (four heads), B1 H16 S16384 D64 -2.5 / -3.7 / -1.1% (four), S16384 D128
    -1.3 / -0.6 / -1.2% (two). Masks broadcast over heads take the same tail over their heads' items
    (eighteenth session, tools/broadcast_tail_ab.py): a causal document mask -12.4% at B1 H16 S8192 D128,
    -7.5% at S16384 D64, -6.7% at S16384 D128; a sliding window (rows of equal length) within +-2%.
    """
    kv_head_bytes = 2 * problem.seqlen_k * problem.head_dim * 2
    return max(1, (l2 // 3) // kv_head_bytes) * (problem.heads_q // problem.heads_kv)


def choose_splits(problem: AttentionProblem, spec: KernelSpec, sms: int, masked: bool) -> int:
    """How many CTAs share one query block's KV tiles (split-KV; 1 = no split).

    One CTA per (query block, head, batch) leaves most of the GPU idle when there are few of them, and each
    walks its KV tiles one after another. Splitting shortens that chain s-fold for a fixed price: fp32
    partials written and re-read through L2 and a combine pass, about as much as 3-4 tiles of work (H100,
    benchmarks/RESULTS.md: B1 H8 S512 D64, 4 tiles: 9.3 us unsplit, 9.6 us in 4 splits; B1 H8 Sq128
    Sk8192, 64 tiles: 78.7 us unsplit, 18.8 us in 16 splits). So: split only while the CTAs fill less than
    half of the SMs, as many ways as fit in one wave (one CTA per SM), keeping at least 4 KV tiles per split,
    at most 16 ways. Block-sparse calls do not split: their tile counts live on the device.
    """
    ctas = query_blocks(problem, spec.block_m)
    tiles = math.ceil(problem.seqlen_k / spec.block_n)
    if masked or 2 * ctas > sms:
        return 1
    splits = min(sms // ctas, tiles // _MIN_TILES_PER_SPLIT, _MAX_SPLITS)
    return splits if splits >= 2 else 1


def split_warpgroups_spec(problem: AttentionProblem, spec: KernelSpec, splits: int, sms: int,
                         masked: bool) -> KernelSpec:
    """``spec``, or its 64-row variant whose two consumer warpgroups split each block's KV tiles.

    A grid of 128-row blocks that fills at most half the SMs, and is not split over KV (few tiles per
    block), leaves most SMs idle while each CTA walks its tiles: 64-row blocks give twice the CTAs, each
    warpgroup half the tiles, for a shared-memory merge of two partial results. Block masks (128-row query
    blocks) keep 128; head dim 256 too (its merge buffer would not fit in shared memory). Each warpgroup
    gets two K/V stages (KernelSpec.stages); at head dim 128 that takes 64-key tiles, which beat 128-key
    ones with one stage each (H100, same run: B1 H8 S512 D128 9.9 -> 9.6 us, causal 10.1 -> 9.3, B1 H4
    S1024 D128 17.5 -> 14.1; RESULTS.md, sixth session).
    """
    items = query_blocks(problem, spec.block_m)
    if masked or splits != 1 or spec.block_m != 128 or spec.head_dim == 256 or 2 * items > sms:
        return spec
    return _split_warpgroup_tiles(spec)


def _split_warpgroup_tiles(spec: KernelSpec) -> KernelSpec:
    """The split-warpgroup variant of a 128-row ``spec``: 64-row blocks, with 64-key tiles at head dim 128
    (four stages fit) and 128-key tiles at 64."""
    return spec.retiled(block_m=64, block_n=64 if spec.head_dim == 128 else 128, split_warpgroups=True)


# Split-KV through global memory costs about 3 KV tiles of chain for its partials and combine (see
# choose_splits); the cluster merge, one shared-memory hand-over between two SMs, much less.
_GLOBAL_COMBINE_TILES = 3


def cluster_split_spec(problem: AttentionProblem, spec: KernelSpec, splits: int, sms: int,
                       masked: bool) -> KernelSpec:
    """``spec`` (128-row tiles, ``splits`` the split-KV count chosen for them), or its variant on split
    warpgroups whose KV tiles a cluster of two CTAs splits as well: four warpgroups per 64-row block,
    merged through shared memory (within each CTA, then across the two, each merging and storing half the
    rows).

    Taken while the 64-row blocks, two CTAs each, fit in one wave, there is a KV tile for each of the four
    warpgroups, and each warpgroup's chain of tiles is no longer than a CTA's under ``splits``-way split-KV
    plus that split's combine. H100, same run (RESULTS.md, seventh session; first form of the cross-CTA
    merge, which the row-split merge made 0.3-0.9 us faster): B1 H8 S512 D64 6.3 -> 5.9 us (split
    warpgroups alone), B1 H8 S512 D128 9.0 -> 8.3; B1 H4 S1024 D64 11.4 (2-way split-KV) / 9.0 (split
    warpgroups) -> 7.1, B1 H2 S2048 D64 13.2 (4-way) -> 9.7, B1 H4 S1024 D128 15.6 -> 10.8.
    """
    if masked or spec.block_m != 128 or spec.head_dim == 256:
        return spec
    clustered = _split_warpgroup_tiles(spec).retiled(cluster_split=2)
    items = query_blocks(problem, clustered.block_m)
    tiles = math.ceil(problem.seqlen_k / clustered.block_n)
    warpgroups = clustered.consumers * clustered.cluster_split
    chain = math.ceil(tiles / warpgroups) * clustered.block_n
    split_chain = (math.ceil(problem.seqlen_k / (spec.block_n * splits)) + _GLOBAL_COMBINE_TILES) * spec.block_n
    if clustered.cluster_split * items > sms or tiles < warpgroups or (splits > 1 and chain > split_chain):
        return spec
    return clustered


def mask_tile_spec(spec: KernelSpec, mask_block: int | None) -> KernelSpec:
    """``spec`` with tiles of a block mask's size: 64 x 64 masks run on split warpgroups with 64-key tiles
    (the two consumers of a 64-row query block take alternate listed blocks); 128 x 128 masks and calls
    without a mask keep ``spec``."""
    if mask_block != 64:
        return spec
    return spec.retiled(block_m=64, block_n=64, split_warpgroups=True)


# Two Q buffers save each item boundary's Q wait (1.0-1.4 us under load; RESULTS.md, tenth session), a few
# percent of an item of up to 16 KV tiles; longer items measured no gain (B1 H16 S4096, 32 tiles; B2 H16
# S16384, 128), so they keep one buffer and claim their items as late as ever.
_Q_BUFFERS_MAX_TILES = 16


def masked_two_q_spec(spec: KernelSpec) -> KernelSpec:
    """The two-Q form of the 128-row ``spec`` that runs block masks in row order (``q_buffers_spec`` (b)):
    at head dim 64 with four K/V stages instead of two, so that the loader runs up to four tiles ahead and a
    short item's first K and V are in flight before the item before it ends (at head dim 128 the second Q
    leaves room for two stages only).

    H100, random masks in row order, persistent CTAs, two / three / four stages in one process, both
    listings, twice (RESULTS.md, seventeenth session): d 0.1 B1 H32 S2048 D64 22.4 / 21.9 / 21.9 / 22.9 ->
    21.1 / 21.2 / 20.9 / 21.8 us, B4 H16 S2048 41.8 -> 40.1 on average, B1 H16 S8192 -1%, B1 H16 S4096 tied;
    d 0.25 within the listing-order spread (+-3%) on all four.
    """
    return dataclasses.replace(spec, q_buffers=2, stages=4 if spec.head_dim == 64 else spec.stages)


def q_buffers_spec(problem: AttentionProblem, spec: KernelSpec, splits: int, sms: int, masked: bool,
                   ordered_rows: bool = False) -> KernelSpec:
    """``spec``, or its variant with two Q buffers (``q_buffers=2``) where that helps, without a causal
    mask, with more work items than persistent CTAs, and either (a) head dim 64, 192-row tiles, no block
    mask, no window and at most 16 KV tiles per item, or (b) head dim 64 or 128 and a 128 x 128 block mask
    whose rows are claimed longest first (``ordered_rows``: the mask's row order is followed, or at head
    dim 64 the tail order of a mask past the L2 rule, ``tail_heads``). Every item
    then has the same KV tiles, or the next is one of the shorter ones left, so a CTA claims its next item
    as soon as the current one's loads are issued and its Q lands during the current item instead of after
    it (the kernel checks the same conditions).

    (b): H100, persistent CTAs, random masks in row order, one buffer -> two in one process, both orders
    (RESULTS.md, fourteenth session): B4 H16 S2048 D64 51.3 / 50.0 -> 42.9 / 43.4 us at d 0.1 and 74.1 /
    72.5 -> 64.5 / 67.2 at 0.25, B1 H16 S4096 -3 to -5%, B1 H32 S2048 -1 to -3%, B1 H16 S8192 -5% at d 0.1
    and tied at 0.25. Without the early claim (the twelfth and this session) two buffers gained nothing: the
    next Q went out only after the claim that followed the current item's loads. Head dim 128 (sixteenth
    session; the second 32 KiB Q fills the CTA's shared memory to 226 KiB): d 0.1 B1 H16 S4096 50.2 / 49.8
    -> 44.3 / 48.3 us, B2 H16 S2048 41.4 / 40.4 -> 37.8 / 38.4. Masks walked in item order (too large for
    L2) kept one buffer: claiming early there, which holds an item of any length, measured 1-8% slower at
    d 0.1 (B1 H16 S16384 D64 and D128, S8192 D128). Since they end longest first (``tail_heads``), head dim
    64 claims early there too (eighteenth session, tools/dispatched_ab.py, four rounds each): d 0.1 -3.0 to
    -5.9% at B1 H24 S8192, B2 H16 S8192 and B1 H32 S8192, d 0.25 -1.0%, d 0.5 +2.3% (two of four rounds
    faster), B1 H16 S16384 and S32768 within +-0.5%; head dim 128 keeps one buffer (+1.4 to +3.1% at B1 H16
    S8192 and S16384, d 0.1 and 0.25).

    Unmasked 128-row tiles keep one buffer: their bulk-store epilogue, staging the output through shared
    memory, already covers the next Q's landing, and there two buffers ran 0-8% slower (the earlier claim
    costs balance and buys nothing). H100, persistent CTAs, same processes (RESULTS.md, eleventh session), 192
    rows with one buffer -> two: B4 H32 S1024 D64 97.3 / 98.7 -> 93.0 / 90.5 us, B32 H32 S512 234.8 / 222.7
    -> 214.6 / 209.7, B2 H32 S1024 50.7 / 48.9 -> 50.4 / 45.9, B8 H16 S512 33.0 / 29.6 -> 28.4 / 27.0;
    B1 H32 S2048 and B8 H32 S1024 within the noise (3 of 5 pairs faster at B8 H32 S1024).
    """
    items = query_blocks(problem, spec.block_m)
    if problem.head_dim == 256 or problem.causal or splits > 1 or items <= persistent_ctas(sms):
        return spec
    if masked:
        ordered = ordered_rows and spec.block_m == 128 and not spec.split_warpgroups
        return masked_two_q_spec(spec) if ordered else spec
    tiles = math.ceil(problem.seqlen_k / spec.block_n)
    if (problem.head_dim != 64 or not _unwindowed(problem) or spec.block_m != 192
            or tiles > _Q_BUFFERS_MAX_TILES):
        return spec
    return dataclasses.replace(spec, q_buffers=2)


# Item heights are only re-planned for grids of a few rounds (where the last round's idle SMs are a large
# share), over the last few tall blocks of each head, and only for a predicted gain of 3% or more.
_SHORT_ITEMS_MAX_ROUNDS = 6
_SHORT_ITEMS_MAX_BLOCKS = 8
_SHORT_ITEMS_MIN_GAIN = 0.03


def _claimed_makespan(costs: list[float], ctas: int) -> float:
    """When the last of ``ctas`` persistent CTAs finishes items of these costs, claimed in list order by
    whichever CTA is free first (the kernel's device counter)."""
    free = [0.0] * ctas
    for cost in costs:
        heapq.heappush(free, heapq.heappop(free) + cost)
    return max(free)


@lru_cache(maxsize=256)
def _best_tall_plan(seqlen_q: int, seqlen_k: int, heads: int, sms: int) -> tuple[int | None, float]:
    """(tall blocks per head, or None for every block 192 rows; the claimed makespan in 128 x 128 tiles)."""
    tiles = math.ceil(seqlen_k / 128)
    tall, short = _item_cost(tiles, 192, _ITEM_COST_TILES), _item_cost(tiles, SHORT_ROWS, _ITEM_COST_TILES)
    m_blocks = math.ceil(seqlen_q / 192)
    # Now: every block 192 rows, claimed head by head (last block first), a last block of at most 128 rows
    # costing a short item (its third consumer idles).
    last_rows = seqlen_q - (m_blocks - 1) * 192
    per_head = [short if last_rows <= SHORT_ROWS else tall] + [tall] * (m_blocks - 1)
    now = _claimed_makespan(per_head * heads, sms)
    best, best_cost = None, now * (1 - _SHORT_ITEMS_MIN_GAIN)
    for tall_blocks in range(max(0, m_blocks - _SHORT_ITEMS_MAX_BLOCKS), m_blocks):
        shorts = short_items_per_head(seqlen_q, 192, tall_blocks) * heads
        cost = _claimed_makespan([tall] * (tall_blocks * heads) + [short] * shorts, sms)
        if cost < best_cost:
            best, best_cost = tall_blocks, cost
    return best, best_cost if best is not None else now


def _short_items_apply(problem: AttentionProblem, items: int, sms: int) -> bool:
    """Whether a grid of ``items`` 192-row items may be re-planned with short items: uniform rows (no causal
    mask, no window), more items than SMs and at most a few rounds of them. (``short_items_plan`` also needs
    the 192-row spec, no block mask and no split.)"""
    return not problem.causal and _unwindowed(problem) and sms < items <= _SHORT_ITEMS_MAX_ROUNDS * sms


def short_items_plan(problem: AttentionProblem, spec: KernelSpec, splits: int, sms: int,
                     masked: bool) -> int | None:
    """How many 192-row query blocks each head keeps when the rest of its rows become 128-row items
    (``LaunchPlan``'s ``tall_blocks``), or None to keep every block 192 rows.

    With a few rounds of 192-row items, the last round leaves SMs idle (B1 H32 S2048 D64: 352 items on 132
    SMs, 2.67 rounds). Short items numbered after every tall one fill that round instead: 8 tall and 4
    short blocks per head there give each SM 2 tall items, or 2 tall and 1 short, or 1 tall and 2 short.
    Each candidate is scored by the claims the kernel makes (``_claimed_makespan``), with the item costs of
    ``select_spec`` (a short item runs on two of the three consumers, as a 128-row tile). Uniform grids
    only (head dim 64 on 192-row tiles, no causal or block mask, no window, no split), whose items all have
    the same KV tiles: causal items already differ in length and come longest first.
    """
    if spec.block_m != 192 or masked or splits != 1:
        return None
    if not _short_items_apply(problem, query_blocks(problem, spec.block_m), sms):
        return None
    return _best_tall_plan(problem.seqlen_q, problem.seqlen_k, problem.heads_q * problem.batch, sms)[0]


def choose_variant(problem: AttentionProblem, sms: int, mask_block: int | None = None,
                   ordered_rows: bool = False) -> tuple[KernelSpec, int]:
    """The kernel variant and KV split count (``num_splits``) for ``problem`` on ``sms`` multiprocessors, under
    a block mask of ``mask_block`` x ``mask_block`` blocks (None: no mask) whose rows run in its row order
    (``ordered_rows``) or in index order."""
    masked = mask_block is not None
    spec = select_spec(problem, sms, masked)
    splits = choose_splits(problem, spec, sms, masked)
    clustered = cluster_split_spec(problem, spec, splits, sms, masked)
    if clustered is not spec:
        return clustered, clustered.cluster_split
    spec = mask_tile_spec(split_warpgroups_spec(problem, spec, splits, sms, masked), mask_block)
    spec = q_buffers_spec(problem, spec, splits, sms, masked, ordered_rows)
    return spec, (1 if spec.split_warpgroups else splits)


def get_plan(problem: AttentionProblem, q: ArrayInfo, k: ArrayInfo, v: ArrayInfo, mask=None,
             stream: int = 0) -> LaunchPlan:
    """The launch plan for this problem on these buffers (tensor maps encode the pointers); ``mask`` is a
    :class:`~bsk_cupy.mask_operand.MaskOperand` or None. A new plan for a mask that does not follow its row
    order throughout computes its tail order on ``stream`` (the caller's), where the mask was written."""
    key = (problem, q.ptr, q.strides, k.ptr, k.strides, v.ptr, v.strides, mask)
    with _plans_lock:
        plan = _plans.get(key)
        if plan is not None:
            _plans.move_to_end(key)
            return plan
    sms = sm_count(problem.device)
    ordered_rows = mask is not None and mask.row_order_ptr != 0
    if ordered_rows and query_blocks(problem, mask.block) <= persistent_ctas(sms):
        # Every item has a CTA of its own from the start, so the order decides nothing, but reading it
        # before the first load costs each CTA a global round trip: H100, one-wave masked grids (B1 H8
        # S1024 D64 to B1 H8 S2048 D128), tools/dispatched_ab.py tail=0, six rounds: -0.1 to -0.4 us
        # (1-2%) in 35 of 36 (RESULTS.md, eighteenth session).
        mask, ordered_rows = dataclasses.replace(mask, row_order_ptr=0), False
    if ordered_rows and not follows_row_order(problem, l2 := l2_bytes(problem.device)):
        mask = with_tail_order(mask, problem, tail_heads(problem, l2), stream)
        ordered_rows = problem.head_dim == 64  # the tail order's early claims pay at 64 only (q_buffers_spec)
    elif ordered_rows and not mask.order_checked:
        # A device row order no constructor made, unread on the host, as an item order over every (b, h):
        # the same claims for a permutation, and every item once for any other array (a row order that
        # repeated rows would leave the rows it missed unwritten).
        mask = with_tail_order(mask, problem, problem.batch * problem.heads_q, stream)
    spec, splits = choose_variant(problem, sms, mask.block if mask is not None else None, ordered_rows=ordered_rows)
    tall_blocks = short_items_plan(problem, spec, splits, sms, mask is not None)
    plan = LaunchPlan(load_kernel(spec, problem.device), problem, q, k, v, mask=retained(mask), num_splits=splits,
                      max_ctas=persistent_ctas(sms), tall_blocks=tall_blocks)
    with _plans_lock:
        # stored under the operand the plan keeps (retained): a MaskOperand compares and hashes without its
        # arrays, so later calls' operands find it
        _plans[key[:-1] + (retained(key[-1]),)] = plan
        while len(_plans) > _PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    return plan
