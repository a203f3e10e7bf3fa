"""The ``bsk-cupy`` command: info, warmup, audit, bench, validate, clear-cache."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _info(args) -> int:
    from .environment import describe

    for key, value in describe().items():
        print(f"{key:>14}: {value}")
    return 0


def _warmup(args) -> int:
    from .warmup import warmup

    def progress(result, done, total):
        how = "cached " if result.cached else "compiled"
        print(f"[{done}/{total}] {how} {result.spec.name}  {result.seconds:.2f} s", flush=True)

    report = warmup(threads=args.threads, progress=progress)
    compiled = [r for r in report.results if not r.cached]
    print(f"{len(compiled)} compiled, {len(report.results) - len(compiled)} from cache; "
          f"first pass {report.wall_seconds:.2f} s wall, all from cache {report.cached_wall_seconds * 1000:.1f} ms")
    return 0


def _audit(args) -> int:
    from .audit import audit_spec
    from .specs import all_kernel_specs

    records = [audit_spec(s) for s in all_kernel_specs()]
    if args.json:
        print(json.dumps([r.as_dict() for r in records], indent=1))
    else:
        for r in records:
            status = "ok" if r.ok else f"FAIL {r.error or ''} {r.warnings or ''} missing={r.missing}"
            print(f"{r.name:45s} regs {r.registers:3d}  smem {r.shared_bytes:6d}  spills "
                  f"{r.spill_stores}/{r.spill_loads}  sass {','.join(r.sass_has)}  {status}")
            if r.note:
                print(f"    note: {r.note}")
    return 0 if all(r.ok for r in records) else 1


def _bench(args) -> int:
    from .environment import import_torch

    if import_torch() is None:
        print("bench needs PyTorch (the SDPA baselines come from it)", file=sys.stderr)
        return 2
    from .bench import TARGET_CONFIGS, analyze, bench_config, format_clock_table, format_table, format_verdicts
    from .device import gpu_available

    if not gpu_available():
        print("bench needs a Hopper GPU (compute capability 9.0); none found", file=sys.stderr)
        return 2
    rows = [bench_config(*cfg, dtype=args.dtype) for cfg in TARGET_CONFIGS]
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
    else:
        print(format_table(rows) + "\n\n" + format_clock_table(rows) + "\n\n" + format_verdicts(analyze(rows)))
    return 0


def _validate(args) -> int:
    from .validate import run

    return run(Path(args.report), benchmark=not args.no_bench)


def _clear_cache(args) -> int:
    from .compile import cache

    removed, freed = cache.clear()
    print(f"removed {removed} files ({freed / 1e6:.1f} MB) from {cache.cache_dir()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bsk-cupy", description="bsk_cupy: Hopper attention kernels")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="GPU, driver, NVRTC, CuPy, cache").set_defaults(run=_info)
    p = sub.add_parser("warmup", help="compile every registered variant ahead of time")
    p.add_argument("--threads", type=int, default=4)
    p.set_defaults(run=_warmup)
    p = sub.add_parser("audit", help="compile every variant for sm_90a and check resources and SASS (no GPU)")
    p.add_argument("--json", action="store_true", help="print one JSON object per variant")
    p.set_defaults(run=_audit)
    p = sub.add_parser("bench", help="time ours against SDPA's cuDNN and flash backends (H100)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    p.set_defaults(run=_bench)
    p = sub.add_parser("validate", help="check everything this machine can and write the report")
    p.add_argument("--report", default="H100_VALIDATION_REPORT.md")
    p.add_argument("--no-bench", action="store_true", help="skip the timing step")
    p.set_defaults(run=_validate)
    sub.add_parser("clear-cache", help="delete the compiled-kernel cache").set_defaults(run=_clear_cache)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
