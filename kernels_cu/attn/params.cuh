// attn_fwd_sm90: the kernel parameters (packed byte for byte by bsk_cupy/launch.py), the work item and
// KV schedule types, and the shared-memory layout.
#pragma once
#include "config.cuh"

namespace attn {

// Kernel parameters; the host packs the same bytes (bsk_cupy/launch.py: the _OFF_* offsets and formats).
struct Params {
    TmaDescriptor tma_q;       // 16-bit (d, s, h, b) in stride order, box 64 x BLOCK_M rows
    TmaDescriptor tma_k;       // box 64 x BLOCK_N rows
    TmaDescriptor tma_v;       // box 64 x BLOCK_N rows
    uint16_t* out;
    float* lse;                // nullptr: LSE not requested
    int64_t out_stride_b;      // elements
    int64_t out_stride_h;
    int64_t out_stride_s;
    int seqlen_q;
    int seqlen_k;
    int heads_per_kv;          // Hq / Hkv
    uint32_t coord_order_q;    // 2 bits each: tensor-map dimension of s, h, b
    uint32_t coord_order_kv;
    float scale_log2;          // softmax scale * log2(e)
    // Element window on the offset from the diagonal, r = j - i - (Sk - Sq): visible iff
    // window_lo <= r <= window_hi (huge values when unbounded; CAUSAL caps r at 0 on top).
    int window_lo;
    int window_hi;
    // Block mask (nullptr: dense). Per (batch, mask head, query block): mask_num[...] partial blocks listed in
    // mask_idx[... * mask_kv_blocks + i], then mask_full_num[...] blocks in mask_full_idx (may be nullptr).
    const int* mask_num;
    const int* mask_idx;
    const int* mask_full_num;
    const int* mask_full_idx;
    int64_t mask_stride_b;     // elements of mask_num; 0 broadcasts
    int64_t mask_stride_h;
    int mask_kv_blocks;        // row length of the index arrays
    int mask_head_div;         // mask head = query head / mask_head_div
    // Split-KV: num_splits CTAs share a query block, each over a contiguous part of its KV tiles; the last
    // to finish (split_counter) combines every part in split order. num_splits == 1: no workspace.
    float* split_o;            // (tiles, num_splits, 128 consumer threads x 2, kChunks * 32) fp32 partial O
    float* split_ml;           // (tiles, num_splits, 2 rows, 256 threads) running max (log2) and sum
    uint32_t* split_counter;   // (tiles,), zero between launches (the combining CTA resets it)
    int num_splits;
    // Work items: (query block, split) x heads x batch, walked by gridDim.x CTAs (persistent when fewer).
    int num_heads;             // query heads
    int batch;
    int num_items;             // m_blocks * num_splits * num_heads * batch
    // Persistent CTAs claim items past their first from work_counter[0] (work_counter[1] counts the CTAs
    // that are done; the last resets both to 0). nullptr: CTA c takes items c, c + gridDim.x, ...
    uint32_t* work_counter;
    // Item heights (192-row tiles only; bsk_cupy/dispatch.py's short_items_plan): each head's first
    // tall_blocks query blocks are BLOCK_M rows, numbered first over all heads and batches (items below
    // tall_items), and its rows from tall_blocks * BLOCK_M on are kShortRows-row items, numbered after them,
    // so that claims in item order hand out the long ones first. tall_blocks = m_blocks, tall_items =
    // num_items: every item is BLOCK_M rows.
    int tall_blocks;
    int tall_items;
    // Block mask only (nullptr: item order): the order in which items are claimed. mask_order_items 0: the
    // mask's rows (batch, mask head, query block), flattened, most KV blocks first (BlockMask.row_order), so
    // that persistent CTAs take the long rows first (longest-processing-time scheduling); item index i runs
    // row row_order[i / r] for the r items that share it (query heads of a broadcast or per-KV-head mask,
    // batch entries of a broadcast one), the split fastest. mask_order_items 1: the items themselves,
    // (batch, query head, query block) flattened, split fastest (a tail order, bsk_cupy/mask_operand.py
    // tail_item_order, which can single out heads of a broadcast mask). Values are clamped: a malformed
    // device array can repeat or skip items (wrong output rows), never read out of bounds.
    const int* mask_row_order;
    int mask_order_items;
};
static_assert(sizeof(Params) == 640, "Params layout drifted from bsk_cupy/launch.py");
// One unit of work: a query block (or one split of it) of one head. Items are numbered with the
// (query block, split) pair fastest, query blocks in reverse so that the longest causal blocks start first
// and CTAs working at the same time share a head's K and V in L2 (block-mask items may instead follow
// Params::mask_row_order); each CTA's first is its blockIdx.x.
// m_block counts kRowUnit rows: BLOCK_M, or on 192-row tiles, whose items may be short ones starting
// past the tall blocks at multiples of kShortRows (Params::tall_blocks), 64 (item_first_row).
struct WorkItem {
    int m_block;
    int split;
    int head;
    int batch;
};

// The KV blocks one CTA visits: positions [begin, end) of its query block's list. Dense: the list is the
// block range the causal / window masks leave; block mask: its partial then its full blocks.
// Block-mask blocks are 128 x 128, or 64 x 64 on WG_SPLIT's 64 x 64 tiles; at HEAD_DIM 256 (128 x 64 tiles)
// each listed 128-key block is two consecutive KV tiles.
constexpr int kTilesPerMaskBlock = (kBlockN == 64 && !kSplitWarpgroups) ? 2 : 1;
// Mask blocks are square, so only tiles of BLOCK_M rows over BLOCK_M keys (per listed block) take them
// (bsk_cupy/launch.py refuses the rest); the others compile without the row-order decode.
constexpr bool kTakesBlockMasks = kBlockM == kBlockN * kTilesPerMaskBlock;

struct KvSchedule {
    int begin;
    int end;
    const int* partial;        // nullptr: dense, position == KV tile
    const int* full;
    int num_partial;           // listed partial blocks (each kTilesPerMaskBlock positions)
    int kv_blocks;             // block mask row length; listed blocks are clamped to [0, kv_blocks]

