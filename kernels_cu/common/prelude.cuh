// Shared prelude for every bsk_cupy kernel: fixed-width integer types and the sm_90a guard.
// NVRTC ships no headers, so nothing here may include a system or CUDA header.
#pragma once

#if !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "bsk_cupy kernels need the sm_90a target (wgmma, setmaxnreg): compile with --gpu-architecture=sm_90a"
#endif

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef long long int64_t;
typedef unsigned long long uintptr_t;

#define BSK_DEVICE __device__ __forceinline__

// Address of a shared-memory object in the shared state space (what PTX instructions take).
BSK_DEVICE uint32_t smem_addr(const void* ptr) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}
