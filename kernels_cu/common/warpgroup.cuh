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
