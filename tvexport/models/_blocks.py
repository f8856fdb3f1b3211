"""Building blocks shared by the face and segmentation networks.

Module nesting and attribute names follow the reference implementation exactly, because they
are what the checkpoints' state-dict keys are made of.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import TVConv, tv_output_size

Size = tuple[int, int]


def strided(hw: Size, stride: int) -> Size:
    """Output (h, w) of a padded odd-kernel conv or pool (padding k // 2) with ``stride``: ceil(n / stride)."""
    return (tv_output_size(hw[0], 3, stride), tv_output_size(hw[1], 3, stride))


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10% down (MobileNetV2)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU(nn.Sequential):
    """conv (padding k//2) -> BN -> ReLU6."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )


class TVConvBNReLU(nn.Sequential):
    """TVConv -> BN -> ReLU6: the TV replacement of a depthwise ConvBNReLU."""

    def __init__(self, planes: int, hw: Size, stride: int = 1, **tv_kwargs: object):
        super().__init__(
            TVConv(planes, h=hw[0], w=hw[1], stride=stride, **tv_kwargs),  # type: ignore[arg-type]
            nn.BatchNorm2d(planes),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [pw expand] -> depthwise (plain conv, or TVConv when ``tv`` is given) -> pw-linear.

    ``hw`` is the block's output size (the TVConv's h, w).
    """

    def __init__(
        self, inp: int, oup: int, stride: int, hw: Size, expand_ratio: float, tv: dict[str, object] | None = None
    ):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.use_res_connect = stride == 1 and inp == oup
        hidden = int(round(inp * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden, kernel_size=1))
        if tv is None:
            layers.append(ConvBNReLU(hidden, hidden, stride=stride, groups=hidden))
        else:
            layers.append(TVConvBNReLU(hidden, hw, stride=stride, **tv))
        layers += [nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)
