"""Compile every registered variant ahead of time (``bsk-cupy warmup``), in threads: NVRTC drops the GIL."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from .compile import BuildResult, build
from .specs import VariantSpec, all_kernel_specs


@dataclass
class WarmupReport:
    results: list[BuildResult]
    wall_seconds: float          # the whole first pass (compiles run in parallel)
    cached_wall_seconds: float   # a second pass: every variant from the disk cache


def warmup(specs: list[VariantSpec] | None = None, threads: int = 4,
           progress: Callable[[BuildResult, int, int], None] | None = None) -> WarmupReport:
    """Build every variant (or fetch it), then time a second, fully cached pass."""
    specs = all_kernel_specs() if specs is None else specs
    results: list[BuildResult] = []
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for result in pool.map(build, specs):
            results.append(result)
            if progress is not None:
                progress(result, len(results), len(specs))
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    for spec in specs:
        build(spec)
    return WarmupReport(results, wall, time.perf_counter() - t1)
