"""The one place that talks to NVRTC: CUDA C++ source -> sm_90a cubin plus the ptxas report.

NVRTC needs no GPU, so every variant compiles (and is audited) on CPU-only machines too.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

ARCH = "sm_90a"
BASE_OPTIONS = (f"--gpu-architecture={ARCH}", "--std=c++17", "-default-device", "-Xptxas=-v")


_env_lock = threading.Lock()
_env_users = 0
_env_saved: str | None = None


@contextlib.contextmanager
def _driver_compute_cache_off() -> Iterator[None]:
    """Keep the CUDA ComputeCache out of our compiles while they run.

    On a machine with a driver, NVRTC serves a repeated compile from ~/.nv/ComputeCache and then returns an
    empty log, losing ptxas's -v report that the audit reads (seen on the H100: same source twice in one
    process, log 310 characters then 0). Our own disk cache already covers repeats, so the driver cache
    adds nothing; the caller's setting is restored when the last concurrent compile ends.
    """
    global _env_users, _env_saved
    with _env_lock:
        if _env_users == 0:
            _env_saved = os.environ.get("CUDA_CACHE_DISABLE")
            os.environ["CUDA_CACHE_DISABLE"] = "1"
        _env_users += 1
    try:
        yield
    finally:
        with _env_lock:
            _env_users -= 1
            if _env_users == 0:
                if _env_saved is None:
                    os.environ.pop("CUDA_CACHE_DISABLE", None)
                else:
                    os.environ["CUDA_CACHE_DISABLE"] = _env_saved


class CompileError(RuntimeError):
    """NVRTC rejected a kernel; the message holds the compiler log."""


@dataclass(frozen=True)
class CompileOutput:
    cubin: bytes
    log: str


def _nvrtc():
    try:
        from cuda.bindings import nvrtc
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("bsk_cupy needs cuda-bindings with NVRTC: pip install 'bsk_cupy[cuda13]' "
                           "(or [cuda12])") from exc
    return nvrtc


def _check(result: tuple, what: str):
    """Raise on a non-zero NVRTC status; return the call's other results (one value, a tuple or None)."""
    err, rest = result[0], result[1:]
    if int(err) != 0:
        raise CompileError(f"{what} failed: {err!r}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else tuple(rest)


@lru_cache(maxsize=None)
def nvrtc_version() -> tuple[int, int]:
    """(major, minor) of the NVRTC library in use."""
    major, minor = _check(_nvrtc().nvrtcVersion(), "nvrtcVersion")
    return int(major), int(minor)


@lru_cache(maxsize=None)
def nvrtc_build_id() -> str:
    """Identifies the exact NVRTC build: version plus the loaded library's path and size."""
    path = "unknown"
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        path = load_nvidia_dynamic_lib("nvrtc").abs_path
    except Exception:  # noqa: BLE001 - older cuda-bindings have no pathfinder; the version still keys
        pass
    size = os.path.getsize(path) if os.path.isfile(path) else -1
    major, minor = nvrtc_version()
    return f"{major}.{minor}:{os.path.basename(path)}:{size}"


def compile_cubin(source: str, program_name: str, options: list[str]) -> CompileOutput:
    """Compile ``source`` to a cubin; raise :class:`CompileError` with the log on failure."""
    nvrtc = _nvrtc()
    program = _check(nvrtc.nvrtcCreateProgram(source.encode(), program_name.encode(), 0, [], []),
                     "nvrtcCreateProgram")
    try:
        encoded = [o.encode() for o in options]
        with _driver_compute_cache_off():
            (status,) = nvrtc.nvrtcCompileProgram(program, len(encoded), encoded)
        size = _check(nvrtc.nvrtcGetProgramLogSize(program), "nvrtcGetProgramLogSize")
        log_buf = bytearray(size)  # a mutable buffer: NVRTC writes into it
        _check(nvrtc.nvrtcGetProgramLog(program, log_buf), "nvrtcGetProgramLog")
        log = bytes(log_buf).rstrip(b"\x00").decode(errors="replace")
        if int(status) != 0:
            raise CompileError(f"NVRTC could not compile {program_name}:\n{log}")
        size = _check(nvrtc.nvrtcGetCUBINSize(program), "nvrtcGetCUBINSize")
        cubin = bytearray(size)
        _check(nvrtc.nvrtcGetCUBIN(program, cubin), "nvrtcGetCUBIN")
        return CompileOutput(cubin=bytes(cubin), log=log)
    finally:
        nvrtc.nvrtcDestroyProgram(program)
