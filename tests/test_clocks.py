"""Clock and power sampling for the benchmark (bsk_cupy.clocks) and its table in the report; no GPU."""

import subprocess

from bsk_cupy import clocks
from bsk_cupy.bench import BenchRow, format_clock_table
from bsk_cupy.clocks import ClockReading, ClockSampler, parse_samples, summarize


def test_parse_samples_reads_clock_power_and_reason_mask_and_skips_the_rest():
    text = "1980, 120.51, 0x0000000000000000\n1680, 688.10, 0x0000000000000004\n[N/A], [N/A], [N/A]\n1650, 69"
    assert parse_samples(text) == [(1980.0, 120.51, "0x0"), (1680.0, 688.1, "0x4")]


def test_summary_is_the_median_of_the_second_half_with_the_reasons_seen_there():
    warm_up = [(1980.0, 300.0, "0x0")] * 5
    steady = [(1680.0, 690.0, "0x4"), (1650.0, 695.0, "0x4"), (1700.0, 688.0, "0x0"), (1660.0, 692.0, "0x4"),
              (1670.0, 689.0, "0x4")]
    reading = summarize(warm_up + steady)
    assert reading == ClockReading(sm_mhz=1670.0, watts=690.0, reasons="0x4", samples=5)


def test_too_few_samples_give_no_reading():
    assert summarize([(1700.0, 600.0, "0x4")] * 7).samples == 4  # the second half of 7
    assert summarize([(1700.0, 600.0, "0x4")] * 6) is None


def test_sampler_without_nvidia_smi_leaves_the_reading_empty(monkeypatch):
    monkeypatch.setattr(clocks.shutil, "which", lambda name: None)
    with ClockSampler(0) as sampler:
        pass
    assert sampler.reading is None


def test_sampler_runs_nvidia_smi_on_the_named_gpu_and_parses_what_it_wrote(monkeypatch):
    calls = []

    class FakeProcess:
        def __init__(self, args, stdout, stderr):
            calls.append(args)
            stdout.write("1700, 650.0, 0x4\n" * 12)

        def terminate(self):
            pass

        def wait(self, timeout=None):
            return 0

    clocks._known_field.cache_clear()
    monkeypatch.setattr(clocks.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(clocks.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    monkeypatch.setattr(clocks.subprocess, "Popen", FakeProcess)
    with ClockSampler("GPU-1234") as sampler:
        pass
    clocks._known_field.cache_clear()
    assert calls[0][1:3] == ["-i", "GPU-1234"]
    assert calls[0][3] == "--query-gpu=clocks.sm,power.draw.instant,clocks_event_reasons.active"
    assert sampler.reading == ClockReading(sm_mhz=1700.0, watts=650.0, reasons="0x4", samples=6)


def test_clock_table_gives_cycles_per_call_and_skips_unsampled_rows():
    sampled = BenchRow(4, 32, 4096, 128, False, "float16", ours_us=2000.0, ours_eager_us=2000.0, cudnn_us=1900.0,
                       flash_us=None, ours_clock=ClockReading(1680.0, 688.0, "0x4", 20),
                       cudnn_clock=ClockReading(1600.0, 690.0, "0x4", 20))
    short = BenchRow(1, 8, 512, 64, False, "float16", ours_us=5.4, ours_eager_us=12.0, cudnn_us=9.0, flash_us=None)
    _header, _, line = format_clock_table([sampled, short]).splitlines()
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[5:11] == ["1680", "688", "3360.0", "1600", "690", "3040.0"] and cells[11] == "0x4 / 0x4"
    assert format_clock_table([short]) == ""


def test_a_hanging_or_failing_nvidia_smi_leaves_the_reading_empty(monkeypatch):
    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], 10)

    clocks._known_field.cache_clear()
    monkeypatch.setattr(clocks.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(clocks.subprocess, "run", hang)
    with ClockSampler(0) as sampler:
        pass
    clocks._known_field.cache_clear()
    assert sampler.reading is None

    def refuse(*args, **kwargs):
        raise OSError("exec format error")

    monkeypatch.setattr(clocks.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    monkeypatch.setattr(clocks.subprocess, "Popen", refuse)
    with ClockSampler(0) as sampler:
        pass
    clocks._known_field.cache_clear()
    assert sampler.reading is None
