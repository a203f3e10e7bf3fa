// attn_fwd_sm90: attention forward for Hopper (sm_90a): dense, causal, sliding-window and block-sparse,
// optionally split over the KV sequence (split-KV); work items (query block, split, head, batch) walked by
// one CTA each or by persistent CTAs that claim them from a device counter.
//
// Math. For every batch b, query head h and query row i:
//   s_ij = scale * <q_i, k_j>   over the keys j that row i may see,
//   o_i  = sum_j softmax(s_i)_j v_j,      lse_i = log(sum_j exp(s_ij))   (natural log).
// Row i sees key j iff j < Sk, the offset r = j - i - (Sk - Sq) lies in [window_lo, window_hi] (CAUSAL caps
// it at 0: bottom-right aligned), and j's KV block is listed for i's query block when a block mask is
// given. A row that sees no key gets o_i = 0 and lse_i = -inf. Softmax is online (FlashAttention): running
// max and sum per row over raw scores; exponentials in base 2 with scale * log2(e) folded into one FFMA
// per score. Split-KV: each split runs that recurrence over a contiguous part of the row's KV tiles, and
// the last split to finish merges the parts (max-rescaled sums) in split order; with CLUSTER_SPLIT the
// splits are the two CTAs of a thread-block cluster, which trade halves of their parts through
// distributed shared memory, each merging and storing half of the rows.
//
// Layouts. Q (B, Hq, Sq, D), K/V (B, Hkv, Sk, D), any strides with a contiguous D; the host describes each
// as a 4-D TMA tensor map over (d, s, h, b) whose last three dimensions are ordered by stride, and
// `Params::coord_order_*` says where s, h and b sit. Query head h reads KV head h / heads_per_kv (GQA/MQA).
// O has Q's shape and the caller's layout (strides in Params); LSE is float32 (B, Hq, Sq), contiguous.
// Block mask: FlexAttention's int32 lists (counts (B', H', nQB), indices (B', H', nQB, nKB)), BLOCK_M-row
// blocks of BLOCK_M keys (128 x 128; 64 x 64 with WG_SPLIT's 64 x 64 tiles; at HEAD_DIM 256 each 128-key
// block is two 64-key tiles), broadcast through zero strides, mask head = query head / mask_head_div.
// Shared-memory tiles are stored as HEAD_DIM/64 chunks of [rows][64] 16-bit elements with the 128-byte
// swizzle that TMA writes and wgmma reads (each 8-row x 128-byte atom is 1024-byte aligned).
//
// Grid. Work items are (query block of BLOCK_M rows, split) x query heads x batch (see WorkItem). The
// 1-D grid has one CTA per item or, persistent, fewer (the host's choice): CTA c starts with item c, and
// its producer claims the next from Params::work_counter (or takes c + gridDim.x, ... without one), loading
// its Q and K/V while the consumers finish the previous item. Claims come in item order, so the longest
// causal query blocks start first, as the hardware would start one CTA per item; block-mask items follow
// the mask's row order when it has one (its rows with the most listed blocks first), or a list of the
// items themselves (Params::mask_order_items: the host's tail order, item order but for the last heads).
// Q_BUFFERS 2 (head dim 64 or 128, more items than CTAs, every item with the same KV tiles or a block
// mask's items in a given order): the loader copies each claim and lets the next item be claimed at once, and
// that item's Q loads into the other buffer during the current item instead of after it. On 192-row tiles
// the host may make each head's last rows 128-row items, numbered after every 192-row one
// (Params::tall_blocks), so that they fill the last round of a grid of a few rounds; there, and on the last
// rows of Sq, a consumer whose 64 rows lie past the item's idles (idle_item). CLUSTER_SPLIT: clusters of
// two consecutive CTAs, one item each (no persistence), the two splits of one query block. Rows and keys
// past Sq / Sk are zero-filled by TMA and masked. The kernel supports programmatic dependent launch:
// barrier set-up overlaps the previous kernel, global memory waits for it (common/pdl.cuh).
//
// Warpgroups (128 threads each, setmaxnreg budgets in attn/config.cuh).
//   WG0  producer: one thread (warp 1) claims the items and decodes each (its KV schedule: a block range,
//        or the mask's lists) into shared memory; another (warp 0) hands each to the consumers in a
//        shared-memory slot (the item and its tile count; -1 ends the loop) and issues TMA loads: Q (once
//        the consumers release the previous one), then K and V tiles into a STAGES-deep ring with
//        separate full (transaction bytes) and empty (consumer arrivals) barriers for K and V; each
//        stage's block index goes to shared memory before its K load is armed.
//   WG1+ consumers: two (BLOCK_M 128) or three (192, head dim 64), each owning 64 query rows, or (WG_SPLIT,
//        BLOCK_M 64) two sharing the block's rows, each taking every other KV tile, merged at the end
//        through shared memory (named barriers consumers + 2 and + 3); with CLUSTER_SPLIT warpgroup 0
//        of each CTA of the cluster then sends the rows the other keeps into the other's shared memory
//        (st.async, completing on an mbarrier there) and merges and stores the rows it keeps. Iteration t
//        issues S_t = Q K_t^T (wgmma, shared/shared) and O += P_{t-1} V_{t-1} (wgmma, P from registers, V
//        N-major), waits for S_t only, masks, and runs the softmax of S_t while the PV product runs
//        (FlashAttention-3 intra-warpgroup pipelining); the consumers also take turns, in a ring, issuing
//        GEMMs (ping-pong, named barriers 1..consumers). Epilogue: O / l and LSE to global memory, or the
//        split-KV partials and, in the last split, the combine (the next named barrier). With BULK_STORE
//        (128-row tiles) O goes out through shared memory, one cp.async.bulk per warpgroup where the
//        rows of a head are contiguous (at head dim 64 the staging rows are written without bank
//        conflicts, epilogue.cuh stage_row), else from registers.
//
// Shared memory (bytes), STAGES = 2. SharedStorage rounds up to its 1024-byte alignment; the host adds
// 1024 more so the dynamic base can be aligned (bsk_cupy/specs.py computes the same, SMEM_BYTES checks it).
// Staging holds 64 rows of HEAD_DIM * 2 bytes per storing warpgroup with BULK_STORE (by default the
// 128-row tiles at head dim 64 and 128; bsk_cupy/specs.py), else 16 bytes:
//   | HEAD_DIM | BLOCK_M x BLOCK_N | Q      | K ring | V ring | barriers etc. | staging | launched with |
//   | 64       | 128 x 128         | 16 384 | 32 768 | 32 768 | 208 + 16      | 16 384  | 100 352       |
//   | 64       | 192 x 128         | 24 576 | 32 768 | 32 768 | 208 + 16      | 16      | 92 160        |
//   | 128      | 128 x 128         | 32 768 | 65 536 | 65 536 | 208 + 16      | 32 768  | 198 656       |
//   | 256      | 128 x 64          | 65 536 | 65 536 | 65 536 | 208 + 16      | 16      | 198 656       |
// WG_SPLIT (64-row blocks: Q 8 192 / 16 384) has the exchange of 128 x (HEAD_DIM / 2 + 4) floats instead
// of 16 bytes, and four stages where they fit (two per warpgroup): 159 744 bytes at head dim 64, and
// 184 320 with two stages at 128; with BLOCK_N 64 (the 64 x 64 tiles of 64 x 64 block masks; S = Q K^T by
// m64n64k16) the K/V tiles halve and both head dims take four stages: 94 208 and 184 320. CLUSTER_SPLIT
// adds a second exchange of the same size, last in SharedStorage (178 176 bytes at head dim 64 with
// 64 x 128 tiles, 219 136 at 128 with 64 x 64); other variants end with 16 + 8 unused bytes. Q_BUFFERS 2
// adds a second Q (16 384 / 24 576 bytes at head dim 64, 32 768 at 128: 231 424 bytes, within the 232 448
// a CTA may have), two more Q barriers and item slots, and last the loader's 48-byte copy of a claim. The
// head-dim-64 two-Q kernel that runs block masks in row order has four stages: 183 296 bytes.
//
// Files: attn/config.cuh (macros, constants, register budgets, named barriers), attn/params.cuh (Params,
// work-item types, SharedStorage), attn/schedule.cuh (items, claims, KV schedules), attn/load.cuh (the
// producer's TMA loads), attn/tile_math.cuh (GEMM issue, masks, softmax), attn/epilogue.cuh (stores,
// split-KV combine, WG_SPLIT and cluster merges), attn/trace.cuh (the optional probes: launch timeline,
// TRACE 1; per-tile cycles, TRACE 2); this file: the consumer loop and the kernel entry.
#include "attn/config.cuh"
#include "attn/params.cuh"
#include "attn/schedule.cuh"
#include "attn/load.cuh"
#include "attn/tile_math.cuh"
#include "attn/epilogue.cuh"
#include "attn/trace.cuh"

