"""Print what NVRTC returns as the compile log on this machine (the audit needs ptxas's -v report)."""

from bsk_cupy.compile.nvrtc import BASE_OPTIONS, compile_cubin, nvrtc_build_id

SOURCE = 'extern "C" __global__ void probe(float* x) { x[threadIdx.x] *= 2.f; }\n'
out = compile_cubin(SOURCE, "probe.cu", list(BASE_OPTIONS))
print("nvrtc", nvrtc_build_id(), "options", BASE_OPTIONS)
print("cubin bytes", len(out.cubin), "log chars", len(out.log))
print(repr(out.log[:400]))
