// attn_fwd_sm90: work items: numbering, the claims of persistent CTAs from the device counter, and each
// item's KV schedule (dense range, window, or block-mask lists; split-KV parts).
#pragma once
#include "params.cuh"

namespace attn {

BSK_DEVICE int ceil_div(int a, int b) { return (a + b - 1) / b; }

BSK_DEVICE int m_blocks(const Params& p) { return ceil_div(p.seqlen_q, kBlockM); }

// The CTA's work item after `index`: the next unclaimed one (work counter) or `index + gridDim.x`. Claimed in
// index order, so the longest causal query blocks of each head go first, as with one CTA per item.
BSK_DEVICE int next_item(const Params& p, int index) {
    if (p.work_counter == nullptr) return index + gridDim.x;
    return static_cast<int>(atomicAdd(p.work_counter, 1u)) + gridDim.x;
}

// Called once per CTA after its last claim: the last CTA resets the work counter for the next launch (no
// CTA claims after its own call, so none can see the reset early). The fences order each CTA's last claim
// before its count (release) and every count before the reset (acquire) in the PTX memory model; the
// returned claim values already imply that order in practice.
BSK_DEVICE void retire(const Params& p) {
    if (p.work_counter == nullptr) return;
    __threadfence();
    if (atomicAdd(p.work_counter + 1, 1u) == gridDim.x - 1) {
        __threadfence();
        p.work_counter[0] = 0;
        p.work_counter[1] = 0;
    }
}

// The item of claim `index` in Params::mask_row_order: entry index / (the items of a row) of a row order,
// or entry index / splits of an item order. Unsigned arithmetic: signed runtime divisions cost the
// 24-register claiming thread two spilled registers.
BSK_DEVICE WorkItem ordered_mask_item(const Params& p, int index) {
    const uint32_t splits = p.num_splits, unit = static_cast<uint32_t>(index) / splits;
    if (p.mask_order_items) {
        const uint32_t entry = static_cast<uint32_t>(max(p.mask_row_order[unit], 0)), blocks = m_blocks(p);
        const uint32_t head_batch = entry / blocks, heads = p.num_heads;
        return {static_cast<int>((entry - head_batch * blocks) * (kBlockM / kRowUnit)),
                static_cast<int>(static_cast<uint32_t>(index) - unit * splits), static_cast<int>(head_batch % heads),
                static_cast<int>(min(head_batch / heads, p.batch - 1u))};
    }
    const uint32_t heads_per_row = p.mask_stride_h == 0 ? p.num_heads : p.mask_head_div;
    const uint32_t per_row = heads_per_row * (p.mask_stride_b == 0 ? p.batch : 1);
    const uint32_t rank = unit / per_row, j = unit - rank * per_row;
    const uint32_t blocks = m_blocks(p), mask_heads = p.num_heads / heads_per_row;
    const uint32_t row = static_cast<uint32_t>(max(p.mask_row_order[rank], 0));
    // A row past the mask's (malformed device array) lands on a row of its last batch entry.
    const uint32_t head_batch = row / blocks, mask_head = head_batch % mask_heads;
    const uint32_t batch = min(head_batch / mask_heads, p.mask_stride_b == 0 ? 0u : p.batch - 1u);
    return {static_cast<int>((row - head_batch * blocks) * (kBlockM / kRowUnit)),
            static_cast<int>(static_cast<uint32_t>(index) - unit * splits),
            static_cast<int>(mask_head * heads_per_row + j % heads_per_row),
            static_cast<int>(batch + j / heads_per_row)};
}

// kRowOrder false: a call without a block mask (no row order to look at).
template <bool kRowOrder = true>
BSK_DEVICE WorkItem work_item(const Params& p, int index) {
    constexpr int kUnits = kBlockM / kRowUnit, kShortUnits = kShortRows / kRowUnit;
    if (kRowOrder && kTakesBlockMasks && p.mask_row_order != nullptr) return ordered_mask_item(p, index);
    if (kShortItems && index >= p.tall_items) {  // a short item (never split)
        const int per_head = ceil_div(p.seqlen_q - p.tall_blocks * kBlockM, kShortRows);
        const int j = index - p.tall_items, head_batch = j / per_head;
        return {p.tall_blocks * kUnits + j % per_head * kShortUnits, 0, head_batch % p.num_heads,
                head_batch / p.num_heads};
    }
    const int per_head = (kShortItems ? p.tall_blocks : m_blocks(p)) * p.num_splits;
    const int x = per_head - 1 - index % per_head, head_batch = index / per_head;
    return {x / p.num_splits * kUnits, x % p.num_splits, head_batch % p.num_heads, head_batch / p.num_heads};
}

BSK_DEVICE int item_first_row(const WorkItem& item) { return item.m_block * kRowUnit; }

// The BLOCK_M-row query block of a tall item (split-KV partials, block-mask rows).
BSK_DEVICE int item_block(const WorkItem& item) { return item.m_block / (kBlockM / kRowUnit); }

// The item's height (BLOCK_M, or kShortRows past the tall blocks) and how many of its rows exist (cut at Sq).
BSK_DEVICE int item_height(const Params& p, const WorkItem& item) {
    return kShortItems && item_first_row(item) >= p.tall_blocks * kBlockM ? kShortRows : kBlockM;
}
BSK_DEVICE int item_rows(const Params& p, const WorkItem& item) {
    return min(item_height(p, item), p.seqlen_q - item_first_row(item));
}

BSK_DEVICE int diagonal_hi(const Params& p) { return kCausal ? min(p.window_hi, 0) : p.window_hi; }

BSK_DEVICE KvSchedule kv_schedule(const Params& p, const WorkItem& item) {
    const int head = item.head, batch = item.batch, split = item.split;
    KvSchedule sched = {0, 0, nullptr, nullptr, 0, p.mask_kv_blocks};
    int total;
    if (p.mask_num != nullptr) {
        // Counts are clamped to the row length: a malformed device mask cannot read past its rows.
        const int64_t row = batch * p.mask_stride_b + (head / p.mask_head_div) * p.mask_stride_h + item_block(item);
        sched.partial = p.mask_idx + row * p.mask_kv_blocks;
        sched.num_partial = min(max(p.mask_num[row], 0), p.mask_kv_blocks);
        total = sched.num_partial;
        if (p.mask_full_num != nullptr) {
            sched.full = p.mask_full_idx + row * p.mask_kv_blocks;
            total += min(max(p.mask_full_num[row], 0), p.mask_kv_blocks);
        }
        total *= kTilesPerMaskBlock;
    } else {
        const int shift = p.seqlen_k - p.seqlen_q;
        const int first_row = item_first_row(item);
        const int last_row = min(first_row + item_height(p, item), p.seqlen_q) - 1;
        const int64_t lo_key = static_cast<int64_t>(first_row) + shift + p.window_lo;
        const int64_t hi_key = static_cast<int64_t>(last_row) + shift + diagonal_hi(p);
        const int first_key = static_cast<int>(max(lo_key, static_cast<int64_t>(0)));
        const int last_key = static_cast<int>(min(hi_key, static_cast<int64_t>(p.seqlen_k - 1)));
        sched.begin = first_key / kBlockN;
        total = last_key < first_key ? 0 : last_key / kBlockN + 1 - sched.begin;
    }
    // Split s of n takes positions [total * s / n, total * (s + 1) / n): contiguous, sizes differ by <= 1.
    const int start = total * split / p.num_splits, stop = total * (split + 1) / p.num_splits;
    sched.end = sched.begin + stop;
    sched.begin += start;
    return sched;
}

// Whether every work item of the launch has the same KV tiles (no block mask, no causal mask, a window that
// covers every key of every row), so that claiming the next one early unbalances no CTA.
BSK_DEVICE bool uniform_items(const Params& p) {
    return p.mask_num == nullptr && !kCausal && p.window_lo <= 1 - p.seqlen_k && p.window_hi >= p.seqlen_q - 1;
}

// The claiming thread, before the loop below: the CTA's first item (blockIdx.x; the grid never exceeds
// the items) decoded into `smem.claim`. The kernel calls it before griddepcontrol.wait where it reads
// parameters alone (no block mask, whose lists the previous kernel may still be writing), so that its
// parameter reads and runtime divisions overlap the previous kernel rather than delay the first Q load
// (the timeline probe put 0.9 us between the grid wait and that load). kMasked: called after the wait for
// a block-masked call, whose items may follow the mask's row order; the call before it skips that check.
template <bool kMasked>
BSK_DEVICE void claim_first(const Params& p, SharedStorage& smem) {
    smem.claim.item = work_item<kMasked>(p, blockIdx.x);
    smem.claim.sched = kv_schedule(p, smem.claim.item);
}

// Claiming thread (producer warp 1, lane 0): hands the loader (thread 0) the first item claim_first
// decoded, then claims and decodes the next ones into `smem.claim`, and ends with a claim of -1 tiles, then
// retires. It claims the next item when the loader has issued every load of the last, the moment the
// loader would otherwise do it itself; the atomic, its 64-bit address and the decode's runtime divisions
// stay out of the loader's registers (with them the loader spills at the 24 registers that leave two
// consumers 240).
BSK_DEVICE void claim_items(const Params& p, SharedStorage& smem) {
    mbar_arrive(&smem.claim_full);
    for (int index = blockIdx.x, round = 1;; ++round) {
        mbar_wait(&smem.claim_empty, (round - 1) & 1);
        index = next_item(p, index);
        if (index >= p.num_items) {  // a parameter: nothing to keep live across the claims
            smem.claim.sched.begin = 0;
            smem.claim.sched.end = -1;
            mbar_arrive(&smem.claim_full);
            break;
        }
        smem.claim.item = work_item(p, index);
        smem.claim.sched = kv_schedule(p, smem.claim.item);
        mbar_arrive(&smem.claim_full);
    }
    retire(p);
}

}  // namespace attn
