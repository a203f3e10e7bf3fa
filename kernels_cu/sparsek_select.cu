// sparsek_select: SparseK block selection on Hopper (sm_90a), on the CUDA cores (no wgmma, no TMA).
//
// Math. scores s[b, h, j] (B, Hkv, Sk) give every key a query-independent importance (SparseK's scoring
// network). With BS = BLOCK_SIZE rows per query block and keys per KV block, nQB = ceil(Sq / BS) and
// nKB = ceil(Sk / BS):
//   pooled[b, h, n] = max or mean (mean_pool) of s[b, h, j] over the keys j of KV block n that exist
//                     (j < Sk) and are not NaN; NaN when there is none. Means are summed in double.
//   Query block m: last row r = min((m + 1) BS, Sq) - 1, diagonal key d = r + Sk - Sq, and
//   L = min(max(d, 0) / BS, nKB - 1); F likewise from the first row m BS (F < L where Sk - Sq is not a
//   multiple of BS). Causal: nothing is kept when d < 0 (its rows see no key), else the candidates are
//   blocks [0, L]; not causal: every block is a candidate.
//   Kept: the local window [max(F - local_blocks + 1, 0), L] (every row's diagonal block and the
//   local_blocks - 1 before the first; empty when local_blocks is 0), plus the first topk candidates outside
//   it in rank order: pooled score descending, NaN below every number (-inf included), then block index
//   ascending.
// This is bsk_cupy.reference.sparsek_blocks_reference, whose np.argsort ranks the same way. Max pooling
// matches it exactly; a mean is summed in another order than NumPy's, so two means within a rounding error
// of each other may rank differently (exact ties, e.g. small-integer scores, rank the same).
//
// Layouts. scores: 16- or 32-bit floats (DTYPE) at any element strides (Params; zero and negative work).
// Outputs, int32, contiguous:
//   kv_num_blocks (B, Hkv, nQB)       number of kept blocks;
//   kv_indices    (B, Hkv, nQB, nKB)  the kept blocks ascending, then the other blocks ascending: every row
//                                     is a permutation of 0..nKB-1, the layout BlockMask.from_dense writes.
//
// Grid. x: chunks of QUERY_BLOCKS_PER_CTA query blocks, y: KV heads, z: batch. Each CTA of a (b, h) pools and
// sorts the same scores itself (Sk loads and O(P log^2 P) shared-memory steps, repeated per chunk), which
// keeps CTAs independent: no second launch, no inter-CTA synchronisation, deterministic output.
//
// Threads (THREADS = 512, 16 warps), in four phases split by __syncthreads:
//   pool  warp w pools KV blocks w, w + 16, ...: lanes stride over the block's keys (4 blocks' loads in
//         flight per lane), warp-shuffle reduction, lane 0 stores (max, 1) or (sum, count).
//   rank  all threads: (total, count) -> (rank key, block index), a 64-bit key whose unsigned order is the
//         rank order of the pooled scores; the arrays are padded to P = next power of two >= nKB with
//         entries that rank after every block.
//   sort  all threads: bitonic sort of the P (key, index) pairs, so that sorted position i < nKB holds the
//         i-th ranked block.
//   pick  warp w takes query blocks w, w + 16, ... of the chunk, one at a time: marks its local window in a
//         per-warp bitmap, walks the sorted list 32 entries per step (ballot: entries that are candidates
//         outside the window; the first topk win), then writes both lists of the row with ballot + popc
//         (two contiguous runs per 32 blocks) and the count.
//
// Shared memory (dynamic, bytes; SparseKSelectSpec.smem_bytes_for computes the same), W = ceil(nKB / 32):
//   | rank keys (uint64) | block indices (int32) | bitmaps (16 warps x W words) | nKB = 1024 | nKB = 4096 |
//   | 8 P                | 4 P                   | 64 W                         | 14 336     | 57 344     |
// MAX_KV_BLOCKS (4096) bounds nKB; the host refuses more. The spec's smem_bytes is the nKB = MAX_KV_BLOCKS
// size (the attribute set at load); each launch asks only for what its nKB needs.
#include "common/prelude.cuh"
#include "common/numeric.cuh"

#ifndef DTYPE
#define DTYPE 0
#endif
#ifndef BLOCK_SIZE
#define BLOCK_SIZE 128
#endif
#ifndef THREADS
#define THREADS 512
#endif
#ifndef MAX_KV_BLOCKS
#define MAX_KV_BLOCKS 4096
#endif
#ifndef QUERY_BLOCKS_PER_CTA
#define QUERY_BLOCKS_PER_CTA 64
#endif

