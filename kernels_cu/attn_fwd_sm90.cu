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
// the last split to finish merges the parts (max-rescaled sums) in split order.
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
// causal query blocks start first, as the hardware would start one CTA per item. Rows
// and keys past Sq / Sk are zero-filled by TMA and masked. The kernel supports programmatic dependent
// launch: barrier set-up overlaps the previous kernel, global memory waits for it (common/pdl.cuh).
//
// Warpgroups (128 threads each, setmaxnreg budgets in the constants below).
//   WG0  producer: one thread (warp 1) claims the items and decodes each (its KV schedule: a block range,
//        or the mask's lists) into shared memory; another (warp 0) hands each to the consumers in a
//        shared-memory slot (the item and its tile count; -1 ends the loop) and issues TMA loads: Q (once
//        the consumers release the previous one), then K and V tiles into a STAGES-deep ring with
//        separate full (transaction bytes) and empty (consumer arrivals) barriers for K and V; each
//        stage's block index goes to shared memory before its K load is armed.
//   WG1+ consumers: two (BLOCK_M 128) or three (192, head dim 64), each owning 64 query rows, or (WG_SPLIT,
//        BLOCK_M 64) two sharing the block's rows, each taking every other KV tile, merged at the end
//        through shared memory (named barriers consumers + 2 and + 3). Iteration t
//        issues S_t = Q K_t^T (wgmma, shared/shared) and O += P_{t-1} V_{t-1} (wgmma, P from registers, V
//        N-major), waits for S_t only, masks, and runs the softmax of S_t while the PV product runs
//        (FlashAttention-3 intra-warpgroup pipelining); the consumers also take turns, in a ring, issuing
//        GEMMs (ping-pong, named barriers 1..consumers). Epilogue: O / l and LSE to global memory, or the
//        split-KV partials and, in the last split, the combine (the next named barrier). With BULK_STORE
//        (128-row tiles) O goes out through shared memory, one cp.async.bulk per warpgroup where the
//        rows of a head are contiguous, else from registers.
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
// of 16 bytes: launched with 94 208 bytes at head dim 64, 184 320 at 128; with BLOCK_N 64 (the 64 x 64
// tiles of 64 x 64 block masks; S = Q K^T by m64n64k16) the K/V tiles halve: 61 440 and 118 784.
#include "common/prelude.cuh"
#include "common/mbarrier.cuh"
#include "common/numeric.cuh"
#include "common/pdl.cuh"
#include "common/tma.cuh"
#include "common/warpgroup.cuh"
#include "common/wgmma.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef CAUSAL
#define CAUSAL 0
#endif
#ifndef BLOCK_M
#define BLOCK_M 128
#endif
#ifndef BLOCK_N
#define BLOCK_N 128
#endif
#ifndef STAGES
#define STAGES 2
#endif
#ifndef PINGPONG
#define PINGPONG 1
#endif
#ifndef WG_SPLIT
#define WG_SPLIT 0
#endif
#ifndef BULK_STORE
#define BULK_STORE 0
#endif

