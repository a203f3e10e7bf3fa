"""SM clock and board power while a workload runs, sampled by ``nvidia-smi`` (no extra dependency).

Graph replay keeps the card busy for about a second per timed row, long enough for an H100 to settle at
its power limit: it then lowers the SM clock (clock-event reason 0x4, software power cap), for cuDNN as
for us. A row's time is then its cost in cycles divided by a clock that depends on the power the kernel
draws, so the benchmark reports both (``bsk_cupy.bench``): time per call x clock = the call's cost in
cycles, the comparison that the clock does not enter. Where ``nvidia-smi`` is missing, fails or the
workload is too short to sample, the reading is None.
"""

from __future__ import annotations

import functools
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass

# Each a field of nvidia-smi --query-gpu under the names drivers have given it, newest first: power.draw is
# a one-second average on recent drivers, which smears the idle time before a short row into its reading.
_POWER = ("power.draw.instant", "power.draw")
_REASONS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")
_PERIOD_MS = 50
_MIN_SAMPLES = 4


@dataclass(frozen=True)
class ClockReading:
    """Medians over the samples of a workload's second half (the first half lets the clock settle)."""

    sm_mhz: float
    watts: float
    reasons: str   # the clock-event reason masks seen, e.g. "0x4" (software power cap); "" if none
    samples: int


def parse_samples(text: str) -> list[tuple[float, float, str]]:
    """(SM MHz, watts, reason mask) per line of ``nvidia-smi --format=csv,noheader,nounits`` output of
    ``clocks.sm,<power>,<reasons>``; lines that do not parse (``[N/A]``, a partial last line) are skipped."""
    samples = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        try:
            mhz, watts = float(parts[0]), float(parts[1])
        except ValueError:
            continue
        try:
            reasons = hex(int(parts[2], 16))
        except ValueError:
            reasons = ""
        samples.append((mhz, watts, reasons))
    return samples


def summarize(samples: list[tuple[float, float, str]]) -> ClockReading | None:
    """The reading over the second half of ``samples`` (None with fewer than 4 there)."""
    steady = samples[len(samples) // 2:]
    if len(steady) < _MIN_SAMPLES:
        return None
    masks = sorted({r for _, _, r in steady if r and r != "0x0"})
    return ClockReading(sm_mhz=statistics.median(s[0] for s in steady),
                        watts=statistics.median(s[1] for s in steady),
                        reasons=",".join(masks), samples=len(steady))


@functools.lru_cache(maxsize=None)
def _known_field(smi: str, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` this driver's nvidia-smi knows (None: none)."""
    for field in names:
        try:
            probe = subprocess.run([smi, f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True,
                                   timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if probe.returncode == 0:
            return field
    return None


class ClockSampler:
    """Context manager: ``nvidia-smi`` samples GPU ``gpu`` (an index or ``GPU-<uuid>``, as ``nvidia-smi -i``
    takes it) every 50 ms while the block runs; ``reading`` is then a :class:`ClockReading` or None."""

    def __init__(self, gpu: str | int = 0):
        self.gpu = str(gpu)
        self.reading: ClockReading | None = None
        self._process = None
        self._log = None

    def __enter__(self) -> "ClockSampler":
        smi = shutil.which("nvidia-smi")
        power, reasons = (_known_field(smi, _POWER), _known_field(smi, _REASONS)) if smi else (None, None)
        if power is None or reasons is None:
            return self
        self._log = tempfile.TemporaryFile(mode="w+")
        try:
            self._process = subprocess.Popen(
                [smi, "-i", self.gpu, f"--query-gpu=clocks.sm,{power},{reasons}", "--format=csv,noheader,nounits",
                 "-lms", str(_PERIOD_MS)], stdout=self._log, stderr=subprocess.DEVNULL)
        except OSError:
            self._log.close()
        return self

    def __exit__(self, *exc) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.seek(0)
        self.reading = summarize(parse_samples(self._log.read()))
        self._log.close()


def gpu_id(device: int) -> str:
    """``nvidia-smi -i``'s name for CUDA device ``device`` of this process (its UUID, which stays right
    under CUDA_VISIBLE_DEVICES), or the index where torch does not give the UUID."""
    import torch

    uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
    return f"GPU-{uuid}" if uuid is not None else str(device)
