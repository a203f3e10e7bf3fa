"""bsk_cupy: hand-written Hopper (sm_90a) attention kernels, compiled at run time by NVRTC.

>>> import bsk_cupy as bsk
>>> out = bsk.attention_forward(q, k, v, causal=True)          # doctest: +SKIP
"""

from .api import attention_forward
from .block_mask import BlockMask, register_with_jax
from .reference import attention_reference
from .sparsek import sparsek_attention, sparsek_select
from .version import __version__

register_with_jax()  # a JAX pytree when JAX is already imported (see BlockMask's docstring)

__all__ = ["BlockMask", "__version__", "attention_forward", "attention_reference", "sparsek_attention",
           "sparsek_select"]
