// Scalar helpers: fast exp2, reciprocal and log2, float <-> 16-bit float conversions (raw bits: NVRTC has
// no cuda_fp16.h / cuda_bf16.h), infinities.
#pragma once
#include "prelude.cuh"

#define BSK_NEG_INF (__int_as_float(0xff800000))

// volatile: keeps the exponentials in source order with the (volatile) wgmma waits around them, so the
// softmax stays between the two waits of the pipelined loop in the PTX.
BSK_DEVICE float exp2_approx(float x) {
    float y;
    asm volatile("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// 1 / x and log2(x) by the special-function unit (one MUFU each, approximate to about float32's last
// bits), for the epilogue's softmax denominators, which are at least 1 (the row's maximum contributes
// exp2(0)), so flushing denormals never applies: the IEEE division and log2f each compile to a range
// check, a branch and a called slow path.
BSK_DEVICE float rcp_approx(float x) {
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

BSK_DEVICE float log2_approx(float x) {
    float y;
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// Round two floats to one .f16x2 / .bf16x2 register; `lo` lands in the low half.
BSK_DEVICE uint32_t pack_f16x2(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

BSK_DEVICE uint32_t pack_bf16x2(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

BSK_DEVICE float f16_to_f32(uint16_t bits) {
    float y;
    asm("cvt.f32.f16 %0, %1;" : "=f"(y) : "h"(bits));
    return y;
}

// bfloat16 is the top half of a float32: widening is exact and needs no rounding.
BSK_DEVICE float bf16_to_f32(uint16_t bits) {
    return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}
