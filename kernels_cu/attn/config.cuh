// attn_fwd_sm90: compile-time configuration (the -D macros of bsk_cupy/specs.py and their defaults), the
// tile, warpgroup and shared-memory constants derived from them, register budgets, named barrier ids.
#pragma once
#include "../common/prelude.cuh"
#include "../common/cluster.cuh"
#include "../common/mbarrier.cuh"
#include "../common/numeric.cuh"
#include "../common/pdl.cuh"
#include "../common/tma.cuh"
#include "../common/warpgroup.cuh"
#include "../common/wgmma.cuh"

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
#ifndef CLUSTER_SPLIT
#define CLUSTER_SPLIT 1
#endif
#ifndef Q_BUFFERS
#define Q_BUFFERS 1
#endif
#ifndef EPILOGUE_PROBE
#define EPILOGUE_PROBE 0  // diagnostics only (bsk_cupy/specs.py epilogue_probe): 1 no staging writes, 2 no output
#endif

namespace attn {

constexpr int kHeadDim = HEAD_DIM;
constexpr bool kCausal = CAUSAL != 0;
constexpr bool kBf16 = DTYPE == 1;
constexpr int kBlockM = BLOCK_M;
constexpr int kBlockN = BLOCK_N;
constexpr int kStages = STAGES;

constexpr int kRowsPerWarpgroup = 64;                       // wgmma M
// Height of the short items that may follow a head's 192-row items (Params::tall_blocks): two consumers
// work, the third only keeps the rings in step (idle_item). Other tiles have no short items and compile
// as without them; WorkItem::m_block counts kRowUnit rows.
constexpr bool kShortItems = kBlockM == 192;
constexpr int kShortRows = 128;
constexpr int kRowUnit = kShortItems ? 64 : kBlockM;
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
// Q_BUFFERS 2 (head dim 64 or 128; no causal mask, split warpgroups or cluster): a persistent CTA's loader
// fetches its next work item's Q while the consumers still work on the current one, where every item has
// the same KV tiles or a block mask's rows run longest first (the next is then claimed as soon as this
// one's loads are issued); under load a Q takes 1.1-2.5 us to land, which the consumers otherwise wait
// out at every item boundary (RESULTS.md, tenth session). bsk_cupy/dispatch.py (q_buffers_spec) says
// where it pays. Q_BUFFERS 1 compiles the single-buffer kernel unchanged: one Q, two work-item slots, the
// claim read in place.
constexpr int kQBuffers = Q_BUFFERS;
static_assert(kQBuffers == 1 ||
                  (kQBuffers == 2 && kHeadDim != 256 && !CAUSAL && !WG_SPLIT && CLUSTER_SPLIT == 1),
              "Q_BUFFERS 2 needs HEAD_DIM 64 or 128 without CAUSAL, WG_SPLIT or CLUSTER_SPLIT");
// Work-item slots, by round: the consumers read a round's item again in its epilogue, by which time the
// loader may be one round ahead (two slots), or two with two Q buffers (four). The consumers keep the round
// mod kItemSlots in the top bits of their stage ring, from bit kRoundShift.
constexpr int kItemSlots = 2 * kQBuffers;
constexpr int kRoundShift = kQBuffers == 1 ? 31 : 30;
constexpr int kKVTileBytes = kBlockN * kHeadDim * 2;
constexpr int kStageConsumerThreads = kSplitWarpgroups ? 128 : kConsumerThreads;  // readers of each stage
constexpr bool kPingPong = PINGPONG != 0 && !kSplitWarpgroups;  // split warpgroups run unequal tile counts
constexpr int kFragmentFloats = kChunks * 32;                   // O accumulator floats per consumer thread
// A partial result as one thread hands it to another (WG_SPLIT merge, cluster merge): its O fragments,
// then its two rows' max and partial sum, as float4 vectors; vector j of thread t at j * 128 + t.
constexpr int kPartialVectors = kFragmentFloats / 4 + 1;
constexpr int kExchangeFloats = kSplitWarpgroups ? 128 * 4 * kPartialVectors : 4;
// CLUSTER_SPLIT 2 (WG_SPLIT only): a cluster of two CTAs splits one 64-row query block's KV tiles (split-KV
// without a global workspace). The two CTAs trade the halves of their merged partial results that the
// other keeps through shared memory (st.async); each merges and stores 32 rows (merge_cluster). One item
// per CTA (no persistence); stores from registers (a 64-row bulk store would need every warp).
constexpr int kClusterSplit = CLUSTER_SPLIT;
constexpr int kClusterExchangeFloats = kClusterSplit > 1 ? 128 * 4 * kPartialVectors : 4;
constexpr uint32_t kClusterExchangeBytes = 128 * 16 * kPartialVectors;
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
// WG_SPLIT's 64 x 64 tiles: NVRTC 13.0 spills 4-12 bytes of the loader at 24 registers (13.5 does not);
// with four stages at 64 x 128, 13.5 spills 4 bytes (13.0 does not). Their consumers fit 232.
constexpr bool kRoomyProducer = kConsumers == 3 || (kSplitWarpgroups && (kBlockN == 64 || kStages == 4));
constexpr int kProducerRegisters = kRoomyProducer ? 32 : 24;
constexpr int kConsumerRegisters = kConsumers == 3 ? 160 : (kRoomyProducer ? 232 : 240);
static_assert(128 * (kProducerRegisters + kConsumers * kConsumerRegisters) <= kThreads * ((65536 / kThreads) & ~7),
              "setmaxnreg budgets exceed the registers the CTA is launched with");

static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256, "HEAD_DIM must be 64, 128 or 256");
static_assert(kSplitWarpgroups ? (kBlockM == 64 && (kStages == 2 || kStages == 4) && kHeadDim != 256)
                               : (kBlockM == 128 || (kBlockM == 192 && kHeadDim == 64)),
              "BLOCK_M must be 128 (two consumer warpgroups), 192 at HEAD_DIM 64 (three), or 64 with WG_SPLIT "
              "(two sharing the rows; STAGES 2 or 4, as many per warpgroup; not at HEAD_DIM 256)");