namespace attn {

constexpr int kHeadDim = HEAD_DIM;
constexpr bool kCausal = CAUSAL != 0;
constexpr bool kBf16 = DTYPE == 1;
constexpr int kBlockM = BLOCK_M;
constexpr int kBlockN = BLOCK_N;
constexpr int kStages = STAGES;

constexpr int kRowsPerWarpgroup = 64;                       // wgmma M
// WG_SPLIT: both consumers share one 64-row query block and split its KV tiles (warpgroup w takes the
// tiles at odd / even positions, which the 2-stage ring puts in stage w), then merge in shared memory.
// Twice the CTAs of 128-row blocks, each with half the tiles per warpgroup: for grids too small to fill
// the GPU.
constexpr bool kSplitWarpgroups = WG_SPLIT != 0;
constexpr int kConsumers = kSplitWarpgroups ? 2 : kBlockM / kRowsPerWarpgroup;  // consumer warpgroups
constexpr int kThreads = 128 * (1 + kConsumers);
constexpr int kConsumerThreads = 128 * kConsumers;
constexpr int kChunkElems = 64;                             // 16-bit elements per 128-byte swizzle row
constexpr int kChunks = kHeadDim / kChunkElems;
constexpr int kChunkRowBytes = 128;
constexpr int kSwizzleAtomBytes = 8 * kChunkRowBytes;       // 8 rows x 128 bytes
constexpr int kQBytes = kBlockM * kHeadDim * 2;
constexpr int kKVTileBytes = kBlockN * kHeadDim * 2;
constexpr int kStageConsumerThreads = kSplitWarpgroups ? 128 : kConsumerThreads;  // readers of each stage
constexpr bool kPingPong = PINGPONG != 0 && !kSplitWarpgroups;  // split warpgroups run unequal tile counts
constexpr int kFragmentFloats = kChunks * 32;                   // O accumulator floats per consumer thread
// WG_SPLIT exchange: warpgroup 1's O fragments, then its two rows' max and partial sum, per thread.
constexpr int kExchangeFloats = kSplitWarpgroups ? 128 * (kFragmentFloats + 4) : 4;
// Bulk-store epilogue (BULK_STORE): each storing warpgroup stages its 64 output rows in shared memory in
// the output's own row-major order and, when the rows of a head lie back to back in global memory, one
// thread copies them out with a single cp.async.bulk. Not at HEAD_DIM 256: the staging rows do not fit.
constexpr bool kBulkStore = BULK_STORE != 0;
constexpr int kStoreWarpgroups = kSplitWarpgroups ? 1 : kConsumers;
constexpr int kStagingBytes = kBulkStore ? kStoreWarpgroups * kRowsPerWarpgroup * kHeadDim * 2 : 16;
// Register budgets after setmaxnreg. They must fit what the CTA was launched with, kThreads times the
// per-thread cap of __launch_bounds__(kThreads, 1) (65 536 / kThreads rounded down to a multiple of 8):
// setmaxnreg.inc waits for registers the other warpgroups released, so an over-budget claim hangs.
// Two consumers: 128 * (24 + 2 * 240) = 64 512 = 384 * 168; three: 128 * (32 + 3 * 160) = 65 536 = 512 * 128.
// WG_SPLIT's 64 x 64 tiles: NVRTC 13.0 spills 4-12 bytes of the loader at 24 registers (13.5 does not), and
// their consumers fit 232.
constexpr bool kRoomyProducer = kConsumers == 3 || (kSplitWarpgroups && kBlockN == 64);
constexpr int kProducerRegisters = kRoomyProducer ? 32 : 24;
constexpr int kConsumerRegisters = kConsumers == 3 ? 160 : (kRoomyProducer ? 232 : 240);
static_assert(128 * (kProducerRegisters + kConsumers * kConsumerRegisters) <= kThreads * ((65536 / kThreads) & ~7),
              "setmaxnreg budgets exceed the registers the CTA is launched with");

static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256, "HEAD_DIM must be 64, 128 or 256");
static_assert(kSplitWarpgroups ? (kBlockM == 64 && kStages == 2 && kHeadDim != 256)
                               : (kBlockM == 128 || (kBlockM == 192 && kHeadDim == 64)),
              "BLOCK_M must be 128 (two consumer warpgroups), 192 at HEAD_DIM 64 (three), or 64 with WG_SPLIT "
              "(two sharing the rows; STAGES 2; not at HEAD_DIM 256)");
// 64-key tiles: WG_SPLIT's 64 x 64 tiles (64 x 64 block masks), and HEAD_DIM 256, whose 128-key K and V
// tiles would not fit twice in shared memory next to Q (64 KB each).
static_assert(kHeadDim == 256 ? kBlockN == 64 : (kBlockN == 128 || (kBlockN == 64 && kSplitWarpgroups)),
              "BLOCK_N must be 128, 64 with WG_SPLIT, and 64 at HEAD_DIM 256");
static_assert(kStages >= 2 && kStages <= 4, "STAGES must be 2, 3 or 4");
static_assert(!kBulkStore || kHeadDim != 256, "BULK_STORE: the staging rows do not fit at HEAD_DIM 256");
static_assert(DTYPE == 0 || DTYPE == 1, "DTYPE must be 0 (float16) or 1 (bfloat16)");

// Kernel parameters; the host packs the same bytes (bsk_cupy/launch.py, PARAMS_LAYOUT).
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
    // (the struct is padded to 576 bytes: TmaDescriptor is 64-byte aligned)
};
static_assert(sizeof(Params) == 576, "Params layout drifted from bsk_cupy/launch.py");
// One unit of work: a query block (or one split of it) of one head. Items are numbered with the
// (query block, split) pair fastest, query blocks in reverse so that the longest causal blocks start first
// and CTAs working at the same time share a head's K and V in L2; each CTA's first is its blockIdx.x.
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
// producer before the round's q_full; two slots, because the consumers still read a round's item in its
// epilogue after they let the producer start the next round.
struct ItemSlot {
    WorkItem item;
    int tiles;
};

struct SharedStorage {
    alignas(1024) uint8_t q[kQBytes];
    alignas(1024) uint8_t k[kStages][kKVTileBytes];
    alignas(1024) uint8_t v[kStages][kKVTileBytes];
    uint64_t q_full;
    uint64_t q_empty;          // consumers are done with Q (persistent CTAs reload it per work item)
    uint64_t claim_full;       // the claiming thread wrote `claim`
    uint64_t claim_empty;      // the loader issued every load of it
    uint64_t k_full[kStages];
    uint64_t v_full[kStages];
    uint64_t k_empty[kStages];
    uint64_t v_empty[kStages];
    int kv_block[kStages];     // KV block held by each stage (written by the producer before k_full)
    ItemSlot items[2];         // by round parity
    Claim claim;               // the loader's next work item, decoded by the claiming thread
    int combine;               // split-KV: this CTA combines the parts
    alignas(16) float exchange[kExchangeFloats];
    alignas(16) uint8_t staging[kStagingBytes];  // bulk-store epilogue: output rows on their way out
};
#ifdef SMEM_BYTES
static_assert(sizeof(SharedStorage) + 1024 == SMEM_BYTES, "shared-memory size drifted from bsk_cupy/specs.py");
#endif

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

