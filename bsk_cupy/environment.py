"""What this machine has: GPU, driver, NVRTC, CuPy, cache. Used by ``bsk-cupy info`` and ``validate``."""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
from pathlib import Path


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _checkout_commit() -> str:
    """The git commit of the checkout this package runs from (with "+ changes" when its tracked files
    differ from it), or why there is none."""
    root = Path(__file__).resolve().parents[1]

    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False)

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0 or not (root / ".git").exists():
            return "no git checkout here (see the kernel source digest)"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + (" + changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"


def _kernel_source_digest(filename: str) -> str:
    """First 16 hex digits of the sha256 of a kernel's expanded source: what the numbers were measured on,
    whatever the install."""
    from .compile.source import expand_source

    try:
        return hashlib.sha256(expand_source(filename).encode()).hexdigest()[:16]
    except OSError as exc:
        return f"unavailable ({exc})"


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

    info: dict[str, str] = {"bsk_cupy": __version__, "commit": _checkout_commit(),
                            "attention kernel source (sha256)": _kernel_source_digest("attn_fwd_sm90.cu")}
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