namespace attn {

// Ping-pong between the consumer warpgroups (as in FlashAttention-3): they take turns, in a ring, issuing
// their GEMMs, so the GEMMs of one run on the tensor cores while the others do their softmax. Warpgroup w
// waits on barrier kSchedulerBarrier + w; its predecessor in the ring arrives on it.
BSK_DEVICE void scheduler_wait(int wg) {
    if (kPingPong) named_barrier_sync(kSchedulerBarrier + wg, kSchedulerThreads);
}

BSK_DEVICE void scheduler_pass(int wg) {
    if (kPingPong) named_barrier_arrive(kSchedulerBarrier + (wg + 1) % kConsumers, kSchedulerThreads);
}

// Consumer warpgroup `wg` of a 192-row tile on an item whose rows end before its own (a short item, or
// the last rows of Sq): it computes and stores nothing, but keeps the rings in step as compute would:
// releases its Q buffer, takes and passes its ping-pong turn once per tile, and releases each K and V stage
// once it has landed (arriving earlier could complete a stage's empty phase of a later use).
BSK_DEVICE void idle_item(SharedStorage& smem, int wg, int tiles, int q_buffer, uint32_t& ring) {
    mbar_arrive(&smem.q_empty[q_buffer]);
    for (int t = 0; t < tiles; ++t) {
        const int stage = t % kStages;
        mbar_wait(&smem.k_full[stage], stage_parity(ring, stage));
        ring ^= 1u << stage;
        scheduler_wait(wg);
        scheduler_pass(wg);
        mbar_arrive(&smem.k_empty[stage]);
        mbar_wait(&smem.v_full[stage], stage_parity(ring, stage) ^ 1);
        mbar_arrive(&smem.v_empty[stage]);
    }
}

// Consumer warpgroup `wg` (0-based among consumers), the work item in `slot` (its Q barrier passed): 64
// query rows of the block over its KV tiles (`ring` as in `load`, updated). The item is read again from
// shared memory for the epilogue rather than kept live through the tile loop (three consumers have 160
// registers each).
// Intra-warpgroup pipelining (FlashAttention-3): iteration t issues S_t = Q K_t^T and O += P_{t-1} V_{t-1}
// together, waits for S_t only, and runs the softmax of S_t while P_{t-1} V_{t-1} is still on the tensor
// cores. O is rescaled for tile t-1 between the two issues, while S_t runs (P_{t-2} V_{t-2}, the last
// product on O, has completed). `first_item`: the CTA's first (for the timeline probe alone).
BSK_DEVICE void compute(const Params& p, SharedStorage& smem, int wg, const ItemSlot& slot, uint32_t& ring,
                        bool first_item) {
    const int item_tiles = slot.tiles;
    // This warpgroup's tiles and the stage of its u-th: all of them, or (WG_SPLIT) every other one, tile t
    // of the item in stage t % STAGES as the producer loads it (warpgroup w's stages: w, w + 2, ...).
    const int tiles = kSplitWarpgroups ? (item_tiles + 1 - wg) / 2 : item_tiles;
    auto stage_of = [wg](int u) { return kSplitWarpgroups ? wg + 2 * (u % (kStages / 2)) : u % kStages; };
    const int row_offset = kSplitWarpgroups ? 0 : wg * kRowsPerWarpgroup;
    const int wg_first_row = item_first_row(slot.item) + row_offset;
    const int q_buffer = (ring >> kRoundShift) % kQBuffers;
    // On 192-row tiles, a warpgroup past the item's rows (a short item, or the end of Sq) idles; under
    // split-KV every warpgroup writes its partial for the combine.
    if (kShortItems && p.num_splits == 1 && row_offset >= item_rows(p, slot.item)) {
        idle_item(smem, wg, item_tiles, q_buffer, ring);
        return;
    }
    const uint32_t q_wg = smem_addr(smem.q[q_buffer]) + row_offset * kChunkRowBytes;

    float o[kChunks][32];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
        for (int e = 0; e < 32; ++e) o[c][e] = 0.f;
    }
    RowState st = {{BSK_NEG_INF, BSK_NEG_INF}, {0.f, 0.f}, {1.f, 1.f}};
    if (tiles == 0) mbar_arrive(&smem.q_empty[q_buffer]);
    if (tiles > 0) {
        float s[kBlockN / 2];
        uint32_t p_regs[kBlockN / 16][4];
        // `ring` counts K uses; V of tile t-1 is waited for after K of tile t - 1 flipped its stage's bit.
        const int first_stage = stage_of(0);
        mbar_wait(&smem.k_full[first_stage], stage_parity(ring, first_stage));
        ring ^= 1u << first_stage;
        int key0 = smem.kv_block[first_stage] * kBlockN;
        scheduler_wait(wg);
        wgmma_fence();
        issue_qk(s, q_wg, smem_addr(smem.k[first_stage]));
        scheduler_pass(wg);
        wgmma_wait<0>();
        wgmma_fence_operands(s);
        if (wg == 0 && threadIdx.x % 128 == 0) {
            trace_mark(kTraceFirstS);
            if (first_item) trace_mark(kTraceFirstItemS);
        }
        mbar_arrive(&smem.k_empty[first_stage]);
        mask_tile(s, p, key0, wg_first_row);
        softmax_step(s, st, p.scale_log2);
        pack_p(p_regs, s);
        for (int t = 1; t < tiles; ++t) {
            const int stage = stage_of(t), prev_stage = stage_of(t - 1);
            tile_mark(wg, t, kTileTop);
            mbar_wait(&smem.k_full[stage], stage_parity(ring, stage));
            mbar_wait(&smem.v_full[prev_stage], stage_parity(ring, prev_stage) ^ 1);
            tile_mark(wg, t, kTileLoaded);
            ring ^= 1u << stage;
            key0 = smem.kv_block[stage] * kBlockN;
            scheduler_wait(wg);
            tile_mark(wg, t, kTileTurn);
            wgmma_fence();  // no branch may sit between a fence and its issues (ptxas C7519)
            issue_qk(s, q_wg, smem_addr(smem.k[stage]));
            rescale(o, st);  // while S_t is on the tensor cores (P_{t-2} V_{t-2} has completed)
            wgmma_fence();
            issue_pv(o, p_regs, smem_addr(smem.v[prev_stage]));
            scheduler_pass(wg);
            tile_mark(wg, t, kTileIssued);
            wgmma_wait<1>();                       // S_t ready; P_{t-1} V_{t-1} may still run
            wgmma_fence_operands(s);
            tile_mark(wg, t, kTileScores);
            mbar_arrive(&smem.k_empty[stage]);
            mask_tile(s, p, key0, wg_first_row);
            softmax_step(s, st, p.scale_log2);
            tile_mark(wg, t, kTileSoftmax);
            wgmma_wait_fenced<0>(p.seqlen_k);      // P_{t-1} V_{t-1} landed: O and P may change
            fence_o(o);
            fence_p(p_regs);
            tile_mark(wg, t, kTilePV);
            mbar_arrive(&smem.v_empty[prev_stage]);
            pack_p(p_regs, s);
            tile_mark(wg, t, kTileEnd);
        }
        mbar_arrive(&smem.q_empty[q_buffer]);  // every S of this item has landed: this Q buffer is free
        const int last_stage = stage_of(tiles - 1);
        mbar_wait(&smem.v_full[last_stage], stage_parity(ring, last_stage) ^ 1);
        rescale(o, st);
        wgmma_fence();
        issue_pv(o, p_regs, smem_addr(smem.v[last_stage]));
        wgmma_wait<0>();
        fence_o(o);
        mbar_arrive(&smem.v_empty[last_stage]);
        if (wg <= 1 && threadIdx.x % 128 == 0) trace_mark(wg == 0 ? kTraceLastPV : kTraceLastPV1);
    }
    if (kSplitWarpgroups && !merge_warpgroups(smem, o, st, wg, p.scale_log2)) return;
    if (kClusterSplit > 1 && !merge_cluster(smem, o, st, p.scale_log2)) return;
    if (kSplitWarpgroups && threadIdx.x % 128 == 0) trace_mark(kTraceMerged);
    // With four slots the item is read again by the round in `ring`: a pointer kept across the loop spills.
    const WorkItem item = kItemSlots == 2 ? slot.item : smem.items[ring >> kRoundShift].item;
    if (kClusterSplit == 1 && p.num_splits > 1) {
        split_store(p, smem, wg, o, st, wg_first_row, item_block(item), item.split, item.head, item.batch);
    } else {
        float row_max_log2[2], row_sum[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            row_max_log2[i] = st.max[i] * p.scale_log2;
            row_sum[i] = quad_sum(st.sum[i]);
        }
        store(p, smem, wg, o, row_max_log2, row_sum, wg_first_row, item.head, item.batch);
    }
    if ((kSplitWarpgroups || wg == 0) && threadIdx.x % 128 == 0) trace_mark(kTraceStored);
}

}  // namespace attn

