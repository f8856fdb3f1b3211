"""DeepLabV3+ with a dilated MobileNetV2 backbone (output stride 16), as in the reference's
optic disc/cup segmentation: 256x256 RGB in [-1, 1] -> logits (N, num_classes, 256, 256).

ASPP atoms: ``tvconv`` (each atrous branch becomes an inverted residual 320 -> 1920 -> TVConv at
16x16 -> 256), ``dwconv`` (same with a plain depthwise conv, the reference's ``DW``) and
``dense`` (the original dilated 3x3 convs, the reference's ``base``).

Everything but the TV layers is size-agnostic (ASPP image pooling is global and upsampled back,
the decoder upsamples to the low-level map, the logits to the input). ``input_size`` (256x256
unless re-baked for another) sets the TV layers' (h, w): the backbone's output size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import InvertedResidual, Size, strided

SEG_INPUT = 256
ASPP_RATES = (6, 12, 18)
_BACKBONE_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class _DilatedConvBNReLU(nn.Sequential):
    """conv without padding (the block pads explicitly) -> BN -> ReLU6."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, 0, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )


class _DilatedInvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, dilation: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_DilatedConvBNReLU(inp, hidden, kernel_size=1))
        layers += [
            _DilatedConvBNReLU(hidden, hidden, stride=stride, dilation=dilation, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        total = 2 * dilation  # effective kernel 3 + 2*(dilation-1), minus one
        self.input_padding = (total // 2, total - total // 2, total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(F.pad(x, self.input_padding))
        return x + out if self.use_res_connect else out


class _Backbone(nn.Module):
    """MobileNetV2 features split at block 4: ``low_level_features`` (stride 4) and
    ``high_level_features`` (stride 16, dilated). Indices of the original ``features`` are kept."""

    def __init__(self, output_stride: int = 16, input_size: Size = (SEG_INPUT, SEG_INPUT)):
        super().__init__()
        features: list[nn.Module] = [_DilatedConvBNReLU(3, 32, stride=2)]
        current_stride, dilation, inp = 2, 1, 32
        hw = ((input_size[0] - 3) // 2 + 1, (input_size[1] - 3) // 2 + 1)  # the first conv is unpadded
        for t, c, n, s in _BACKBONE_SETTING:
            previous_dilation = dilation
            if current_stride == output_stride:
                stride, dilation = 1, dilation * s
            else:
                stride, current_stride = s, current_stride * s
            hw = strided(hw, stride)  # the blocks pad their input (2 * dilation in all)
            for i in range(n):
                features.append(_DilatedInvertedResidual(inp, c, stride if i == 0 else 1, previous_dilation if i == 0 else dilation, t))
                inp = c
        self.low_level_features = nn.Sequential(*features[0:4])
        self.high_level_features = nn.Sequential()
        for idx in range(4, len(features)):
            self.high_level_features.add_module(str(idx), features[idx])
        self.output_size = hw  # of the high-level features, which the ASPP's TV layers see

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.low_level_features(x)
        return low, self.high_level_features(low)


class _ASPPBranch(nn.Sequential):
    def __init__(self, atom: str, in_channels: int, out_channels: int, dilation: int, tv: dict[str, object] | None, hw: Size):
        if atom == "dense":
            super().__init__(
                nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            )
        else:
            super().__init__(InvertedResidual(in_channels, out_channels, 1, hw, 6, tv=tv if atom == "tvconv" else None))


class _ASPPPooling(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class _ASPP(nn.Module):
    def __init__(self, atom: str, in_channels: int, tv: dict[str, object] | None, hw: Size, out_channels: int = 256):
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))]
            + [_ASPPBranch(atom, in_channels, out_channels, rate, tv, hw) for rate in ASPP_RATES]
            + [_ASPPPooling(in_channels, out_channels)]
        )
        self.project = nn.Sequential(
            nn.Conv2d(5 * out_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.Dropout(0.1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


class _HeadV3Plus(nn.Module):
    def __init__(self, atom: str, num_classes: int, tv: dict[str, object] | None, aspp_hw: Size, in_channels: int = 320, low_level_channels: int = 24):
        super().__init__()
        self.project = nn.Sequential(nn.Conv2d(low_level_channels, 48, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU(inplace=True))
        self.aspp = _ASPP(atom, in_channels, tv, aspp_hw)
        self.classifier = nn.Sequential(
            nn.Conv2d(304, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256), nn.ReLU(inplace=True), nn.Conv2d(256, num_classes, 1)
        )

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        low = self.project(low)
        high = F.interpolate(self.aspp(high), size=low.shape[2:], mode="bilinear", align_corners=False)
        return self.classifier(torch.cat([low, high], dim=1))


class DeepLabV3PlusMobileNetV2(nn.Module):
    def __init__(self, *, atom: str = "tvconv", tv: dict[str, object] | None = None, num_classes: int = 2, input_size: Size = (SEG_INPUT, SEG_INPUT)):
        super().__init__()
        if atom not in ("tvconv", "dwconv", "dense"):
            raise ValueError(f"unknown ASPP atom {atom!r}")
        self.backbone = _Backbone(input_size=input_size)
        self.classifier = _HeadV3Plus(atom, num_classes, tv, self.backbone.output_size)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:  # meta: shapes only (see face._init_like_reference)
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.classifier(*self.backbone(x))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
