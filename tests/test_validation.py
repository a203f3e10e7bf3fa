"""Argument validation on framework-neutral descriptions (no GPU needed)."""

import numpy as np
import pytest

import bsk_cupy as bsk
from bsk_cupy.validation import ArrayInfo, check_attention_args, check_out


def contiguous_strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def info(shape=(2, 4, 100, 64), dtype="float16", framework="torch", device=0, strides=None, ptr=1 << 20):
    return ArrayInfo(framework, tuple(shape), strides or contiguous_strides(shape), dtype, device, ptr)


def check(q=None, k=None, v=None, causal=False, scale=None, layout="bhsd", window=None):
    q = q or info()
    k = k or info()
    v = v or k
    return check_attention_args(q, k, v, causal=causal, scale=scale, layout=layout, window=window)


def test_valid_problem_in_both_layouts():
    p = check(q=info((2, 8, 100, 128)), k=info((2, 2, 300, 128)), causal=True)
    assert (p.batch, p.heads_q, p.heads_kv, p.seqlen_q, p.seqlen_k, p.head_dim) == (2, 8, 2, 100, 300, 128)
    assert p.scale == pytest.approx(128 ** -0.5)
    p = check(q=info((2, 100, 8, 64)), k=info((2, 300, 2, 64)), layout="bshd")
    assert (p.heads_q, p.seqlen_q, p.out_shape) == (8, 100, (2, 100, 8, 64))


