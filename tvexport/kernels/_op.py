"""``torch.ops.tvexport.tv_dwconv``: the TV-depthwise op, Triton on CUDA, plain torch elsewhere."""

from __future__ import annotations

import torch

from ..errors import missing
from ..layers import _check_input, tv_depthwise


@torch.library.custom_op("tvexport::tv_dwconv", mutates_args=())
def tv_dwconv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """Translation-variant depthwise conv (see ``tvexport.layers``); the plain torch form off CUDA."""
    return tv_depthwise(x, weight, bias, stride=stride)


@tv_dwconv.register_kernel("cuda")
def _tv_dwconv_cuda(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    try:
        from ._triton import tv_dwconv_triton
    except ImportError:
        raise missing("triton", what="the CUDA TV kernel", extra="triton") from None
    return tv_dwconv_triton(x, weight, bias, stride=stride)


@tv_dwconv.register_fake
def _tv_dwconv_fake(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    _check_input(x, weight, stride)
    c, _, oh, ow = weight.shape
    return x.new_empty((x.shape[0], c, oh, ow))
