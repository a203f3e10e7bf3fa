"""Load compiled cubins into the current CUDA context through CuPy and hand out CUfunction handles."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..specs import VariantSpec
from . import build

_lock = threading.Lock()
_loaded: dict[tuple[str, int], "LoadedKernel"] = {}


@dataclass(frozen=True)
class LoadedKernel:
    """A kernel ready to launch on one device: the CUfunction pointer plus its launch shape."""

    spec: VariantSpec
    device: int
    function_ptr: int
    module: object  # the cupy.cuda.function.Module; kept alive while the function is in use


def load_kernel(spec: VariantSpec, device: int) -> LoadedKernel:
    """Compile (or fetch from the cache) and load ``spec`` on ``device``, once per process."""
    key = (spec.name, device)
    kernel = _loaded.get(key)
    if kernel is not None:
        return kernel
    with _lock:
        kernel = _loaded.get(key)
        if kernel is None:
            kernel = _load(spec, device)
            _loaded[key] = kernel
    return kernel


def _load(spec: VariantSpec, device: int) -> LoadedKernel:
    import cupy
    from cuda.bindings import driver

    result = build(spec)
    with cupy.cuda.Device(device):
        module = cupy.cuda.function.Module()
        module.load_file(str(result.cubin_path))
        function = module.get_function(spec.family)
        (err,) = driver.cuFuncSetAttribute(
            driver.CUfunction(function.ptr),
            driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, spec.smem_bytes)
        if err != driver.CUresult.CUDA_SUCCESS:
            raise RuntimeError(f"cannot give {spec.name} {spec.smem_bytes} bytes of shared memory: {err!r}")
    return LoadedKernel(spec, device, int(function.ptr), module)
