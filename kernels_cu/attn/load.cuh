// attn_fwd_sm90: the producer's TMA loads of one work item: Q, then K and V tiles through the stage ring.
#pragma once
#include "params.cuh"
#include "trace.cuh"

namespace attn {

// TMA load of one 64-column chunk of a (d, s, h, b) tensor whose map orders s, h, b by stride.
BSK_DEVICE void load_chunk(void* dst, const TmaDescriptor* desc, uint64_t* bar, uint32_t order, int d, int s,
                           int h, int b) {
    const uint32_t ps = order & 3, ph = (order >> 2) & 3;
    const int c1 = ps == 1 ? s : (ph == 1 ? h : b);
    const int c2 = ps == 2 ? s : (ph == 2 ? h : b);
    const int c3 = ps == 3 ? s : (ph == 3 ? h : b);
    tma_load_4d(dst, desc, bar, d, c1, c2, c3);
}

// The K/V ring restarts at stage 0 for every work item, so that stage indices (and the shared-memory
// descriptors built from them) stay warp-uniform values of the tile counter; bit s of a `ring` word
// counts the uses of stage s so far mod 2, the parity of that stage's barrier phase.
BSK_DEVICE uint32_t stage_parity(uint32_t ring, int stage) { return (ring >> stage) & 1; }

// Producer, one work item (its Q buffer `q_buffer` already released): its Q, then its K/V tiles into the
// ring (`ring` as above, updated). One thread. An item without tiles only cycles the Q barriers. K and V of
// a stage have their own full/empty barriers: K is released right after S = Q K^T, V only after O += P V,
// so the next K can land earlier. The block index of each stage goes to shared memory before its K load is armed
// (mbarrier arrive releases it). `first_item`: the CTA's first (for the timeline probe alone).
BSK_DEVICE void load(const Params& p, SharedStorage& smem, const KvSchedule& sched, const WorkItem& item,
                     uint32_t& ring, int q_buffer, bool first_item) {
    const int kv_head = item.head / p.heads_per_kv, batch = item.batch;
    uint64_t* q_full = &smem.q_full[q_buffer];
    if (sched.count() == 0) {
        mbar_arrive(q_full);
        return;
    }
    mbar_arrive_expect_tx(q_full, kQBytes);
    for (int c = 0; c < kChunks; ++c) {
        load_chunk(smem.q[q_buffer] + c * kBlockM * kChunkRowBytes, &p.tma_q, q_full, p.coord_order_q,
                   c * kChunkElems, item_first_row(item), item.head, batch);
    }
    for (int t = 0; t < sched.count(); ++t) {
        const int stage = t % kStages;
        const uint32_t empty_parity = stage_parity(ring, stage) ^ 1;
        ring ^= 1u << stage;
        const int block = sched.block(sched.begin + t);
        mbar_wait(&smem.k_empty[stage], empty_parity);
        smem.kv_block[stage] = block;
        mbar_arrive_expect_tx(&smem.k_full[stage], kKVTileBytes);
        for (int c = 0; c < kChunks; ++c) {
            load_chunk(smem.k[stage] + c * kBlockN * kChunkRowBytes, &p.tma_k, &smem.k_full[stage],
                       p.coord_order_kv, c * kChunkElems, block * kBlockN, kv_head, batch);
        }
        if (first_item && t == 0) trace_mark(kTraceFirstK);
        mbar_wait(&smem.v_empty[stage], empty_parity);
        mbar_arrive_expect_tx(&smem.v_full[stage], kKVTileBytes);
        for (int c = 0; c < kChunks; ++c) {
            load_chunk(smem.v[stage] + c * kBlockN * kChunkRowBytes, &p.tma_v, &smem.v_full[stage],
                       p.coord_order_kv, c * kChunkElems, block * kBlockN, kv_head, batch);
        }
    }
}

}  // namespace attn