def test_packed_qkv_view_strides_are_accepted():
    # (B, S, 3, H, D) memory sliced to q: (B, S, H, D) with strides (S*3*H*D, 3*H*D, D, 1)
    b, s, h, d = 2, 77, 4, 64
    strides = (s * 3 * h * d, 3 * h * d, d, 1)
    p = check(q=info((b, s, h, d), strides=strides), k=info((b, s, h, d), strides=strides), layout="bshd")
    assert p.seqlen_k == 77


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(q=info(dtype="float32")), TypeError, "q has dtype float32; allowed: float16, bfloat16"),
    (dict(k=info(device=None)), TypeError, "k is in host memory"),
    (dict(q=info((2, 4, 100))), ValueError, "q must be 4-D"),
    (dict(q=info((2, 4, 100, 96)), k=info((2, 4, 100, 96))), ValueError, "head dim .* must be one of"),
    (dict(q=info((2, 4, 0, 64))), ValueError, "empty dimension"),
    (dict(k=info((3, 4, 100, 64))), ValueError, "k has batch 3 but q has batch 2"),
    (dict(k=info((2, 3, 100, 64))), ValueError, r"q heads \(4\) must be a multiple of k/v heads \(3\)"),
    (dict(k=info((2, 4, 100, 64)), v=info((2, 4, 101, 64))), ValueError, "k and v must have the same shape"),
    (dict(k=info(framework="cupy")), TypeError, "one framework"),
    (dict(v=info(dtype="bfloat16")), TypeError, "share one dtype"),
    (dict(v=info(device=1)), ValueError, "one device"),
    (dict(q=info(strides=(25600, 6400, 1, 100))), ValueError, "contiguous in its last"),
    (dict(q=info(strides=(25600 * 2, 6400 * 2, 68, 1))), ValueError, "multiples of 8 elements"),
    (dict(q=info(strides=(0, 6400, 64, 1))), ValueError, "positive multiples"),
    (dict(q=info(ptr=(1 << 20) + 8)), ValueError, "16-byte aligned"),
    (dict(layout="sbhd"), ValueError, "layout must be one of"),
    (dict(causal=1), TypeError, "causal must be a bool"),
    (dict(causal=np.bool_(True)), TypeError, "causal must be a bool, got numpy.bool"),
    (dict(scale="0.1"), TypeError, "scale must be a Python float"),
    (dict(scale=float("nan")), ValueError, "scale must be a finite positive number"),
    (dict(scale=-0.5), ValueError, "scale must be a finite positive number"),
    (dict(scale=0.0), ValueError, "scale must be a finite positive number"),
    (dict(window=5), TypeError, "window must be None or a pair"),
    (dict(window=(1, 2, 3)), TypeError, "window must be None or a pair"),
    (dict(window=(-1, 0)), ValueError, "window left must be None or an int >= 0"),
    (dict(window=(0, True)), ValueError, "window right must be None or an int >= 0"),
    (dict(q=info((2, 4, 2**30, 64))), ValueError, r"sequence lengths must be < 2\*\*30"),
])
def test_bad_arguments_name_the_argument(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        check(**kwargs)


def test_window_is_normalised():
    assert check(window=(None, None)).window is None
    assert check(window=[3, None]).window == (3, None)
    assert check().window is None


def test_size_one_dims_may_have_any_stride():
    check(q=info((1, 1, 100, 64), strides=(7, 3, 64, 1)), k=info((1, 1, 100, 64)))


def test_numpy_inputs_are_rejected_before_any_gpu_work():
    x = np.zeros((1, 2, 8, 64), dtype=np.float16)
    with pytest.raises(TypeError, match="q is in host memory"):
        bsk.attention_forward(x, x, x)


def test_non_arrays_are_rejected():
    with pytest.raises(TypeError, match="q must be a torch tensor, CuPy array, JAX array"):
        bsk.attention_forward([1, 2], None, None)


def test_return_lse_must_be_bool():
    x = np.zeros((1, 2, 8, 64), dtype=np.float16)
    with pytest.raises(TypeError, match="return_lse"):
        bsk.attention_forward(x, x, x, return_lse="yes")


def _inputs():
    q = info((2, 4, 100, 64), ptr=1 << 20)
    k = info((2, 4, 300, 64), ptr=1 << 24)
    return q, k, k


@pytest.mark.parametrize("out,exc,match", [
    (info((2, 4, 100, 64), ptr=1 << 28), None, None),
    (info((2, 4, 100, 64), framework="cupy", ptr=1 << 28), TypeError, "out must be a torch array like q"),
    (info((2, 4, 100, 64), dtype="bfloat16", ptr=1 << 28), TypeError, "dtype float16"),
    (info((2, 4, 101, 64), ptr=1 << 28), ValueError, r"shape \(2, 4, 100, 64\)"),
    (info((2, 4, 100, 64), device=1, ptr=1 << 28), ValueError, "device cuda:0, got cuda:1"),
    (info((2, 4, 100, 64), device=None, ptr=1 << 28), ValueError, "got host memory"),
    (info((2, 4, 100, 64), strides=(25600, 64, 256, 1), ptr=1 << 28), ValueError, "must be contiguous"),
    (info((2, 4, 100, 64), ptr=(1 << 24) + 2 * 64 * 300 * 8 - 2), ValueError, "out overlaps k"),
    (info((2, 4, 100, 64), ptr=(1 << 24) + 2 * 64 * 300 * 8), None, None),       # right after k
    (info((2, 4, 100, 64), ptr=(1 << 20) - 2 * 51200), None, None),              # right before q
    (info((2, 4, 100, 64), ptr=(1 << 28) + 2), ValueError, "16-byte aligned address, as q does; it starts 2"),
])
def test_out_buffer_checks(out, exc, match):
    q, k, v = _inputs()
    problem = check_attention_args(q, k, v, causal=False, scale=None, layout="bhsd")
    if exc is None:
        check_out(out, problem, (q, k, v))
    else:
        with pytest.raises(exc, match=match):
            check_out(out, problem, (q, k, v))


def test_out_must_not_overlap_the_block_mask():
    q, k, v = _inputs()
    problem = check_attention_args(q, k, v, causal=False, scale=None, layout="bhsd")
    out = info((2, 4, 100, 64), ptr=1 << 28)
    end = (1 << 28) + 2 * 2 * 4 * 100 * 64
    check_out(out, problem, (q, k, v), ((end, end + 64), ((1 << 28) - 64, 1 << 28)))   # just after, just before
    with pytest.raises(ValueError, match="out overlaps block_mask"):
        check_out(out, problem, (q, k, v), ((end, end + 64), (end - 4, end + 60)))


def test_window_sides_take_numpy_ints_as_python_ints():
    """As BlockMask.sliding_window does: NumPy integers are taken, and the problem holds Python ints."""
    from bsk_cupy.validation import check_window

    window = check_window((np.int64(5), np.int32(0)))
    assert window == (5, 0) and all(type(side) is int for side in window)
    assert check_window([None, np.uint8(3)]) == (None, 3)
