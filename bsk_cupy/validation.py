"""Argument checks for the public API, on framework-neutral array descriptions.

Everything here is pure Python over :class:`ArrayInfo`, so it runs (and is tested) without a GPU. Each
error names the argument and says what is allowed.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .specs import DTYPE_CODES, HEAD_DIMS

LAYOUTS = ("bhsd", "bshd")
_ELEMENT_BYTES = 2          # float16 / bfloat16
_TMA_ALIGN_BYTES = 16       # TMA needs 16-byte-aligned base addresses and strides
# The kernel's key offsets are 32-bit, and 2**30 stands for an unbounded window side (launch.window_bounds).
_MAX_SEQLEN = 2**30 - 1


@dataclass(frozen=True)
class ArrayInfo:
    """What the kernels need to know about one array, whatever framework holds it.

    ``strides`` are in elements; ``device`` is the CUDA device index, or None for host memory.
    """

    framework: str
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: str
    device: int | None
    ptr: int


@dataclass(frozen=True)
class AttentionProblem:
    """A checked attention call in logical (batch, head, seq, dim) order."""

    batch: int
    heads_q: int
    heads_kv: int
    seqlen_q: int
    seqlen_k: int
    head_dim: int
    dtype: str
    causal: bool
    scale: float
    layout: str
    device: int
    window: tuple[int | None, int | None] | None = None  # (left, right) keys around the diagonal; None: unbounded

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        """Shape of the output in the caller's layout."""
        if self.layout == "bhsd":
            return (self.batch, self.heads_q, self.seqlen_q, self.head_dim)
        return (self.batch, self.seqlen_q, self.heads_q, self.head_dim)


def to_bhsd(values: tuple[int, ...], layout: str) -> tuple[int, int, int, int]:
    """Reorder a 4-tuple given in the caller's layout to (b, h, s, d)."""
    b, x, y, d = values
    return (b, x, y, d) if layout == "bhsd" else (b, y, x, d)


def check_layout(layout) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return layout


def check_scale(scale, head_dim: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"scale must be a Python float or None, got {type(scale).__name__}")
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a finite positive number, got {scale}")
    return float(scale)


def check_bool(name: str, value) -> None:
    """TypeError unless ``value`` is a Python bool (numpy.bool_, 0 and 1 are not: cached calls key on it)."""
    if not isinstance(value, bool):
        kind = type(value)
        where = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
        raise TypeError(f"{name} must be a bool, got {where}{kind.__qualname__}")


def check_window(window) -> tuple[int | None, int | None] | None:
    """``None`` or ``(left, right)``: query i sees key j only if ``i + off - left <= j <= i + off + right``
    with ``off = Sk - Sq``; either side may be None (unbounded). Returns None when both sides are."""
    if window is None:
        return None
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise TypeError(f"window must be None or a pair (left, right) of ints >= 0 or None, got {window!r}")
    for side, value in zip(("left", "right"), window):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
            raise ValueError(f"window {side} must be None or an int >= 0, got {value!r}")
    left, right = (None if value is None else int(value) for value in window)
    return None if left is None and right is None else (left, right)


def _check_array(name: str, info: ArrayInfo) -> None:
    if info.device is None:
        raise TypeError(f"{name} is in host memory; bsk_cupy needs CUDA device arrays "
                        f"(torch CUDA tensors, CuPy arrays or JAX GPU arrays)")
    if info.dtype not in DTYPE_CODES:
        raise TypeError(f"{name} has dtype {info.dtype}; allowed: float16, bfloat16")
    if len(info.shape) != 4:
        raise ValueError(f"{name} must be 4-D (B, H, S, D) for layout 'bhsd' or (B, S, H, D) for 'bshd'; "
                         f"got shape {info.shape}")
    if any(n < 1 for n in info.shape):
        raise ValueError(f"{name} has an empty dimension: shape {info.shape}; every dimension must be >= 1")
    if info.strides[3] != 1 and info.shape[3] != 1:
        raise ValueError(f"{name} must be contiguous in its last (head) dimension; got strides {info.strides} "
                         f"(elements). Call .contiguous() on it first")
    for axis in range(3):
        stride_bytes = info.strides[axis] * _ELEMENT_BYTES
        if info.shape[axis] > 1 and (stride_bytes <= 0 or stride_bytes % _TMA_ALIGN_BYTES):
            raise ValueError(f"{name} has stride {info.strides[axis]} (elements) in dimension {axis}; strides "
                             f"must be positive multiples of {_TMA_ALIGN_BYTES // _ELEMENT_BYTES} elements "
                             f"(16 bytes). Call .contiguous() on it first")
    if info.ptr % _TMA_ALIGN_BYTES:
        raise ValueError(f"{name} starts at an address that is not 16-byte aligned; slice offsets along the "
                         f"last dimension must be multiples of 8 elements")


