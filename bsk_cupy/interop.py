"""Framework adapters: read pointers, shapes, strides and streams; allocate outputs in the caller's framework.

With :mod:`bsk_cupy.jax_bridge` (JAX's custom calls), the only modules that know torch, JAX and CuPy types
(imported lazily, never at package import).

- torch tensors are read directly (``data_ptr``, ``stride``, the raw current stream): no DLPack on that
  path, since ``cupy.from_dlpack`` costs ~33 us per call. Once a (pointers, shapes, strides, dtypes)
  combination has been validated, :class:`TorchFastCall` serves it without describing or validating again.
- CuPy arrays are read directly and computed on CuPy's current stream; validated combinations are served by
  :class:`CupyFastCall`, as torch's by :class:`TorchFastCall`.
- JAX arrays, concrete or traced under ``jax.jit``, run as XLA custom calls on XLA's stream
  (:mod:`bsk_cupy.jax_bridge`), but for concrete ones with a block mask of CuPy arrays.
- Those, and any other ``__dlpack__`` producer, go through ``cupy.from_dlpack`` (zero copy; the producer
  orders its work before CuPy's current stream) and are computed on that stream. JAX callers get JAX
  arrays back (``jax.dlpack.from_dlpack``); other producers get CuPy arrays.
- Index outputs (int32 block lists) are CuPy arrays for every caller (``index_arrays``). For torch callers
  torch allocates them and CuPy wraps the memory without DLPack, which keeps the call CUDA-graph capturable.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

from .validation import ArrayInfo, byte_span, check_out

DLPACK_CUDA = 2  # DLDeviceType kDLCUDA


def _root_module(x) -> str:
    return type(x).__module__.split(".")[0]


def is_jax(x) -> bool:
    """Whether ``x`` is a JAX array or tracer."""
    return _root_module(x) in ("jax", "jaxlib")


def _packed_offsets(shapes) -> tuple[list[int], int]:
    """Byte offsets of int32 arrays of ``shapes`` laid one after another, each 256-byte aligned, and the
    total bytes (at least 4)."""
    offsets, total = [], 0
    for shape in shapes:
        offsets.append(total)
        total += -(-4 * math.prod(shape) // 256) * 256
    return offsets, max(total, 4)


class _TorchAdapter:
    """Reads torch tensors; torch calls then run through :class:`TorchFastCall`."""

    name = "torch"

    def describe(self, x) -> tuple[ArrayInfo, Any]:
        device = x.device.index if x.device.type == "cuda" else None
        dtype = str(x.dtype).removeprefix("torch.")
        return ArrayInfo("torch", tuple(x.shape), tuple(x.stride()), dtype, device, x.data_ptr()), x

    def stream(self, device: int) -> int:
        import torch

        return torch._C._cuda_getCurrentRawStream(device)

    def index_arrays(self, like, shapes) -> list:
        """int32 CuPy arrays of ``shapes`` over one block of memory torch allocates on ``like``'s device,
        each with its pointer (every array starts 256-byte aligned).

        torch's caching allocator (the graph's private pool during a capture) owns the memory; the CuPy
        arrays hold the tensor alive. No ``cupy.from_dlpack``: torch would answer it by making CuPy's stream
        wait on an event of the current stream, a cross-stream dependency a graph capture rejects, and it
        costs ~33 us. Building the CuPy views makes no CUDA call; one allocation for all of them saves
        torch's per-allocation cost (about 3 us each).
        """
        import cupy
        import torch

        offsets, total = _packed_offsets(shapes)
        out = torch.empty(total // 4, dtype=torch.int32, device=like.device)
        memory = cupy.cuda.UnownedMemory(out.data_ptr(), total, out, device_id=out.get_device())
        views = []
        for shape, offset in zip(shapes, offsets):
            view = cupy.ndarray(shape, dtype=cupy.int32, memptr=cupy.cuda.MemoryPointer(memory, offset))
            views.append((view, view.data.ptr))
        return views


def on_device(device: int):
    """A context that makes ``device`` CuPy's current device; none when it already is (a device switch
    costs a few us per call)."""
    import cupy

    return contextlib.nullcontext() if cupy.cuda.runtime.getDevice() == device else cupy.cuda.Device(device)


class _CupyAdapter:
    """CuPy arrays, and the CuPy views made of JAX / other DLPack arrays (``name`` tells which)."""

    def __init__(self, name: str):
        self.name = name

    def describe(self, x) -> tuple[ArrayInfo, Any]:
        itemsize = x.dtype.itemsize
        strides = tuple(s // itemsize for s in x.strides)
        info = ArrayInfo(self.name, tuple(x.shape), strides, x.dtype.name, x.device.id, x.data.ptr)
        return info, x

    def stream(self, device: int) -> int:
        import cupy

        with on_device(device):
            return cupy.cuda.get_current_stream().ptr

    def empty(self, like, shape, float32: bool = False):
        import cupy

        with on_device(like.data.device_id):
            out = cupy.empty(shape, dtype=cupy.float32 if float32 else like.dtype)
        return out, out.data.ptr

    def index_arrays(self, like, shapes) -> list:
        """int32 CuPy arrays of ``shapes`` on ``like``'s device (one allocation), each with its pointer."""
        import cupy

        offsets, total = _packed_offsets(shapes)
        with on_device(like.data.device_id):
            block = cupy.empty(total // 4, dtype=cupy.int32)
        views = []
        for shape, offset in zip(shapes, offsets):
            view = cupy.ndarray(shape, dtype=cupy.int32, memptr=block.data + offset)
            views.append((view, view.data.ptr))
        return views

    def finish(self, out):
        if self.name == "jax":
            import jax.dlpack

            return jax.dlpack.from_dlpack(out)
        return out


_TORCH = _TorchAdapter()
_CUPY = _CupyAdapter("cupy")
_JAX = _CupyAdapter("jax")
_DLPACK = _CupyAdapter("dlpack")


@dataclass
class Operand:
    """One input as the kernels see it, plus the object that keeps its memory alive."""

    info: ArrayInfo
    handle: Any
    adapter: Any


def describe(name: str, x) -> Operand:
    """Describe one input array; raise TypeError for what is not an array we can read."""
    root = _root_module(x)
    if root == "torch" and hasattr(x, "data_ptr"):
        info, handle = _TORCH.describe(x)
        return Operand(info, handle, _TORCH)
    if root == "cupy":
        _check_whole_strides(name, x)
        info, handle = _CUPY.describe(x)
        return Operand(info, handle, _CUPY)
    if root == "numpy":
        dtype = str(getattr(x, "dtype", type(x).__name__))
        return Operand(ArrayInfo("numpy", tuple(getattr(x, "shape", ())), (), dtype, None, 0), x, None)
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
        framework = "jax" if is_jax(x) else "dlpack"
        device_type, _ = x.__dlpack_device__()
        if int(device_type) != DLPACK_CUDA:
            return Operand(ArrayInfo(framework, tuple(getattr(x, "shape", ())), (), str(getattr(x, "dtype", "")),
                                     None, 0), x, None)
        import cupy

        adapter = _JAX if framework == "jax" else _DLPACK
        view = cupy.from_dlpack(x)
        _check_whole_strides(name, view)
        info, handle = adapter.describe(view)
        return Operand(info, handle, adapter)
    raise TypeError(f"{name} must be a torch tensor, CuPy array, JAX array or another DLPack-capable CUDA array; "
                    f"got {type(x).__module__}.{type(x).__name__}")


def _check_whole_strides(name: str, x) -> None:
    """CuPy strides are in bytes and ours in elements: refuse byte strides that are not whole elements
    (``as_strided`` views), which a floor division would silently turn into other strides."""
    itemsize = x.dtype.itemsize
    if any(stride % itemsize for stride in x.strides):
        raise ValueError(f"{name} has byte strides {tuple(x.strides)}, not multiples of its {itemsize}-byte "
                         f"elements")


def placement(name: str, x) -> ArrayInfo:
    """Framework, shape, dtype and device of an array, as :func:`describe` gives them, but from the cheapest
    attributes (strides and pointer left empty; no DLPack conversion for JAX and other DLPack producers, no
    device object for torch): for checks made before another call describes the array in full."""
    root = _root_module(x)
    if root == "torch" and hasattr(x, "get_device"):
        index = x.get_device()  # -1 in host memory
        return ArrayInfo("torch", tuple(x.shape), (), str(x.dtype).removeprefix("torch."),
                         None if index < 0 else index, 0)
    if root in ("cupy", "numpy") or not (hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__")):
        return describe(name, x).info
    device_type, device_id = x.__dlpack_device__()
    device = int(device_id) if int(device_type) == DLPACK_CUDA else None
    return ArrayInfo("jax" if is_jax(x) else "dlpack", tuple(getattr(x, "shape", ())), (),
                     str(getattr(x, "dtype", "")), device, 0)


def array_module(array):
    """``numpy`` or ``cupy``: the module that operates on ``array`` (a NumPy or CuPy array)."""
    if _root_module(array) == "cupy":
        import cupy

        return cupy
    import numpy

    return numpy


class _RawStream:
    """A stream handle (``cudaStream_t`` as an int) behind the CUDA stream protocol."""

    def __init__(self, ptr: int):
        self._ptr = ptr

    def __cuda_stream__(self) -> tuple[int, int]:
        return 0, self._ptr


def cupy_stream(ptr: int):
    """A CuPy stream over the raw stream ``ptr`` (0: the legacy default stream), so that CuPy work runs
    on the caller's stream: ``Stream.from_external`` (CuPy 14), else ``ExternalStream`` (CuPy 13)."""
    import cupy

    if ptr == 0:
        return cupy.cuda.Stream.null
    if hasattr(cupy.cuda.Stream, "from_external"):
        return cupy.cuda.Stream.from_external(_RawStream(ptr))
    return cupy.cuda.ExternalStream(ptr)


def as_numpy_or_cupy(name: str, value):
    """NumPy and CuPy arrays as they are; torch tensors and other DLPack producers as NumPy (host memory)
    or CuPy (device memory) views, without a copy. Used for small index arrays such as block masks."""
    root = _root_module(value)
    if root in ("numpy", "cupy"):
        return value
    if hasattr(value, "__dlpack__") and hasattr(value, "__dlpack_device__"):
        device_type, _ = value.__dlpack_device__()
        if int(device_type) == DLPACK_CUDA:
            import cupy

            return cupy.from_dlpack(value)
        import numpy

        return numpy.from_dlpack(value)
    raise TypeError(f"{name} must be a NumPy, CuPy or torch array; got {type(value).__module__}.{type(value).__name__}")


def call_key(q, k, v) -> tuple | None:
    """:func:`torch_call_key` or :func:`cupy_call_key` of three arrays, whichever applies; None for other
    arrays (JAX arrays have :func:`bsk_cupy.jax_bridge.call_key`; other DLPack producers are converted on
    every call anyway)."""
    return torch_call_key(q, k, v) or cupy_call_key(q, k, v)


def cupy_call_key(q, k, v) -> tuple | None:
    """Everything about three CuPy arrays that a launch plan depends on (pointers, shapes, strides, dtypes,
    devices: an entry outlives its arrays, and a freed address may come back on another device), or None if
    any is not one."""
    if not (type(q).__module__ == type(k).__module__ == type(v).__module__ == "cupy"):
        return None
    qd, kd, vd = q.data, k.data, v.data
    return ("cupy", qd.ptr, kd.ptr, vd.ptr, q.shape, k.shape, v.shape, q.strides, k.strides, v.strides,
            q.dtype, k.dtype, v.dtype, qd.device_id, kd.device_id, vd.device_id)


def torch_call_key(q, k, v) -> tuple | None:
    """Everything about three torch tensors that a launch plan depends on, or None if any is not one.

    Cheap (attribute reads only), so the per-call fast path can skip describing and validating inputs
    it has already seen: same pointers, shapes, strides, dtypes and device.
    """
    if not (type(q).__module__ == type(k).__module__ == type(v).__module__ == "torch"):
        return None
    return (q.data_ptr(), k.data_ptr(), v.data_ptr(), q.shape, k.shape, v.shape, q.stride(), k.stride(),
            v.stride(), q.dtype, k.dtype, v.dtype, q.device, k.device, v.device)


def _clear_of(start: int, nbytes: int, spans) -> bool:
    """An output at ``start`` of ``nbytes`` bytes is 16-byte aligned and overlaps none of the byte ``spans``."""
    end = start + nbytes
    return not start & 15 and all(end <= lo or hi <= start for lo, hi in spans)


_NO_BACKWARD = ("attention_forward has no backward yet: call it under torch.no_grad() or pass detached "
                "tensors")


class _OutputChecks:
    """What a caller's ``out`` is checked against: the bytes the kernel reads (q, k, v and the block mask's
    device arrays, ``spans``, for the fast test) and the slow path's full check, which names the problem."""

    def __init__(self, problem, inputs: tuple[ArrayInfo, ...], mask_spans: tuple[tuple[int, int], ...]):
        self._problem, self._inputs, self._mask_spans = problem, inputs, mask_spans
        self.spans = tuple(byte_span(info) for info in inputs) + mask_spans

    def raise_reason(self, out) -> None:
        """Raise check_out's error for an ``out`` the fast test refused (returns if it finds none)."""
        check_out(describe("out", out).info, self._problem, self._inputs, self._mask_spans)


class TorchFastCall:
    """The per-call work for torch inputs whose plan is known: grad check, allocate (or check ``out``),
    launch.

    Every torch call goes through here (the first one right after validation), so this is the one place
    that refuses inputs needing gradients and checks caller-provided outputs.
    """

    def __init__(self, plan, like, problem, inputs: tuple[ArrayInfo, ...], lse_shape: tuple | None,
                 mask_spans: tuple[tuple[int, int], ...] = ()):
        import torch

        self._is_grad_enabled = torch.is_grad_enabled
        self._torch_c = torch._C  # _cuda_getCurrentRawStream: the current stream without a Stream object
        self._float32 = torch.float32
        self._launch = plan.launch
        self._out_checks = _OutputChecks(problem, inputs, mask_spans)
        self._input_spans = self._out_checks.spans
        self._out_shape = problem.out_shape
        self._out_bytes = 2 * math.prod(problem.out_shape)  # float16 / bfloat16
        self._lse_shape = lse_shape
        self._device_index = like.get_device()  # the CUDA index (what out.get_device() must equal)

    def _checked_out(self, q, out) -> int:
        """``out``'s pointer once it is a contiguous, 16-byte aligned tensor of the output's shape, dtype and
        device that overlaps no input (the common case costs a few attribute reads)."""
        if (type(out) is type(q) and not out.requires_grad and out.dtype == q.dtype and out.shape == self._out_shape
                and out.get_device() == self._device_index and out.is_contiguous()
                and _clear_of(out.data_ptr(), self._out_bytes, self._input_spans)):
            return out.data_ptr()
        if getattr(out, "requires_grad", False):
            raise ValueError("out must not require grad: it is written outside autograd")
        self._out_checks.raise_reason(out)
        raise TypeError(f"out must be a {type(q).__name__} like q, got a {type(out).__name__}")

    def __call__(self, q, k, v, out=None, block_mask=None):
        # block_mask: part of the fast-path key, baked into the plan (JaxFastCall reads it)
        # outputs take q's dtype and device (both part of the fast-path key) through new_empty, which skips
        # the dtype / device argument parsing of torch.empty
        if (q.requires_grad or k.requires_grad or v.requires_grad) and self._is_grad_enabled():
            raise NotImplementedError(_NO_BACKWARD)
        if out is None:
            out = q.new_empty(self._out_shape)
            out_ptr = out.data_ptr()
        else:
            out_ptr = self._checked_out(q, out)
        stream = self._torch_c._cuda_getCurrentRawStream(self._device_index)
        if self._lse_shape is None:
            self._launch(out_ptr, 0, stream)
            return out
        lse = q.new_empty(self._lse_shape, dtype=self._float32)
        self._launch(out_ptr, lse.data_ptr(), stream)
        return out, lse


class CupyFastCall:
    """The per-call work for CuPy inputs whose plan is known: allocate on q's device (or check ``out``),
    launch on CuPy's current stream there, as :class:`TorchFastCall` does for torch."""

    def __init__(self, plan, like, problem, inputs: tuple[ArrayInfo, ...], lse_shape: tuple | None,
                 mask_spans: tuple[tuple[int, int], ...] = ()):
        import cupy

        self._cupy = cupy
        self._launch = plan.launch
        self._out_checks = _OutputChecks(problem, inputs, mask_spans)
        self._input_spans = self._out_checks.spans
        self._out_shape = problem.out_shape
        self._dtype = like.dtype
        self._out_bytes = like.dtype.itemsize * math.prod(problem.out_shape)
        self._lse_shape = lse_shape
        self._device = problem.device

    def __call__(self, q, k, v, out=None, block_mask=None):
        with on_device(self._device):  # block_mask: as in TorchFastCall
            return self._call(q, out)

    def _checked_out(self, q, out) -> int:
        if (type(out) is type(q) and out.dtype == self._dtype and out.shape == self._out_shape
                and out.data.device_id == self._device and out.flags.c_contiguous
                and _clear_of(out.data.ptr, self._out_bytes, self._input_spans)):
            return out.data.ptr
        self._out_checks.raise_reason(out)
        raise TypeError(f"out must be a {type(q).__name__} like q, got a {type(out).__name__}")

    def _call(self, q, out):
        cupy = self._cupy
        if out is None:
            out = cupy.empty(self._out_shape, dtype=self._dtype)
            out_ptr = out.data.ptr
        else:
            out_ptr = self._checked_out(q, out)
        stream = cupy.cuda.get_current_stream().ptr
        if self._lse_shape is None:
            self._launch(out_ptr, 0, stream)
            return out
        lse = cupy.empty(self._lse_shape, dtype=cupy.float32)
        self._launch(out_ptr, lse.data.ptr, stream)
        return out, lse
