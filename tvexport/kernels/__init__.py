"""GPU kernels for the TV op: a fused, memory-bound Triton kernel and the torch op that runs it.

``tv_dwconv(x, weight, bias, stride, scale=None)`` is ``torch.ops.tvexport.tv_dwconv``: the Triton
kernel on CUDA tensors, the plain torch implementation elsewhere. Kernels may be float32, float16
or int8 with float32 scales (C, k*k, 1, 1); sums are float32, the output has x's dtype. Importing this package registers
the op but does not import triton (the CUDA kernel imports it on first use); launch-geometry
helpers live in ``tvexport.kernels._config`` and need neither triton nor a GPU.
"""

from __future__ import annotations

import functools
import importlib.util

from ._config import BIAS_CHANNEL, BIAS_MAP, BIAS_NONE, LaunchConfig, aot_configs, bias_mode, launch_config
from ._op import tv_dwconv

__all__ = [
    "BIAS_CHANNEL",
    "BIAS_MAP",
    "BIAS_NONE",
    "LaunchConfig",
    "aot_configs",
    "bias_mode",
    "launch_config",
    "triton_available",
    "tv_dwconv",
]


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """Whether triton can be imported (checked without importing it)."""
    return importlib.util.find_spec("triton") is not None