// 64-key tiles: WG_SPLIT's 64 x 64 tiles (64 x 64 block masks), and HEAD_DIM 256, whose 128-key K and V
// tiles would not fit twice in shared memory next to Q (64 KB each).
static_assert(kHeadDim == 256 ? kBlockN == 64 : (kBlockN == 128 || (kBlockN == 64 && kSplitWarpgroups)),
              "BLOCK_N must be 128, 64 with WG_SPLIT, and 64 at HEAD_DIM 256");
static_assert(kStages >= 2 && kStages <= 4, "STAGES must be 2, 3 or 4");
static_assert(kClusterSplit == 1 || (kClusterSplit == 2 && kSplitWarpgroups && !kBulkStore),
              "CLUSTER_SPLIT must be 1, or 2 with WG_SPLIT and without BULK_STORE");
static_assert(!kBulkStore || kHeadDim != 256, "BULK_STORE: the staging rows do not fit at HEAD_DIM 256");
static_assert(DTYPE == 0 || DTYPE == 1, "DTYPE must be 0 (float16) or 1 (bfloat16)");

// Named barriers (0 is __syncthreads): the ping-pong ring (warpgroup w waits on kSchedulerBarrier + w), the
// split-KV combine, the WG_SPLIT exchange, and the bulk-store epilogue (one per storing warpgroup).
constexpr uint32_t kSchedulerBarrier = 1;
constexpr uint32_t kSchedulerThreads = 256;
constexpr uint32_t kCombineBarrier = 1 + kConsumers;
constexpr uint32_t kExchangeFree = kCombineBarrier + 1;
constexpr uint32_t kExchangeFull = kCombineBarrier + 2;
constexpr uint32_t kStoreBarrier = kCombineBarrier + 3;
static_assert(kStoreBarrier + kConsumers <= 16, "named barrier ids run past 15");

}  // namespace attn
