"""Kernel variants: what each compiled kernel is, its -D macros, launch shape and shared memory.

A :class:`KernelSpec` names one compiled variant of a kernel family (a ``.cu`` file in ``kernels_cu/``
whose stem is its ``extern "C"`` entry). ``defines()`` are the macros the ``.cu`` file reads; it checks
their combinations itself with ``static_assert`` so an illegal spec fails at compile time, on any machine.
:class:`SparseKSelectSpec` does the same for the SparseK block-selection kernel; both satisfy
:class:`VariantSpec`, the interface the compile, audit and warmup machinery uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Protocol

DTYPE_CODES = {"float16": 0, "bfloat16": 1}
DTYPE_SHORT = {"float16": "fp16", "bfloat16": "bf16"}
HEAD_DIMS = (64, 128, 256)

_SWIZZLE_ALIGN = 1024  # every TMA/wgmma tile starts on a 1024-byte swizzle-atom boundary
_MAX_SMEM_BYTES = 227 * 1024  # dynamic shared memory one sm_90 CTA may have


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


@dataclass(frozen=True)
class KernelSpec:
    """One compiled variant of ``attn_fwd_sm90``.

    Parameters
    ----------
    head_dim : int
        D, 64, 128 or 256.
    dtype : str
        ``"float16"`` or ``"bfloat16"`` (Q, K, V and O).
    causal : bool
        Bottom-right-aligned causal mask.
    block_m, block_n : int
        Query rows per CTA (64 per consumer warpgroup: 128, or 192 at head dim 64; 64 with
        ``split_warpgroups``) and keys per KV tile: 128, or 64 with ``split_warpgroups`` (the 64 x 64 tiles
        that run 64 x 64 block masks) and at head dim 256 (where two stages of 128-key K and V tiles do not
        fit next to Q). ``block_n`` None: 64 at head dim 256, else 128.
    stages : int
        Depth of the K/V shared-memory ring. None: 2, or with ``split_warpgroups`` 4 where they fit (two per
        warpgroup, so a warpgroup's next tile loads during its current one; not with 128-key tiles at head
        dim 128). H100, same run (RESULTS.md, sixth session): B1 H8 S512 D64 7.7 -> 6.8 us, B1 H4 S1024 D64
        13.3 -> 9.5, 64 x 64 block masks at density 0.25 B1 H32 S2048 D64 86.0 -> 52.0 and B1 H16 S4096
        D128 202.8 -> 115.8.
    pingpong : bool
        Consumer warpgroups take turns issuing their GEMMs (FlashAttention-3 ping-pong). On by default, head
        dim 256 too (H100, B4 H16 S4096 D256: 2077 -> 1947 us, causal 1157 -> 1141; RESULTS.md, fifth session).
    split_warpgroups : bool
        Two consumer warpgroups share a 64-row query block, each taking every other KV tile, and merge
        through shared memory (for grids too small to fill the GPU; no ping-pong, no split-KV).
    bulk_store : bool
        Bulk-store epilogue: each warpgroup stages its output rows in shared memory and one thread copies
        them out with a single ``cp.async.bulk`` (TMA) where the rows of a head are contiguous, instead of
        storing from registers. None: on for 128-row tiles (H100, persistent CTAs, same run: B1 H16 S1024
        D64 15.5 -> 13.9 us, B1 H32 S2048 D64 93.3 -> 88.8, B4 H32 S4096 D128 2093 -> 2060), off for
        192-row tiles (B2 H16 S16384 D64 4770 -> 4940: three warpgroups at 160 registers), with split
        warpgroups (7.6 -> 7.8 us at B1 H8 S512 D64: one warpgroup stores after the merge) and at head dim
        256 (no room).
    cluster_split : int
        1, or 2 with ``split_warpgroups``: a cluster of two CTAs splits each 64-row query block's KV tiles
        (split-KV without a global workspace: the two CTAs trade halves of their partial results through
        shared memory, and each merges and stores 32 rows). One work item per CTA; the launch's
        ``num_splits`` must equal it. No ``bulk_store``.
    q_buffers : int
        Q tiles in shared memory: 1, or 2 at head dim 64 or 128 without a causal mask, split warpgroups or
        cluster, so that a persistent CTA loads its next work item's Q (claimed early where every item has
        the same KV tiles or a block mask's rows run longest first) while its consumers still work on the
        current one. The dispatcher takes 2 where CTAs get more than one item: with 192-row tiles of up to
        16 KV tiles (head dim 64), and with 128 x 128 block masks in row order (dispatch.q_buffers_spec says
        why).
    epilogue_probe : int
        Diagnostics only, never dispatched (``tools/epilogue_bound_run.sh``): 1 leaves the output rows out of
        the bulk-store staging buffer (its barriers, fence and copy stay), 2 writes no output at all. Both
        give wrong output; the time they save bounds what a faster epilogue could.
    trace : int
        Build a probe (``kernels_cu/attn/trace.cuh``; diagnostics only, never dispatched): 1 (or True), the
        launch timeline (per-CTA %globaltimer marks in the module global ``bsk_trace``;
        ``tools/trace_timeline.py``); 2, the per-tile cycle trace of the consumer loop (``bsk_tile_trace``;
        ``tools/tile_timeline.py``).
    """

    head_dim: int
    dtype: str
    causal: bool
    block_m: int = 128
    block_n: int | None = None
    stages: int | None = None
    pingpong: bool = True
    split_warpgroups: bool = False
    bulk_store: bool | None = None
    cluster_split: int = 1
    q_buffers: int = 1
    epilogue_probe: int = 0
    trace: int = 0
    family: str = "attn_fwd_sm90"

    def __post_init__(self) -> None:
        if self.block_n is None:
            object.__setattr__(self, "block_n", 64 if self.head_dim == 256 else 128)
        if self.bulk_store and self.head_dim == 256:
            raise ValueError("bulk_store does not fit at head_dim 256 (its staging rows next to the tiles)")
        if self.bulk_store is None:
            object.__setattr__(self, "bulk_store", self._bulk_store_default)
        if self.stages is None:  # after bulk_store: its staging rows count against the four stages' room
            object.__setattr__(self, "stages", self._stages_default)
        if self.dtype not in DTYPE_CODES:
            raise ValueError(f"dtype must be one of {sorted(DTYPE_CODES)}, got {self.dtype!r}")
        if self.head_dim not in HEAD_DIMS:
            raise ValueError(f"head_dim must be one of {HEAD_DIMS}, got {self.head_dim}")
        if self.trace not in (0, 1, 2):
            raise ValueError(f"trace must be 0, 1 or 2, got {self.trace!r}")
        if self.epilogue_probe not in (0, 1, 2):
            raise ValueError(f"epilogue_probe must be 0, 1 or 2, got {self.epilogue_probe!r}")
        if self.split_warpgroups:
            if self.block_m != 64 or self.stages not in (2, 4):
                raise ValueError(f"split_warpgroups needs block_m 64 and 2 or 4 stages (as many per warpgroup); "
                                 f"got {self.block_m}, {self.stages}")
        elif self.block_m not in (128, 192) or (self.block_m == 192 and self.head_dim != 64):
            raise ValueError(f"block_m must be 128, or 192 at head_dim 64; got {self.block_m} at {self.head_dim}")
        if self.cluster_split not in (1, 2) or (self.cluster_split == 2 and not self.split_warpgroups):
            raise ValueError(f"cluster_split must be 1, or 2 with split_warpgroups; got {self.cluster_split}")
        if self.cluster_split > 1 and self.bulk_store:
            raise ValueError("cluster_split stores each CTA's 32 rows from registers; bulk_store must be off")
        if self.q_buffers not in (1, 2) or (self.q_buffers == 2 and (
                self.head_dim == 256 or self.causal or self.split_warpgroups or self.cluster_split > 1)):
            raise ValueError(f"q_buffers must be 1, or 2 at head_dim 64 or 128 without causal, split_warpgroups or "
                             f"cluster_split; got {self.q_buffers}")
        if self.head_dim == 256:
            if self.block_n != 64 or self.split_warpgroups:
                raise ValueError(f"head_dim 256 runs 128 x 64 tiles (block_n 64, no split_warpgroups); got "
                                 f"block_n {self.block_n}, split_warpgroups {self.split_warpgroups}")
        elif self.block_n not in ((64, 128) if self.split_warpgroups else (128,)):
            raise ValueError(f"block_n must be 128, or 64 with split_warpgroups; got {self.block_n}")
        if self.smem_bytes > _MAX_SMEM_BYTES:
            raise ValueError(f"{self.stages} stages of {self.block_n}-key tiles at head_dim {self.head_dim} need "
                             f"{self.smem_bytes} bytes of shared memory; an H100 CTA has {_MAX_SMEM_BYTES}")

    def retiled(self, **changes) -> "KernelSpec":
        """This spec with ``changes`` (dataclass fields), choosing ``stages`` and ``bulk_store`` afresh for
        the new tile shape unless ``changes`` names them: ``dataclasses.replace`` would carry the old tile's
        resolved choices over (a 128-row tile's two stages and bulk store onto the split warpgroups derived
        from it)."""
        return dataclasses.replace(self, **{"stages": None, "bulk_store": None, **changes})

    @property
    def _stages_default(self) -> int:
        if not self.split_warpgroups:
            return 2
        return 4 if self._smem_bytes(4, self.bulk_store) <= _MAX_SMEM_BYTES else 2

    @property
    def _bulk_store_default(self) -> bool:
        return self.block_m == 128 and self.head_dim != 256

    @property
    def _store_suffix(self) -> str:
        if self.bulk_store == self._bulk_store_default:
            return ""
        return ".bulkstore" if self.bulk_store else ".registerstore"

    @property
    def tiles_per_mask_block(self) -> int:
        """KV tiles per listed block-mask block (the kernel's ``kTilesPerMaskBlock``): 2 when 128-row tiles
        have 64 keys (head dim 256), else 1."""
        return 2 if self.block_n == 64 and not self.split_warpgroups else 1

    @property
    def name(self) -> str:
        """Readable variant key, e.g. ``attn_fwd_sm90.d128.bf16.causal.m128n128s2``."""
        mask = "causal" if self.causal else "full"
        return (f"{self.family}.d{self.head_dim}.{DTYPE_SHORT[self.dtype]}.{mask}"
                f".m{self.block_m}n{self.block_n}s{self.stages}{'' if self.pingpong else '.serial'}"
                f"{'.wgsplit' if self.split_warpgroups else ''}"
                f"{f'.cluster{self.cluster_split}' if self.cluster_split > 1 else ''}"
                f"{'.q2' if self.q_buffers == 2 else ''}{f'.ep{self.epilogue_probe}' if self.epilogue_probe else ''}"
                f"{self._store_suffix}{('', '.trace', '.tiletrace')[int(self.trace)]}")

    @property
    def source(self) -> str:
        """File name of the kernel source inside ``kernels_cu/``."""
        return f"{self.family}.cu"

    @property
    def consumers(self) -> int:
        """Consumer warpgroups: one per 64 query rows, or two sharing them (``split_warpgroups``)."""
        return 2 if self.split_warpgroups else self.block_m // 64

    @property
    def threads(self) -> int:
        """Threads per CTA: one producer warpgroup plus the consumers."""
        return 128 * (1 + self.consumers)

    @property
    def smem_bytes(self) -> int:
        """Dynamic shared memory: Q tile, K and V rings, mbarriers, plus 1024 bytes to align the base."""
        return self._smem_bytes(self.stages, self.bulk_store)

    def _smem_bytes(self, stages: int, bulk_store: bool) -> int:
        q_bytes = self.block_m * self.head_dim * 2 * self.q_buffers
        kv_tile = self.block_n * self.head_dim * 2
        # mbarriers (Q full and empty per buffer, claim, K/V), stage block ids, two work-item slots per Q
        # buffer (5 ints each), the claim (a work item and a KV schedule: 48 bytes), the split-KV combine flag
        barriers = 8 * (2 * self.q_buffers + 2 + 4 * stages) + 4 * stages + 2 * self.q_buffers * 20 + 48 + 4
        partial = 4 * 128 * (self.head_dim // 2 + 4)  # per thread: O fragments, row maxima and sums
        exchange = partial if self.split_warpgroups else 16
        # last: the cluster merge's buffer and mbarrier, then with two Q buffers the loader's copy of a claim
        cluster = (partial if self.cluster_split > 1 else 16) + 8 + (48 if self.q_buffers == 2 else 0)
        # bulk-store staging: 64 rows per storing warpgroup
        staging = (1 if self.split_warpgroups else self.consumers) * 64 * 2 * self.head_dim
        staging = staging if bulk_store else 16
        storage = _round_up(q_bytes + 2 * stages * kv_tile + _round_up(barriers, 16) + exchange + staging + cluster,
                            _SWIZZLE_ALIGN)
        return storage + _SWIZZLE_ALIGN

    def defines(self) -> dict[str, int]:
        """The ``-D`` macros of this variant (read by ``kernels_cu/attn/config.cuh``)."""
        return {
            "HEAD_DIM": self.head_dim,
            "DTYPE": DTYPE_CODES[self.dtype],
            "CAUSAL": int(self.causal),
            "BLOCK_M": self.block_m,
            "BLOCK_N": self.block_n,
            "STAGES": self.stages,
            "PINGPONG": int(self.pingpong),
            "WG_SPLIT": int(self.split_warpgroups),
            "BULK_STORE": int(self.bulk_store),
            "CLUSTER_SPLIT": self.cluster_split,
            "Q_BUFFERS": self.q_buffers,
            **({"EPILOGUE_PROBE": self.epilogue_probe} if self.epilogue_probe else {}),
            **({"TRACE": int(self.trace)} if self.trace else {}),
            "SMEM_BYTES": self.smem_bytes,
        }


def all_specs() -> list[KernelSpec]:
    """Every attention variant the dispatcher can choose (:func:`all_kernel_specs` adds the other kernel
    families): 128-row tiles for every head dim (128 x 64 at 256), 192-row tiles at head dim 64, and 64-row
    tiles with split warpgroups and four stages: 64 x 128 at head dim 64, 64 x 64 at 128 and (for 64 x 64
    block masks) at 64; the first two also split across a cluster of two CTAs; and two Q buffers without a
    causal mask on 192-row tiles at head dim 64 and (block masks claimed longest first) 128-row tiles at head
    dims 64 (with four K/V stages, dispatch.masked_two_q_spec) and 128."""
    tall = [KernelSpec(head_dim=64, dtype=t, causal=c, block_m=192)
            for t in DTYPE_CODES for c in (False, True)]
    split = [KernelSpec(head_dim=d, dtype=t, causal=c, block_m=64, block_n=n, split_warpgroups=True)
             for d, n in ((64, 128), (64, 64), (128, 64)) for t in DTYPE_CODES for c in (False, True)]
    cluster = [spec.retiled(cluster_split=2) for spec in split if spec.block_n == (128 if spec.head_dim == 64 else 64)]
    two_q = [KernelSpec(head_dim=d, dtype=t, causal=False, block_m=m, q_buffers=2, stages=stages)
             for d, m, stages in ((64, 192, 2), (64, 128, 4), (128, 128, 2)) for t in DTYPE_CODES]
    return [KernelSpec(head_dim=d, dtype=t, causal=c)
            for d in HEAD_DIMS for t in DTYPE_CODES for c in (False, True)] + tall + split + cluster + two_q


SCORE_DTYPE_CODES = {"float16": 0, "bfloat16": 1, "float32": 2}
SCORE_DTYPE_SHORT = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}
SELECT_BLOCK_SIZES = (64, 128)


@dataclass(frozen=True)
class SparseKSelectSpec:
    """One compiled variant of ``sparsek_select`` (SparseK block selection on the CUDA cores).

    Parameters
    ----------
    dtype : str
        dtype of the scores: ``"float16"``, ``"bfloat16"`` or ``"float32"``.
    block_size : int
        Rows per query block and keys per KV block, 64 or 128.

    Causality, pooling, ``topk`` and the local window are launch parameters, not variants.
    """

    dtype: str
    block_size: int = 128
    family: str = "sparsek_select"

    threads: ClassVar[int] = 512
    max_kv_blocks: ClassVar[int] = 4096       # 524 288 keys at block size 128; the host refuses more
    # Four query blocks per warp: enough selection work to pay for each CTA's own pool + sort, while
    # Sq <= 64 blocks (8192 rows at block size 128) still runs as one CTA per (batch, head).
    query_blocks_per_cta: ClassVar[int] = 64

    def __post_init__(self) -> None:
        if self.dtype not in SCORE_DTYPE_CODES:
            raise ValueError(f"dtype must be one of {sorted(SCORE_DTYPE_CODES)}, got {self.dtype!r}")
        if self.block_size not in SELECT_BLOCK_SIZES:
            raise ValueError(f"block_size must be one of {SELECT_BLOCK_SIZES}, got {self.block_size}")

    @property
    def name(self) -> str:
        """Readable variant key, e.g. ``sparsek_select.bf16.b128``."""
        return f"{self.family}.{SCORE_DTYPE_SHORT[self.dtype]}.b{self.block_size}"

    @property
    def source(self) -> str:
        """File name of the kernel source inside ``kernels_cu/``."""
        return f"{self.family}.cu"

    def smem_bytes_for(self, n_kv_blocks: int) -> int:
        """Dynamic shared memory of a launch over ``n_kv_blocks`` KV blocks: the sort's (uint64 key, int32
        index) pairs padded to a power of two, plus one bitmap of ``n_kv_blocks`` bits per warp."""
        padded = 1 << max(n_kv_blocks - 1, 0).bit_length()
        return padded * (8 + 4) + (self.threads // 32) * 4 * -(-n_kv_blocks // 32)

    @property
    def smem_bytes(self) -> int:
        """The most dynamic shared memory a launch asks for (at ``max_kv_blocks``)."""
        return self.smem_bytes_for(self.max_kv_blocks)

    def defines(self) -> dict[str, int]:
        """The ``-D`` macros of this variant (read by ``kernels_cu/sparsek_select.cu``)."""
        return {
            "DTYPE": SCORE_DTYPE_CODES[self.dtype],
            "BLOCK_SIZE": self.block_size,
            "THREADS": self.threads,
            "MAX_KV_BLOCKS": self.max_kv_blocks,
            "QUERY_BLOCKS_PER_CTA": self.query_blocks_per_cta,
            "SMEM_BYTES": self.smem_bytes,
        }


def sparsek_select_specs() -> list[SparseKSelectSpec]:
    """Every SparseK block-selection variant."""
    return [SparseKSelectSpec(dtype=t, block_size=b) for t in SCORE_DTYPE_CODES for b in SELECT_BLOCK_SIZES]


class VariantSpec(Protocol):
    """What compiling, loading, auditing and warming up need from a variant of any kernel family."""

    @property
    def name(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def threads(self) -> int: ...
    @property
    def smem_bytes(self) -> int: ...
    def defines(self) -> dict[str, int]: ...


def all_kernel_specs() -> list[VariantSpec]:
    """Every registered variant of every family: what ``bsk-cupy warmup`` and ``bsk-cupy audit`` cover."""
    return [*all_specs(), *sparsek_select_specs()]
