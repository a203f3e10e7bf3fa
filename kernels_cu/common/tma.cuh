// TMA wrappers: tensor loads (cp.async.bulk.tensor) and bulk stores (cp.async.bulk). The tensor map lives
// in kernel parameter space (a const __grid_constant__ struct member), so its generic address is passed
// straight through.
#pragma once
#include "prelude.cuh"

// The 128-byte CUtensorMap built on the host by cuTensorMapEncodeTiled.
struct alignas(64) TmaDescriptor {
    uint64_t raw[16];
};

BSK_DEVICE void tma_prefetch_descriptor(const TmaDescriptor* desc) {
    asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(desc)) : "memory");
}

// Copy one 4-D box into shared memory; completion is signalled on `bar` as transaction bytes.
BSK_DEVICE void tma_load_4d(void* dst, const TmaDescriptor* desc, uint64_t* bar, int c0, int c1, int c2, int c3) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%3, %4, %5, %6}], [%2];" ::"r"(smem_addr(dst)),
        "l"(reinterpret_cast<uint64_t>(desc)), "r"(smem_addr(bar)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
        : "memory");
}

// Bulk (non-tensor) copy of `bytes` from shared to global memory, in this thread's open bulk group. Both
// addresses 16-byte aligned, `bytes` a multiple of 16.
BSK_DEVICE void bulk_store(void* dst, const void* src, uint32_t bytes) {
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(reinterpret_cast<uint64_t>(dst)),
                 "r"(smem_addr(src)), "r"(bytes)
                 : "memory");
}

// Close this thread's open bulk group.
BSK_DEVICE void bulk_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }

// Wait until this thread's bulk groups have read their shared-memory sources (which may then be rewritten).
BSK_DEVICE void bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory"); }

// Order this thread's shared-memory writes before the async proxy (TMA) reads them.
BSK_DEVICE void fence_proxy_async_shared() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