namespace sparsek {

constexpr int kBlockSize = BLOCK_SIZE;
constexpr int kThreads = THREADS;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxKvBlocks = MAX_KV_BLOCKS;
constexpr int kQueryBlocksPerCta = QUERY_BLOCKS_PER_CTA;
constexpr int kKeysPerLane = kBlockSize / 32;
constexpr int kPoolBlocksPerStep = 4;       // KV blocks a warp loads before reducing any of them
constexpr uint32_t kFullWarp = 0xffffffffu;

static_assert(DTYPE == 0 || DTYPE == 1 || DTYPE == 2, "DTYPE must be 0 (float16), 1 (bfloat16) or 2 (float32)");
static_assert(kBlockSize == 64 || kBlockSize == 128, "BLOCK_SIZE must be 64 or 128");
static_assert(kThreads % 32 == 0 && kThreads <= 1024, "THREADS must be a multiple of 32, at most 1024");
static_assert(kMaxKvBlocks >= 1 && kMaxKvBlocks <= 8192, "MAX_KV_BLOCKS must lie in [1, 8192]");
static_assert(kQueryBlocksPerCta % kWarps == 0, "QUERY_BLOCKS_PER_CTA must be a multiple of the warp count");

// Kernel parameters; the host packs the same 80 bytes (bsk_cupy/sparsek_launch.py, PARAMS_FORMAT).
struct Params {
    const void* scores;        // (B, Hkv, Sk), DTYPE, strides below
    int* kv_num_blocks;        // (B, Hkv, nQB), contiguous
    int* kv_indices;           // (B, Hkv, nQB, nKB), contiguous
    int64_t stride_b;          // scores strides, elements
    int64_t stride_h;
    int64_t stride_s;
    int seqlen_q;
    int seqlen_k;
    int n_q_blocks;
    int n_kv_blocks;           // <= MAX_KV_BLOCKS
    int topk;                  // clamped to [0, nKB] by the host
    int local_blocks;          // clamped to [0, nKB] by the host
    int causal;                // 0 or 1
    int mean_pool;             // 0: max, 1: mean
};
static_assert(sizeof(Params) == 80, "Params layout drifted from bsk_cupy/sparsek_launch.py");

constexpr int next_pow2(int n) {
    int p = 1;
    while (p < n) p <<= 1;
    return p;
}
constexpr int bitmap_words(int n_kv_blocks) { return (n_kv_blocks + 31) / 32; }
constexpr int smem_bytes_for(int n_kv_blocks) {
    return next_pow2(n_kv_blocks) * (8 + 4) + kWarps * bitmap_words(n_kv_blocks) * 4;
}
#ifdef SMEM_BYTES
static_assert(smem_bytes_for(kMaxKvBlocks) == SMEM_BYTES, "shared-memory size drifted from bsk_cupy/specs.py");
#endif

// The sort's arrays in shared memory: entry i is (key[i], index[i]).
struct RankedBlocks {
    uint64_t* key;
    int* index;
};

BSK_DEVICE uint32_t lanes_below(int lane) { return (1u << lane) - 1u; }

BSK_DEVICE float quiet_nan() { return __int_as_float(0x7fc00000); }

BSK_DEVICE float load_score(const Params& p, int64_t offset) {
    if (DTYPE == 2) return __ldg(static_cast<const float*>(p.scores) + offset);
    const uint16_t bits = __ldg(static_cast<const uint16_t*>(p.scores) + offset);
    return DTYPE == 1 ? bf16_to_f32(bits) : f16_to_f32(bits);
}

// Rank key of a pooled score: a larger score gives a larger key, -0 ties +0, NaN gets 0 (below -inf).
BSK_DEVICE uint64_t rank_key(double x) {
    if (x != x) return 0;
    if (x == 0.0) x = 0.0;
    const uint64_t bits = static_cast<uint64_t>(__double_as_longlong(x));
    return (bits >> 63) ? ~bits : bits | (1ull << 63);
}

// Max over the warp's values, NaN ignored (fmaxf returns the other operand); NaN if all are NaN.
BSK_DEVICE float warp_nanmax(const float (&v)[kKeysPerLane]) {
    float m = quiet_nan();
#pragma unroll
    for (int t = 0; t < kKeysPerLane; ++t) m = fmaxf(m, v[t]);
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) m = fmaxf(m, __shfl_xor_sync(kFullWarp, m, offset));
    return m;
}

