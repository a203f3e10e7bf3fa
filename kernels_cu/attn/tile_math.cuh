// attn_fwd_sm90: one KV tile in a consumer warpgroup: the two GEMMs (wgmma), element masks, the online
// softmax step and the O rescale.
#pragma once
#include "schedule.cuh"

namespace attn {

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

// One k-step of O += P V: one wgmma across all of D (64, 128 or 256 columns: 1, 2 or 4 chunks of V).
BSK_DEVICE void pv_step(float (&o)[1][32], const uint32_t (&p)[4], uint64_t desc_v) {
    wgmma_m64n64k16_rs_mn(o[0], p, desc_v, 1);
}
BSK_DEVICE void pv_step(float (&o)[2][32], const uint32_t (&p)[4], uint64_t desc_v) {
    wgmma_m64n128k16_rs_mn(o, p, desc_v, 1);
}
BSK_DEVICE void pv_step(float (&o)[4][32], const uint32_t (&p)[4], uint64_t desc_v) {
    wgmma_m64n256k16_rs_mn(o, p, desc_v, 1);
}

// Issue O(64 x D) += P(64 x BLOCK_N) V(BLOCK_N x D) as one wgmma group: P from registers, V N-major
// (D contiguous, in 64-column chunks kBlockN * 128 bytes apart) in shared memory. O and P stay untouched
// until the group completes.
BSK_DEVICE void issue_pv(float (&o)[kChunks][32], const uint32_t (&p)[kBlockN / 16][4], uint32_t v_tile) {
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
        const uint64_t desc_v = smem_desc_sw128(v_tile + kk * 2 * kSwizzleAtomBytes, kBlockN * kChunkRowBytes,
                                                kSwizzleAtomBytes);
        pv_step(o, p[kk], desc_v);
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

// Whether some (row, key) of tile `key0` is invisible to the 64 rows of this warpgroup.
BSK_DEVICE bool tile_needs_mask(const Params& p, int key0, int wg_first_row) {
    const int64_t shift = p.seqlen_k - p.seqlen_q;
    const int64_t last_offset = static_cast<int64_t>(key0) + kBlockN - 1 - wg_first_row - shift;
    const int64_t first_offset = static_cast<int64_t>(key0) - (wg_first_row + kRowsPerWarpgroup - 1) - shift;
    return key0 + kBlockN > p.seqlen_k || last_offset > diagonal_hi(p) || first_offset < p.window_lo;
}

// The thread's elements of one row sit at columns key0 + 2 (lane % 4) + c_k of the tile, c_k = 8 (k / 2) +
// k % 2 for k = 0 .. kBlockN / 4 - 1 (element e = 4 (k / 2) + 2 i + k % 2 of the fragment, row i): how many
// of them lie before tile-relative column `col` (clamped to the tile; c_k increases with k).
BSK_DEVICE int fragment_count_before(int col) {
    const int c = min(max(col, 0), kBlockN);
    return 2 * (c >> 3) + min(c & 7, 2);
}

// Row r sees keys [r + shift + window_lo, min(r + shift + diagonal_hi, Sk - 1)], shift = Sk - Sq, and
// since a thread's columns of a row increase with its element index, the visible ones form one run: per
// row two clamped bounds give a 32-bit word of its visible elements (bmsk), and each element costs one
// select on its bit (ptxas moves up to seven bits at a time into predicates, R2P), where a compare per
// element and bound took 4-5 instructions an element (RESULTS.md, twentieth session). In 32 bits: Sq, Sk <
// 2^30 (validation.py) and the window sides lie in [-2^30, 2^30] (launch.window_bounds), so `offset` lies
// in (-2^31, 2^30) and neither bound overflows.
BSK_DEVICE void mask_runs(float (&s)[kBlockN / 2], const Params& p, int key0, int wg_first_row) {
    const int base = key0 + 2 * (threadIdx.x % 4);
    uint32_t visible[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int offset = thread_row(wg_first_row) + 8 * i + p.seqlen_k - p.seqlen_q - base;
        const int first = fragment_count_before(max(offset, -(1 << 30)) + p.window_lo);
        const int end = fragment_count_before(min(offset + diagonal_hi(p), p.seqlen_k - 1 - base) + 1);
        asm("bmsk.clamp.b32 %0, %1, %2;" : "=r"(visible[i]) : "r"(first), "r"(max(end - first, 0)));
    }
#pragma unroll
    for (int e = 0; e < kBlockN / 2; ++e) {
        const int k = 2 * (e / 4) + e % 2, i = (e / 2) % 2;
        if (((visible[i] >> k) & 1u) == 0) s[e] = BSK_NEG_INF;
    }
}

// The sides on which tile `key0` hides keys from some of this warpgroup's 64 rows: kCutLeft (keys before
// the window's left edge), kCutRight (keys past Sk, above the causal diagonal or past the window's right
// edge), both, or 0 (no mask). A causal diagonal tile and a window's first tile are cut on one side only.
constexpr int kCutLeft = 1, kCutRight = 2;

// tile_needs_mask's offsets, written out again: a helper shared by both changed the SASS of every variant.
BSK_DEVICE int tile_cuts(const Params& p, int key0, int wg_first_row) {
    const int64_t shift = p.seqlen_k - p.seqlen_q;
    const int64_t last_offset = static_cast<int64_t>(key0) + kBlockN - 1 - wg_first_row - shift;
    const int64_t first_offset = static_cast<int64_t>(key0) - (wg_first_row + kRowsPerWarpgroup - 1) - shift;
    const bool right = key0 + kBlockN > p.seqlen_k || last_offset > diagonal_hi(p);
    return (first_offset < p.window_lo ? kCutLeft : 0) | (right ? kCutRight : 0);
}

// Row r sees key j iff r + shift + window_lo <= j <= min(r + shift + diagonal_hi, Sk - 1), shift = Sk - Sq.
// Element e of the thread's fragment lies in its row (e / 2) % 2 at column 8 (e / 4) + e % 2 past the
// thread's first, so each row's bounds become one column threshold per side, taken in 64 bits (an
// unbounded window side is +-2^30) and clamped to the tile: one compare per element and side cut.
template <int kCuts>
BSK_DEVICE void mask_columns(float (&s)[kBlockN / 2], const Params& p, int key0, int wg_first_row) {
    const int64_t shift = p.seqlen_k - p.seqlen_q, base = key0 + 2 * (threadIdx.x % 4);
    int first[2], last[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int64_t row = thread_row(wg_first_row) + 8 * i + shift;
        if (kCuts & kCutLeft) {
            first[i] = static_cast<int>(min(max(row + p.window_lo - base, int64_t{-1}), int64_t{kBlockN}));
        }
        if (kCuts & kCutRight) {
            const int64_t hi = min(row + diagonal_hi(p), static_cast<int64_t>(p.seqlen_k) - 1) - base;
            last[i] = static_cast<int>(min(max(hi, int64_t{-1}), int64_t{kBlockN}));
        }
    }
#pragma unroll
    for (int e = 0; e < kBlockN / 2; ++e) {
        const int c = 8 * (e / 4) + e % 2, i = (e / 2) % 2;
        const bool visible = ((kCuts & kCutLeft) == 0 || c >= first[i]) && ((kCuts & kCutRight) == 0 || c <= last[i]);
        if (!visible) s[e] = BSK_NEG_INF;
    }
}

// The element mask of tile `key0`, if it needs one: the visible runs (mask_runs), but at head dim 128 the
// one-sided column thresholds (mask_columns), which ran 0.3-1.9% faster there on causal grids (RESULTS.md,
// twentieth session) and spill nowhere at that head dim.
BSK_DEVICE void mask_tile(float (&s)[kBlockN / 2], const Params& p, int key0, int wg_first_row) {
    if constexpr (kHeadDim != 128) {
        if (tile_needs_mask(p, key0, wg_first_row)) mask_runs(s, p, key0, wg_first_row);
    } else {
        const int cuts = tile_cuts(p, key0, wg_first_row);
        if (cuts == kCutLeft) {
            mask_columns<kCutLeft>(s, p, key0, wg_first_row);
        } else if (cuts == kCutRight) {
            mask_columns<kCutRight>(s, p, key0, wg_first_row);
        } else if (cuts != 0) {
            mask_columns<kCutLeft | kCutRight>(s, p, key0, wg_first_row);
        }
    }
}

// The maximum of kPairs column pairs of one row of a score fragment, the first at s[first], s[first + 1]
// and each next 4 further on, as a pairwise tree: fmaxf is exact, so against a running maximum only the
// dependency chain changes (depth log2 of the count instead of the count; the softmax's first exponential
// waits for it). Taken by the three-consumer 192-row tiles only: H100, same run, B2 H16 S16384 D64
// 4973 / 5020 -> 4820 / 4845 us, causal -3%; with two consumers tied or up to 1% slower (RESULTS.md,
// eighth session).
template <int kPairs>
BSK_DEVICE float pair_max_tree(const float (&s)[kBlockN / 2], int first) {
    if constexpr (kPairs == 1) {
        return fmaxf(s[first], s[first + 1]);
    } else {
        return fmaxf(pair_max_tree<kPairs / 2>(s, first), pair_max_tree<kPairs / 2>(s, first + 4 * (kPairs / 2)));
    }
}

// Online softmax step on one tile: new running max, S -> unnormalised P in place, running sums, and the
// correction O needs. Maxima are kept on raw scores (the scale is positive) and the scale is folded into
// one FFMA per score: p = exp2(s * scale_log2 - max * scale_log2). Touches neither O nor P, so it runs
// while the previous P V is in flight.
BSK_DEVICE void softmax_step(float (&s)[kBlockN / 2], RowState& st, float scale_log2) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        float tile_max = BSK_NEG_INF;
        if (kConsumers == 3) {
            tile_max = pair_max_tree<kBlockN / 8>(s, 2 * i);
        } else {
#pragma unroll
            for (int e = 2 * i; e < kBlockN / 2; e += 4) tile_max = fmaxf(tile_max, fmaxf(s[e], s[e + 1]));
        }
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

}  // namespace attn
