"""TMA map geometry (pure Python): every strided view maps (d, s, h, b) to the right element, with the
coordinate placement the kernel uses (kernels_cu/attn/load.cuh, load_chunk)."""

import itertools
import random

import pytest

from bsk_cupy.launch import tensor_map_layout


def kernel_coords(coord_order: int, d: int, s: int, h: int, b: int) -> tuple[int, int, int, int]:
    """Python copy of load_chunk's selection of (c1, c2, c3) from coord_order."""
    ps, ph = coord_order & 3, (coord_order >> 2) & 3
    pick = [s if ps == i else (h if ph == i else b) for i in (1, 2, 3)]
    return (d, *pick)


def check(shape, strides, box_rows=128):
    geometry = tensor_map_layout(shape, strides, box_rows)
    assert all(x % 16 == 0 and x > 0 for x in geometry.strides_bytes)
    assert list(geometry.strides_bytes) == sorted(geometry.strides_bytes) or 1 in geometry.dims
    order = geometry.coord_order
    assert sorted([order & 3, (order >> 2) & 3, (order >> 4) & 3]) == [1, 2, 3]
    assert geometry.box[order & 3] == box_rows and geometry.box[0] == 64
    b_, h_, s_, d_ = shape
    map_strides = (2,) + geometry.strides_bytes
    rng = random.Random(0)
    for _ in range(50):
        d, s, h, b = rng.randrange(d_), rng.randrange(s_), rng.randrange(h_), rng.randrange(b_)
        coords = kernel_coords(order, d, s, h, b)
        assert all(c < n for c, n in zip(coords, geometry.dims))
        address = sum(c * st for c, st in zip(coords, map_strides))
        expected = 2 * (b * strides[0] + h * strides[1] + s * strides[2] + d)
        assert address == expected


def test_contiguous_bhsd():
    check((2, 4, 100, 64), (25600, 6400, 64, 1))
    assert tensor_map_layout((2, 4, 100, 64), (25600, 6400, 64, 1), 128).dims == (64, 100, 4, 2)


def test_contiguous_bshd_seen_as_bhsd():
    # (B, S, H, D) memory: stride of h is D, of s is H*D
    check((2, 4, 100, 64), (25600, 64, 256, 1))
    assert tensor_map_layout((2, 4, 100, 64), (25600, 64, 256, 1), 128).dims == (64, 4, 100, 2)


def test_packed_qkv_views():
    b, s, h, d = 3, 77, 4, 128
    check((b, h, s, d), (s * 3 * h * d, d, 3 * h * d, 1))


@pytest.mark.parametrize("ones", [c for r in range(1, 4) for c in itertools.combinations("bhs", r)])
def test_size_one_dimensions_get_a_harmless_stride(ones):
    shape = [2, 3, 50, 64]
    for axis in ones:
        shape["bhs".index(axis)] = 1
    b, h, s, d = shape
    check(tuple(shape), (h * s * d, s * d, d, 1))