// Sum (in double) and number of the warp's non-NaN values.
BSK_DEVICE void warp_nansum(const float (&v)[kKeysPerLane], double& sum, int& count) {
    sum = 0.0;
    count = 0;
#pragma unroll
    for (int t = 0; t < kKeysPerLane; ++t) {
        if (v[t] == v[t]) {
            sum += v[t];
            ++count;
        }
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        sum += __shfl_xor_sync(kFullWarp, sum, offset);
        count += __shfl_xor_sync(kFullWarp, count, offset);
    }
}

// Pool phase: warp `warp` reduces KV blocks warp, warp + kWarps, ... (keys past Sk read as NaN) and leaves
// (total, count) in (key, index) as raw bits: max and 1, or sum and number of non-NaN keys (mean pooling).
BSK_DEVICE void pool(const Params& p, RankedBlocks r, int64_t head_offset, int warp, int lane) {
    const int n_kv_blocks = p.n_kv_blocks;
    for (int first = warp; first < n_kv_blocks; first += kWarps * kPoolBlocksPerStep) {
        float v[kPoolBlocksPerStep][kKeysPerLane];
#pragma unroll
        for (int i = 0; i < kPoolBlocksPerStep; ++i) {
#pragma unroll
            for (int t = 0; t < kKeysPerLane; ++t) {
                const int key = (first + i * kWarps) * kBlockSize + t * 32 + lane;
                v[i][t] = key < p.seqlen_k ? load_score(p, head_offset + key * p.stride_s) : quiet_nan();
            }
        }
#pragma unroll
        for (int i = 0; i < kPoolBlocksPerStep; ++i) {
            const int n = first + i * kWarps;
            double total;
            int count = 1;
            if (p.mean_pool) {
                warp_nansum(v[i], total, count);
            } else {
                total = warp_nanmax(v[i]);
            }
            if (lane == 0 && n < n_kv_blocks) {
                r.key[n] = static_cast<uint64_t>(__double_as_longlong(total));
                r.index[n] = count;
            }
        }
    }
}

// Rank phase: turns (total, count) into (rank key, block index) and pads the arrays to `size` with entries
// that rank after every block. Kept apart from the pool loop: the double division calls a slow-path
// subroutine, and next to the pool loop's live loads that call made ptxas spill.
BSK_DEVICE void rank(const Params& p, RankedBlocks r, int size) {
    for (int n = threadIdx.x; n < size; n += kThreads) {
        uint64_t key = 0;
        if (n < p.n_kv_blocks) {
            const double total = __longlong_as_double(static_cast<long long>(r.key[n]));
            const int count = r.index[n];
            key = rank_key(count == 0 ? static_cast<double>(quiet_nan()) : p.mean_pool ? total / count : total);
        }
        r.key[n] = key;
        r.index[n] = n;
    }
}

BSK_DEVICE bool ranks_before(RankedBlocks r, int a, int b) {
    return r.key[a] > r.key[b] || (r.key[a] == r.key[b] && r.index[a] < r.index[b]);
}

// Sort phase: bitonic sort of the first `size` (a power of two) entries into rank order. All threads.
BSK_DEVICE void sort_by_rank(RankedBlocks r, int size) {
    for (int k = 2; k <= size; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = threadIdx.x; i < size / 2; i += kThreads) {
                const int lo = ((i & ~(j - 1)) << 1) | (i & (j - 1));
                const int hi = lo + j;
                const bool forward = (lo & k) == 0;  // this run ends in rank order, the other one reversed
                if (ranks_before(r, hi, lo) == forward) {
                    const uint64_t key = r.key[lo];
                    const int index = r.index[lo];
                    r.key[lo] = r.key[hi];
                    r.index[lo] = r.index[hi];
                    r.key[hi] = key;
                    r.index[hi] = index;
                }
            }
            __syncthreads();
        }
    }
}

BSK_DEVICE void mark(uint32_t* bitmap, int n) { atomicOr(&bitmap[n >> 5], 1u << (n & 31)); }

