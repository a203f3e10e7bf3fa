"""Why is the eager headline sometimes slow in the first row of `bsk-cupy bench` / `validate`?

    PYTHONPATH=. python tools/eager_warmup_probe.py

The benchmark times B1 H8 S512 D64's plain eager calls (which allocate their output) right after the
row's graph replays of ours and of cuDNN (`bsk_cupy.bench.bench_config`). Twelfth session: 17.4 and
18.0 µs there in two processes and 11.3-11.9 in two others, while `out=` calls read 8.5-9.3 µs moments
later and the next row's plain calls cost no more than its `out=` calls. This replays the row's steps in
order — our graph, cuDNN's graph, flash's graph — timing plain and `out=` eager calls after each step
(`bsk_cupy.bench.eager_time_us`), for two rounds, so a slow reading can be pinned to the step before it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

import bsk_cupy as bsk  # noqa: E402
from bsk_cupy.bench import eager_time_us, graph_time_us  # noqa: E402


def main() -> None:
    q, k, v = (torch.randn(1, 8, 512, 64, device="cuda", dtype=torch.float16) for _ in range(3))
    given = torch.empty_like(q)

    def plain():
        return bsk.attention_forward(q, k, v, causal=False)

    def into():
        return bsk.attention_forward(q, k, v, causal=False, out=given)

    def sdpa(backend):
        def call():
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v)
        return call

    start = time.perf_counter()
    steps = [("our graph", plain), ("cuDNN graph", sdpa(SDPBackend.CUDNN_ATTENTION)),
             ("flash graph", sdpa(SDPBackend.FLASH_ATTENTION)), ("nothing", None)]
    for round_ in range(2):
        for name, fn in steps:
            if fn is not None:
                fn()
                graph_time_us(fn)
            t = time.perf_counter() - start
            print(f"round {round_} at {t:5.1f} s, after {name:12s}: plain {eager_time_us(plain):6.2f} us, "
                  f"out= {eager_time_us(into):6.2f} us", flush=True)


if __name__ == "__main__":
    main()
