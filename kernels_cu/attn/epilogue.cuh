// attn_fwd_sm90: a work item's epilogue: O / l and LSE out (bulk store or from registers), split-KV
// partials and their combine, and the WG_SPLIT merge of two warpgroups' partial results.
#pragma once
#include "tile_math.cuh"
#include "trace.cuh"

namespace attn {

// Whether the rows of each head lie back to back in the output, 16-byte aligned, as one cp.async.bulk
// per warpgroup needs (else the epilogue stores directly from registers).
BSK_DEVICE bool rows_contiguous(const Params& p) {
    const uint64_t head_strides = static_cast<uint64_t>(p.out_stride_b | p.out_stride_h) * 2;
    const uint64_t bits = reinterpret_cast<uint64_t>(p.out) | head_strides;
    return p.out_stride_s == kHeadDim && (bits & 15) == 0;
}

// This thread's share of output row half `i` (O / l in the output dtype) written to `row`, an output row of
// 16-bit elements in global memory (the epilogue without the bulk store).
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

// This thread's share of output row half `i` (O / l in the output dtype) written to `row`, a staging row of
// kHeadDim 16-bit elements in shared memory (byte address). The fragment gives each of a quad's four lanes
// every fourth 32-bit word of the row; written as they are, the eight rows of a warp (kHeadDim * 2 bytes
// apart: the same banks) conflict 8 ways (1.5 of the 2.4 us of a head-dim-128 epilogue, RESULTS.md tenth
// session). Instead the quad transposes its 4 x 4 blocks of word pairs by two XOR shuffles, so lane q
// holds words 8q .. 8q + 7 of each 64-column chunk, and writes them as two 16-byte stores, odd rows their
// second half first: each 8-lane phase of a store (two rows) then covers the 32 banks once (rows
// kHeadDim * 2 bytes apart, a multiple of the 128-byte bank line at both head dims). H100, persistent CTAs
// against the 4-byte stores, two rounds each (RESULTS.md, fourteenth session): block masks at d 0.25, B1
// H32 S2048 D64 35.9 / 36.7 -> 34.6 / 34.7 us, B1 H16 S4096 D64 62.4 / 60.7 -> 57.9 / 58.7, dense B1 H16
// S8192 D64 tied. With two Q buffers at head dim 128 (seventeenth session) the launch timeline's last P V
// -> stored fell 1.68 -> 1.09 us per item on masked B1 H16 S4096 d 0.1; with one (twenty-second session,
// six alternated rounds) masks past the L2 rule ran 1-3% faster at d 0.1 (B1 H16 S8192 138.4 -> 135.6 us,
// B2 H16 S8192 279.8 -> 271.4) and dense grids within +-0.1%, causal ones within +0.8 / -2.4%, where the
// fourteenth session had measured dense B4 H32 S4096 1.3% slower.
BSK_DEVICE void stage_row(uint32_t row, const float (&o)[kChunks][32], int i, float inv) {
    const int q = threadIdx.x % 4;
    const bool b0 = q & 1, b1 = q & 2, odd_row = threadIdx.x & 4;  // lane / 4 is the row within 8
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
        // pair d = words (2d, 2d + 1) of this lane: the words lane d stores, from this lane
        uint32_t w[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) w[j] = pack_pair(o[c][4 * j + 2 * i] * inv, o[c][4 * j + 2 * i + 1] * inv);
        uint32_t keep[2][2], recv[2][2];  // [pair destined for lanes with this lane's bit 1, +0 / +1][x / y]
#pragma unroll
        for (int k = 0; k < 2; ++k) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                keep[k][e] = b1 ? w[4 + 2 * k + e] : w[2 * k + e];
                recv[k][e] = __shfl_xor_sync(0xffffffffu, b1 ? w[2 * k + e] : w[4 + 2 * k + e], 2);
            }
        }
        // g[x][e]: the pair for this lane from lane q ^ x
        uint32_t g[4][2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            g[0][e] = b0 ? keep[1][e] : keep[0][e];
            g[2][e] = b0 ? recv[1][e] : recv[0][e];
            g[1][e] = __shfl_xor_sync(0xffffffffu, b0 ? keep[0][e] : keep[1][e], 1);
            g[3][e] = __shfl_xor_sync(0xffffffffu, b0 ? recv[0][e] : recv[1][e], 1);
        }
        // f[s][e] = g[s ^ q][e]: the pair from lane s, words s (x) and 4 + s (y) of the eight
        uint32_t f[4][2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const uint32_t a0 = b0 ? g[1][e] : g[0][e], a1 = b0 ? g[0][e] : g[1][e];
            const uint32_t c0 = b0 ? g[3][e] : g[2][e], c1 = b0 ? g[2][e] : g[3][e];
            f[0][e] = b1 ? c0 : a0;
            f[1][e] = b1 ? c1 : a1;
            f[2][e] = b1 ? a0 : c0;
            f[3][e] = b1 ? a1 : c1;
        }
        const uint32_t base = row + c * kChunkRowBytes + 32 * q;