// Marks query block m's kept blocks in the warp's bitmap; returns how many. One warp.
BSK_DEVICE int mark_kept(const Params& p, RankedBlocks r, uint32_t* bitmap, int m, int lane) {
    const int n_kv_blocks = p.n_kv_blocks;
    const int64_t last_row = min(static_cast<int64_t>(m + 1) * kBlockSize, static_cast<int64_t>(p.seqlen_q)) - 1;
    const int64_t diagonal = last_row + p.seqlen_k - p.seqlen_q;      // last key the block's last row may see
    if (p.causal && diagonal < 0) return 0;                            // its rows see no key at all
    const int last = static_cast<int>(min(max(diagonal, int64_t(0)) / kBlockSize, int64_t(n_kv_blocks - 1)));
    const int64_t first_diagonal = static_cast<int64_t>(m) * kBlockSize + p.seqlen_k - p.seqlen_q;  // first row's
    const int first = static_cast<int>(min(max(first_diagonal, int64_t(0)) / kBlockSize, int64_t(n_kv_blocks - 1)));
    const int lo = p.local_blocks > 0 ? max(first - p.local_blocks + 1, 0) : last + 1;  // local window [lo, last]
    for (int n = lo + lane; n <= last; n += 32) mark(bitmap, n);
    const int others = lo + (p.causal ? 0 : n_kv_blocks - 1 - last);  // candidates outside the window
    const int wanted = min(p.topk, others);
    for (int pos = lane, taken = 0; taken < wanted; pos += 32) {       // every candidate sits before nKB
        const int n = pos < n_kv_blocks ? r.index[pos] : 0;
        const bool candidate = pos < n_kv_blocks && (n < lo || (!p.causal && n > last));
        const uint32_t ballot = __ballot_sync(kFullWarp, candidate);
        if (candidate && taken + __popc(ballot & lanes_below(lane)) < wanted) mark(bitmap, n);
        taken += __popc(ballot);
    }
    return last - lo + 1 + wanted;
}

// Writes one row: kept blocks ascending, then the others ascending, and the count. One warp.
BSK_DEVICE void write_row(const Params& p, const uint32_t* bitmap, int kept, int64_t row, int lane) {
    const int n_kv_blocks = p.n_kv_blocks;
    int* indices = p.kv_indices + row * n_kv_blocks;
    int written = 0;                                                   // kept blocks below `base`
    for (int base = 0; base < n_kv_blocks; base += 32) {
        const int n = base + lane;
        const bool keep = n < n_kv_blocks && ((bitmap[base >> 5] >> lane) & 1u);
        const uint32_t kept_here = __ballot_sync(kFullWarp, keep);
        const int kept_below = __popc(kept_here & lanes_below(lane));
        if (keep) {
            indices[written + kept_below] = n;
        } else if (n < n_kv_blocks) {
            indices[kept + (base - written) + (lane - kept_below)] = n;
        }
        written += __popc(kept_here);
    }
    if (lane == 0) p.kv_num_blocks[row] = kept;
}

}  // namespace sparsek

extern "C" __global__ void __launch_bounds__(sparsek::kThreads)
    sparsek_select(const __grid_constant__ sparsek::Params p) {
    using namespace sparsek;
    extern __shared__ __align__(16) uint8_t smem[];
    const int n_kv_blocks = p.n_kv_blocks;
    const int size = next_pow2(n_kv_blocks);
    const int words = bitmap_words(n_kv_blocks);
    const int head = blockIdx.y, batch = blockIdx.z;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const RankedBlocks ranked = {reinterpret_cast<uint64_t*>(smem), reinterpret_cast<int*>(smem + 8 * size)};
    uint32_t* bitmap = reinterpret_cast<uint32_t*>(smem + 12 * size) + warp * words;  // this warp's

    pool(p, ranked, batch * p.stride_b + head * p.stride_h, warp, lane);
    __syncthreads();
    rank(p, ranked, size);
    __syncthreads();
    sort_by_rank(ranked, size);

    const int64_t head_rows = (static_cast<int64_t>(batch) * gridDim.y + head) * p.n_q_blocks;
    const int m_end = min((static_cast<int>(blockIdx.x) + 1) * kQueryBlocksPerCta, p.n_q_blocks);
    for (int m = blockIdx.x * kQueryBlocksPerCta + warp; m < m_end; m += kWarps) {
        for (int w = lane; w < words; w += 32) bitmap[w] = 0;
        __syncwarp();
        const int kept = mark_kept(p, ranked, bitmap, m, lane);
        __syncwarp();
        write_row(p, bitmap, kept, head_rows + m, lane);
        __syncwarp();
    }
}