BSK_DEVICE WorkItem work_item(const Params& p, int index) {
    const int per_head = m_blocks(p) * p.num_splits;
    const int x = per_head - 1 - index % per_head, head_batch = index / per_head;
    return {x / p.num_splits, x % p.num_splits, head_batch % p.num_heads, head_batch / p.num_heads};
}

BSK_DEVICE int diagonal_hi(const Params& p) { return kCausal ? min(p.window_hi, 0) : p.window_hi; }

BSK_DEVICE KvSchedule kv_schedule(const Params& p, const WorkItem& item) {
    const int m_block = item.m_block, head = item.head, batch = item.batch, split = item.split;
    KvSchedule sched = {0, 0, nullptr, nullptr, 0, p.mask_kv_blocks};
    int total;
    if (p.mask_num != nullptr) {
        // Counts are clamped to the row length: a malformed device mask cannot read past its rows.
        const int64_t row = batch * p.mask_stride_b + (head / p.mask_head_div) * p.mask_stride_h + m_block;
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
        const int first_row = m_block * kBlockM, last_row = min(first_row + kBlockM, p.seqlen_q) - 1;
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

// Claiming thread (producer warp 1, lane 0): claims the CTA's work items, decodes each into `smem.claim`
// for the loader (thread 0), and ends with a claim of -1 tiles, then retires. It claims the next item when
// the loader has issued every load of the last, the moment the loader would otherwise do it itself; the
// atomic, its 64-bit address and the decode's runtime divisions stay out of the loader's registers (with
// them the loader spills at the 24 registers that leave two consumers 240).
BSK_DEVICE void claim_items(const Params& p, SharedStorage& smem) {
    for (int index = blockIdx.x, round = 0;; ++round) {
        if (round > 0) {
            mbar_wait(&smem.claim_empty, (round - 1) & 1);
            index = next_item(p, index);
        }
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

// Producer, one work item (its Q buffer already released): its Q, then its K/V tiles into the ring (`ring`
// as above, updated). One thread. An item without tiles only cycles the Q barriers. K and V of a stage have
// their own full/empty barriers: K is released right after S = Q K^T, V only after O += P V, so the next K
// can land earlier. The block index of each stage goes to shared memory before its K load is armed
// (mbarrier arrive releases it).
BSK_DEVICE void load(const Params& p, SharedStorage& smem, const KvSchedule& sched, const WorkItem& item,
                     uint32_t& ring) {
    const int kv_head = item.head / p.heads_per_kv, batch = item.batch;
    if (sched.count() == 0) {
        mbar_arrive(&smem.q_full);
        return;
    }
    mbar_arrive_expect_tx(&smem.q_full, kQBytes);
    for (int c = 0; c < kChunks; ++c) {
        load_chunk(smem.q + c * kBlockM * kChunkRowBytes, &p.tma_q, &smem.q_full, p.coord_order_q,
                   c * kChunkElems, item.m_block * kBlockM, item.head, batch);
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
        mbar_wait(&smem.v_empty[stage], empty_parity);
        mbar_arrive_expect_tx(&smem.v_full[stage], kKVTileBytes);
        for (int c = 0; c < kChunks; ++c) {
            load_chunk(smem.v[stage] + c * kBlockN * kChunkRowBytes, &p.tma_v, &smem.v_full[stage],
                       p.coord_order_kv, c * kChunkElems, block * kBlockN, kv_head, batch);
        }
    }
}

// Per-thread view of the rows a consumer thread owns (two rows of the 64 x N fragments).
struct RowState {
    float max[2];        // running max of the raw scores q.k; -inf until a key is seen
    float sum[2];        // this thread's share of the running softmax denominator
    float correction[2]; // factor O must be multiplied by before the next P V accumulates into it
};

// One k-step of S = Q K^T: the wgmma shape follows the tile width (the fragment holds BLOCK_N / 2 floats).
BSK_DEVICE void qk_step(float (&s)[64], uint64_t desc_q, uint64_t desc_k, uint32_t accumulate) {
    wgmma_m64n128k16_ss(s, desc_q, desc_k, accumulate);
}
BSK_DEVICE void qk_step(float (&s)[32], uint64_t desc_q, uint64_t desc_k, uint32_t accumulate) {
    wgmma_m64n64k16_ss(s, desc_q, desc_k, accumulate);
}

// Issue S(64 x BLOCK_N) = Q_wg K^T as one wgmma group (both operands 128-byte-swizzled K-major in shared
// memory). The caller fences before and waits after.
BSK_DEVICE void issue_qk(float (&s)[kBlockN / 2], uint32_t q_wg, uint32_t k_tile) {
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
        const uint32_t chunk = kk / 4, col_bytes = (kk % 4) * 32;
        const uint64_t desc_q = smem_desc_sw128(q_wg + chunk * kBlockM * kChunkRowBytes + col_bytes, 16,
                                                kSwizzleAtomBytes);
        const uint64_t desc_k = smem_desc_sw128(k_tile + chunk * kBlockN * kChunkRowBytes + col_bytes, 16,
                                                kSwizzleAtomBytes);
        qk_step(s, desc_q, desc_k, kk > 0);
    }
    wgmma_commit();
}

// Issue O(64 x D) += P(64 x BLOCK_N) V(BLOCK_N x D) as one wgmma group: P from registers, V N-major
// (D contiguous) in shared memory. O and P stay untouched until the group completes.
BSK_DEVICE void issue_pv(float (&o)[kChunks][32], const uint32_t (&p)[kBlockN / 16][4], uint32_t v_tile) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
        for (int kk = 0; kk < kBlockN / 16; ++kk) {
            const uint64_t desc_v = smem_desc_sw128(v_tile + c * kBlockN * kChunkRowBytes + kk * 2 * kSwizzleAtomBytes,
                                                    kBlockN * kChunkRowBytes, kSwizzleAtomBytes);
            wgmma_m64n64k16_rs_mn(o[c], p[kk], desc_v, 1);
        }
    }
    wgmma_commit();
}

BSK_DEVICE void fence_o(float (&o)[kChunks][32]) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c) wgmma_fence_operands(o[c]);
}

