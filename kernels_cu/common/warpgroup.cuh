// Warpgroup-wide register reallocation (setmaxnreg, sm_90a). Takes effect only when the kernel
// is compiled with a register cap at entry: __launch_bounds__(threads, 1).
#pragma once
#include "prelude.cuh"

template <uint32_t kRegisters>
BSK_DEVICE void warpgroup_release_registers() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kRegisters));
}

template <uint32_t kRegisters>
BSK_DEVICE void warpgroup_claim_registers() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kRegisters));
}

// Named barriers (ids 1..15; 0 is __syncthreads). `threads` counts every thread that takes part, arriving
// or waiting; both must be multiples of 32.
BSK_DEVICE void named_barrier_sync(uint32_t id, uint32_t threads) {
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

BSK_DEVICE void named_barrier_arrive(uint32_t id, uint32_t threads) {
    asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
