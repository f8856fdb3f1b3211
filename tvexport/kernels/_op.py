"""``torch.ops.tvexport.tv_dwconv``: the TV-depthwise op, Triton on CUDA, plain torch elsewhere."""

from __future__ import annotations

import torch

from .._depthwise import _check_input, check_scale, tv_depthwise
from ..errors import missing


@torch.library.custom_op("tvexport::tv_dwconv", mutates_args=())
def tv_dwconv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Translation-variant depthwise conv (see ``tvexport._depthwise``); the plain torch form off CUDA.

    ``weight`` is float32, float16 or int8 with a float32 ``scale`` (C, k*k, 1, 1); the output has
    ``x``'s dtype (float32 accumulation on both paths).
    """
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    out = tv_depthwise(x.to(compute), weight, bias, stride=stride, scale=scale)
    return out.to(x.dtype)


@tv_dwconv.register_kernel("cuda")
def _tv_dwconv_cuda(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, scale: torch.Tensor | None = None
) -> torch.Tensor:
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
    return x.new_empty((x.shape[0], c, oh, ow))
