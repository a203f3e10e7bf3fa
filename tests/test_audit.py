"""Every attention variant compiles for sm_90a, spills nothing, draws no ptxas warning and uses HGMMA + TMA (and
the bulk copy of its epilogue where it has one); the audit lists every registered variant (the SparseK
selection variants are checked in test_sparsek_select.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bsk_cupy.audit import audit_spec, parse_ptxas_log
from bsk_cupy.cli import main
from bsk_cupy.device import gpu_available
from bsk_cupy.specs import KernelSpec, all_kernel_specs, all_specs


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_variant_passes_audit(spec):
    record = audit_spec(spec)
    assert record.ok, record.as_dict()
    if not gpu_available():  # no driver, no ComputeCache: ptxas's report (and its warnings) must be there
        assert record.ptxas_report, record.as_dict()
    assert record.registers > 0 and record.shared_bytes >= spec.smem_bytes
    assert {"HGMMA", "UTMALDG"} <= set(record.sass_has)
    assert ("UBLKCP" in record.sass_has) == spec.bulk_store  # the bulk-store epilogue's copy


def test_audit_json_lists_every_variant(capsys):
    assert main(["audit", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == [s.name for s in all_kernel_specs()]
    for r in records:
        assert {"name", "registers", "shared_bytes", "spill_stores", "spill_loads", "sass_has", "ok"} <= set(r)


def test_log_parser_sees_spills_and_warnings():
    log = ("ptxas warning : (C7508) Potential Performance Loss: setmaxnreg ignored\n"
           "ptxas         .     16 bytes stack frame, 24 bytes spill stores, 32 bytes spill loads\n"
           "ptxas info    : Used 168 registers, used 1 barriers\n")
    report = parse_ptxas_log(log)
    assert report["spill_stores"] == 24 and report["spill_loads"] == 32 and report["stack_bytes"] == 16
    assert report["has_report"] and len(report["warnings"]) == 1
    assert not parse_ptxas_log("")["has_report"]
    injected = "ptxas info    : (C7519) warpgroup.arrive is injected in around line 9 by compiler\n"
    assert parse_ptxas_log(injected)["warnings"] == [injected.strip()]


def test_broken_kernel_fails_the_audit(tmp_path, monkeypatch):
    """A kernel that does not compile is reported, not raised: the audit must be able to fail."""
    from bsk_cupy.compile import source

    (tmp_path / "common").mkdir()
    (tmp_path / "attn_fwd_sm90.cu").write_text('extern "C" __global__ void attn_fwd_sm90() { undefined_call(); }\n')
    monkeypatch.setattr(source, "kernels_dir", lambda: tmp_path)
    record = audit_spec(all_specs()[0])
    assert not record.ok and "undefined_call" in record.error


def test_kernel_without_wgmma_fails_the_audit(tmp_path, monkeypatch):
    from bsk_cupy.compile import source

    (tmp_path / "common").mkdir()
    (tmp_path / "attn_fwd_sm90.cu").write_text(
        'extern "C" __global__ void attn_fwd_sm90(float* x) { x[threadIdx.x] = 1.f; }\n')
    monkeypatch.setattr(source, "kernels_dir", lambda: tmp_path)
    record = audit_spec(all_specs()[0])
    assert not record.ok and set(record.missing) == {"HGMMA", "UTMALDG", "UBLKCP"}


@pytest.mark.parametrize("trace, suffix", [(True, ".trace"), (2, ".tiletrace")])
def test_probes_build_apart_from_the_dispatched_variants(trace, suffix):
    """The probes (tools/trace_timeline.py, tools/tile_timeline.py) compile clean, and leave every
    dispatched variant's macros, so its cache entry and SASS, untouched."""
    plain = all_specs()[0]
    probe = dataclasses.replace(plain, trace=trace)
    assert probe.name == plain.name + suffix and probe.defines() == {**plain.defines(), "TRACE": int(trace)}
    assert all("TRACE" not in spec.defines() for spec in all_specs())
    record = audit_spec(probe)
    assert record.ok, record.as_dict()


@pytest.mark.parametrize("probe", [1, 2])
def test_epilogue_probes_build_apart_from_the_dispatched_variants(probe):
    """The epilogue probes (tools/epilogue_bound_run.sh) compile without spills or ptxas warnings under their
    own name and macro, which no dispatched variant carries. Probe 2 writes no output, so its SASS has no
    bulk copy (the one opcode the audit may find missing)."""
    plain = next(spec for spec in all_specs() if spec.bulk_store)
    spec = dataclasses.replace(plain, epilogue_probe=probe)
    assert spec.name == plain.name + f".ep{probe}"
    assert spec.defines() == {**plain.defines(), "EPILOGUE_PROBE": probe}
    assert all("EPILOGUE_PROBE" not in s.defines() for s in all_specs())
    record = audit_spec(spec)
    assert not record.error and not record.warnings and record.spill_stores == record.spill_loads == 0
    assert set(record.missing) == (set() if probe == 1 else {"UBLKCP"})
    with pytest.raises(ValueError, match="epilogue_probe must be 0, 1 or 2"):
        dataclasses.replace(plain, epilogue_probe=3)


def test_trace_takes_only_the_probes_it_has():
    with pytest.raises(ValueError, match="trace must be 0, 1 or 2"):
        KernelSpec(head_dim=64, dtype="float16", causal=False, trace=3)
