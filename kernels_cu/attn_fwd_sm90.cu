// attn_fwd_sm90: dense attention forward for Hopper (sm_90a), one CTA per (query block, head, batch).
//
// Math. For every batch b, query head h and query row i:
//   s_ij = scale * <q_i, k_j>   over the keys j that row i may see,
//   o_i  = sum_j softmax(s_i)_j v_j,      lse_i = log(sum_j exp(s_ij))   (natural log).
// Row i sees key j iff j < Sk and, when CAUSAL, j <= i + (Sk - Sq) (bottom-right aligned). A row that sees no
// key gets o_i = 0 and lse_i = -inf. Softmax is computed online (FlashAttention): running max m and running
// sum l per row, in log2 units (scores are pre-multiplied by scale * log2(e), then exp2).
//
// Layouts. Q (B, Hq, Sq, D), K/V (B, Hkv, Sk, D), any strides with a contiguous D; the host describes each
// as a 4-D TMA tensor map over (d, s, h, b) whose last three dimensions are ordered by stride, and
// `Params::coord_order_*` says where s, h and b sit. Query head h reads KV head h / heads_per_kv (GQA/MQA).
// O has Q's shape and the caller's layout (strides in Params); LSE is float32 (B, Hq, Sq), contiguous.
// Shared-memory tiles are stored as HEAD_DIM/64 chunks of [rows][64] 16-bit elements with the 128-byte
// swizzle that TMA writes and wgmma reads (each 8-row x 128-byte atom is 1024-byte aligned).
//
// Grid. x: query blocks of BLOCK_M rows (reversed, so the longest causal blocks start first), y: query
// heads, z: batch. Rows and keys past Sq / Sk are zero-filled by TMA and masked.
//
// Warpgroups (128 threads each, setmaxnreg budgets in the constants below).
//   WG0  producer: one thread issues TMA loads: Q once, then K and V tiles into a STAGES-deep ring
//        guarded by k_full / v_full (transaction bytes) and kv_empty (consumer arrivals).
//   WG1+ consumers: each owns 64 query rows. Per KV tile: S = Q K^T (wgmma, both operands in shared
//        memory), mask, online softmax, P packed to 16-bit registers, O += P V (wgmma, A from registers,
//        V read N-major), then release the stage. Epilogue: O / l to global memory, LSE.
//
// Shared memory (bytes), STAGES = 2. SharedStorage rounds up to its 1024-byte alignment; the host adds
// 1024 more so the dynamic base can be aligned (bsk_cupy/specs.py computes the same, SMEM_BYTES checks it):
//   | HEAD_DIM | BLOCK_M x BLOCK_N | Q      | K ring | V ring | barriers | launched with |
//   | 64       | 128 x 128         | 16 384 | 32 768 | 32 768 | 56       | 83 968        |
//   | 128      | 128 x 128         | 32 768 | 65 536 | 65 536 | 56       | 165 888       |
#include "common/prelude.cuh"
#include "common/mbarrier.cuh"
#include "common/numeric.cuh"
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

