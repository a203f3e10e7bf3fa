"""Static audit of every kernel variant: compile for sm_90a, read ptxas's report, check the SASS.

Needs no GPU. A variant passes when it compiles, spills nothing, draws no ptxas warning (C7504, C7508,
C7519, serialised wgmma and the like) and its SASS contains the instructions its family is meant to use
(``REQUIRED_SASS``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field

from .compile import CompileError, build
from .specs import VariantSpec

# Instructions each kernel family must contain: the attention kernel is wgmma + TMA; the SparseK selection
# kernel runs on the CUDA cores, so only spills, stack and ptxas warnings are checked for it.
REQUIRED_SASS: dict[str, tuple[str, ...]] = {
    "attn_fwd_sm90": ("HGMMA", "UTMALDG"),
    "sparsek_select": (),
}
# ... and a bulk-store epilogue its bulk copy (cp.async.bulk global <- shared)
BULK_STORE_SASS = "UBLKCP"
_REGISTERS = re.compile(r"Used (\d+) registers")
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_STACK = re.compile(r"(\d+) bytes stack frame")
_RESOURCES = re.compile(r"REG:\d+ STACK:\d+ SHARED:\d+ LOCAL:\d+")
_RESOURCE_FIELD = re.compile(r"([A-Z]+):(\d+)")
# ptxas performance advice (C75xx: setmaxnreg ignored, wgmma serialised, warpgroup.arrive injected...)
# comes as "info" from some NVRTC versions and as "warning" from others; either way it fails the audit.
_PERF_ADVICE = re.compile(r"\(C75\d\d\)")
_SASS_OPCODE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)")


@dataclass
class AuditRecord:
    """One variant's audit result (``--json`` prints a list of these)."""

    name: str
    registers: int = 0
    shared_bytes: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    stack_bytes: int = 0
    warnings: list[str] = field(default_factory=list)
    sass_has: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ptxas_report: bool = False  # NVRTC returned ptxas's -v report, so its warnings were checked
    note: str = ""
    error: str = ""
    ok: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def parse_ptxas_log(log: str) -> dict:
    """Spills, stack frame, warning lines and whether the log holds a ptxas -v report at all."""
    def first_int(pattern: re.Pattern) -> int:
        match = pattern.search(log)
        return int(match.group(1)) if match else 0

    spills = _SPILLS.search(log)
    return {
        "has_report": _REGISTERS.search(log) is not None,
        "spill_stores": int(spills.group(1)) if spills else 0,
        "spill_loads": int(spills.group(2)) if spills else 0,
        "stack_bytes": first_int(_STACK),
        "warnings": [line.strip() for line in log.splitlines()
                     if "warning" in line.lower() or _PERF_ADVICE.search(line)],
    }


def find_cuobjdump() -> str:
    """Path of cuobjdump (the nvidia-cuda-cuobjdump wheel first, then PATH)."""
    try:
        from cuda.pathfinder import find_nvidia_binary_utility

        path = find_nvidia_binary_utility("cuobjdump")
        if path:
            return path
    except Exception:  # noqa: BLE001 - older cuda-bindings have no pathfinder
        pass
    path = shutil.which("cuobjdump")
    if path is None:
        raise FileNotFoundError("cuobjdump not found: pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm")
    return path


def _cuobjdump(*args: str) -> str:
    cuobjdump = find_cuobjdump()
    tool_dir = os.path.dirname(cuobjdump)  # cuobjdump runs nvdisasm, which the wheels put beside it
    env = dict(os.environ, PATH=tool_dir + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run([cuobjdump, *args], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"cuobjdump {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def sass_opcodes(cubin_path) -> set[str]:
    """Base opcodes (``HGMMA``, ``UTMALDG``, ...) in a cubin's SASS, via ``cuobjdump -sass``."""
    return set(_SASS_OPCODE.findall(_cuobjdump("-sass", str(cubin_path))))


def resource_usage(cubin_path) -> dict[str, int]:
    """Per-kernel REG / STACK / SHARED / LOCAL of the (single-kernel) cubin, from the cubin itself."""
    text = _cuobjdump("--dump-resource-usage", str(cubin_path))
    match = _RESOURCES.search(text)
    if match is None:
        raise RuntimeError(f"no resource usage found in {cubin_path}")
    return {key: int(value) for key, value in _RESOURCE_FIELD.findall(match.group(0))}


def audit_spec(spec: VariantSpec, required: tuple[str, ...] | None = None) -> AuditRecord:
    """Compile ``spec`` (through the cache) and check its resources and machine code; ``required`` defaults to
    ``REQUIRED_SASS[spec.family]``, plus ``BULK_STORE_SASS`` for a variant with a bulk-store epilogue."""
    if required is None:
        required = REQUIRED_SASS[spec.family] + ((BULK_STORE_SASS,) if getattr(spec, "bulk_store", False) else ())
    record = AuditRecord(name=spec.name)
    try:
        result = build(spec)
    except CompileError as exc:
        record.error = str(exc)
        return record
    report = parse_ptxas_log(result.log)
    record.spill_stores = report["spill_stores"]
    record.spill_loads = report["spill_loads"]
    record.warnings = report["warnings"]
    try:
        usage = resource_usage(result.cubin_path)
        opcodes = sass_opcodes(result.cubin_path)
    except (OSError, RuntimeError) as exc:
        record.error = str(exc)
        return record
    record.registers = usage["REG"]
    record.stack_bytes = max(usage["STACK"], usage["LOCAL"], report["stack_bytes"])
    record.shared_bytes = usage["SHARED"] + spec.smem_bytes
    record.ptxas_report = report["has_report"]
    if not record.ptxas_report:
        record.note = ("NVRTC returned no ptxas report (on a GPU machine the driver's ComputeCache can serve a "
                       "repeated compile); spills checked from the cubin's LOCAL/STACK usage, ptxas warnings "
                       "not checked here (CI, with no driver, checks them)")
    listed = ("HGMMA", "UTMA", "UBLK", "SYNCS")
    record.sass_has = sorted(op for op in opcodes if op in required or op.startswith(listed))
    record.missing = [op for op in required if op not in opcodes]
    record.ok = (not record.error and not record.warnings and not record.missing and record.spill_stores == 0
                 and record.spill_loads == 0 and record.stack_bytes == 0)
    return record
