"""Shared test setup: the test dependencies must be installed, and the ``gpu`` marker skips unless an sm_90
GPU is present."""

from __future__ import annotations

import importlib.util
import os

import pytest

# JAX's GPU client would otherwise take 75% of the GPU's memory at its first use (the JAX tests' collection),
# leaving the torch and CuPy tests a quarter of it.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# What the README's test command installs (extras cuda13 or cuda12, torch, jax, test). Missing, the audit,
# the torch host paths, the JAX trace checks or the whole GPU suite would fail to import or skip, so it is a
# usage error instead.
REQUIRED_MODULES = ("cupy", "cuda.bindings.nvrtc", "torch", "jax")


def pytest_configure(config):
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(f"the tests need {', '.join(missing)}: install them with the README's test "
                                f"command (pip install -e \".[cuda13,torch,jax,test]\")")


def _hopper_present() -> bool:
    try:
        from bsk_cupy.device import gpu_available

        return gpu_available()
    except Exception:  # noqa: BLE001 - no CuPy, no driver: no GPU
        return False


HOPPER = _hopper_present()


def pytest_collection_modifyitems(config, items):
    if HOPPER:
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA Hopper GPU (compute capability 9.0) with CuPy")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test session compiles into one private cache so tests never touch the user's cache."""
    if "BSK_TEST_SHARED_CACHE" in os.environ:
        return
    monkeypatch.setenv("BSK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "bsk_cache"))
