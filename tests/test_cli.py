"""The bsk-cupy command on a machine without a GPU."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from bsk_cupy.cli import main
from bsk_cupy.compile.source import expand_source
from bsk_cupy.environment import describe
from bsk_cupy.specs import all_kernel_specs


def test_info_runs_anywhere(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "bsk_cupy" in out and "cache" in out


def test_reports_name_the_code_they_measured():
    """info / validate carry the checkout's commit and a digest of the expanded kernel source, so that a
    report can be matched to the kernel it measured."""
    info = describe()
    digest = hashlib.sha256(expand_source("attn_fwd_sm90.cu").encode()).hexdigest()[:16]
    assert info["attention kernel source (sha256)"] == digest
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode == 0 and (root / ".git").exists():   # tests run from a checkout (CI's clean clone)
        assert info["commit"].split(" + ")[0] == head.stdout.strip()
    else:
        assert info["commit"].startswith(("no git checkout here", "unknown"))


def test_warmup_then_everything_cached(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BSK_CACHE_DIR", str(tmp_path))
    assert main(["warmup", "--threads", "2"]) == 0
    first = capsys.readouterr().out
    assert f"{len(all_kernel_specs())} compiled" in first
    assert main(["warmup"]) == 0
    assert f"0 compiled, {len(all_kernel_specs())} from cache" in capsys.readouterr().out


def test_clear_cache(capsys):
    assert main(["clear-cache"]) == 0
    assert "removed" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "bsk_cupy", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "validate" in result.stdout


def test_validate_without_gpu_says_what_it_skipped(tmp_path, capsys):
    from bsk_cupy.device import gpu_available

    if gpu_available():
        pytest.skip("this machine has a Hopper GPU; the GPU suite covers validate")
    report = tmp_path / "report.md"
    assert main(["validate", "--report", str(report)]) == 0
    text = report.read_text()
    assert "Result: PASS" in text and "Static audit" in text and "Reference self-check" in text
    assert "no Hopper (compute capability 9.0) GPU here" in text