def check_attention_args(q: ArrayInfo, k: ArrayInfo, v: ArrayInfo, *, causal, scale, layout,
                         window=None) -> AttentionProblem:
    """Validate q, k, v and the options; return the problem in (b, h, s, d) terms.

    Raises
    ------
    TypeError
        Wrong framework mix, host arrays, wrong dtype, non-bool ``causal``, non-float ``scale``.
    ValueError
        Wrong rank, shapes, head dim, layout, strides or window.
    """
    layout = check_layout(layout)
    check_bool("causal", causal)
    frameworks = {q.framework, k.framework, v.framework}
    if len(frameworks) != 1:
        raise TypeError(f"q, k and v must come from one framework; got q: {q.framework}, k: {k.framework}, "
                        f"v: {v.framework}")
    for name, info in (("q", q), ("k", k), ("v", v)):
        _check_array(name, info)
    if len({q.dtype, k.dtype, v.dtype}) != 1:
        raise TypeError(f"q, k and v must share one dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if len({q.device, k.device, v.device}) != 1:
        raise ValueError(f"q, k and v must be on one device; got cuda:{q.device}, cuda:{k.device}, cuda:{v.device}")

    b, hq, sq, d = to_bhsd(q.shape, layout)
    kb, hkv, sk, kd = to_bhsd(k.shape, layout)
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape; got {k.shape} and {v.shape}")
    if kb != b:
        raise ValueError(f"k has batch {kb} but q has batch {b}")
    if kd != d:
        raise ValueError(f"k has head dim {kd} but q has head dim {d}")
    if d not in HEAD_DIMS:
        raise ValueError(f"head dim (last dimension of q) must be one of {HEAD_DIMS}, got {d}")
    if hq % hkv:
        raise ValueError(f"q heads ({hq}) must be a multiple of k/v heads ({hkv}) for GQA/MQA")
    if max(sq, sk) > _MAX_SEQLEN:
        raise ValueError(f"sequence lengths must be < 2**30; got Sq={sq}, Sk={sk}")
    return AttentionProblem(batch=b, heads_q=hq, heads_kv=hkv, seqlen_q=sq, seqlen_k=sk, head_dim=d,
                            dtype=q.dtype, causal=causal, scale=check_scale(scale, d), layout=layout,
                            device=q.device, window=check_window(window))


def row_major(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The element strides of a dense C-contiguous array of ``shape``."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def byte_span(info: ArrayInfo) -> tuple[int, int]:
    """[start, end) of the bytes an array's elements occupy (strides >= 0, as every accepted array has)."""
    if any(n == 0 for n in info.shape):
        return info.ptr, info.ptr
    last = sum((n - 1) * stride for n, stride in zip(info.shape, info.strides))
    return info.ptr, info.ptr + (last + 1) * _ELEMENT_BYTES


def check_out(out: ArrayInfo, problem: AttentionProblem, inputs: tuple[ArrayInfo, ...],
              mask_spans: tuple[tuple[int, int], ...] = ()) -> None:
    """Check a caller-provided output buffer against the problem (``mask_spans``: the byte spans of the block
    mask's device arrays, which the kernel reads too).

    Raises
    ------
    TypeError
        ``out`` from another framework than q, or of another dtype.
    ValueError
        Wrong shape or device, not contiguous, overlapping q, k, v or the block mask (the kernel reads
        those while it writes ``out``), or not 16-byte aligned.
    """
    if out.framework != inputs[0].framework:
        raise TypeError(f"out must be a {inputs[0].framework} array like q, got a {out.framework} one")
    if out.dtype != problem.dtype:
        raise TypeError(f"out must have q's dtype {problem.dtype}, got {out.dtype}")
    if tuple(out.shape) != problem.out_shape:
        raise ValueError(f"out must have q's shape {problem.out_shape}, got {tuple(out.shape)}")
    if out.device != problem.device:
        raise ValueError(f"out must be on q's device cuda:{problem.device}, got {_device_name(out.device)}")
    if any(n > 1 and stride != want for n, stride, want in zip(out.shape, out.strides, row_major(out.shape))):
        raise ValueError(f"out must be contiguous; got strides {out.strides} (elements) for shape {out.shape}")
    start, end = byte_span(out)
    spans = [(name, byte_span(info)) for name, info in zip(("q", "k", "v"), inputs)]
    for name, (lo, hi) in spans + [("block_mask", span) for span in mask_spans]:
        if start < hi and lo < end:
            raise ValueError(f"out overlaps {name}: the kernel reads {name} while it writes out; pass a "
                             f"separate buffer")
    if out.ptr % _TMA_ALIGN_BYTES:
        raise ValueError(f"out must start at a 16-byte aligned address, as q does; it starts "
                         f"{out.ptr % _TMA_ALIGN_BYTES} bytes past one")


def _device_name(device: int | None) -> str:
    return "host memory" if device is None else f"cuda:{device}"
