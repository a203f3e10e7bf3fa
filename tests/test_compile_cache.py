"""Source expansion, the cache key, and the disk cache (needs NVRTC, not a GPU)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bsk_cupy.compile import build, cache
from bsk_cupy.compile.source import expand_source, kernels_dir
from bsk_cupy.specs import KernelSpec


SPEC = KernelSpec(head_dim=64, dtype="float16", causal=False)


def _tiny_tree(root: Path, header_body: str) -> None:
    (root / "common").mkdir(parents=True)
    (root / "common" / "h.cuh").write_text(f"#pragma once\n{header_body}\n")
    (root / "k.cu").write_text('#include "common/h.cuh"\n#include "common/h.cuh"\nint k_main() { return K; }\n')


def test_includes_are_inlined_once(tmp_path):
    _tiny_tree(tmp_path, "#define K 1")
    text = expand_source("k.cu", tmp_path)
    assert text.count("#define K 1") == 1
    assert "#include" not in text and "pragma once" not in text


def test_header_change_changes_the_key(tmp_path):
    _tiny_tree(tmp_path / "a", "#define K 1")
    _tiny_tree(tmp_path / "b", "#define K 2")
    keys = [cache.cache_key(expand_source("k.cu", tmp_path / x), ["-DX=1"], "nvrtc", "sm_90a", "0")
            for x in ("a", "b")]
    assert keys[0] != keys[1]


def test_key_covers_options_nvrtc_arch_and_version():
    base = dict(source="s", options=["-DA=1", "-DB=2"], nvrtc_build="n", arch="sm_90a", package_version="1")
    key = cache.cache_key(**base)
    assert key == cache.cache_key(**{**base, "options": ["-DB=2", "-DA=1"]})  # order does not matter
    for field, value in [("source", "t"), ("options", ["-DA=2"]), ("nvrtc_build", "m"), ("arch", "sm_90"),
                         ("package_version", "2")]:
        assert cache.cache_key(**{**base, field: value}) != key


def test_shipped_kernels_expand():
    text = expand_source(SPEC.source)
    assert "attn_fwd_sm90" in text and '#include "' not in text
    assert (kernels_dir() / "common").is_dir()


def test_build_then_hit(tmp_path, monkeypatch):
    monkeypatch.setenv("BSK_CACHE_DIR", str(tmp_path))
    first = build(SPEC)
    assert not first.cached and first.cubin_path.read_bytes().startswith(b"\x7fELF")
    second = build(SPEC)
    assert second.cached and second.key == first.key and second.cubin_path == first.cubin_path


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop_meta"])
def test_corrupt_entry_is_rebuilt(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("BSK_CACHE_DIR", str(tmp_path))
    first = build(SPEC)
    data = first.cubin_path.read_bytes()
    if damage == "truncate":
        first.cubin_path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        first.cubin_path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:
        first.cubin_path.with_suffix(".json").unlink()
    assert cache.lookup(first.key) is None
    again = build(SPEC)
    assert not again.cached and again.cubin_path.read_bytes() == data
    assert json.loads(again.cubin_path.with_suffix(".json").read_text())["name"] == SPEC.name


def test_two_processes_warming_at_once_both_succeed(tmp_path):
    script = ("from bsk_cupy.compile import build; from bsk_cupy.specs import KernelSpec; "
              "r = build(KernelSpec(head_dim=128, dtype='bfloat16', causal=True)); "
              "print(r.cached, r.cubin_path.stat().st_size)")
    env = dict(os.environ, BSK_CACHE_DIR=str(tmp_path), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o[0] for o in outputs) == ["False", "True"]  # one compiled, the other waited and hit
    assert outputs[0][1] == outputs[1][1]
    assert len(list((tmp_path / f"v{cache.CACHE_FORMAT}").glob("*.cubin"))) == 1


def test_clear_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BSK_CACHE_DIR", str(tmp_path))
    build(SPEC)
    assert cache.usage()[0] == 1
    removed, freed = cache.clear()
    assert removed >= 2 and freed > 0 and cache.usage() == (0, 0)


def test_driver_compute_cache_is_off_only_while_compiling(monkeypatch):
    """NVRTC on a GPU machine returns an empty log for ComputeCache hits; we switch it off per compile."""
    from bsk_cupy.compile import nvrtc

    monkeypatch.setenv("CUDA_CACHE_DISABLE", "0")
    seen = []
    with nvrtc._driver_compute_cache_off():
        seen.append(os.environ.get("CUDA_CACHE_DISABLE"))
    assert seen == ["1"] and os.environ["CUDA_CACHE_DISABLE"] == "0"
    constant = random.randint(2, 10**9)  # new code each run: no ComputeCache entry can exist for it
    out = nvrtc.compile_cubin(f'extern "C" __global__ void k(float* x) {{ x[0] = {constant}.f; }}', "k.cu",
                              list(nvrtc.BASE_OPTIONS))
    assert "Used" in out.log and os.environ["CUDA_CACHE_DISABLE"] == "0"
