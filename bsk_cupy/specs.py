"""Kernel variants: what each compiled kernel is, its -D macros, launch shape and shared memory.

A :class:`KernelSpec` names one compiled variant of a kernel family (a ``.cu`` file in ``kernels_cu/``
whose stem is its ``extern "C"`` entry). ``defines()`` are the macros the ``.cu`` file reads; it checks
their combinations itself with ``static_assert`` so an illegal spec fails at compile time, on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPE_CODES = {"float16": 0, "bfloat16": 1}
DTYPE_SHORT = {"float16": "fp16", "bfloat16": "bf16"}
HEAD_DIMS = (64, 128)

_SWIZZLE_ALIGN = 1024  # every TMA/wgmma tile starts on a 1024-byte swizzle-atom boundary


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


@dataclass(frozen=True)
class KernelSpec:
    """One compiled variant of ``attn_fwd_sm90``.

    Parameters
    ----------
    head_dim : int
        D, 64 or 128.
    dtype : str
        ``"float16"`` or ``"bfloat16"`` (Q, K, V and O).
    causal : bool
        Bottom-right-aligned causal mask.
    block_m, block_n : int
        Query rows per CTA (64 per consumer warpgroup) and keys per KV tile.
    stages : int
        Depth of the K/V shared-memory ring.
    """

    head_dim: int
    dtype: str
    causal: bool
    block_m: int = 128
    block_n: int = 128
    stages: int = 2
    family: str = "attn_fwd_sm90"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPE_CODES:
            raise ValueError(f"dtype must be one of {sorted(DTYPE_CODES)}, got {self.dtype!r}")
        if self.head_dim not in HEAD_DIMS:
            raise ValueError(f"head_dim must be one of {HEAD_DIMS}, got {self.head_dim}")

    @property
    def name(self) -> str:
        """Readable variant key, e.g. ``attn_fwd_sm90.d128.bf16.causal.m128n128s2``."""
        mask = "causal" if self.causal else "full"
        return (f"{self.family}.d{self.head_dim}.{DTYPE_SHORT[self.dtype]}.{mask}"
                f".m{self.block_m}n{self.block_n}s{self.stages}")

    @property
    def source(self) -> str:
        """File name of the kernel source inside ``kernels_cu/``."""
        return f"{self.family}.cu"

    @property
    def threads(self) -> int:
        """Threads per CTA: one producer warpgroup plus one consumer warpgroup per 64 query rows."""
        return 128 * (1 + self.block_m // 64)

    @property
    def smem_bytes(self) -> int:
        """Dynamic shared memory: Q tile, K and V rings, mbarriers, plus 1024 bytes to align the base."""
        q_bytes = self.block_m * self.head_dim * 2
        kv_tile = self.block_n * self.head_dim * 2
        barriers = 8 * (1 + 3 * self.stages)
        storage = _round_up(q_bytes + 2 * self.stages * kv_tile + barriers, _SWIZZLE_ALIGN)
        return storage + _SWIZZLE_ALIGN

    def defines(self) -> dict[str, int]:
        """The ``-D`` macros of this variant (read by ``kernels_cu/attn_fwd_sm90.cu``)."""
        return {
            "HEAD_DIM": self.head_dim,
            "DTYPE": DTYPE_CODES[self.dtype],
            "CAUSAL": int(self.causal),
            "BLOCK_M": self.block_m,
            "BLOCK_N": self.block_n,
            "STAGES": self.stages,
            "SMEM_BYTES": self.smem_bytes,
        }


def all_specs() -> list[KernelSpec]:
    """Every registered variant: what ``bsk-cupy warmup`` and ``bsk-cupy audit`` cover."""
    return [KernelSpec(head_dim=d, dtype=t, causal=c)
            for d in HEAD_DIMS for t in DTYPE_CODES for c in (False, True)]
