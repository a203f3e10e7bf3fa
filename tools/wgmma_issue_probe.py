"""Does issuing wgmma block the issuing warps? Cycle counts of one warpgroup issuing GEMMs, then exp2s.

    python tools/wgmma_issue_probe.py

A probe kernel (built here with NVRTC for sm_90a from kernels_cu/common, run through CuPy) has each of its
warpgroups issue one group of wgmmas (8 x m64n128k16 from shared memory, 512 tensor-core cycles of work at
the dense rate; or the same FMAs as 16 x m64n64k16, A from shared memory or, as P V does, from registers),
commit, optionally run 64 independent exp2 per thread, then wait. Thread 0 of each warpgroup reads %clock64 before
the issue, after it, after the exp2s and after the wait. If issue returned at once, "issued" would be tens of
cycles and the exp2s would run under the GEMMs; if it blocks until the tensor cores take the last wgmma,
"issued" is close to the GEMMs' own time. Run with one and with two warpgroups per CTA (the second then
queues behind the first), one CTA per SM, medians over all CTAs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_kernels import probe_source  # noqa: E402

KERNEL = r'''
// kShape 0: 8 x m64n128k16, A and B in shared memory; 1: 16 x m64n64k16, shared/shared; 2: 16 x m64n64k16,
// A from registers (as P V takes P), B MN-major in shared memory. The same 2 * 64 * 1024 * 64 FMAs each.
// A template argument, not a branch: where branches holding wgmmas merge, ptxas injects a warpgroup.arrive
// (C7519) that the issue time would include.
template <int kShape>
__device__ void issue_probe(long long* out, int with_exp, float seed) {
    __shared__ __align__(1024) uint8_t tile[2][16384];
    zero_operand_tiles(tile);
    const int wg = threadIdx.x / 128;
    float acc[64];
    float e[64];
    uint32_t a[4] = {0u, 0u, 0u, 0u};
    init_register_operands(acc, e, seed);
    long long t[4];
    for (int round = 0; round < 4; ++round) {
        asm volatile("bar.sync 1, %0;" ::"r"(blockDim.x));
        asm volatile("mov.u64 %0, %%clock64;" : "=l"(t[0]));
        wgmma_fence();
        float (&half)[32] = *reinterpret_cast<float (*)[32]>(acc);
        if constexpr (kShape == 0) {
#pragma unroll
            for (int k = 0; k < 8; ++k) {
                const uint32_t col = (k % 4) * 32;
                wgmma_m64n128k16_ss(acc, smem_desc_sw128(smem_addr(tile[0]) + col, 16, 1024),
                                    smem_desc_sw128(smem_addr(tile[1]) + col, 16, 1024), 1);
            }
        } else if constexpr (kShape == 1) {
#pragma unroll
            for (int k = 0; k < 16; ++k) {
                const uint32_t col = (k % 4) * 32;
                wgmma_m64n64k16_ss(half, smem_desc_sw128(smem_addr(tile[0]) + col, 16, 1024),
                                   smem_desc_sw128(smem_addr(tile[1]) + col, 16, 1024), 1);
            }
        } else {
#pragma unroll
            for (int k = 0; k < 16; ++k) {
                wgmma_m64n64k16_rs_mn(half, a, smem_desc_sw128(smem_addr(tile[1]) + (k % 8) * 2048, 8192, 1024), 1);
            }
        }
        wgmma_commit();
        asm volatile("mov.u64 %0, %%clock64;" : "=l"(t[1]));
        if (with_exp) {
#pragma unroll
            for (int i = 0; i < 64; ++i) asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(e[i]));
        }
        asm volatile("mov.u64 %0, %%clock64;" : "=l"(t[2]));
        wgmma_wait<0>();
        wgmma_fence_operands(acc);
        asm volatile("mov.u64 %0, %%clock64;" : "=l"(t[3]));
    }
    float sink = 0.f;
#pragma unroll
    for (int i = 0; i < 64; ++i) sink += acc[i] + e[i];
    if (threadIdx.x % 128 == 0) {
        long long* row = out + (blockIdx.x * 2 + wg) * 4;
        row[0] = 0;
        row[1] = t[1] - t[0];
        row[2] = t[2] - t[0];
        row[3] = t[3] - t[0] + (sink == 12345.f);
    }
}

#define BSK_PROBE_ENTRY(k) \
    extern "C" __global__ void __launch_bounds__(256, 1) issue_probe_##k(long long* out, int with_exp, float seed) { \
        issue_probe<k>(out, with_exp, seed); \
    }
BSK_PROBE_ENTRY(0)
BSK_PROBE_ENTRY(1)
BSK_PROBE_ENTRY(2)
'''


def source() -> str:
    return probe_source(KERNEL)


def main() -> None:
    import cupy

    module = cupy.RawModule(code=source(), options=("--gpu-architecture=sm_90a", "--std=c++17"))
    sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
    shapes = ("8 x m64n128k16 ss", "16 x m64n64k16 ss", "16 x m64n64k16 rs")
    print(f"{'shape':<20}{'warpgroups':>10}{'exp2':>6}{'issued':>9}{'exp2 done':>11}{'landed':>9}   (cycles)")
    for shape, label in enumerate(shapes):
        for warpgroups in (1, 2):
            for with_exp in (0, 1):
                out = cupy.zeros((sms, 2, 4), dtype=cupy.int64)
                kernel = module.get_function(f"issue_probe_{shape}")
                kernel((sms,), (128 * warpgroups,), (out, np.int32(with_exp), np.float32(1e-3)))
                cupy.cuda.Device().synchronize()
                for wg in range(warpgroups):
                    med = np.median(cupy.asnumpy(out)[:, wg], axis=0)
                    print(f"{label:<20}{warpgroups:>8}/{wg}{with_exp:>6}{med[1]:>9.0f}{med[2]:>11.0f}{med[3]:>9.0f}")


if __name__ == "__main__":
    sys.exit(main())