BSK_DEVICE void fence_p(uint32_t (&p)[kBlockN / 16][4]) {
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
#pragma unroll
        for (int r = 0; r < 4; ++r) asm volatile("" : "+r"(p[kk][r])::"memory");
    }
}

// Mask keys past Sk, above the causal diagonal or outside the window (scores stay unscaled; softmax_step
// folds the scale in).
BSK_DEVICE int thread_row(int wg_first_row) {
    return wg_first_row + (threadIdx.x % 128) / 32 * 16 + threadIdx.x % 32 / 4;
}

BSK_DEVICE void mask_scores(float (&s)[kBlockN / 2], const Params& p, int key0, int wg_first_row) {
    const int lane = threadIdx.x % 32, row0 = thread_row(wg_first_row);
    const int shift = p.seqlen_k - p.seqlen_q, hi = diagonal_hi(p);
#pragma unroll
    for (int e = 0; e < kBlockN / 2; ++e) {
        const int col = key0 + 8 * (e / 4) + 2 * (lane % 4) + (e % 2);
        const int offset = col - (row0 + 8 * ((e / 2) % 2)) - shift;
        const bool visible = col < p.seqlen_k && offset <= hi && offset >= p.window_lo;  // col >= 0 always
        if (!visible) s[e] = BSK_NEG_INF;
    }
}

// Whether some (row, key) of tile `key0` is invisible to the 64 rows of this warpgroup.
BSK_DEVICE bool tile_needs_mask(const Params& p, int key0, int wg_first_row) {
    const int64_t shift = p.seqlen_k - p.seqlen_q;
    const int64_t last_offset = static_cast<int64_t>(key0) + kBlockN - 1 - wg_first_row - shift;
    const int64_t first_offset = static_cast<int64_t>(key0) - (wg_first_row + kRowsPerWarpgroup - 1) - shift;
    return key0 + kBlockN > p.seqlen_k || last_offset > diagonal_hi(p) || first_offset < p.window_lo;
}

// Online softmax step on one tile: new running max, S -> unnormalised P in place, running sums, and the
// correction O needs. Maxima are kept on raw scores (the scale is positive) and the scale is folded into
// one FFMA per score: p = exp2(s * scale_log2 - max * scale_log2). Touches neither O nor P, so it runs
// while the previous P V is in flight.
BSK_DEVICE void softmax_step(float (&s)[kBlockN / 2], RowState& st, float scale_log2) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        float tile_max = BSK_NEG_INF;
#pragma unroll
        for (int e = 2 * i; e < kBlockN / 2; e += 4) tile_max = fmaxf(tile_max, fmaxf(s[e], s[e + 1]));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
        const float new_max = fmaxf(st.max[i], tile_max);
        const float offset = new_max == BSK_NEG_INF ? 0.f : new_max * scale_log2;  // nothing visible yet
        st.correction[i] = exp2_approx(st.max[i] * scale_log2 - offset);
        st.max[i] = new_max;
        float tile_sum = 0.f;
#pragma unroll
        for (int e = 2 * i; e < kBlockN / 2; e += 4) {
            s[e] = exp2_approx(fmaf(s[e], scale_log2, -offset));
            s[e + 1] = exp2_approx(fmaf(s[e + 1], scale_log2, -offset));
            tile_sum += s[e] + s[e + 1];
        }
        st.sum[i] = st.sum[i] * st.correction[i] + tile_sum;
    }
}

