"""What this machine has: GPU, driver, NVRTC, CuPy, cache. Used by ``bsk-cupy info`` and ``validate``."""

from __future__ import annotations

import importlib.metadata


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def import_torch():
    """PyTorch, imported before NVRTC or CuPy load (seen on the H100 image: torch 2.11 imported after them
    fails parsing its own operator schemas), or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def describe() -> dict[str, str]:
    """A flat name -> value description of the environment (never raises)."""
    from .compile import cache
    from .version import __version__

    info: dict[str, str] = {"bsk_cupy": __version__}
    try:
        from .compile.nvrtc import nvrtc_build_id

        info["NVRTC"] = nvrtc_build_id()
    except Exception as exc:  # noqa: BLE001
        info["NVRTC"] = f"unavailable ({exc})"
    for dist in ("cupy-cuda13x", "cupy-cuda12x", "cuda-bindings", "torch", "jax"):
        version = _package_version(dist)
        if version != "not installed" or dist.startswith("cuda-bindings"):
            info[dist] = version
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
        driver = cupy.cuda.runtime.driverGetVersion()
        info["CUDA driver"] = f"{driver // 1000}.{driver % 1000 // 10}"
        for i in range(count):
            props = cupy.cuda.runtime.getDeviceProperties(i)
            name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            info[f"GPU {i}"] = (f"{name}, compute capability {props['major']}.{props['minor']}, "
                                f"{props['multiProcessorCount']} SMs")
        if count == 0:
            info["GPU"] = "none"
    except Exception as exc:  # noqa: BLE001
        info["GPU"] = f"none usable ({type(exc).__name__})"
    files, size = cache.usage()
    info["cache"] = f"{cache.cache_dir()} ({files} cubins, {size / 1e6:.1f} MB)"
    return info