#pragma unroll
        for (int k = 0; k < 2; ++k) {  // store k writes half e = k (even rows) or 1 - k (odd rows)
            const int e = odd_row ? 1 - k : k;
            uint32_t v[4];
#pragma unroll
            for (int src = 0; src < 4; ++src) v[src] = odd_row ? f[src][1 - k] : f[src][k];
            asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};" ::"r"(base + 16 * e), "r"(v[0]), "r"(v[1]),
                         "r"(v[2]), "r"(v[3])
                         : "memory");
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
    if (EPILOGUE_PROBE == 2) return;  // probe: no output at all
    const int lane = threadIdx.x % 32, tid = threadIdx.x % 128, row0 = thread_row(wg_first_row);
    if (wg == 0 && tid == 0) trace_mark(kTraceStoreEntry);
    uint16_t* out = p.out + batch * p.out_stride_b + head * p.out_stride_h;
    float inv[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const float sum = row_sum[i];
        const int row = row0 + 8 * i;
        inv[i] = sum > 0.f ? rcp_approx(sum) : 0.f;
        if (p.lse != nullptr && lane % 4 == 0 && row < p.seqlen_q) {
            const float lse_log2 = sum > 0.f ? row_max_log2[i] + log2_approx(sum) : BSK_NEG_INF;
            p.lse[(static_cast<int64_t>(batch) * p.num_heads + head) * p.seqlen_q + row] = lse_log2 * 0.69314718056f;
        }
    }
    if (kBulkStore && rows_contiguous(p)) {
        uint16_t* staging = reinterpret_cast<uint16_t*>(smem.staging) +
                            (kSplitWarpgroups ? 0 : wg) * kRowsPerWarpgroup * kHeadDim;
        if (tid == 0) bulk_wait_read();  // the previous item's rows have left the staging buffer
        named_barrier_sync(kStoreBarrier + wg, 128);
#pragma unroll
        for (int i = 0; i < 2 * (EPILOGUE_PROBE != 1); ++i) {  // probe 1: no staging writes
            stage_row(smem_addr(staging + (row0 + 8 * i - wg_first_row) * kHeadDim), o, i, inv[i]);
        }
        fence_proxy_async_shared();
        named_barrier_sync(kStoreBarrier + wg, 128);
        if (wg == 0 && tid == 0) trace_mark(kTraceStaged);
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

// A partial result (O fragments, row maxima and partial sums) as the float4 vectors it is exchanged in
// (config.cuh, kPartialVectors): vector j of this thread. `j` is a compile-time constant after unrolling.
BSK_DEVICE float4 partial_vector(const float (&o)[kChunks][32], const RowState& st, int j) {
    if (j == kPartialVectors - 1) return make_float4(st.max[0], st.max[1], st.sum[0], st.sum[1]);
    const int c = 4 * j / 32, e = 4 * j % 32;
    return make_float4(o[c][e], o[c][e + 1], o[c][e + 2], o[c][e + 3]);
}

// Merge another partial result for the same rows, read from `theirs` (this thread's first vector; vector
// j at theirs[j * 128]), into this thread's, max-rescaled:
//   M = max(m0, m1),  l = 2^(m0 - M) l0 + 2^(m1 - M) l1,  O = 2^(m0 - M) O0 + 2^(m1 - M) O1.
// Maxima are raw scores (softmax_step); sums are this thread's shares of its rows' sums.
BSK_DEVICE void merge_partial(float (&o)[kChunks][32], RowState& st, const float4* theirs, float scale_log2) {
    const float4 ml = theirs[(kPartialVectors - 1) * 128];
    const float m1[2] = {ml.x, ml.y}, l1[2] = {ml.z, ml.w};
    float weight0[2], weight1[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const float m = fmaxf(st.max[i], m1[i]);
        weight0[i] = st.max[i] == BSK_NEG_INF ? 0.f : exp2_approx((st.max[i] - m) * scale_log2);
        weight1[i] = m1[i] == BSK_NEG_INF ? 0.f : exp2_approx((m1[i] - m) * scale_log2);
        st.sum[i] = st.sum[i] * weight0[i] + l1[i] * weight1[i];
        st.max[i] = m;
    }
#pragma unroll
    for (int j = 0; j < kPartialVectors - 1; ++j) {
        const float4 x = theirs[j * 128];
        const int c = 4 * j / 32, e = 4 * j % 32;  // elements e, e + 1 of row 0; e + 2, e + 3 of row 1
        o[c][e] = o[c][e] * weight0[0] + x.x * weight1[0];
        o[c][e + 1] = o[c][e + 1] * weight0[0] + x.y * weight1[0];
        o[c][e + 2] = o[c][e + 2] * weight0[1] + x.z * weight1[1];
        o[c][e + 3] = o[c][e + 3] * weight0[1] + x.w * weight1[1];
    }
}

// WG_SPLIT merge of the two warpgroups' partial results for the same rows (thread t of each holds the
// same fragment positions): warpgroup 1 hands its partial over in shared memory (after warpgroup 0 has
// read the previous item's), warpgroup 0 merges it into its own. Returns true in warpgroup 0, which goes
// on to store the result (or, CLUSTER_SPLIT, to merge the other CTA's).
BSK_DEVICE bool merge_warpgroups(SharedStorage& smem, float (&o)[kChunks][32], RowState& st, int wg,
                                 float scale_log2) {
    float4* exchange = reinterpret_cast<float4*>(smem.exchange) + threadIdx.x % 128;
    if (wg == 1) {
        named_barrier_sync(kExchangeFree, 256);
#pragma unroll
        for (int j = 0; j < kPartialVectors; ++j) exchange[j * 128] = partial_vector(o, st, j);
        named_barrier_arrive(kExchangeFull, 256);
        return false;
    }
    named_barrier_arrive(kExchangeFree, 256);
    named_barrier_sync(kExchangeFull, 256);
    merge_partial(o, st, exchange, scale_log2);
    return true;
}

// CLUSTER_SPLIT merge, in warpgroup 0 of each CTA after merge_warpgroups, divided by rows: the CTA of
// rank r keeps the 32 rows of warps 2r and 2r + 1. A warp whose rows the other CTA keeps stores its
// partial into that CTA's `cluster_exchange` (st.async, completing on its `cluster_full`, armed for half
// the vectors before the cluster barrier waited on here) and is done; a warp that keeps its rows waits for
// the other CTA's partial of them, merges it into its own and stores them. Each direction carries half a
// partial, and both CTAs store. Returns true in the keeping warps. Each row half is merged in one CTA in
// a fixed order, so the result does not depend on which CTA finishes first.
BSK_DEVICE bool merge_cluster(SharedStorage& smem, float (&o)[kChunks][32], RowState& st, float scale_log2) {
    const int tid = threadIdx.x % 128;
    const uint32_t rank = cluster_ctarank();
    if (tid / 64 != static_cast<int>(rank)) {
        cluster_wait();  // the other CTA's barrier is initialised and armed
        const uint32_t dst = cluster_map(smem_addr(smem.cluster_exchange) + 16 * tid, rank ^ 1);
        const uint32_t bar = cluster_map(smem_addr(&smem.cluster_full), rank ^ 1);
#pragma unroll
        for (int j = 0; j < kPartialVectors; ++j) {
            const float4 x = partial_vector(o, st, j);
            st_async_v4(dst + 16 * 128 * j, x.x, x.y, x.z, x.w, bar);
        }
        return false;
    }
    mbar_wait(&smem.cluster_full, 0);
    merge_partial(o, st, reinterpret_cast<const float4*>(smem.cluster_exchange) + tid, scale_log2);
    return true;
}

}  // namespace attn
