"""``torch.ops.tvexport.tv_dwconv``: the TV-depthwise op, Triton on CUDA, plain torch elsewhere."""

from __future__ import annotations

import torch

from .._depthwise import PLUGIN_ID, _check_input, bias_is_map, check_scale, tv_depthwise
from ..errors import missing

# The dtypes the Triton kernel reads (tv_dwconv_triton refuses others): activations and bias,
# kernels. Any other combination takes the torch form on CUDA too, as it does off CUDA.
TRITON_ACTIVATIONS = (torch.float32, torch.float16)
TRITON_KERNELS = (torch.float32, torch.float16, torch.int8)


def _torch_form(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, scale: torch.Tensor | None
) -> torch.Tensor:
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    out = tv_depthwise(x.to(compute), weight, bias, stride=stride, scale=scale)
    return out.to(x.dtype)


@torch.library.custom_op(PLUGIN_ID, mutates_args=())  # the name every runtime's node has
def tv_dwconv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Translation-variant depthwise conv (see ``tvexport._depthwise``); the plain torch form off CUDA.

    ``weight`` is float32, float16 or int8 with a float32 ``scale`` (C, k*k, 1, 1); ``bias`` is
    None, a (C, h, w) map or a per-channel (C, 1, 1) vector. A 1-D (C,) bias raises ValueError on
    every path (CPU, CUDA, the TensorRT plugin): torch would add it along W, the kernels per
    channel. The output has ``x``'s dtype (float32 accumulation on both paths). On CUDA the Triton kernel runs when ``x``
    and ``bias`` are float32/float16 and ``weight`` float32, float16 or int8; other dtypes
    (bfloat16, float64) take the torch form there too.
    """
    return _torch_form(x, weight, bias, stride, scale)


@tv_dwconv.register_kernel("cuda")
def _tv_dwconv_cuda(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, scale: torch.Tensor | None = None
) -> torch.Tensor:
    if x.dtype not in TRITON_ACTIVATIONS or weight.dtype not in TRITON_KERNELS or (bias is not None and bias.dtype not in TRITON_ACTIVATIONS):
        return _torch_form(x, weight, bias, stride, scale)
    try:
        from ._triton import tv_dwconv_triton
    except ImportError:
        raise missing("triton", what="the CUDA TV kernel", extra="triton") from None
    return tv_dwconv_triton(x, weight, bias, stride=stride, scale=scale)


@tv_dwconv.register_fake
def _tv_dwconv_fake(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, scale: torch.Tensor | None = None
) -> torch.Tensor:
    _check_input(x, weight, stride)
    check_scale(weight, scale)
    c, _, oh, ow = weight.shape
    if bias is not None:
        bias_is_map(bias.shape, c, oh, ow)
    return x.new_empty((x.shape[0], c, oh, ow))