namespace attn {

constexpr int kHeadDim = HEAD_DIM;
constexpr bool kCausal = CAUSAL != 0;
constexpr bool kBf16 = DTYPE == 1;
constexpr int kBlockM = BLOCK_M;
constexpr int kBlockN = BLOCK_N;
constexpr int kStages = STAGES;

constexpr int kRowsPerWarpgroup = 64;                       // wgmma M
constexpr int kConsumers = kBlockM / kRowsPerWarpgroup;     // consumer warpgroups
constexpr int kThreads = 128 * (1 + kConsumers);
constexpr int kChunkElems = 64;                             // 16-bit elements per 128-byte swizzle row
constexpr int kChunks = kHeadDim / kChunkElems;
constexpr int kChunkRowBytes = 128;
constexpr int kSwizzleAtomBytes = 8 * kChunkRowBytes;       // 8 rows x 128 bytes
constexpr int kQBytes = kBlockM * kHeadDim * 2;
constexpr int kKVTileBytes = kBlockN * kHeadDim * 2;
// Register budgets after setmaxnreg: 128 * (24 + 240 * 2) = 64 512 of the SM's 65 536.
constexpr int kProducerRegisters = 24;
constexpr int kConsumerRegisters = 240;

static_assert(kHeadDim == 64 || kHeadDim == 128, "HEAD_DIM must be 64 or 128");
static_assert(kBlockM == 128, "BLOCK_M must be 128 (two consumer warpgroups)");
static_assert(kBlockN == 128, "BLOCK_N must be 128 (one m64n128k16 wgmma per k-step of Q K^T)");
static_assert(kStages >= 2 && kStages <= 4, "STAGES must be 2, 3 or 4");
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
};
static_assert(sizeof(Params) == 448, "Params layout drifted from bsk_cupy/launch.py");
struct SharedStorage {
    alignas(1024) uint8_t q[kQBytes];
    alignas(1024) uint8_t k[kStages][kKVTileBytes];
    alignas(1024) uint8_t v[kStages][kKVTileBytes];
    uint64_t q_full;
    uint64_t k_full[kStages];
    uint64_t v_full[kStages];
    uint64_t kv_empty[kStages];
};
#ifdef SMEM_BYTES
static_assert(sizeof(SharedStorage) + 1024 == SMEM_BYTES, "shared-memory size drifted from bsk_cupy/specs.py");
#endif

BSK_DEVICE int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Number of KV tiles query block `m_block` must visit: all of them, or up to the causal diagonal.
BSK_DEVICE int kv_tiles_for(const Params& p, int m_block) {
    int tiles = ceil_div(p.seqlen_k, kBlockN);
    if (kCausal) {
        const int last_row = min((m_block + 1) * kBlockM, p.seqlen_q) - 1;
        const int last_col = last_row + p.seqlen_k - p.seqlen_q;
        tiles = last_col < 0 ? 0 : min(tiles, last_col / kBlockN + 1);
    }
    return tiles;
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

// Producer: Q once, then the K/V ring. One thread.
BSK_DEVICE void load(const Params& p, SharedStorage& smem, int m_block, int head, int batch, int tiles) {
    const int kv_head = head / p.heads_per_kv;
    mbar_arrive_expect_tx(&smem.q_full, kQBytes);
    for (int c = 0; c < kChunks; ++c) {
        load_chunk(smem.q + c * kBlockM * kChunkRowBytes, &p.tma_q, &smem.q_full, p.coord_order_q,
                   c * kChunkElems, m_block * kBlockM, head, batch);
    }
    for (int t = 0; t < tiles; ++t) {
        const int stage = t % kStages;
        mbar_wait(&smem.kv_empty[stage], ((t / kStages) & 1) ^ 1);
        mbar_arrive_expect_tx(&smem.k_full[stage], kKVTileBytes);
        for (int c = 0; c < kChunks; ++c) {
            load_chunk(smem.k[stage] + c * kBlockN * kChunkRowBytes, &p.tma_k, &smem.k_full[stage],
                       p.coord_order_kv, c * kChunkElems, t * kBlockN, kv_head, batch);
        }
        mbar_arrive_expect_tx(&smem.v_full[stage], kKVTileBytes);
        for (int c = 0; c < kChunks; ++c) {
            load_chunk(smem.v[stage] + c * kBlockN * kChunkRowBytes, &p.tma_v, &smem.v_full[stage],
                       p.coord_order_kv, c * kChunkElems, t * kBlockN, kv_head, batch);
        }
    }
}

// Per-thread view of the rows a consumer thread owns (two rows of the 64 x N fragments).
struct RowState {
    float max_log2[2];   // running max of scaled scores (log2 units); -inf until a key is seen
    float sum[2];        // this thread's share of the running softmax denominator
};

// S(64 x BLOCK_N) = Q_wg K^T, both operands 128-byte-swizzled K-major in shared memory.
BSK_DEVICE void qk_gemm(float (&s)[kBlockN / 2], uint32_t q_wg, uint32_t k_tile) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
        const uint32_t chunk = kk / 4, col_bytes = (kk % 4) * 32;
        const uint64_t desc_q = smem_desc_sw128(q_wg + chunk * kBlockM * kChunkRowBytes + col_bytes, 16,
                                                kSwizzleAtomBytes);
        const uint64_t desc_k = smem_desc_sw128(k_tile + chunk * kBlockN * kChunkRowBytes + col_bytes, 16,
                                                kSwizzleAtomBytes);
        wgmma_m64n128k16_ss(s, desc_q, desc_k, kk > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_fence_operands(s);
}

// Scale scores to log2 units and mask keys past Sk or above the causal diagonal.
BSK_DEVICE void scale_and_mask(float (&s)[kBlockN / 2], const Params& p, int key0, int row0, bool need_mask) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int e = 0; e < kBlockN / 2; ++e) s[e] *= p.scale_log2;
    if (!need_mask) return;
    const int diagonal_shift = p.seqlen_k - p.seqlen_q;
