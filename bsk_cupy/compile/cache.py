"""On-disk cubin cache: content-addressed, atomic, locked across processes, verified before use.

Layout under ``BSK_CACHE_DIR`` (default ``~/.cache/bsk_cupy``)::

    v1/<key>.cubin   the cubin
    v1/<key>.json    metadata: variant name, sha256 of the cubin, ptxas log, compile seconds
    v1/<key>.lock    lock file held (flock) while one process compiles the key

The key is the sha256 of the expanded source, the sorted options, the NVRTC build, the target arch, the
package version and the cache format, so any change to any of them compiles afresh. A cubin is trusted
only if it starts with the ELF magic and matches the sha256 in its metadata; otherwise it is rebuilt.
The compile-and-store policy (hit -> lock -> re-check -> build) lives in :func:`get_or_build`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

CACHE_FORMAT = 1
_ELF_MAGIC = b"\x7fELF"


def cache_dir() -> Path:
    """The cache folder for this format version (created on demand)."""
    root = os.environ.get("BSK_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "bsk_cupy")
    return Path(root) / f"v{CACHE_FORMAT}"


def cache_key(source: str, options: list[str], nvrtc_build: str, arch: str, package_version: str) -> str:
    """sha256 over everything that changes the compiled bytes."""
    material = json.dumps({
        "format": CACHE_FORMAT,
        "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
        "options": sorted(options),
        "nvrtc": nvrtc_build,
        "arch": arch,
        "package": package_version,
    }, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    key: str
    cubin_path: Path
    log: str
    compile_seconds: float


def _paths(key: str) -> tuple[Path, Path, Path]:
    base = cache_dir()
    return base / f"{key}.cubin", base / f"{key}.json", base / f"{key}.lock"


def lookup(key: str) -> CacheEntry | None:
    """Return the verified entry for ``key``, or None if it is missing or corrupt."""
    cubin_path, meta_path, _ = _paths(key)
    try:
        meta = json.loads(meta_path.read_text())
        data = cubin_path.read_bytes()
    except (OSError, ValueError):
        return None
    if not data.startswith(_ELF_MAGIC) or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        return None
    return CacheEntry(key, cubin_path, meta.get("log", ""), float(meta.get("compile_seconds", 0.0)))


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def store(key: str, name: str, cubin: bytes, log: str, compile_seconds: float) -> CacheEntry:
    """Write ``cubin`` and its metadata atomically and return the entry."""
    cubin_path, meta_path, _ = _paths(key)
    cubin_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"name": name, "sha256": hashlib.sha256(cubin).hexdigest(), "log": log,
            "compile_seconds": compile_seconds}
    _atomic_write(cubin_path, cubin)
    _atomic_write(meta_path, json.dumps(meta, indent=1).encode())
    return CacheEntry(key, cubin_path, log, compile_seconds)


@contextlib.contextmanager
def _key_lock(key: str) -> Iterator[None]:
    _, _, lock_path = _paths(key)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def get_or_build(key: str, name: str, build: Callable[[], tuple[bytes, str, float]]) -> tuple[CacheEntry, bool]:
    """Return ``(entry, was_cached)``; on a miss, compile under the key's lock and store the result.

    ``build`` returns ``(cubin, log, seconds)``. A second process asking for the same key waits on the
    lock and then finds the first one's result.
    """
    entry = lookup(key)
    if entry is not None:
        return entry, True
    with _key_lock(key):
        entry = lookup(key)
        if entry is not None:
            return entry, True
        cubin, log, seconds = build()
        return store(key, name, cubin, log, seconds), False


def clear() -> tuple[int, int]:
    """Delete every cached file; return (files removed, bytes freed)."""
    removed = freed = 0
    base = cache_dir()
    if base.is_dir():
        for path in base.iterdir():
            if path.is_file():
                freed += path.stat().st_size
                path.unlink()
                removed += 1
    return removed, freed


def usage() -> tuple[int, int]:
    """(number of cubins, total bytes) currently cached."""
    base = cache_dir()
    if not base.is_dir():
        return 0, 0
    files = [p for p in base.iterdir() if p.is_file()]
    return sum(p.suffix == ".cubin" for p in files), sum(p.stat().st_size for p in files)