// Pinned by fence_o: otherwise the compiler sinks the multiplies past wgmma.fence and ptxas must inject a
// warpgroup.arrive before the next wgmma (C7519).
BSK_DEVICE void rescale(float (&o)[kChunks][32], const RowState& st) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
        for (int e = 0; e < 32; ++e) o[c][e] *= st.correction[(e / 2) % 2];
    }
    fence_o(o);
}

BSK_DEVICE uint32_t pack_pair(float lo, float hi) { return kBf16 ? pack_bf16x2(lo, hi) : pack_f16x2(lo, hi); }

// P in the register layout wgmma takes for A: k-step kk holds columns 16kk..16kk+15 of the tile.
BSK_DEVICE void pack_p(uint32_t (&p)[kBlockN / 16][4], const float (&s)[kBlockN / 2]) {
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
#pragma unroll
        for (int r = 0; r < 4; ++r) p[kk][r] = pack_pair(s[8 * kk + 2 * r], s[8 * kk + 2 * r + 1]);
    }
}

// Row sums of this thread's two rows over the quad of lanes that share them.
BSK_DEVICE float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Named barriers of the bulk-store epilogue, one per storing warpgroup (after the WG_SPLIT exchange's).
constexpr uint32_t kStoreBarrier = 1 + kConsumers + 3;

// Whether the rows of each head lie back to back in the output, 16-byte aligned, as one cp.async.bulk
// per warpgroup needs (else the epilogue stores directly from registers).
BSK_DEVICE bool rows_contiguous(const Params& p) {
    const uint64_t head_strides = static_cast<uint64_t>(p.out_stride_b | p.out_stride_h) * 2;
    const uint64_t bits = reinterpret_cast<uint64_t>(p.out) | head_strides;
    return p.out_stride_s == kHeadDim && (bits & 15) == 0;
}

// This thread's share of output row half `i` (O / l in the output dtype) written to `row`, a row of 16-bit
// elements in global or shared memory.
BSK_DEVICE void write_row(uint16_t* row, const float (&o)[kChunks][32], int i, float inv) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int col = c * kChunkElems + 8 * j + 2 * (lane % 4);
            *reinterpret_cast<uint32_t*>(row + col) =
                pack_pair(o[c][4 * j + 2 * i] * inv, o[c][4 * j + 2 * i + 1] * inv);
        }
    }
}

// Epilogue of consumer warpgroup `wg`, whose 64 rows start at `wg_first_row`: O / l in the output dtype,
// LSE in natural log. `row_max_log2` and `row_sum` are whole-row values. With the bulk store, the
// warpgroup's first thread issues the copy; its shared-memory reads are awaited before the next epilogue
// rewrites the staging rows and before the consumer exits.
BSK_DEVICE void store(const Params& p, SharedStorage& smem, int wg, const float (&o)[kChunks][32],
                      const float (&row_max_log2)[2], const float (&row_sum)[2], int wg_first_row, int head,
                      int batch) {
    const int lane = threadIdx.x % 32, tid = threadIdx.x % 128, row0 = thread_row(wg_first_row);
    uint16_t* out = p.out + batch * p.out_stride_b + head * p.out_stride_h;
    float inv[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const float sum = row_sum[i];
        const int row = row0 + 8 * i;
        inv[i] = sum > 0.f ? 1.f / sum : 0.f;
        if (p.lse != nullptr && lane % 4 == 0 && row < p.seqlen_q) {
            const float lse_log2 = sum > 0.f ? row_max_log2[i] + log2f(sum) : BSK_NEG_INF;
            p.lse[(static_cast<int64_t>(batch) * p.num_heads + head) * p.seqlen_q + row] = lse_log2 * 0.69314718056f;
        }
    }
    if (kBulkStore && rows_contiguous(p)) {
        uint16_t* staging = reinterpret_cast<uint16_t*>(smem.staging) +
                            (kSplitWarpgroups ? 0 : wg) * kRowsPerWarpgroup * kHeadDim;
        if (tid == 0) bulk_wait_read();  // the previous item's rows have left the staging buffer
        named_barrier_sync(kStoreBarrier + wg, 128);
#pragma unroll
        for (int i = 0; i < 2; ++i) write_row(staging + (row0 + 8 * i - wg_first_row) * kHeadDim, o, i, inv[i]);
        fence_proxy_async_shared();
        named_barrier_sync(kStoreBarrier + wg, 128);
        const int rows = min(kRowsPerWarpgroup, p.seqlen_q - wg_first_row);
        if (tid == 0 && rows > 0) {
            bulk_store(out + static_cast<int64_t>(wg_first_row) * kHeadDim, staging, rows * kHeadDim * 2);
            bulk_commit();
        }
        return;
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int row = row0 + 8 * i;
        if (row < p.seqlen_q) write_row(out + row * p.out_stride_s, o, i, inv[i]);
    }
}

// L2 load (skips L1, which is not coherent with other SMs' writes).
BSK_DEVICE float load_global_cg(const float* ptr) {
    float v;
    asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(ptr) : "memory");
    return v;
}

