"""What the microbenchmark probes in tools/ (wgmma_issue_probe.py, mufu_tensor_overlap_probe.py) share: the
kernels_cu/common headers they build on, inlined for NVRTC, and the device helpers that set up their
operands. Their kernels are compile-tested on the CPU (tests/test_microbenchmark_probes.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HELPERS = r'''
// Two 16 KB shared-memory operand tiles of zeros, visible to wgmma (the async proxy) past the CTA barrier.
__device__ void zero_operand_tiles(uint8_t (*tile)[16384]) {
    for (int i = threadIdx.x; i < 2 * 16384 / 4; i += blockDim.x) reinterpret_cast<uint32_t*>(tile)[i] = 0u;
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
}

// A thread's register operands: 64 accumulators at zero, 64 distinct exp2 inputs.
__device__ void init_register_operands(float (&acc)[64], float (&e)[64], float seed) {
#pragma unroll
    for (int i = 0; i < 64; ++i) e[i] = seed * (threadIdx.x + i);
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.f;
}
'''


def probe_source(kernel: str, defines: dict[str, int] | None = None) -> str:
    """NVRTC source of a probe: ``defines``, kernels_cu/common's prelude and wgmma wrappers (their includes
    and include guards dropped), the helpers above, then ``kernel``."""
    common = ROOT / "kernels_cu" / "common"
    parts = [f"#define {name} {value}" for name, value in (defines or {}).items()]
    for name in ("prelude.cuh", "wgmma.cuh"):
        text = (common / name).read_text()
        parts.append("\n".join(line for line in text.splitlines()
                               if not line.startswith("#include") and not line.startswith("#pragma once")))
    return "\n".join(parts) + HELPERS + kernel
