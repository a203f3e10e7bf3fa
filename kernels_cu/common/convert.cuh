// Widening 16-bit floats (raw bits, as loaded from memory) to float: the inverse of numeric.cuh's packing.
// NVRTC has no cuda_fp16.h / cuda_bf16.h, so these take and give plain integer bits.
#pragma once
#include "prelude.cuh"

BSK_DEVICE float f16_to_f32(uint16_t bits) {
    float y;
    asm("cvt.f32.f16 %0, %1;" : "=f"(y) : "h"(bits));
    return y;
}

// bfloat16 is the top half of a float32: widening is exact and needs no rounding.
BSK_DEVICE float bf16_to_f32(uint16_t bits) {
    return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}
