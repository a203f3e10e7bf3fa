"""Does a JAX GPU client in the process slow bsk_cupy's torch calls? The headline's eager wall time per call
(``bsk_cupy.bench.eager_time_us``, three samples each) before JAX is imported, once its GPU client is up,
and after a JAX call of ours. Run on the H100: ``PYTHONPATH=. python tools/eager_with_jax.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import torch  # noqa: E402  (before NVRTC/CuPy: bsk_cupy.environment.import_torch)

import bsk_cupy as bsk  # noqa: E402
from bsk_cupy.bench import eager_time_us  # noqa: E402


def main() -> None:
    q, k, v = (torch.randn(1, 8, 512, 64, device="cuda", dtype=torch.float16) for _ in range(3))

    def call():
        return bsk.attention_forward(q, k, v)

    def samples() -> list[float]:
        return [round(eager_time_us(call), 2) for _ in range(3)]

    print("before JAX", samples())
    import jax
    import jax.numpy as jnp

    jax.devices()
    print("JAX imported, GPU client up", samples())
    x = jnp.zeros((1, 8, 512, 64), jnp.float16)
    bsk.attention_forward(x, x, x).block_until_ready()
    print("after a JAX call of ours", samples())


if __name__ == "__main__":
    main()