// Split-KV epilogue. Every split writes its unnormalised O and its rows' (max, sum) to the workspace in
// fragment order (element e of consumer thread t at e * 256 + t: coalesced, and read back by the same
// thread of the combining CTA). The CTA that finishes last (atomic counter, which it resets to 0) combines
// the splits in split order, so the result does not depend on which CTA that is:
//   M = max_s m_s,  L = sum_s 2^(m_s - M) l_s,  O = sum_s 2^(m_s - M) O_s / L.
constexpr uint32_t kCombineBarrier = 1 + kConsumers;  // after the ping-pong barriers

BSK_DEVICE void split_store(const Params& p, SharedStorage& smem, int wg, float (&o)[kChunks][32],
                            const RowState& st, int wg_first_row, int m_block, int split, int head, int batch) {
    const int tid = threadIdx.x - 128;
    const int64_t tile = (static_cast<int64_t>(batch) * p.num_heads + head) * m_blocks(p) + m_block;
    const int64_t part = tile * p.num_splits + split;
    float* my_o = p.split_o + part * kFragmentFloats * kConsumerThreads + tid;
    float* my_ml = p.split_ml + part * 4 * kConsumerThreads + tid;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
        for (int e = 0; e < 32; ++e) my_o[(c * 32 + e) * kConsumerThreads] = o[c][e];
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        my_ml[i * kConsumerThreads] = st.max[i] == BSK_NEG_INF ? BSK_NEG_INF : st.max[i] * p.scale_log2;
        my_ml[(2 + i) * kConsumerThreads] = quad_sum(st.sum[i]);
    }
    __threadfence();
    named_barrier_sync(kCombineBarrier, kConsumerThreads);
    if (tid == 0) {
        const uint32_t arrived = atomicAdd(p.split_counter + tile, 1u);
        const bool last = arrived == static_cast<uint32_t>(p.num_splits - 1);
        if (last) p.split_counter[tile] = 0;
        smem.combine = last;
    }
    named_barrier_sync(kCombineBarrier, kConsumerThreads);
    if (!smem.combine) return;
    __threadfence();

    const float* parts_o = p.split_o + tile * p.num_splits * kFragmentFloats * kConsumerThreads + tid;
    const float* parts_ml = p.split_ml + tile * p.num_splits * 4 * kConsumerThreads + tid;
    float row_max[2] = {BSK_NEG_INF, BSK_NEG_INF}, row_sum[2] = {0.f, 0.f};
    for (int s = 0; s < p.num_splits; ++s) {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            row_max[i] = fmaxf(row_max[i], load_global_cg(parts_ml + (s * 4 + i) * kConsumerThreads));
        }
    }
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
        for (int e = 0; e < 32; ++e) o[c][e] = 0.f;
    }
    for (int s = 0; s < p.num_splits; ++s) {
        float weight[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const float m = load_global_cg(parts_ml + (s * 4 + i) * kConsumerThreads);
            weight[i] = m == BSK_NEG_INF ? 0.f : exp2_approx(m - row_max[i]);
            row_sum[i] += weight[i] * load_global_cg(parts_ml + (s * 4 + 2 + i) * kConsumerThreads);
        }
        const float* part = parts_o + s * kFragmentFloats * kConsumerThreads;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
#pragma unroll
            for (int e = 0; e < 32; ++e) {
                o[c][e] += weight[(e / 2) % 2] * load_global_cg(part + (c * 32 + e) * kConsumerThreads);
            }
        }
    }
    store(p, smem, wg, o, row_max, row_sum, wg_first_row, head, batch);
}

// Ping-pong between the consumer warpgroups (as in FlashAttention-3): they take turns, in a ring, issuing
// their GEMMs, so the GEMMs of one run on the tensor cores while the others do their softmax. Warpgroup w
// waits on barrier kSchedulerBarrier + w; its predecessor in the ring arrives on it.
constexpr uint32_t kSchedulerBarrier = 1;
constexpr uint32_t kSchedulerThreads = 256;

BSK_DEVICE void scheduler_wait(int wg) {
    if (kPingPong) named_barrier_sync(kSchedulerBarrier + wg, kSchedulerThreads);
}

BSK_DEVICE void scheduler_pass(int wg) {
    if (kPingPong) named_barrier_arrive(kSchedulerBarrier + (wg + 1) % kConsumers, kSchedulerThreads);
}

// WG_SPLIT merge of the two warpgroups' partial results for the same rows (thread t of each holds the
// same fragment positions): warpgroup 1 hands O, max and partial sums over in shared memory (after
// warpgroup 0 has read the previous item's), warpgroup 0 merges them into its own, max-rescaled:
//   M = max(m0, m1),  l = 2^(m0 - M) l0 + 2^(m1 - M) l1,  O = 2^(m0 - M) O0 + 2^(m1 - M) O1.
// Returns true in warpgroup 0, which then stores the result.
constexpr uint32_t kExchangeFree = kCombineBarrier + 1;
constexpr uint32_t kExchangeFull = kCombineBarrier + 2;

