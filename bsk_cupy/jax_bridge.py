"""JAX inputs, concrete or traced under ``jax.jit``: ``attention_forward`` and ``sparsek_attention`` as XLA
custom calls (``jax.experimental.buffer_callback``).

``sparsek_select`` on JAX scores gives a BlockMask of JAX arrays the same way, which attention calls then
take as operands. At trace time the arguments are checked from their shapes and dtypes alone (XLA buffers
are dense and row-major), and the call becomes one custom call whose operands and results are XLA
buffers: q, k, v (and scores), a block mask's arrays (JAX arrays as they are; a host mask's as constants of
the trace, or for eager calls as device copies kept with the mask object), the output, the lse, and
``sparsek_attention``'s selected blocks (scratch results that are dropped). When XLA runs the call, a
Python callback reads the buffers' pointers and XLA's stream, finds the launch plan for those pointers (made
the first time a device and a set of pointers is seen) and launches on that stream, so the kernels run after
the producers of their inputs and before their consumers, with no DLPack conversion and no
synchronisation. Eager arrays run a ``jax.jit`` of the same call, compiled once per checked problem
(:func:`_compiled_call`); the callers' fast paths keep it per shapes, dtypes, shardings and options.

Not supported (each raises): ``out=`` (JAX arrays are immutable), ``jax.grad`` (forward only),
``jax.vmap``, arrays sharded over several devices, and block masks of CuPy arrays under tracing (with
eager JAX arrays they keep the DLPack route).
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections import OrderedDict

import numpy as np

from . import interop, window_route
from .interop import is_jax
from .block_mask import ARRAY_FIELDS, BlockMask, register_with_jax
from .device import require_hopper
from .dispatch import get_plan, l2_bytes, sm_count
from .mask_operand import MaskGeometry, mask_geometry, mask_operand, operand_at
from .sparsek_launch import get_select_plan
from .sparsek_validation import check_scores_for_attention, check_sparsek_args
from .validation import ArrayInfo, check_attention_args, check_bool, check_layout, row_major

TRACED_DEVICE = -1  # the device of a traced array: XLA says which when it runs the call
_LAUNCHES_MAX = 16  # pointer sets kept per custom call (XLA reuses a few addresses from run to run)
_COMPILED_MAX = 64  # jitted custom calls kept for eager arrays, least recently used first out
_tracer_type = None


def is_traced(x) -> bool:
    """Whether ``x`` is a JAX tracer (an array inside ``jax.jit`` or another transformation)."""
    global _tracer_type
    if not is_jax(x):
        return False
    if _tracer_type is None:
        import jax

        _tracer_type = jax.core.Tracer
    return isinstance(x, _tracer_type)


def takes(arrays, block_mask=None) -> bool:
    """Whether a call on ``arrays`` goes through XLA here: any JAX input, except concrete ones with a block
    mask of CuPy arrays, which keep the DLPack route through CuPy's current stream, the stream such a mask
    is written on."""
    if not any(is_jax(x) for x in arrays):
        return False
    return not _device_mask(block_mask) or any(is_traced(x) for x in arrays)


def _device_mask(block_mask) -> bool:
    """A BlockMask of CuPy arrays."""
    return isinstance(block_mask, BlockMask) and type(block_mask.kv_indices).__module__.split(".")[0] == "cupy"


def call_key(q, k, v) -> tuple | None:
    """Everything about three concrete JAX arrays that their jitted custom call depends on (shapes, dtypes,
    shardings, which name the device), or None if any is not one (tracers live in ``jax``, concrete arrays
    in ``jaxlib``). No pointers: XLA hands them to the call when it runs."""
    kind = type(q)
    if not (kind is type(k) is type(v) and kind.__module__.startswith("jaxlib.")):
        return None
    return ("jax", q.shape, k.shape, v.shape, q.dtype, k.dtype, v.dtype, q.sharding, k.sharding, v.sharding)


def scores_key(scores) -> tuple | None:
    """:func:`call_key`'s part for ``sparsek_attention``'s scores."""
    if not type(scores).__module__.startswith("jaxlib."):
        return None
    return ("jax", scores.shape, scores.dtype, scores.sharding)


def _concrete_device(name: str, x) -> int | None:
    """The CUDA index of the one device a concrete JAX array lives on; None on a CPU."""
    devices = x.sharding.device_set
    if len(devices) != 1:
        raise ValueError(f"{name} is sharded over {len(devices)} devices; pass arrays that live on one GPU "
                         f"(or call inside shard_map, where each shard is one)")
    device = next(iter(devices))
    return device.local_hardware_id if device.platform == "gpu" else None


def _infos(named: tuple[tuple[str, object], ...]) -> tuple[ArrayInfo, ...]:
    """The arrays as the checks see them: JAX arrays from their shapes and dtypes, all on TRACED_DEVICE
    when any is traced (a concrete array closed over by a jitted function is a constant of the trace),
    other arrays as :func:`~bsk_cupy.interop.placement` describes them (the checks then name the mix)."""
    for name, x in named:
        if type(x).__name__ == "BatchTracer":
            raise TypeError(f"{name} is batched by jax.vmap, which bsk_cupy does not support: its arrays carry "
                            f"the batch dimension themselves (B in (B, H, S, D))")
    register_with_jax()  # every JAX call starts here
    traced = any(is_traced(x) for _, x in named)
    infos = []
    for name, x in named:
        if not is_jax(x):
            infos.append(interop.placement(name, x))
            continue
        shape = tuple(int(n) for n in x.shape)
        device = TRACED_DEVICE if traced else _concrete_device(name, x)
        infos.append(ArrayInfo("jax", shape, row_major(shape), np.dtype(x.dtype).name, device, 0))
    return tuple(infos)


def _pointer(buffer) -> int:
    return buffer.__cuda_array_interface__["data"][0]


def _device(buffer) -> int:
    """The CUDA index of an XLA buffer; TypeError where XLA placed the call on another platform."""
    kind, index = buffer.__dlpack_device__()
    if int(kind) != interop.DLPACK_CUDA:
        raise TypeError("bsk_cupy kernels run on CUDA GPUs; this JAX computation was placed on another platform "
                        "(put the arrays on a GPU: jax.device_put(x, jax.devices('gpu')[0]))")
    return int(index)


class _Runner:
    """The callback XLA runs for one custom call (see the module docstring). Subclasses give ``prepare``
    (once per device: the checked problem there, and what does not depend on pointers) and ``plan`` (once
    per pointer set: the launches); both run on XLA's stream, so that what they upload or compute on the
    device is ordered before the kernels."""

    def __init__(self):
        self._lock = threading.Lock()
        self._devices: dict[int, object] = {}
        self._launches: OrderedDict[tuple, object] = OrderedDict()

    def prepare(self, device: int):
        raise NotImplementedError

    def plan(self, prepared, device: int, pointers: tuple[int, ...], stream: int):
        raise NotImplementedError

    def _launch_for(self, device: int, pointers: tuple[int, ...], stream: int):
        key = (device, *pointers)
        with self._lock:
            launch = self._launches.get(key)
            if launch is not None:
                self._launches.move_to_end(key)
                return launch
            with interop.on_device(device), interop.cupy_stream(stream):
                prepared = self._devices.get(device)
                if prepared is None:
                    require_hopper(device)
                    prepared = self._devices[device] = self.prepare(device)
                launch = self.plan(prepared, device, pointers, stream)
            self._launches[key] = launch
            while len(self._launches) > _LAUNCHES_MAX:
                self._launches.popitem(last=False)
        return launch


def _placed(infos: tuple[ArrayInfo, ...], device: int, pointers: tuple[int, ...]) -> tuple[ArrayInfo, ...]:
    return tuple(dataclasses.replace(info, device=device, ptr=ptr) for info, ptr in zip(infos, pointers))


class _AttentionRunner(_Runner):
    """attention_forward on XLA's buffers: q, k, v and the mask arrays that are present (``ARRAY_FIELDS``
    order) in; out and, with lse, lse out."""

    def __init__(self, problem, infos: tuple[ArrayInfo, ...], mask: MaskGeometry | None, present: tuple[bool, ...]):
        super().__init__()
        self._problem, self._infos, self._mask, self._present = problem, infos, mask, present

    def prepare(self, device: int):
        import cupy

        problem = dataclasses.replace(self._problem, device=device)
        if self._mask is not None or problem.window is None:
            return problem, None
        problem, routed = window_route.routed(problem, sm_count(device), l2_bytes(device))
        if routed is None:
            return problem, None
        operand = mask_operand(routed, problem)  # uploaded on XLA's stream, or earlier on another one:
        cupy.cuda.runtime.deviceSynchronize()    # wait for that copy once, before the first launch
        return problem, operand

    def plan(self, prepared, device: int, pointers: tuple[int, ...], stream: int):
        problem, operand = prepared
        if self._mask is not None:
            given = iter(pointers[3:])
            operand = operand_at(self._mask, tuple(next(given) if p else 0 for p in self._present), device)
        return get_plan(problem, *_placed(self._infos, device, pointers[:3]), mask=operand, stream=stream).launch

    def __call__(self, ctx, outs, q, k, v, *mask):
        device, stream = _device(q), ctx.stream
        launch = self._launch_for(device, tuple(_pointer(b) for b in (q, k, v, *mask)), stream)
        with interop.on_device(device):
            launch(_pointer(outs[0]), _pointer(outs[1]) if len(outs) > 1 else 0, stream)


class _SelectRunner(_Runner):
    """sparsek_select on XLA's buffers: scores in; the selected blocks' counts and indices out."""

    def __init__(self, select_problem):
        super().__init__()
        self._select_problem = select_problem

    def prepare(self, device: int):
        return get_select_plan(dataclasses.replace(self._select_problem, device=device)).launch

    def plan(self, prepared, device: int, pointers: tuple[int, ...], stream: int):
        return prepared

    def __call__(self, ctx, outs, scores):
        device, stream = _device(scores), ctx.stream
        launch = self._launch_for(device, (), stream)
        with interop.on_device(device):
            launch(_pointer(scores), _pointer(outs[0]), _pointer(outs[1]), stream)


class _SparseKRunner(_Runner):
    """sparsek_attention on XLA's buffers: q, k, v, scores in; out (and lse), then the selected blocks'
    counts and indices out, which the selection writes and the attention reads."""

    def __init__(self, problem, select_problem, infos: tuple[ArrayInfo, ...], mask: MaskGeometry):
        super().__init__()
        self._problem, self._select_problem, self._infos, self._mask = problem, select_problem, infos, mask

    def prepare(self, device: int):
        select = dataclasses.replace(self._select_problem, device=device)
        return dataclasses.replace(self._problem, device=device), get_select_plan(select).launch

    def plan(self, prepared, device: int, pointers: tuple[int, ...], stream: int):
        problem, select_launch = prepared
        operand = operand_at(self._mask, (pointers[3], pointers[4], 0, 0, 0), device)
        return select_launch, get_plan(problem, *_placed(self._infos, device, pointers[:3]), mask=operand,
                                       stream=stream).launch

    def __call__(self, ctx, outs, q, k, v, scores):
        device, stream = _device(q), ctx.stream
        num, indices = _pointer(outs[-2]), _pointer(outs[-1])
        select_launch, attention_launch = self._launch_for(
            device, (_pointer(q), _pointer(k), _pointer(v), num, indices), stream)
        with interop.on_device(device):
            select_launch(_pointer(scores), num, indices, stream)
            attention_launch(_pointer(outs[0]), _pointer(outs[1]) if len(outs) > 3 else 0, stream)


def _custom_call(runner, results: tuple[tuple[tuple[int, ...], object], ...], kept: int):
    """A function of the runner's JAX inputs that XLA runs as one custom call with ``results`` ((shape,
    dtype) each); it returns the first ``kept`` of them (one array, or a tuple), the rest being scratch."""
    import jax

    try:
        from jax.experimental.buffer_callback import buffer_callback
    except ImportError:
        raise RuntimeError(f"JAX inputs need jax >= 0.6.1 (jax.experimental.buffer_callback); this is jax "
                           f"{jax.__version__}") from None
    call = buffer_callback(runner, tuple(jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in results))

    def run(*arrays):
        outs = call(*arrays)
        return outs[0] if kept == 1 else tuple(outs[:kept])

    return run


def _attention_results(problem, dtype, return_lse: bool) -> list:
    """out (q's shape and dtype) and, with ``return_lse``, lse (float32 (B, Hq, Sq))."""
    lse = [((problem.batch, problem.heads_q, problem.seqlen_q), np.float32)] if return_lse else []
    return [(problem.out_shape, dtype), *lse]


_compiled: OrderedDict[tuple, object] = OrderedDict()
_compiled_lock = threading.Lock()


def _compiled_call(key: tuple, build):
    """``jax.jit(build())`` kept per checked problem ``key`` (not per raw options, so that a list window or
    an ``np.int64`` topk, which the callers' fast-path keys leave out, still compile once)."""
    with _compiled_lock:
        call = _compiled.get(key)
        if call is not None:
            _compiled.move_to_end(key)
            return call
    import jax

    call = jax.jit(build())
    with _compiled_lock:
        _compiled[key] = call
        while len(_compiled) > _COMPILED_MAX:
            _compiled.popitem(last=False)
    return call


class JaxFastCall:
    """attention_forward's per-call work for concrete JAX arrays already checked: the compiled custom call,
    with the block mask's arrays as its further operands: a host mask's device copies (``mask_arrays``), or
    (None) the JAX arrays of the mask each call passes, which the fast-path key pins by shape, dtype and
    sharding."""

    def __init__(self, call, mask_arrays: tuple | None):
        self._call, self._mask_arrays = call, mask_arrays

    def __call__(self, q, k, v, out=None, block_mask=None):
        if out is not None:
            raise TypeError("out is for torch tensors and CuPy arrays; jax inputs get a new array")
        arrays = self._mask_arrays
        if arrays is None:
            arrays = tuple(a for a in (getattr(block_mask, n) for n in ARRAY_FIELDS) if a is not None)
        return self._call(q, k, v, *arrays)


_mask_copies: dict[int, tuple] = {}
_mask_copies_lock = threading.Lock()


def _mask_copies_on(mask: BlockMask, device) -> tuple:
    """The present arrays of host mask ``mask`` as JAX arrays on ``device`` (a jax Device), made once per
    mask object and device and dropped with the mask. Made eagerly even inside an outer trace (concrete q
    closed over by a jitted function), so that the caches never keep tracers."""
    key = id(mask)
    with _mask_copies_lock:
        cached = _mask_copies.get(key)
        if cached is not None and cached[0]() is mask and cached[1] == device:
            return cached[2]
    import jax

    with jax.ensure_compile_time_eval():
        arrays = tuple(jax.device_put(a, jax.sharding.SingleDeviceSharding(device))
                       for a in (getattr(mask, n) for n in ARRAY_FIELDS) if a is not None)
    with _mask_copies_lock:
        _mask_copies[key] = (weakref.ref(mask), device, arrays)
    weakref.finalize(mask, _mask_copies.pop, key, None)
    return arrays


def _check_mask_arrays(arrays: tuple, device: int) -> None:
    """JAX mask arrays: not batched by vmap, and (concrete ones, with concrete q) on q's device."""
    for name, a in arrays:
        if type(a).__name__ == "BatchTracer":
            raise TypeError(f"block_mask.{name} is batched by jax.vmap, which bsk_cupy does not support")
        if device != TRACED_DEVICE and not is_traced(a) and _concrete_device(f"block_mask.{name}", a) != device:
            raise ValueError(f"block_mask.{name} is not on q's device (cuda:{device}): put the mask's arrays there")


def attention(q, k, v, *, causal, scale, layout, return_lse, block_mask, window):
    """:func:`bsk_cupy.attention_forward` for JAX inputs.

    Returns
    -------
    result : out, or (out, lse), JAX arrays
    fast : JaxFastCall or None
        What later calls with concrete arrays like these and the same options may run directly; None for
        traced arrays (checked once per trace).

    Raises
    ------
    TypeError, ValueError
        As attention_forward; also a block mask of CuPy arrays under tracing, or one mixing array kinds,
        ``jax.vmap``, and arrays sharded over several devices.
    """
    infos = _infos((("q", q), ("k", k), ("v", v)))
    check_bool("return_lse", return_lse)
    problem = check_attention_args(*infos, causal=causal, scale=scale, layout=layout, window=window)
    if problem.device != TRACED_DEVICE:
        require_hopper(problem.device)
    geometry, mask_arrays = None, ()
    if block_mask is not None:
        geometry = mask_geometry(block_mask, problem)
        named = tuple((n, getattr(block_mask, n)) for n in ARRAY_FIELDS if getattr(block_mask, n) is not None)
        mask_arrays = tuple(a for _, a in named)
        if all(isinstance(a, np.ndarray) for a in mask_arrays):
            block_mask.validate()
        elif all(is_jax(a) for a in mask_arrays):
            _check_mask_arrays(named, problem.device)
        else:
            raise TypeError("block_mask for JAX inputs must hold NumPy arrays (a host mask) or JAX arrays (such as "
                            "sparsek_select makes from JAX scores), all of one kind; a mask of CuPy arrays works "
                            "with eager JAX arrays only")
    present = tuple(block_mask is not None and getattr(block_mask, n) is not None for n in ARRAY_FIELDS)

    def build():
        return _custom_call(_AttentionRunner(problem, infos, geometry, present),
                            tuple(_attention_results(problem, q.dtype, return_lse)), 1 + return_lse)

    if problem.device == TRACED_DEVICE or any(is_traced(a) for a in mask_arrays):
        import jax.numpy as jnp

        return build()(q, k, v, *(jnp.asarray(a) for a in mask_arrays)), None
    call = _compiled_call(("attention", problem, return_lse, geometry, present), build)
    if mask_arrays and is_jax(mask_arrays[0]):
        fast = JaxFastCall(call, None)  # the mask's own arrays, read from each call's mask (a structural key)
    else:
        device = next(iter(q.sharding.device_set))
        fast = JaxFastCall(call, _mask_copies_on(block_mask, device) if block_mask is not None else ())
    return fast(q, k, v, block_mask=block_mask), fast


def sparsek_attention(q, k, v, scores, topk, *, block_size, causal, local_blocks, pool, scale, layout,
                      return_lse):
    """:func:`bsk_cupy.sparsek_attention` for JAX inputs: selection and attention in one custom call.

    Returns
    -------
    result : out, or (out, lse), JAX arrays
    fast : callable or None
        The compiled call of (q, k, v, scores), for later calls with concrete arrays like these and the same
        options; None for traced arrays.

    Raises
    ------
    TypeError, ValueError
        As sparsek_attention; also ``jax.vmap`` and arrays sharded over several devices.
    """
    checked_layout = check_layout(layout)
    *infos, scores_info = _infos((("q", q), ("k", k), ("v", v), ("scores", scores)))
    check_scores_for_attention(scores_info, infos[0], infos[1], checked_layout)
    s_q = infos[0].shape[2 if checked_layout == "bhsd" else 1]
    select = check_sparsek_args(scores_info, topk, seqlen_q=s_q, block_size=block_size, causal=causal,
                                local_blocks=local_blocks, pool=pool)
    check_bool("return_lse", return_lse)
    problem = check_attention_args(*infos, causal=causal, scale=scale, layout=checked_layout)
    if problem.device != TRACED_DEVICE:
        require_hopper(problem.device)
    # the selection's mask as the attention will get it, checked without memory (zero-stride views)
    stand_in = BlockMask(np.broadcast_to(np.int32(0), select.num_blocks_shape),
                         np.broadcast_to(np.int32(0), select.indices_shape), (select.seqlen_q, select.seqlen_k),
                         select.block_size)
    geometry = mask_geometry(stand_in, problem)

    def build():
        runner = _SparseKRunner(problem, select, tuple(infos), geometry)
        scratch = [(select.num_blocks_shape, np.int32), (select.indices_shape, np.int32)]
        return _custom_call(runner, tuple(_attention_results(problem, q.dtype, return_lse) + scratch),
                            1 + return_lse)

    if problem.device == TRACED_DEVICE:
        return build()(q, k, v, scores), None
    call = _compiled_call(("sparsek", problem, select, return_lse), build)
    return call(q, k, v, scores), call


class SelectFastCall:
    """sparsek_select's per-call work for concrete JAX scores already checked: the compiled custom call, its
    two results wrapped in a BlockMask."""

    def __init__(self, call, problem):
        self._call = call
        self._seq_lengths, self._block_size = (problem.seqlen_q, problem.seqlen_k), problem.block_size

    def __call__(self, scores) -> BlockMask:
        num, indices = self._call(scores)
        return BlockMask(num, indices, self._seq_lengths, self._block_size)


def select(scores, topk, *, seqlen_q, block_size, causal, local_blocks, pool):
    """:func:`bsk_cupy.sparsek_select` for JAX scores: one custom call; the BlockMask holds JAX arrays.

    Returns
    -------
    mask : BlockMask
    fast : SelectFastCall or None
        What later calls with concrete scores like these and the same options may run directly; None for
        traced scores.

    Raises
    ------
    TypeError, ValueError
        As sparsek_select; also ``jax.vmap`` and scores sharded over several devices.
    """
    (info,) = _infos((("scores", scores),))
    problem = check_sparsek_args(info, topk, seqlen_q=seqlen_q, block_size=block_size, causal=causal,
                                 local_blocks=local_blocks, pool=pool)
    if problem.device != TRACED_DEVICE:
        require_hopper(problem.device)

    def build():
        results = ((problem.num_blocks_shape, np.int32), (problem.indices_shape, np.int32))
        return _custom_call(_SelectRunner(problem), results, 2)

    if problem.device == TRACED_DEVICE:
        return SelectFastCall(build(), problem)(scores), None
    fast = SelectFastCall(_compiled_call(("select", problem), build), problem)
    return fast(scores), fast
