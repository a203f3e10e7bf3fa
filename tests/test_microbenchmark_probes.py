"""The microbenchmark probes in tools/ (what issuing wgmma costs; whether the tensor cores and MUFU overlap)
build their kernels from kernels_cu/common, so they must keep compiling for sm_90a, clean and with wgmma, as
those headers change. Compiled here with NVRTC (no GPU needed); run on the card by hand (RESULTS.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bsk_cupy.audit import parse_ptxas_log, sass_opcodes
from bsk_cupy.device import gpu_available


TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("tool", ["wgmma_issue_probe", "mufu_tensor_overlap_probe"])
def test_probe_compiles_clean_for_sm90a(tool, tmp_path):
    from bsk_cupy.compile.nvrtc import compile_cubin

    output = compile_cubin(load_tool(tool).source(), f"{tool}.cu",
                           ["--gpu-architecture=sm_90a", "--std=c++17", "-Xptxas=-v"])
    report = parse_ptxas_log(output.log)
    if not gpu_available():  # without a driver's compute cache in the way, ptxas reports every entry
        assert report["has_report"], output.log
    assert report["spill_stores"] == 0 and report["spill_loads"] == 0 and not report["warnings"], output.log
    cubin = tmp_path / f"{tool}.cubin"
    cubin.write_bytes(output.cubin)
    assert "HGMMA" in sass_opcodes(cubin)