BSK_DEVICE bool merge_warpgroups(SharedStorage& smem, float (&o)[kChunks][32], RowState& st, int wg,
                                 float scale_log2) {
    const int tid = threadIdx.x % 128;
    float* exchange = smem.exchange + tid;
    if (wg == 1) {
        named_barrier_sync(kExchangeFree, 256);
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
#pragma unroll
            for (int e = 0; e < 32; ++e) exchange[(c * 32 + e) * 128] = o[c][e];
        }
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            exchange[(kFragmentFloats + i) * 128] = st.max[i];
            exchange[(kFragmentFloats + 2 + i) * 128] = st.sum[i];
        }
        named_barrier_arrive(kExchangeFull, 256);
        return false;
    }
    named_barrier_arrive(kExchangeFree, 256);
    named_barrier_sync(kExchangeFull, 256);
    float weight0[2], weight1[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const float m1 = exchange[(kFragmentFloats + i) * 128], l1 = exchange[(kFragmentFloats + 2 + i) * 128];
        const float m = fmaxf(st.max[i], m1);
        weight0[i] = st.max[i] == BSK_NEG_INF ? 0.f : exp2_approx((st.max[i] - m) * scale_log2);
        weight1[i] = m1 == BSK_NEG_INF ? 0.f : exp2_approx((m1 - m) * scale_log2);
        st.sum[i] = st.sum[i] * weight0[i] + l1 * weight1[i];
        st.max[i] = m;
    }
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
        for (int e = 0; e < 32; ++e) {
            o[c][e] = o[c][e] * weight0[(e / 2) % 2] + exchange[(c * 32 + e) * 128] * weight1[(e / 2) % 2];
        }
    }
    return true;
}

// Consumer warpgroup `wg` (0-based among consumers), the work item in `slot` (its Q barrier passed): 64
// query rows of the block over its KV tiles (`ring` as in `load`, updated). The item is read again from
// shared memory for the epilogue rather than kept live through the tile loop (three consumers have 160
// registers each).
// Intra-warpgroup pipelining (FlashAttention-3): iteration t issues S_t = Q K_t^T and O += P_{t-1} V_{t-1}
// together, waits for S_t only, and runs the softmax of S_t while P_{t-1} V_{t-1} is still on the tensor
// cores. O is rescaled for tile t-1 just before that product is issued (nothing is in flight on O then).
BSK_DEVICE void compute(const Params& p, SharedStorage& smem, int wg, const ItemSlot& slot, uint32_t& ring) {
    const int item_tiles = slot.tiles;
    // This warpgroup's tiles and the stage of its u-th: all of them, or (WG_SPLIT) every other one.
    const int tiles = kSplitWarpgroups ? (item_tiles + 1 - wg) / 2 : item_tiles;
    auto stage_of = [wg](int u) { return kSplitWarpgroups ? wg : u % kStages; };
    const int row_offset = kSplitWarpgroups ? 0 : wg * kRowsPerWarpgroup;
    const int wg_first_row = slot.item.m_block * kBlockM + row_offset;
    const uint32_t q_wg = smem_addr(smem.q) + row_offset * kChunkRowBytes;

    float o[kChunks][32];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
        for (int e = 0; e < 32; ++e) o[c][e] = 0.f;
    }
    RowState st = {{BSK_NEG_INF, BSK_NEG_INF}, {0.f, 0.f}, {1.f, 1.f}};
    if (tiles == 0) mbar_arrive(&smem.q_empty);
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
        mbar_arrive(&smem.k_empty[first_stage]);
        if (tile_needs_mask(p, key0, wg_first_row)) mask_scores(s, p, key0, wg_first_row);
        softmax_step(s, st, p.scale_log2);
        pack_p(p_regs, s);
        for (int t = 1; t < tiles; ++t) {
            const int stage = stage_of(t), prev_stage = stage_of(t - 1);
            mbar_wait(&smem.k_full[stage], stage_parity(ring, stage));
            mbar_wait(&smem.v_full[prev_stage], stage_parity(ring, prev_stage) ^ 1);
            ring ^= 1u << stage;
            key0 = smem.kv_block[stage] * kBlockN;
            rescale(o, st);
            scheduler_wait(wg);
            wgmma_fence();  // no branch may sit between this fence and the two issues (ptxas C7519)
            issue_qk(s, q_wg, smem_addr(smem.k[stage]));
            issue_pv(o, p_regs, smem_addr(smem.v[prev_stage]));
            scheduler_pass(wg);
            wgmma_wait<1>();                       // S_t ready; P_{t-1} V_{t-1} may still run
            wgmma_fence_operands(s);
            mbar_arrive(&smem.k_empty[stage]);
            if (tile_needs_mask(p, key0, wg_first_row)) mask_scores(s, p, key0, wg_first_row);
            softmax_step(s, st, p.scale_log2);
            wgmma_wait_fenced<0>(p.seqlen_k);      // P_{t-1} V_{t-1} landed: O and P may change
            fence_o(o);
            fence_p(p_regs);
            mbar_arrive(&smem.v_empty[prev_stage]);
            pack_p(p_regs, s);
        }
        mbar_arrive(&smem.q_empty);  // every S of this item has landed: the producer may load the next Q
        const int last_stage = stage_of(tiles - 1);
        mbar_wait(&smem.v_full[last_stage], stage_parity(ring, last_stage) ^ 1);
        rescale(o, st);
        wgmma_fence();
        issue_pv(o, p_regs, smem_addr(smem.v[last_stage]));
        wgmma_wait<0>();
        fence_o(o);
        mbar_arrive(&smem.v_empty[last_stage]);
    }
    if (kSplitWarpgroups && !merge_warpgroups(smem, o, st, wg, p.scale_log2)) return;
    const WorkItem item = slot.item;
    if (p.num_splits > 1) {
        split_store(p, smem, wg, o, st, wg_first_row, item.m_block, item.split, item.head, item.batch);
        return;
    }
    float row_max_log2[2], row_sum[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        row_max_log2[i] = st.max[i] * p.scale_log2;
        row_sum[i] = quad_sum(st.sum[i]);
    }
    store(p, smem, wg, o, row_max_log2, row_sum, wg_first_row, item.head, item.batch);
}

}  // namespace attn

