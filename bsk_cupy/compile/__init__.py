"""Compile and load kernels: variant spec -> expanded source -> NVRTC cubin (cached) -> CuPy module.

This package is the only code that talks to NVRTC or loads modules. Importing it does neither; a variant
compiles on first use and loads from the disk cache afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..specs import VariantSpec
from ..version import __version__
from . import cache
from .nvrtc import ARCH, BASE_OPTIONS, CompileError, compile_cubin, nvrtc_build_id
from .source import expand_source

__all__ = ["BuildResult", "CompileError", "build", "options_for"]


@dataclass(frozen=True)
class BuildResult:
    """A compiled variant on disk."""

    spec: VariantSpec
    key: str
    cubin_path: Path
    log: str
    cached: bool
    seconds: float          # wall time of this call (a cache hit is milliseconds)
    compile_seconds: float  # NVRTC time when the entry was first built


def options_for(spec: VariantSpec) -> list[str]:
    """NVRTC options of a variant: the base options plus its -D macros."""
    return list(BASE_OPTIONS) + [f"-D{k}={v}" for k, v in spec.defines().items()]


def build(spec: VariantSpec) -> BuildResult:
    """Compile ``spec`` for sm_90a (or fetch it from the cache) and return where the cubin is."""
    start = time.perf_counter()
    source = expand_source(spec.source)
    options = options_for(spec)
    key = cache.cache_key(source, options, nvrtc_build_id(), ARCH, __version__)

    def compile_now() -> tuple[bytes, str, float]:
        t0 = time.perf_counter()
        out = compile_cubin(source, spec.source, options)
        return out.cubin, out.log, time.perf_counter() - t0

    entry, cached = cache.get_or_build(key, spec.name, compile_now)
    return BuildResult(spec, key, entry.cubin_path, entry.log, cached, time.perf_counter() - start,
                       entry.compile_seconds)
