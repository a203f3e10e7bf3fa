"""Run attention_forward a few times on one shape, for a profiler to watch (see ncu_roofline.sh).

    python benchmarks/profile_one.py B H S D [causal]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import bsk_cupy as bsk  # noqa: E402


def main() -> None:
    batch, heads, seqlen, head_dim = (int(x) for x in sys.argv[1:5])
    causal = len(sys.argv) > 5 and sys.argv[5] in ("1", "causal", "true", "True")
    q, k, v = (torch.randn(batch, heads, seqlen, head_dim, device="cuda", dtype=torch.float16) for _ in range(3))
    for _ in range(5):
        bsk.attention_forward(q, k, v, causal=causal)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