#pragma unroll
    for (int e = 0; e < kBlockN / 2; ++e) {
        const int col = key0 + 8 * (e / 4) + 2 * (lane % 4) + (e % 2);
        const int row = row0 + 8 * ((e / 2) % 2);
        const bool visible = col < p.seqlen_k && (!kCausal || col <= row + diagonal_shift);
        if (!visible) s[e] = BSK_NEG_INF;
    }
}

// Online softmax step: new running max, rescale O and the running sum, S -> unnormalised P in place.
BSK_DEVICE void online_softmax(float (&s)[kBlockN / 2], float (&o)[kChunks][32], RowState& st) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        float tile_max = BSK_NEG_INF;
#pragma unroll
        for (int e = 2 * i; e < kBlockN / 2; e += 4) tile_max = fmaxf(tile_max, fmaxf(s[e], s[e + 1]));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
        const float new_max = fmaxf(st.max_log2[i], tile_max);
        const float offset = new_max == BSK_NEG_INF ? 0.f : new_max;   // rows with nothing visible yet
        const float correction = exp2_approx(st.max_log2[i] - offset);
        st.max_log2[i] = new_max;
        float tile_sum = 0.f;
#pragma unroll
        for (int e = 2 * i; e < kBlockN / 2; e += 4) {
            s[e] = exp2_approx(s[e] - offset);
            s[e + 1] = exp2_approx(s[e + 1] - offset);
            tile_sum += s[e] + s[e + 1];
        }
        st.sum[i] = st.sum[i] * correction + tile_sum;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
#pragma unroll
            for (int e = 2 * i; e < 32; e += 4) {
                o[c][e] *= correction;
                o[c][e + 1] *= correction;
            }
        }
    }
}

BSK_DEVICE uint32_t pack_pair(float lo, float hi) { return kBf16 ? pack_bf16x2(lo, hi) : pack_f16x2(lo, hi); }

// O(64 x D) += P(64 x BLOCK_N) V(BLOCK_N x D): P from registers, V N-major (D contiguous) in shared memory.
BSK_DEVICE void pv_gemm(float (&o)[kChunks][32], const float (&s)[kBlockN / 2], uint32_t v_tile) {
    uint32_t p[kBlockN / 16][4];
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
#pragma unroll
        for (int r = 0; r < 4; ++r) p[kk][r] = pack_pair(s[8 * kk + 2 * r], s[8 * kk + 2 * r + 1]);
    }
    wgmma_fence();
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
#pragma unroll
    for (int c = 0; c < kChunks; ++c) wgmma_fence_operands(o[c]);
    wgmma_wait<0>();
#pragma unroll
    for (int c = 0; c < kChunks; ++c) wgmma_fence_operands(o[c]);
}

