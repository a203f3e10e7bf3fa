"""Host side of a kernel launch: TMA tensor maps, the packed ``Params`` struct and ``cuLaunchKernel``.

``Params`` mirrors ``struct Params`` in ``kernels_cu/attn/params.cuh`` byte for byte (the kernel
static_asserts the same size and offsets). A :class:`LaunchPlan` holds everything that depends only on the
inputs' shapes, strides and pointers; per call only the output pointers are written before the launch.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import struct
import threading
from dataclasses import dataclass

from .compile.module import LoadedKernel
from .validation import AttentionProblem, ArrayInfo, to_bhsd

PARAMS_BYTES = 640
_OFF_TMA = (0, 128, 256)
_OFF_OUT = 384
_OFF_LSE = 392
_TAIL_FORMAT = "<qqqiiiIIf"  # out strides (b, h, s), seqlen_q, seqlen_k, heads_per_kv, coord orders, scale_log2
_OFF_TAIL = 400
_WINDOW_FORMAT = "<ii"       # window_lo, window_hi
_OFF_WINDOW = 448
_MASK_FORMAT = "<QQQQqqii"   # num, idx, full_num, full_idx pointers, stride_b, stride_h, kv_blocks, head_div
_OFF_MASK = 456
_SPLIT_FORMAT = "<QQQiiii"   # split_o, split_ml, split_counter, num_splits, num_heads, batch, num_items
_OFF_SPLIT = 512
_WORK_FORMAT = "<Q"          # work_counter (persistent CTAs claiming items), after num_heads and batch
_OFF_WORK = 552
_HEIGHTS_FORMAT = "<ii"      # tall_blocks, tall_items
_OFF_HEIGHTS = 560
_ROW_ORDER_FORMAT = "<Qi"    # mask_row_order, mask_order_items (block masks: the order of their items)
_OFF_ROW_ORDER = 568
SHORT_ROWS = 128             # kShortRows: the height of the items after a head's tall ones
_UNBOUNDED = 1 << 30         # a window side without a bound
_TMA_BYTES = 128
_CHUNK_ELEMS = 64  # 128-byte swizzle rows of 16-bit elements
_LOG2E = 1.4426950408889634


_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6  # CUlaunchAttributeID
_libcuda_launch = None
_libcuda_launch_ex = None


class LaunchError(RuntimeError):
    """The CUDA driver refused a launch or a tensor map."""


def _cu_launch_kernel():
    """``cuLaunchKernel`` from libcuda through ctypes (measured launch step 9.9 us, 11.1 us through
    cuda-bindings; benchmarks/RESULTS.md). The function handle still comes from the CuPy-loaded module."""
    global _libcuda_launch
    if _libcuda_launch is None:
        fn = ctypes.CDLL("libcuda.so.1").cuLaunchKernel
        fn.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
        fn.restype = ctypes.c_int
        _libcuda_launch = fn
    return _libcuda_launch


class _LaunchAttribute(ctypes.Structure):
    """``CUlaunchAttribute``: an id, then a 64-byte value union aligned to 8 bytes."""

    _fields_ = [("id", ctypes.c_int), ("value", ctypes.c_uint64 * 8)]


class _LaunchConfig(ctypes.Structure):
    """``CUlaunchConfig`` of ``cuLaunchKernelEx``."""

    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3), ("shared_bytes", ctypes.c_uint),
                ("stream", ctypes.c_void_p), ("attrs", ctypes.POINTER(_LaunchAttribute)), ("num_attrs", ctypes.c_uint)]


def _cu_launch_kernel_ex():
    """``cuLaunchKernelEx`` from libcuda through ctypes (launches that carry attributes)."""
    global _libcuda_launch_ex
    if _libcuda_launch_ex is None:
        fn = ctypes.CDLL("libcuda.so.1").cuLaunchKernelEx
        fn.argtypes = [ctypes.POINTER(_LaunchConfig), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        fn.restype = ctypes.c_int
        _libcuda_launch_ex = fn
    return _libcuda_launch_ex


def _driver():
    from cuda.bindings import driver

    return driver


def _check(result, what: str):
    driver = _driver()
    err = result[0]
    if err != driver.CUresult.CUDA_SUCCESS:
        raise LaunchError(f"{what} failed: {err!r}")
    return result[1] if len(result) == 2 else None


@dataclass(frozen=True)
class TensorMapLayout:
    """Geometry of a 4-D TMA map over (d, s, h, b): dims and byte strides in map order, the box, and
    ``coord_order`` (2 bits each for s, h, b: the map dimension holding that coordinate)."""

    dims: tuple[int, int, int, int]
    strides_bytes: tuple[int, int, int]
    box: tuple[int, int, int, int]
    coord_order: int


def tensor_map_layout(shape_bhsd: tuple, strides_bhsd: tuple, box_rows: int) -> TensorMapLayout:
    """Order the three outer dimensions by increasing stride (size-1 dimensions last, given a stride past
    everything else), which keeps the map valid for any strided view with a contiguous last dimension."""
    b, h, s, d = shape_bhsd
    axes = [("s", s, strides_bhsd[2]), ("h", h, strides_bhsd[1]), ("b", b, strides_bhsd[0])]
    dims, strides_bytes, order = [d], [], {}
    extent = d  # elements spanned so far
    for name, size, stride in sorted((a for a in axes if a[1] > 1), key=lambda a: a[2]):
        order[name] = len(dims)
        dims.append(size)
        strides_bytes.append(stride * 2)
        extent = max(extent, stride * size)
    for name, size, _ in axes:
        if size == 1:
            order[name] = len(dims)
            dims.append(1)
            strides_bytes.append(extent * 2)
    box = [_CHUNK_ELEMS, 1, 1, 1]
    box[order["s"]] = box_rows
    return TensorMapLayout(tuple(dims), tuple(strides_bytes), tuple(box),
                           order["s"] | (order["h"] << 2) | (order["b"] << 4))


def encode_tensor_map(info: ArrayInfo, layout: str, box_rows: int) -> tuple[bytes, int]:
    """Build the 128-byte tiled TMA descriptor (128-byte swizzle) of one input; return it and its
    ``coord_order`` (see :func:`tensor_map_layout`)."""
    driver = _driver()
    geometry = tensor_map_layout(to_bhsd(info.shape, layout), to_bhsd(info.strides, layout), box_rows)
    dtype = (driver.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 if info.dtype == "bfloat16"
             else driver.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_FLOAT16)
    tensor_map = _check(driver.cuTensorMapEncodeTiled(
        dtype, 4, info.ptr, [driver.cuuint64_t(n) for n in geometry.dims],
        [driver.cuuint64_t(n) for n in geometry.strides_bytes], [driver.cuuint32_t(n) for n in geometry.box],
        [driver.cuuint32_t(1)] * 4,
        driver.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
        driver.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B,
        driver.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        driver.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE), "cuTensorMapEncodeTiled")
    return ctypes.string_at(tensor_map.getPtr(), _TMA_BYTES), geometry.coord_order


def output_strides(problem: AttentionProblem) -> tuple[int, int, int]:
    """(b, h, s) element strides of a freshly allocated contiguous output in the caller's layout."""
    h, s, d = problem.heads_q, problem.seqlen_q, problem.head_dim
    if problem.layout == "bhsd":
        return (h * s * d, s * d, d)
    return (s * h * d, d, h * d)


