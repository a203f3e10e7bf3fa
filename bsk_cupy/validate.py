"""``bsk-cupy validate``: check this machine end to end and write H100_VALIDATION_REPORT.md.

Steps: environment; reference self-check (vectorised float64 oracle vs a naive loop); compile every
variant cold (fresh cache) and warm; static audit; on a Hopper GPU with PyTorch, accuracy against float64
with SDPA's error as the yardstick, a timing table against SDPA's cuDNN and flash backends, then one
problem from torch, CuPy and JAX (eager and jitted; skipped, and said so, without a GPU JAX). Steps
that cannot run here are listed as skipped, with the reason; on a Hopper GPU without PyTorch the
accuracy and timing steps fail instead (the full report is what a Hopper machine must give). Exit status 0
only if every step that ran passed.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Report:
    sections: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, title: str, body: str) -> None:
        self.sections.append(f"## {title}\n\n{body}\n")
        print(f"\n== {title}\n{body}", flush=True)

    def markdown(self) -> str:
        head = ["# bsk_cupy validation report", "",
                f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by `bsk-cupy validate`.", "",
                f"**Result: {'PASS' if not self.failures else 'FAIL'}**" +
                (f" — failed: {', '.join(self.failures)}" if self.failures else ""), ""]
        tail = ["## Skipped", ""] + ([f"- {s}" for s in self.skipped] or ["- nothing"]) + [""]
        return "\n".join(head) + "\n" + "\n".join(self.sections) + "\n".join(tail)


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _environment(report: Report) -> None:
    from .environment import describe

    report.add("Environment", _table(["item", "value"], [[k, v] for k, v in describe().items()]))


def _reference_self_check(report: Report) -> None:
    from .reference import attention_naive, attention_reference

    rng = np.random.default_rng()
    worst = 0.0
    for sq, sk, hq, hkv, causal in [(5, 9, 4, 2, True), (9, 5, 2, 1, True), (7, 7, 2, 2, False)]:
        q = rng.standard_normal((1, hq, sq, 16))
        k = rng.standard_normal((1, hkv, sk, 16))
        v = rng.standard_normal((1, hkv, sk, 16))
        fast, fast_lse = attention_reference(q, k, v, causal=causal)
        slow, slow_lse = attention_naive(q, k, v, causal=causal)
        worst = max(worst, float(np.abs(fast - slow).max()))
        if not np.array_equal(np.isinf(fast_lse), np.isinf(slow_lse)):
            worst = float("inf")
    ok = worst < 1e-12
    if not ok:
        report.failures.append("reference self-check")
    report.add("Reference self-check", f"float64 oracle vs naive loop, max abs difference {worst:.2e}: "
                                       f"{'ok' if ok else 'FAILED'}")


def _compile(report: Report) -> None:
    from .warmup import warmup

    with tempfile.TemporaryDirectory() as fresh:
        previous = os.environ.get("BSK_CACHE_DIR")
        os.environ["BSK_CACHE_DIR"] = fresh
        try:
            result = warmup()
        finally:
            if previous is None:
                del os.environ["BSK_CACHE_DIR"]
            else:
                os.environ["BSK_CACHE_DIR"] = previous
    rows = [[r.spec.name, f"{r.compile_seconds:.2f}"] for r in result.results]
    body = _table(["variant", "NVRTC seconds (cold)"], rows)
    body += (f"\n\nAll {len(rows)} variants, cold cache, 4 threads: {result.wall_seconds:.2f} s wall; "
             f"the same from the warm cache: {result.cached_wall_seconds * 1000:.1f} ms.")
    report.add("Compile (cold vs warm cache)", body)


def _audit(report: Report) -> None:
    from .audit import audit_spec
    from .specs import all_kernel_specs

    records = [audit_spec(s) for s in all_kernel_specs()]
    rows = [[r.name, r.registers, r.shared_bytes, f"{r.spill_stores}/{r.spill_loads}", ", ".join(r.sass_has),
             "yes" if r.ptxas_report else "no (see note)",
             "ok" if r.ok else f"FAIL {r.error or r.warnings or r.missing}"] for r in records]
    notes = sorted({r.note for r in records if r.note})
    if not all(r.ok for r in records):
        report.failures.append("audit")
    body = _table(["variant", "registers", "shared bytes", "spills st/ld", "SASS", "ptxas warnings checked",
                   "result"], rows)
    report.add("Static audit (sm_90a)", body + "".join(f"\n\nNote: {n}" for n in notes))


ACCURACY_CASES = [
    # name, B, Hq, Hkv, Sq, Sk, D, dtype, causal, layout
    ("d64 fp16", 2, 4, 4, 1000, 1000, 64, "float16", False, "bhsd"),
    ("d64 fp16 causal", 2, 4, 4, 1000, 1000, 64, "float16", True, "bhsd"),
    ("d128 bf16", 2, 4, 4, 1000, 1000, 128, "bfloat16", False, "bhsd"),
    ("d128 bf16 causal", 2, 4, 4, 1000, 1000, 128, "bfloat16", True, "bhsd"),
    ("d256 fp16", 2, 4, 4, 1000, 1000, 256, "float16", False, "bhsd"),
    ("d256 bf16 causal", 2, 4, 4, 1000, 1000, 256, "bfloat16", True, "bhsd"),
    ("odd lengths Sq 113 Sk 4097 causal", 1, 2, 2, 113, 4097, 128, "float16", True, "bhsd"),
    ("Sq 4097 Sk 7 causal (empty rows)", 1, 2, 2, 4097, 7, 64, "bfloat16", True, "bhsd"),
    ("single query", 2, 4, 4, 1, 1000, 64, "float16", False, "bhsd"),
    ("GQA 8/2", 2, 8, 2, 700, 700, 128, "float16", True, "bhsd"),
    ("MQA 8/1 bshd", 2, 8, 1, 333, 333, 64, "bfloat16", False, "bshd"),
]


def _accuracy(report: Report) -> None:
    import torch

    from .accuracy import check_case

    rows = []
    for name, b, hq, hkv, sq, sk, d, dtype, causal, layout in ACCURACY_CASES:
        t = getattr(torch, dtype)
        shape_q = (b, hq, sq, d) if layout == "bhsd" else (b, sq, hq, d)
        shape_kv = (b, hkv, sk, d) if layout == "bhsd" else (b, sk, hkv, d)
        q = torch.randn(shape_q, device="cuda", dtype=t)
        k, v = (torch.randn(shape_kv, device="cuda", dtype=t) for _ in range(2))
        r = check_case(name, q, k, v, causal, layout=layout)
        rows.append([name, f"{r.error:.2e}", f"{r.sdpa_error:.2e}", f"{r.bound:.2e}", f"{r.lse_error:.1e}",
                     r.unwritten, "ok" if r.ok else "FAIL"])
        if not r.ok:
            report.failures.append(f"accuracy: {name}")
    report.add("Accuracy vs float64 (fresh random inputs, NaN-poisoned outputs)",
               _table(["case", "ours max err", "SDPA max err", "bound 2·SDPA+1e-3", "lse err", "unwritten",
                       "result"], rows))


def _frameworks(report: Report) -> None:
    """One problem from torch, CuPy (views of the same memory) and JAX, eager and under ``jax.jit`` (copies on
    the GPU): the same kernel, so the same bits."""
    import cupy
    import torch

    from .api import attention_forward

    q = torch.randn(1, 8, 1000, 64, device="cuda", dtype=torch.float16)
    k, v = (torch.randn(1, 2, 1000, 64, device="cuda", dtype=torch.float16) for _ in range(2))
    expected = attention_forward(q, k, v, causal=True).cpu().numpy()
    calls = {"CuPy": lambda: cupy.asnumpy(attention_forward(*(cupy.from_dlpack(x) for x in (q, k, v)), causal=True))}
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX's client: not 75% of the GPU
    try:
        import jax
    except ImportError:
        report.skipped.append("JAX calls in the framework check: JAX is not installed (the jax extra)")
    else:
        if any(d.platform == "gpu" for d in jax.devices()):
            gpu = jax.devices("gpu")[0]
            qj, kj, vj = (jax.device_put(x.cpu().numpy(), gpu) for x in (q, k, v))
            jitted = jax.jit(lambda q, k, v: attention_forward(q, k, v, causal=True))
            calls["JAX eager"] = lambda: np.asarray(attention_forward(qj, kj, vj, causal=True))
            calls["JAX in jax.jit"] = lambda: np.asarray(jitted(qj, kj, vj))
        else:
            report.skipped.append("JAX calls in the framework check: JAX has no GPU backend here (install JAX's "
                                  "CUDA build, e.g. jax[cuda13])")
    rows = [["torch", "the reference"]]
    for name, call in calls.items():
        try:
            result = "ok: the same bits" if np.array_equal(call(), expected) else "FAIL: differs from torch's result"
        except Exception as exc:  # noqa: BLE001 - reported as this caller's failure, the report goes on
            result = f"FAIL: {type(exc).__name__}: {exc}"
        rows.append([name, result])
        if result.startswith("FAIL"):
            report.failures.append(f"frameworks: {name}")
    report.add("Frameworks (B1 Hq8 Hkv2 S1000 D64 causal fp16, one problem from each)",
               _table(["caller", "result"], rows))


def _benchmark(report: Report) -> None:
    from .bench import TARGET_CONFIGS, analyze, bench_config, format_clock_table, format_table, format_verdicts

    rows = [bench_config(*cfg) for cfg in TARGET_CONFIGS]
    report.add("Timing (fp16, GPU µs per call by CUDA-graph replay; eager = Python wall per call)",
               format_table(rows))
    clocks = format_clock_table(rows)
    report.add("Clock and power during the replays (nvidia-smi, second half of each row's replays)",
               (clocks + "\n\nUnder about a second of back-to-back calls the card settles at its power limit "
                "(reason 0x4: software power cap) and lowers the SM clock, for cuDNN as for us: a large row's "
                "time is its cost in SM cycles divided by a clock that depends on the power the kernel "
                "draws. kcycles = GPU µs x MHz / 1000.") if clocks else
               "not sampled (no nvidia-smi, or every row too short to sample)")
    verdicts = analyze(rows)
    met = sum(v.met for v in verdicts)
    report.add("Speed targets (bsk_cupy/targets.json)",
               format_verdicts(verdicts) + f"\n\n{met} of {len(verdicts)} targets met. Targets are goals of "
               "the speed work: a MISSED target is reported here, it does not fail validation.")


def run(report_path: Path, benchmark: bool = True) -> int:
    """Run every step this machine allows, write the report, return the exit status."""
    from .device import gpu_available
    from .environment import import_torch

    torch = import_torch()

    report = Report()
    _environment(report)
    _reference_self_check(report)
    _compile(report)
    _audit(report)
    if not gpu_available():
        report.skipped.append("accuracy and timing on the GPU: no Hopper (compute capability 9.0) GPU here")
    elif torch is None:  # on a Hopper GPU the report must be the full one
        report.add("Accuracy and timing", "Not run: PyTorch is not installed (it provides the test tensors and "
                   "the SDPA yardstick). Install the torch extra: `pip install \".[cuda13,torch]\"`.")
        report.failures.append("accuracy and timing (PyTorch missing on a Hopper GPU)")
    else:
        _accuracy(report)
        if benchmark:
            _benchmark(report)
        else:
            report.skipped.append("timing: --no-bench")
        _frameworks(report)  # last: JAX's GPU client, once up, runs threads of its own beside the timing
    report_path.write_text(report.markdown())
    print(f"\nwrote {report_path}: {'PASS' if not report.failures else 'FAIL ' + ', '.join(report.failures)}")
    return 0 if not report.failures else 1
