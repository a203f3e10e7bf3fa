"""Host-side launch structures (CPU): the packed attention Params and the cuLaunchKernelEx structs.

The kernel static_asserts sizeof(Params) == 640 (a multiple of its 64-byte tensor-map alignment); these tests pin where the host writes each group of fields
(the same order as ``struct Params`` in kernels_cu/attn/params.cuh) and the CUDA driver ABI of the
``CUlaunchConfig`` / ``CUlaunchAttribute`` mirrors (cuda.h: 7 unsigned ints, then the stream, the attribute
pointer and their count; an attribute is an id padded to 8 bytes and a 64-byte value union).
"""

from __future__ import annotations

import ctypes
import struct

from bsk_cupy import launch


def test_param_groups_follow_each_other_inside_640_bytes():
    groups = [(launch._OFF_TAIL, launch._TAIL_FORMAT), (launch._OFF_WINDOW, launch._WINDOW_FORMAT),
              (launch._OFF_MASK, launch._MASK_FORMAT), (launch._OFF_SPLIT, launch._SPLIT_FORMAT),
              (launch._OFF_WORK, launch._WORK_FORMAT), (launch._OFF_HEIGHTS, launch._HEIGHTS_FORMAT),
              (launch._OFF_ROW_ORDER, launch._ROW_ORDER_FORMAT)]
    assert launch._OFF_TMA == (0, 128, 256) and launch._OFF_OUT == 384 and launch._OFF_LSE == 392
    end = launch._OFF_LSE + 8
    for offset, fmt in groups:
        assert offset == end, f"gap or overlap before offset {offset}"
        end = offset + struct.calcsize(fmt)
    assert end <= launch.PARAMS_BYTES == 640


def test_launch_config_matches_the_driver_abi():
    assert ctypes.sizeof(launch._LaunchAttribute) == 72
    assert launch._LaunchAttribute.value.offset == 8
    assert ctypes.sizeof(launch._LaunchConfig) == 56
    assert launch._LaunchConfig.shared_bytes.offset == 24
    assert launch._LaunchConfig.stream.offset == 32
    assert launch._LaunchConfig.attrs.offset == 40
    assert launch._LaunchConfig.num_attrs.offset == 48
