"""Packaging (CPU): every kernel source folder is listed in pyproject.toml, so an installed wheel (not only a
checkout or an editable install, as in CI) carries the headers the kernels include."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from bsk_cupy.compile.source import kernels_dir


def test_every_kernel_folder_ships_in_the_wheel():
    """A kernel header folder missing from pyproject's packages / package-data would compile in a checkout
    (and in CI's editable install) but not in an installed wheel."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]
    root = kernels_dir()
    for folder in [root, *(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("__"))]:
        sources = sorted(f.name for f in folder.iterdir() if f.suffix in (".cu", ".cuh"))
        if not sources:
            continue
        package = "bsk_cupy.kernels_cu" + ("" if folder == root else f".{folder.name}")
        assert package in config["packages"], package
        assert config["package-dir"][package] == str(folder.relative_to(root.parent)), package
        patterns = config["package-data"][package]
        assert all(any(fnmatch.fnmatch(name, pat) for pat in patterns) for name in sources), (package, sources)
