"""Is the eager headline slow only the first time a process measures it? Plain and ``out=`` calls, in rounds.

    PYTHONPATH=. python tools/eager_warmup_probe.py

``bsk-cupy validate`` measures the eager target (B1 H8 S512 D64, plain calls that allocate their output)
first of all its eager timings, right after the same row's graph replays. Twelfth session: 18.0 and 20.6
µs there on machines where the same call with ``out=`` read 8.5 and 12.8 µs a moment later and the next
row's plain calls cost no more than its ``out=`` calls. This replays that order — a graph capture, then
alternating rounds of ``bsk_cupy.bench.eager_time_us`` on plain and ``out=`` calls — and prints each
round, then the same rounds with the cyclic garbage collector's existing objects frozen (``gc.freeze``),
which takes the process's long-lived objects out of every later collection.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import bsk_cupy as bsk  # noqa: E402
from bsk_cupy.bench import eager_time_us, graph_time_us  # noqa: E402


def main() -> None:
    q, k, v = (torch.randn(1, 8, 512, 64, device="cuda", dtype=torch.float16) for _ in range(3))
    given = torch.empty_like(q)

    def plain():
        return bsk.attention_forward(q, k, v, causal=False)

    def into():
        return bsk.attention_forward(q, k, v, causal=False, out=given)

    print(f"graph {graph_time_us(plain):.2f} us; gc counts {gc.get_count()}, tracked {len(gc.get_objects())}")
    start = time.perf_counter()
    for label in ("as validate", "after gc.freeze"):
        if label == "after gc.freeze":
            gc.freeze()
        for round_ in range(4):
            t = time.perf_counter() - start
            print(f"{label:16s} round {round_} at {t:5.1f} s: plain {eager_time_us(plain):6.2f} us, "
                  f"out= {eager_time_us(into):6.2f} us")


if __name__ == "__main__":
    main()
