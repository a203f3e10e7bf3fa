"""Run attention_forward a few times on one shape, for a profiler to watch (see ncu_roofline.sh).

    python benchmarks/profile_one.py B H S D [causal] [density | wLEFT | wLEFTblocks]

With a density, every call runs under one random 128 x 128 block mask (each block kept with that
probability, the diagonal always; one mask per query head, seed fixed), as benchmarks/perf_sparse.py does.
``wLEFT`` (e.g. ``w383``) runs under ``BlockMask.sliding_window(left=LEFT)`` with ``window=(LEFT, 0)``, as
perf_sparse's window row; ``wLEFTblocks`` the same mask without the element mask (the same tiles, none
cut), so that a profile of each shows what the cut tiles cost.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import bsk_cupy as bsk  # noqa: E402


def main() -> None:
    batch, heads, seqlen, head_dim = (int(x) for x in sys.argv[1:5])
    causal = len(sys.argv) > 5 and sys.argv[5] in ("1", "causal", "true", "True")
    spec = sys.argv[6] if len(sys.argv) > 6 else None
    q, k, v = (torch.randn(batch, heads, seqlen, head_dim, device="cuda", dtype=torch.float16) for _ in range(3))
    mask = window = None
    if spec is not None and spec.startswith("w"):
        left = int(spec[1:].removesuffix("blocks"))
        mask = bsk.BlockMask.sliding_window(seqlen, seqlen, left=left, right=0)
        window = None if spec.endswith("blocks") else (left, 0)
    elif spec is not None:
        density = float(spec)
        blocks = -(-seqlen // 128)
        keep = np.random.default_rng(0).random((batch, heads, blocks, blocks)) < density
        keep[..., np.arange(blocks), np.arange(blocks)] = True
        mask = bsk.BlockMask.from_dense(keep, seq_lengths=(seqlen, seqlen))
    for _ in range(5):
        bsk.attention_forward(q, k, v, causal=causal, block_mask=mask, window=window)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
