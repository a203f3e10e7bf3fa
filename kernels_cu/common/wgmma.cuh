// wgmma wrappers (PTX ISA 9.7.15): warpgroup-wide asynchronous matrix multiply-accumulate.
// All shapes are m64nNk16 with fp32 accumulators; operand type comes from DTYPE (0 fp16, 1 bf16).
// Accumulator fragment of thread t (warp w = t/32 of the warpgroup, lane l, g = l/4, q = l%4):
//   d[4j + 2i + c] holds row 16w + g + 8i, column 8j + 2q + c.
#pragma once
#include "prelude.cuh"

#ifndef DTYPE
#define DTYPE 0
#endif
#if DTYPE == 1
#define BSK_WGMMA_AB ".bf16.bf16"
#else
#define BSK_WGMMA_AB ".f16.f16"
#endif

// The "+f" operands of one 64-column accumulator fragment: d[0..31] of `d` (an array or a pointer into one).
#define BSK_ACC4(d, i) "+f"((d)[i]), "+f"((d)[i + 1]), "+f"((d)[i + 2]), "+f"((d)[i + 3])
#define BSK_ACC32(d) BSK_ACC4(d, 0), BSK_ACC4(d, 4), BSK_ACC4(d, 8), BSK_ACC4(d, 12), BSK_ACC4(d, 16), \
    BSK_ACC4(d, 20), BSK_ACC4(d, 24), BSK_ACC4(d, 28)

// Shared-memory matrix descriptor for a 128-byte-swizzled operand (the layout TMA writes with
// CU_TENSOR_MAP_SWIZZLE_128B). `leading_bytes`: offset between 64-element chunks along the
// contiguous dimension (MN-major only); `stride_bytes`: offset between groups of 8 rows.
BSK_DEVICE uint64_t smem_desc_sw128(uint32_t addr, uint32_t leading_bytes, uint32_t stride_bytes) {
    return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(leading_bytes >> 4) << 16) |
           (static_cast<uint64_t>(stride_bytes >> 4) << 32) | (1ull << 62);
}

BSK_DEVICE void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
BSK_DEVICE void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int kPending>
BSK_DEVICE void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
}

// wgmma_wait in a basic block of its own. Inside one block ptxas schedules a wait_group like any other
// instruction, and it hoisted the wait for a P V product above the softmax meant to overlap it (SASS: none
// of the 66 MUFU.EX2 of the tile between the two waits). A branch on `opaque`, a runtime value ptxas cannot
// fold (a kernel parameter), fences the wait in; both arms wait, so nothing depends on the value.
template <int kPending>
BSK_DEVICE void wgmma_wait_fenced(int opaque) {
    if (opaque != 0) {
        wgmma_wait<kPending>();
    } else {
        wgmma_wait<kPending>();
    }
}

// Keep the compiler from moving accumulator reads/writes across an asynchronous wgmma.
template <int N>
BSK_DEVICE void wgmma_fence_operands(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// D(64x64) (+)= A(64x16, shared, K-major) * B(16x64, shared, K-major).
BSK_DEVICE void wgmma_m64n64k16_ss(float (&d)[32], uint64_t desc_a, uint64_t desc_b, uint32_t accumulate) {
    asm volatile(
        "{\n .reg .pred p;\n setp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32" BSK_WGMMA_AB " "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : BSK_ACC32(d)
        : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// D(64x128) (+)= A(64x16, shared, K-major) * B(16x128, shared, K-major).
BSK_DEVICE void wgmma_m64n128k16_ss(float (&d)[64], uint64_t desc_a, uint64_t desc_b, uint32_t accumulate) {
    asm volatile(
        "{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32" BSK_WGMMA_AB " "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : BSK_ACC32(d), BSK_ACC32(d + 32)
        : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// D(64x64) += A(64x16, registers) * B(16x64, shared, MN-major: the contiguous dimension is N).
// A is four .f16x2/.bf16x2 registers laid out like rows 16w+g / 16w+g+8 of an accumulator fragment.
BSK_DEVICE void wgmma_m64n64k16_rs_mn(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b,
                                      uint32_t accumulate) {
    asm volatile(
        "{\n .reg .pred p;\n setp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32" BSK_WGMMA_AB " "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : BSK_ACC32(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate));
}

// D(64x128) += A(64x16, registers) * B(16x128, shared, MN-major) over 2 chunks of 64 columns: chunk c of D
// in d[c] (the fragment layout above), the descriptor's leading byte offset stepping from one 64-column
// chunk of B to the next. One instruction instead of 2 m64n64k16: A is read once.
BSK_DEVICE void wgmma_m64n128k16_rs_mn(float (&d)[2][32], const uint32_t (&a)[4], uint64_t desc_b,
                                       uint32_t accumulate) {
    asm volatile(
        "{\n .reg .pred p;\n setp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32" BSK_WGMMA_AB " {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, "
        "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, "
        "%40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, "
        "%59, %60, %61, %62, %63"
        "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
        : BSK_ACC32(d[0]), BSK_ACC32(d[1])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate));
}

// D(64x256) += A(64x16, registers) * B(16x256, shared, MN-major) over 4 chunks of 64 columns: chunk c of D
// in d[c] (the fragment layout above), the descriptor's leading byte offset stepping from one 64-column
// chunk of B to the next. One instruction instead of 4 m64n64k16: A is read once.
BSK_DEVICE void wgmma_m64n256k16_rs_mn(float (&d)[4][32], const uint32_t (&a)[4], uint64_t desc_b,
                                       uint32_t accumulate) {
    asm volatile(
        "{\n .reg .pred p;\n setp.ne.b32 p, %133, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32" BSK_WGMMA_AB " {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, "
        "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, "
        "%40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, "
        "%59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, "
        "%78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, "
        "%97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, "
        "%113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
        "}, {%128, %129, %130, %131}, %132, p, 1, 1, 1;\n}\n"
        : BSK_ACC32(d[0]), BSK_ACC32(d[1]), BSK_ACC32(d[2]), BSK_ACC32(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate));
}