extern "C" __global__ void __launch_bounds__(attn::kThreads, 1) attn_fwd_sm90(const __grid_constant__ attn::Params p) {
    using namespace attn;
    extern __shared__ uint8_t smem_raw[];
    SharedStorage& smem = *reinterpret_cast<SharedStorage*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) &
                                                            ~static_cast<uintptr_t>(1023));
    const int warpgroup = threadIdx.x / 128;
    if (kSplitWarpgroups && p.num_splits != 1) __trap();  // the host never launches this (bsk_cupy/launch.py)

    if (threadIdx.x == 0) {
        mbar_init(&smem.q_full, 1);
        mbar_init(&smem.q_empty, kConsumerThreads);
        mbar_init(&smem.claim_full, 1);
        mbar_init(&smem.claim_empty, 1);
        for (int s = 0; s < kStages; ++s) {
            mbar_init(&smem.k_full[s], 1);
            mbar_init(&smem.v_full[s], 1);
            mbar_init(&smem.k_empty[s], kStageConsumerThreads);
            mbar_init(&smem.v_empty[s], kStageConsumerThreads);
        }
        fence_barrier_init();
        tma_prefetch_descriptor(&p.tma_q);
        tma_prefetch_descriptor(&p.tma_k);
        tma_prefetch_descriptor(&p.tma_v);
    }
    // Everything above touches only shared memory and parameters, so with programmatic dependent launch it
    // overlaps the previous kernel's tail; global memory (masks included) only after the wait.
    grid_dependency_wait();
    grid_dependents_launch();
    __syncthreads();

    // The producer claims the work items and hands each to the consumers with its Q (an ItemSlot, then
    // q_full), ending with a slot of -1 tiles; both sides track the same ring phases. An item with no
    // tiles loads nothing (its rows are written as 0 / -inf).
    // (Nothing is kept across setmaxnreg or the item loops that can be recomputed: the producer has 24-32
    // registers, three consumers 160 each, and ptxas spills a value live across either.)
    if (warpgroup == 0) {
        warpgroup_release_registers<kProducerRegisters>();
        if (threadIdx.x == 32) claim_items(p, smem);
        if (threadIdx.x != 0) return;
        uint32_t ring = 0;
        for (int round = 0;; ++round) {
            mbar_wait(&smem.claim_full, round & 1);
            mbar_wait(&smem.q_empty, (round & 1) ^ 1);
            ItemSlot& slot = smem.items[round & 1];
            const Claim& claim = smem.claim;
            slot.tiles = claim.sched.count();
            if (slot.tiles < 0) {
                mbar_arrive(&smem.q_full);
                break;
            }
            slot.item = claim.item;
            load(p, smem, claim.sched, claim.item, ring);
            mbar_arrive(&smem.claim_empty);  // every load of this item is issued: decode the next
        }
    } else {
        warpgroup_claim_registers<kConsumerRegisters>();
        const int wg = warpgroup - 1;
        uint32_t ring = 0;  // bit 31: the Q barriers' phase (one per round), below it the K/V stages
        if (wg == kConsumers - 1) scheduler_pass(wg);  // warpgroup 0 goes first
        for (;; ring ^= 1u << 31) {
            mbar_wait(&smem.q_full, ring >> 31);
            const ItemSlot& slot = smem.items[ring >> 31];
            if (slot.tiles < 0) break;
            compute(p, smem, wg, slot, ring);
        }
        if (kBulkStore && threadIdx.x % 128 == 0) bulk_wait_read();  // the staging rows outlive no copy
    }
}