// Epilogue: O / l in the output dtype, LSE in natural log.
BSK_DEVICE void store(const Params& p, const float (&o)[kChunks][32], RowState& st, int row0, int head, int batch) {
    const int lane = threadIdx.x % 32;
    uint16_t* out = p.out + batch * p.out_stride_b + head * p.out_stride_h;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        float sum = st.sum[i];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const int row = row0 + 8 * i;
        if (row >= p.seqlen_q) continue;
        const float inv = sum > 0.f ? 1.f / sum : 0.f;
        uint16_t* out_row = out + row * p.out_stride_s;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const int col = c * kChunkElems + 8 * j + 2 * (lane % 4);
                const uint32_t packed = pack_pair(o[c][4 * j + 2 * i] * inv, o[c][4 * j + 2 * i + 1] * inv);
                *reinterpret_cast<uint32_t*>(out_row + col) = packed;
            }
        }
        if (p.lse != nullptr && lane % 4 == 0) {
            const float lse_log2 = sum > 0.f ? st.max_log2[i] + log2f(sum) : BSK_NEG_INF;
            p.lse[(static_cast<int64_t>(batch) * gridDim.y + head) * p.seqlen_q + row] = lse_log2 * 0.69314718056f;
        }
    }
}

// Consumer warpgroup `wg` (0-based among consumers): 64 query rows of the block.
BSK_DEVICE void compute(const Params& p, SharedStorage& smem, int wg, int m_block, int head, int batch, int tiles) {
    const int thread = threadIdx.x % 128, warp = thread / 32, lane = thread % 32;
    const int row0 = m_block * kBlockM + wg * kRowsPerWarpgroup + warp * 16 + lane / 4;
    const int wg_first_row = m_block * kBlockM + wg * kRowsPerWarpgroup;
    const uint32_t q_wg = smem_addr(smem.q) + wg * kRowsPerWarpgroup * kChunkRowBytes;

    float o[kChunks][32];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
        for (int e = 0; e < 32; ++e) o[c][e] = 0.f;
    }
    RowState st = {{BSK_NEG_INF, BSK_NEG_INF}, {0.f, 0.f}};

    if (tiles > 0) mbar_wait(&smem.q_full, 0);
    for (int t = 0; t < tiles; ++t) {
        const int stage = t % kStages;
        const uint32_t phase = (t / kStages) & 1;
        const int key0 = t * kBlockN;
        const bool need_mask = key0 + kBlockN > p.seqlen_k ||
                               (kCausal && key0 + kBlockN - 1 > wg_first_row + p.seqlen_k - p.seqlen_q);
        float s[kBlockN / 2];
        mbar_wait(&smem.k_full[stage], phase);
        qk_gemm(s, q_wg, smem_addr(smem.k[stage]));
        scale_and_mask(s, p, key0, row0, need_mask);
        online_softmax(s, o, st);
        mbar_wait(&smem.v_full[stage], phase);
        pv_gemm(o, s, smem_addr(smem.v[stage]));
        mbar_arrive(&smem.kv_empty[stage]);
    }
    store(p, o, st, row0, head, batch);
}

}  // namespace attn

extern "C" __global__ void __launch_bounds__(attn::kThreads, 1) attn_fwd_sm90(const __grid_constant__ attn::Params p) {
    using namespace attn;
    extern __shared__ uint8_t smem_raw[];
    SharedStorage& smem = *reinterpret_cast<SharedStorage*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) &
                                                            ~static_cast<uintptr_t>(1023));
    const int m_block = gridDim.x - 1 - blockIdx.x;
    const int head = blockIdx.y, batch = blockIdx.z;
    const int tiles = kv_tiles_for(p, m_block);
    const int warpgroup = threadIdx.x / 128;

    if (threadIdx.x == 0) {
        mbar_init(&smem.q_full, 1);
        for (int s = 0; s < kStages; ++s) {
            mbar_init(&smem.k_full[s], 1);
            mbar_init(&smem.v_full[s], 1);
            mbar_init(&smem.kv_empty[s], 128 * kConsumers);
        }
        fence_barrier_init();
    }
    __syncthreads();

    if (warpgroup == 0) {
        warpgroup_release_registers<kProducerRegisters>();
        if (threadIdx.x == 0) {
            tma_prefetch_descriptor(&p.tma_q);
            tma_prefetch_descriptor(&p.tma_k);
            tma_prefetch_descriptor(&p.tma_v);
            if (tiles > 0) load(p, smem, m_block, head, batch, tiles);
        }
    } else {
        warpgroup_claim_registers<kConsumerRegisters>();
        compute(p, smem, warpgroup - 1, m_block, head, batch, tiles);
    }
}