def window_bounds(problem: AttentionProblem) -> tuple[int, int]:
    """(window_lo, window_hi) of the kernel: the allowed range of ``j - i - (Sk - Sq)``. A side of 2**30 or
    more (sequence lengths are below 2**30) is unbounded, which keeps the kernel's offsets in 32 bits."""
    left, right = problem.window if problem.window is not None else (None, None)
    lo = -_UNBOUNDED if left is None else -min(left, _UNBOUNDED)
    return lo, _UNBOUNDED if right is None else min(right, _UNBOUNDED)


def _idle_pool_memory(device: int) -> None:
    """Wait for the device's work before a plan takes memory from CuPy's pool: an evicted plan's buffers
    return to the pool while a kernel launched on the caller's stream (which CuPy's stream does not wait
    for) may still use them, and the new plan's zero-fill would land under it."""
    import cupy

    cupy.cuda.Device(device).synchronize()


class SplitWorkspace:
    """Device memory of split-KV: partial O and row statistics per (query block, split), and one counter per
    query block that the combining CTA resets to zero. Owned by one plan, so launches of one plan must be
    ordered (one stream, or synchronised streams); the counters start at zero."""

    def __init__(self, device: int, blocks: int, splits: int, head_dim: int, consumer_threads: int):
        import cupy

        with cupy.cuda.Device(device):
            _idle_pool_memory(device)
            self.partial_o = cupy.empty(blocks * splits * (consumer_threads // 2) * head_dim, dtype=cupy.float32)
            self.partial_ml = cupy.empty(blocks * splits * 4 * consumer_threads, dtype=cupy.float32)
            self.counters = cupy.zeros(blocks, dtype=cupy.uint32)
            cupy.cuda.Device(device).synchronize()  # the counters are zero before any stream uses them

    def pointers(self) -> tuple[int, int, int]:
        return self.partial_o.data.ptr, self.partial_ml.data.ptr, self.counters.data.ptr


class WorkCounter:
    """Device memory of the dynamic work hand-out: the next unclaimed item and the CTAs done; the last CTA
    of a launch resets both to zero. Owned by one plan, like :class:`SplitWorkspace`."""

    def __init__(self, device: int):
        import cupy

        with cupy.cuda.Device(device):
            _idle_pool_memory(device)
            self.counters = cupy.zeros(2, dtype=cupy.uint32)
            cupy.cuda.Device(device).synchronize()

    @property
    def pointer(self) -> int:
        return self.counters.data.ptr


_kept_for_graphs: dict[int, object] = {}


def keep_for_graphs(owner) -> None:
    """Keep ``owner`` alive for the rest of the process: a CUDA graph has captured a launch that uses device
    memory it owns (a plan's work counter, split-KV workspace, uploaded mask or tail order; sparsek_attention's
    reused mask) and may replay it after every cache has let it go, which would free that memory."""
    _kept_for_graphs.setdefault(id(owner), owner)


def is_capturing(stream: int) -> bool:
    """Whether ``stream`` (a raw handle) is capturing a CUDA graph."""
    import cupy

    try:
        return cupy.cuda.runtime.streamIsCapturing(stream) != 0
    except cupy.cuda.runtime.CUDARuntimeError:  # the legacy stream while another captures: the launch fails
        return False


class PackedLaunch:
    """A kernel launch whose parameters are one packed byte block, shared by the attention and selection
    plans. Everything fixed is packed once; a call writes a run of consecutive 64-bit pointer slots and
    launches under a lock (the driver copies the block during the launch), retrying once after binding the
    device's context on a thread that never touched CUDA.

    ``programmatic`` launches with programmatic stream serialization (``cuLaunchKernelEx``): the kernel may
    start while the previous one in the stream finishes, so it must execute ``griddepcontrol.wait`` before
    its first global-memory access (``kernels_cu/common/pdl.cuh``)."""

    def __init__(self, kernel: LoadedKernel, grid: tuple[int, int, int], smem: int, params_bytes: int,
                 slots_offset: int, slots: int, programmatic: bool = False):
        self.kernel = kernel
        self.grid = grid
        self.block = (kernel.spec.threads, 1, 1)
        self.smem = smem
        self.programmatic = programmatic
        self._lock = threading.Lock()
        self._params = (ctypes.c_char * params_bytes)()
        self._param_ptrs = (ctypes.c_void_p * 1)(ctypes.addressof(self._params))
        self._slots_offset = slots_offset
        self._pack_slots = struct.Struct(f"<{slots}Q").pack_into  # 3x cheaper than a ctypes slice write
        self._launch_args = (kernel.function_ptr, *grid, *self.block, smem)
        # Whether a launch uses device memory the plan owns, which a graph capturing it needs kept (set by
        # plans that own some: LaunchPlan).
        self.owns_device_memory = False
        if programmatic:
            self._attribute = _LaunchAttribute(_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION)
            self._attribute.value[0] = 1  # programmaticStreamSerializationAllowed
            self._config = _LaunchConfig((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*self.block), smem, None,
                                         ctypes.pointer(self._attribute), 1)

    def _launch(self, stream: int, *pointers: int) -> None:
        if self.owns_device_memory and is_capturing(stream):
            keep_for_graphs(self)  # a CUDA graph now holds this launch: its device memory must outlive the caches
        status = self._launch_once(stream, pointers)
        if status != 0:
            status = self._launch_in_kernel_context(stream, pointers, status)
        if status != 0:
            raise LaunchError(f"launching {self.kernel.spec.name} failed: {_driver().CUresult(status)!r}")

    def _launch_in_kernel_context(self, stream: int, pointers: tuple[int, ...], status: int) -> int:
        """Retry a launch that failed outside the kernel's device context: a thread with no CUDA context
        yet gets the device's primary context bound for good; a thread whose current context is another
        device's (torch's or CuPy's current device is not the inputs') gets it for this launch alone, so
        the caller's current device never moves. Other failures return their status."""
        current = _current_context_device()
        if current is None:
            _make_context_current(self.kernel.device)
            return self._launch_once(stream, pointers)
        if current != self.kernel.device:
            with _device_context(self.kernel.device):
                return self._launch_once(stream, pointers)
        return status

    def _launch_once(self, stream: int, pointers: tuple[int, ...]) -> int:
        with self._lock:
            self._pack_slots(self._params, self._slots_offset, *pointers)
            if self.programmatic:
                self._config.stream = stream
                return _cu_launch_kernel_ex()(ctypes.byref(self._config), self.kernel.function_ptr,
                                              self._param_ptrs, None)
            return _cu_launch_kernel()(*self._launch_args, stream, self._param_ptrs, None)


class LaunchPlan(PackedLaunch):
    """Grid, block, shared memory and packed parameters for one problem on fixed input buffers.

    ``mask`` (a :class:`~bsk_cupy.mask_operand.MaskOperand`, whose arrays the plan keeps alive) restricts
    each query block to the KV blocks it lists (its block size is the spec's tile); ``num_splits > 1`` splits every
    query block's KV tiles over that many CTAs (split-KV). The kernel walks its work items (query block,
    split, head, batch) with ``max_ctas`` CTAs at most (None: one CTA per item); when there are more items
    than CTAs, each CTA claims its next item from a device counter as it finishes one (``dynamic``, the
    order in which the hardware would start one CTA per item) or takes every ``ctas``-th item.
    ``programmatic``: programmatic dependent launch (the kernel waits for its predecessor before touching
    global memory), see :class:`PackedLaunch`. ``tall_blocks`` (192-row tiles, no split or mask): only each
    head's first ``tall_blocks`` query blocks are 192-row items; its remaining rows are 128-row items
    (``SHORT_ROWS``), numbered after every tall one (None: all 192-row items).
    """

    def __init__(self, kernel: LoadedKernel, problem: AttentionProblem, q: ArrayInfo, k: ArrayInfo,
                 v: ArrayInfo, mask=None, num_splits: int = 1, max_ctas: int | None = None,
                 dynamic: bool = True, programmatic: bool = True, tall_blocks: int | None = None):
        spec = kernel.spec
        if mask is not None and (spec.block_m, spec.block_n * spec.tiles_per_mask_block) != (mask.block, mask.block):
            raise ValueError(f"a {mask.block} x {mask.block} block mask needs {mask.block}-row tiles covering "
                             f"{mask.block} keys; {spec.name} has {spec.block_m} x {spec.block_n}")
        if spec.split_warpgroups and num_splits != spec.cluster_split:
            raise ValueError(f"{spec.name} splits KV tiles between its warpgroups and across a cluster of "
                             f"{spec.cluster_split}; num_splits must be {spec.cluster_split}, got {num_splits}")
        m_blocks = math.ceil(problem.seqlen_q / spec.block_m)
        items = m_blocks * num_splits * problem.heads_q * problem.batch
        tall_items = items
        self.tall_blocks = tall_blocks
        if tall_blocks is not None:
            short_blocks = short_items_per_head(problem.seqlen_q, spec.block_m, tall_blocks)
            if spec.block_m != 192 or num_splits != 1 or mask is not None:
                raise ValueError(f"tall_blocks needs 192-row tiles without split-KV or a block mask; got "
                                 f"{spec.name}, num_splits {num_splits}, mask {mask is not None}")
            if not 0 <= tall_blocks < m_blocks:
                raise ValueError(f"tall_blocks must lie in [0, {m_blocks}) for seqlen_q {problem.seqlen_q}; "
                                 f"got {tall_blocks}")
            tall_items = tall_blocks * problem.heads_q * problem.batch
            items = tall_items + short_blocks * problem.heads_q * problem.batch
        else:
            tall_blocks = m_blocks
        ctas = items if max_ctas is None else min(items, max_ctas)
        if spec.cluster_split > 1 and ctas != items:
            raise ValueError(f"{spec.name} runs one work item per CTA (the CTAs of a cluster split one query "
                             f"block); max_ctas {max_ctas} is below its {items} items")
        super().__init__(kernel, (ctas, 1, 1), spec.smem_bytes, PARAMS_BYTES, slots_offset=_OFF_OUT, slots=2,
                         programmatic=programmatic)  # out, lse
        self.num_splits = num_splits
        self.mask = mask  # keeps the mask's device arrays alive
        tma_q, order_q = encode_tensor_map(q, problem.layout, spec.block_m)
        tma_k, order_kv = encode_tensor_map(k, problem.layout, spec.block_n)
        tma_v, order_v = encode_tensor_map(v, problem.layout, spec.block_n)
        if order_v != order_kv:
            raise ValueError("k and v must have the same stride order; got different layouts")
        for offset, raw in zip(_OFF_TMA, (tma_q, tma_k, tma_v)):
            ctypes.memmove(ctypes.addressof(self._params) + offset, raw, _TMA_BYTES)
        struct.pack_into(_TAIL_FORMAT, self._params, _OFF_TAIL, *output_strides(problem), problem.seqlen_q,
                         problem.seqlen_k, problem.heads_q // problem.heads_kv, order_q, order_kv,
                         problem.scale * _LOG2E)
        struct.pack_into(_WINDOW_FORMAT, self._params, _OFF_WINDOW, *window_bounds(problem))
        if mask is not None:
            struct.pack_into(_MASK_FORMAT, self._params, _OFF_MASK, mask.num_ptr, mask.idx_ptr, mask.full_num_ptr,
                             mask.full_idx_ptr, mask.stride_b, mask.stride_h, mask.kv_blocks, mask.head_div)
            struct.pack_into(_ROW_ORDER_FORMAT, self._params, _OFF_ROW_ORDER, mask.row_order_ptr,
                             int(mask.order_items))
        self.workspace = None
        if num_splits > 1 and spec.cluster_split == 1:  # a cluster merges in shared memory
            self.workspace = SplitWorkspace(problem.device, m_blocks * problem.heads_q * problem.batch, num_splits,
                                            problem.head_dim, spec.threads - 128)
        split_pointers = self.workspace.pointers() if self.workspace is not None else (0, 0, 0)
        struct.pack_into(_SPLIT_FORMAT, self._params, _OFF_SPLIT, *split_pointers, num_splits, problem.heads_q,
                         problem.batch, items)
        self.work_counter = WorkCounter(problem.device) if dynamic and ctas < items else None
        struct.pack_into(_WORK_FORMAT, self._params, _OFF_WORK,
                         self.work_counter.pointer if self.work_counter is not None else 0)
        struct.pack_into(_HEIGHTS_FORMAT, self._params, _OFF_HEIGHTS, tall_blocks, tall_items)
        # work counter, split-KV workspace, uploaded mask or tail order; a plan without any is captured whole
        # into the graph's kernel node
        self.owns_device_memory = (self.work_counter is not None or self.workspace is not None
                                   or (mask is not None and len(mask.arrays) > 0))

    def launch(self, out_ptr: int, lse_ptr: int, stream: int) -> None:
        """Launch on ``stream`` writing O to ``out_ptr`` and (if non-zero) LSE to ``lse_ptr``."""
        self._launch(stream, out_ptr, lse_ptr)


def short_items_per_head(seqlen_q: int, block_m: int, tall_blocks: int) -> int:
    """Items of ``SHORT_ROWS`` rows that cover a head's rows after its first ``tall_blocks`` ``block_m``-row
    ones."""
    return math.ceil(max(seqlen_q - tall_blocks * block_m, 0) / SHORT_ROWS)


def _current_context_device() -> int | None:
    """The device of this thread's current CUDA context, or None where it has none."""
    driver = _driver()
    ctx = _check(driver.cuCtxGetCurrent(), "cuCtxGetCurrent")
    if ctx is None or int(ctx) == 0:
        return None
    return int(_check(driver.cuCtxGetDevice(), "cuCtxGetDevice"))


@contextlib.contextmanager
def _device_context(device: int):
    """The device's primary context pushed as current for the block, then popped."""
    driver = _driver()
    dev = _check(driver.cuDeviceGet(device), "cuDeviceGet")
    ctx = _check(driver.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
    _check(driver.cuCtxPushCurrent(ctx), "cuCtxPushCurrent")
    try:
        yield
    finally:
        _check(driver.cuCtxPopCurrent(), "cuCtxPopCurrent")
        _check(driver.cuDevicePrimaryCtxRelease(dev), "cuDevicePrimaryCtxRelease")


def _make_context_current(device: int) -> None:
    """Bind the device's primary context to this thread (first launch from a fresh thread)."""
    driver = _driver()
    dev = _check(driver.cuDeviceGet(device), "cuDeviceGet")
    ctx = _check(driver.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
    _check(driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
