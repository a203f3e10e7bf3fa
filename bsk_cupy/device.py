"""GPU presence and capability checks (cached per device)."""

from __future__ import annotations

from functools import lru_cache

REQUIRED_CC = (9, 0)


@lru_cache(maxsize=None)
def compute_capability(device: int) -> tuple[int, int]:
    """(major, minor) of CUDA device ``device``; RuntimeError if no CUDA GPU is usable."""
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(device)
    except Exception as exc:  # noqa: BLE001 - CuPy raises several types when no driver/GPU exists
        raise RuntimeError(f"bsk_cupy needs an NVIDIA Hopper GPU (compute capability 9.0, sm_90a); "
                           f"CUDA device {device} is not usable here: {exc}") from exc
    return int(props["major"]), int(props["minor"])


def require_hopper(device: int) -> None:
    """Raise RuntimeError unless ``device`` is a compute-capability-9.0 GPU (H100/H200/GH200)."""
    cc = compute_capability(device)
    if cc != REQUIRED_CC:
        raise RuntimeError(f"bsk_cupy kernels are built for sm_90a and need a Hopper GPU (compute capability 9.0); "
                           f"CUDA device {device} has compute capability {cc[0]}.{cc[1]}")


def gpu_available() -> bool:
    """True when at least one CUDA device with compute capability 9.0 is present."""
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001
        return False
    return any(compute_capability(i) == REQUIRED_CC for i in range(count))