    BSK_DEVICE int count() const { return end - begin; }
    // The KV tile at `position`: of the listed block position / kTilesPerMaskBlock, its (position %
    // kTilesPerMaskBlock)-th tile.
    BSK_DEVICE int block(int position) const {
        if (partial == nullptr) return position;
        const int entry = position / kTilesPerMaskBlock;
        const int listed = entry < num_partial ? partial[entry] : full[entry - num_partial];
        // A block past the last (or negative: huge as unsigned) reads zeros through TMA and is fully masked.
        const int clamped = static_cast<int>(min(static_cast<uint32_t>(listed), static_cast<uint32_t>(kv_blocks)));
        return clamped * kTilesPerMaskBlock + position % kTilesPerMaskBlock;
    }
};

// One claimed work item as the claiming thread decodes it for the loader; `sched.count()` -1: no more.
struct Claim {
    WorkItem item;
    KvSchedule sched;
};

// The item a round of the consumers works on, with its KV tile count (-1: no more items). Written by the
// producer before the round's q_full, in slot round mod kItemSlots (config.cuh).
struct ItemSlot {
    WorkItem item;
    int tiles;
};

struct SharedStorage {
    alignas(1024) uint8_t q[kQBuffers][kQBytes];  // round r's Q in q[r mod kQBuffers]
    alignas(1024) uint8_t k[kStages][kKVTileBytes];
    alignas(1024) uint8_t v[kStages][kKVTileBytes];
    uint64_t q_full[kQBuffers];
    uint64_t q_empty[kQBuffers];  // consumers are done with that Q (persistent CTAs reload it per work item)
    uint64_t claim_full;       // the claiming thread wrote `claim`
    uint64_t claim_empty;      // the loader issued every load of it
    uint64_t k_full[kStages];
    uint64_t v_full[kStages];
    uint64_t k_empty[kStages];
    uint64_t v_empty[kStages];
    int kv_block[kStages];     // KV block held by each stage (written by the producer before k_full)
    ItemSlot items[kItemSlots];  // by round mod kItemSlots
    Claim claim;               // the loader's next work item, decoded by the claiming thread
    int combine;               // split-KV: this CTA combines the parts
    alignas(16) float exchange[kExchangeFloats];
    alignas(16) uint8_t staging[kStagingBytes];  // bulk-store epilogue: output rows on their way out
    // Last, so that the members above keep their offsets in variants without a cluster or a second Q.
    alignas(16) float cluster_exchange[kClusterExchangeFloats];
    uint64_t cluster_full;     // CLUSTER_SPLIT: the other CTA's partial of the rows this CTA keeps has landed
    Claim loading;             // Q_BUFFERS 2: the loader's copy of the item it loads
};
#ifdef SMEM_BYTES
static_assert(sizeof(SharedStorage) + 1024 == SMEM_BYTES, "shared-memory size drifted from bsk_cupy/specs.py");
#endif

}  // namespace attn
