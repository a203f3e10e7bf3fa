// Thread-block-cluster wrappers (PTX ISA: barrier.cluster, mapa, st.async; sm_90): the CTA's rank, the
// cluster barrier, and stores into another CTA's shared memory that complete on that CTA's mbarrier.
#pragma once
#include "prelude.cuh"

BSK_DEVICE uint32_t cluster_ctarank() {
    uint32_t rank;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    return rank;
}

// Arrive on the cluster barrier (release: this thread's earlier writes, mbarrier inits included, are
// visible to a thread of the cluster after its cluster_wait). Non-aligned: threads arrive where they are.
BSK_DEVICE void cluster_arrive() { asm volatile("barrier.cluster.arrive.release;" ::: "memory"); }

// Wait until every non-exited thread of the cluster has arrived (acquire).
BSK_DEVICE void cluster_wait() { asm volatile("barrier.cluster.wait.acquire;" ::: "memory"); }

// The shared::cluster address of the object at `local` (a shared::cta address) in the CTA of rank `rank`.
BSK_DEVICE uint32_t cluster_map(uint32_t local, uint32_t rank) {
    uint32_t remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(rank));
    return remote;
}

// Store 16 bytes into another CTA's shared memory (`remote`, 16-byte aligned); the store completes as 16
// transaction bytes on the mbarrier at `remote_bar` in that CTA (whose waiter then sees the data).
BSK_DEVICE void st_async_v4(uint32_t remote, float x, float y, float z, float w, uint32_t remote_bar) {
    asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.f32 [%0], {%1, %2, %3, %4}, [%5];"
                 ::"r"(remote), "f"(x), "f"(y), "f"(z), "f"(w), "r"(remote_bar)
                 : "memory");
}