#if CLUSTER_SPLIT > 1
#define ATTN_CLUSTER_DIMS __cluster_dims__(CLUSTER_SPLIT, 1, 1)
#else
#define ATTN_CLUSTER_DIMS
#endif

extern "C" __global__ void __launch_bounds__(attn::kThreads, 1) ATTN_CLUSTER_DIMS
attn_fwd_sm90(const __grid_constant__ attn::Params p) {
    using namespace attn;
    extern __shared__ uint8_t smem_raw[];
    SharedStorage& smem = *reinterpret_cast<SharedStorage*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) &
                                                            ~static_cast<uintptr_t>(1023));
    const int warpgroup = threadIdx.x / 128;
    // The host never launches these (bsk_cupy/launch.py): split warpgroups split KV only across a cluster,
    // whose CTAs take one item each, the two splits of one query block.
    if (kSplitWarpgroups && p.num_splits != kClusterSplit) __trap();
    if (kClusterSplit > 1 && static_cast<int>(gridDim.x) != p.num_items) __trap();

    if (threadIdx.x == 0) {
        trace_mark(kTraceEntry);
        for (int b = 0; b < kQBuffers; ++b) {
            mbar_init(&smem.q_full[b], 1);
            mbar_init(&smem.q_empty[b], kConsumerThreads);
        }
        mbar_init(&smem.claim_full, 1);
        mbar_init(&smem.claim_empty, 1);
        for (int s = 0; s < kStages; ++s) {
            mbar_init(&smem.k_full[s], 1);
            mbar_init(&smem.v_full[s], 1);
            mbar_init(&smem.k_empty[s], kStageConsumerThreads);
            mbar_init(&smem.v_empty[s], kStageConsumerThreads);
        }
        if (kClusterSplit > 1) {
            mbar_init(&smem.cluster_full, 1);
            mbar_arrive_expect_tx(&smem.cluster_full, kClusterExchangeBytes / 2);  // the other CTA's half
        }
        fence_barrier_init();
        tma_prefetch_descriptor(&p.tma_q);
        tma_prefetch_descriptor(&p.tma_k);
        tma_prefetch_descriptor(&p.tma_v);
    }
    if (threadIdx.x == 32 && p.mask_num == nullptr) claim_first<false>(p, smem);
    // Everything up to each warpgroup's grid wait below (barrier set-up, the first decode without a block
    // mask, the register hand-over) touches only shared memory, parameters and registers, so with
    // programmatic dependent launch it overlaps the previous kernel's tail; global memory (masks included)
    // only after the wait, which is then followed by nothing but the work.
    __syncthreads();
    if (kClusterSplit > 1) cluster_arrive();  // this CTA's barriers are ready (merge_cluster waits for it)

    // The producer claims the work items and hands each to the consumers with its Q (an ItemSlot, then
    // q_full), ending with a slot of -1 tiles; both sides track the same ring phases. An item with no
    // tiles loads nothing (its rows are written as 0 / -inf).
    // (Nothing is kept across setmaxnreg or the item loops that can be recomputed: the producer has 24-32
    // registers, three consumers 160 each, and ptxas spills a value live across either.)
    if (warpgroup == 0) {
        warpgroup_release_registers<kProducerRegisters>();
        grid_dependency_wait();
        grid_dependents_launch();
        if (threadIdx.x == 0) trace_mark(kTraceGridWait);
        if (threadIdx.x == 32) {
            if (p.mask_num != nullptr) claim_first<true>(p, smem);  // the mask's lists are global memory
            trace_mark(kTraceFirstClaim);
            claim_items(p, smem);
        }
        if (threadIdx.x != 0) return;
        uint32_t ring = 0;
        for (int round = 0;; ++round) {
            mbar_wait(&smem.claim_full, round & 1);
            // Two Q buffers, more items than CTAs, and items that are uniform (uniform_items) or claimed
            // longest first (a block mask's row or tail order: an early claim holds one of the shorter items
            // left): the loader works from its own copy of the claim and lets the claiming thread decode the
            // next item at once, so that the next Q goes out as soon as this item's loads are issued. Otherwise
            // the next claim waits for those loads, as the longest remaining items should go to whichever
            // CTA frees first (and with one item per CTA there is no next Q to fetch).
            const bool claim_early = kQBuffers > 1 &&
                                     (uniform_items(p) || (kTakesBlockMasks && p.mask_row_order != nullptr)) &&
                                     p.num_items > static_cast<int>(gridDim.x);
            if (kQBuffers > 1) smem.loading = smem.claim;
            if (claim_early) mbar_arrive(&smem.claim_empty);
            const int q_buffer = round % kQBuffers;
            mbar_wait(&smem.q_empty[q_buffer], ((round / kQBuffers) & 1) ^ 1);
            ItemSlot& slot = smem.items[round % kItemSlots];
            const Claim& claim = kQBuffers > 1 ? smem.loading : smem.claim;
            slot.tiles = claim.sched.count();
            if (slot.tiles < 0) {
                mbar_arrive(&smem.q_full[q_buffer]);
                break;
            }
            slot.item = claim.item;
            if (round == 0) trace_mark(kTraceFirstQ);
            trace_mark(kTraceLoadStart);
            load(p, smem, claim.sched, claim.item, ring, q_buffer, round == 0);
            if (!claim_early) mbar_arrive(&smem.claim_empty);  // every load of this item is issued
        }
    } else {
        warpgroup_claim_registers<kConsumerRegisters>();
        grid_dependency_wait();
        grid_dependents_launch();
        const int wg = warpgroup - 1;
        // From bit kRoundShift: the round mod kItemSlots (its item slot, Q buffer and Q phase); below, the
        // stages' phases.
        uint32_t ring = 0;
        if (wg == kConsumers - 1) scheduler_pass(wg);  // warpgroup 0 goes first
        for (int items = 0;; ring += 1u << kRoundShift, ++items) {
            const uint32_t round = ring >> kRoundShift;
            const uint64_t wait_start = trace_now();
            mbar_wait(&smem.q_full[round % kQBuffers], (round / kQBuffers) & 1);
            const ItemSlot& slot = smem.items[round];
            if (slot.tiles < 0) break;
            if (wg == 0 && threadIdx.x % 128 == 0) {
                trace_mark_at(kTraceItemWait, wait_start);
                trace_mark(kTraceQLanded);
                if (items == 0) trace_mark(kTraceFirstQLanded);
            }
            compute(p, smem, wg, slot, ring, items == 0);
        }
        if (kBulkStore && threadIdx.x % 128 == 0) bulk_wait_read();  // the staging rows outlive no copy
        if (wg == 0 && threadIdx.x % 128 == 0) trace_mark(kTraceExit);
    }
}
