"""Kernel sources: locate ``kernels_cu/`` and expand our own ``#include "..."`` lines.

NVRTC gets one self-contained translation unit, and the cache key hashes exactly that text, so editing a
header under ``kernels_cu/common/`` changes the key of every kernel that includes it.
"""

from __future__ import annotations

import re
from pathlib import Path

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')
_PRAGMA_ONCE = re.compile(r"^\s*#\s*pragma\s+once\s*$")


def kernels_dir() -> Path:
    """The ``kernels_cu`` folder: beside the package in a checkout, inside it in an installed wheel."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "kernels_cu", package.parent / "kernels_cu"):
        if (candidate / "common").is_dir():
            return candidate
    raise FileNotFoundError(f"kernels_cu/ not found beside or inside {package}; the installation is incomplete")


def expand_source(filename: str, root: Path | None = None) -> str:
    """Return ``root/filename`` with every quoted include inlined once (``#pragma once`` semantics).

    Parameters
    ----------
    filename : str
        Path of the ``.cu`` file relative to ``root``.
    root : Path, optional
        Folder the includes are resolved against; defaults to :func:`kernels_dir`.
    """
    root = kernels_dir() if root is None else root
    seen: set[Path] = set()
    return "".join(_expand(root / filename, seen))


def _expand(path: Path, seen: set[Path]) -> list[str]:
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    if not path.is_file():
        raise FileNotFoundError(f"kernel source {path} does not exist")
    out = [f"// ---- {path.name}\n"]
    for number, line in enumerate(path.read_text().splitlines(keepends=True), start=1):
        if _PRAGMA_ONCE.match(line):
            continue
        match = _INCLUDE.match(line)
        if match:
            out.extend(_expand(path.parent / match.group(1), seen))
            out.append(f'#line {number + 1} "{path.name}"\n')
        else:
            out.append(line)
    return out
