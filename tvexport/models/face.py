"""Face-recognition backbones of the reference (96x96 RGB in [-1, 1] -> 512-d embedding).

``tv`` is the dict of TVConv keyword arguments when the depthwise convs are TVConv, ``None``
for the plain depthwise (DWConv) baseline -- the reference's ``atom='base'``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import TVConv
from ._blocks import ConvBNReLU, InvertedResidual, make_divisible

FACE_INPUT = 96
EMBEDDING = 512

# t (expansion), c (channels), n (repeats), s (stride), output h=w of the block's depthwise conv
MOBILENETV2_SETTING = (
    (1, 16, 1, 1, 96),
    (6, 24, 2, 2, 48),
    (6, 32, 3, 2, 24),
    (6, 64, 4, 2, 12),
    (6, 96, 3, 1, 12),
    (6, 160, 3, 2, 6),
    (6, 320, 1, 1, 6),
)
SHUFFLENETV2_STAGES = {  # width -> stage output channels (conv1, stage2, stage3, stage4, conv5)
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
}
SHUFFLENETV2_REPEATS = (4, 8, 4)
SHUFFLENETV2_HW = (24, 12, 6)


class OutputLayer(nn.Module):
    """BN2d [-> Dropout] -> AvgPool(6) -> flatten -> Linear -> BN1d."""

    def __init__(self, channels: int, drop_ratio: float, feat_dim: int = EMBEDDING, size: int = 6):
        super().__init__()
        self.layer1: nn.Module = (
            nn.Sequential(nn.BatchNorm2d(channels), nn.Dropout(drop_ratio)) if drop_ratio > 0 else nn.BatchNorm2d(channels)
        )
        self.layer2 = nn.Sequential(nn.Linear(channels, feat_dim), nn.BatchNorm1d(feat_dim))
        self.pool = nn.AvgPool2d(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layer1(x))
        return self.layer2(x.flatten(1))


def mobilenetv2_channels(width: float) -> tuple[int, list[int]]:
    """(stem channels, output channels of each inverted-residual block) for a width multiplier."""
    stem = make_divisible(32 * width)
    outs = []
    for _, c, n, _, _ in MOBILENETV2_SETTING:
        outs += [make_divisible(c * width)] * n
    return stem, outs


class FaceMobileNetV2(nn.Module):
    def __init__(self, width: float = 1.0, *, tv: dict[str, object] | None = None, drop_ratio: float = 0.0):
        super().__init__()
        stem, _ = mobilenetv2_channels(width)
        last_channel = 512
        features: list[nn.Module] = [ConvBNReLU(3, stem, stride=1)]
        inp = stem
        for t, c, n, s, h_w in MOBILENETV2_SETTING:
            oup = make_divisible(c * width)
            for i in range(n):
                features.append(InvertedResidual(inp, oup, s if i == 0 else 1, h_w, t, tv=tv))
                inp = oup
        features.append(ConvBNReLU(inp, make_divisible(last_channel * max(1.0, width)), kernel_size=1))
        self.features = nn.Sequential(*features)
        self.output_layer = OutputLayer(last_channel, drop_ratio)
        _init_like_reference(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.features(x))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit; its depthwise convs are TVConv (``tv`` given) or plain depthwise."""

    def __init__(self, inp: int, oup: int, h_w: int, stride: int, tv: dict[str, object] | None):
        super().__init__()
        self.stride = stride
        branch = oup // 2
        if stride == 1 and inp != branch * 2:
            raise ValueError("a stride-1 ShuffleNetV2 unit needs inp == oup")
        if stride > 1:
            self.branch1 = nn.Sequential(
                self._depthwise(inp, h_w, stride, tv),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch, 1, 1, 0, bias=False),
                nn.BatchNorm2d(branch),
                nn.ReLU(inplace=True),
            )
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch, branch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
            self._depthwise(branch, h_w, stride, tv),
            nn.BatchNorm2d(branch),
            nn.Conv2d(branch, branch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
        )

    @staticmethod
    def _depthwise(channels: int, h_w: int, stride: int, tv: dict[str, object] | None) -> nn.Module:
        if tv is None:
            return nn.Conv2d(channels, channels, 3, stride, 1, bias=False, groups=channels)
        return TVConv(channels, h=h_w, w=h_w, stride=stride, **tv)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class FaceShuffleNetV2(nn.Module):
    def __init__(self, width: float = 1.0, *, tv: dict[str, object] | None = None, drop_ratio: float = 0.0):
        super().__init__()
        if width not in SHUFFLENETV2_STAGES:
            raise ValueError(f"ShuffleNetV2 width must be one of {sorted(SHUFFLENETV2_STAGES)}, got {width}")
        chans = SHUFFLENETV2_STAGES[width]
        self.conv1 = nn.Sequential(nn.Conv2d(3, chans[0], 3, 1, 1, bias=False), nn.BatchNorm2d(chans[0]), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inp = chans[0]
        for idx, (repeats, h_w, oup) in enumerate(zip(SHUFFLENETV2_REPEATS, SHUFFLENETV2_HW, chans[1:4])):
            units = [ShuffleUnit(inp, oup, h_w, 2, tv)] + [ShuffleUnit(oup, oup, h_w, 1, tv) for _ in range(repeats - 1)]
            setattr(self, f"stage{idx + 2}", nn.Sequential(*units))
            inp = oup
        self.conv5 = nn.Sequential(nn.Conv2d(inp, chans[4], 1, 1, 0, bias=False), nn.BatchNorm2d(chans[4]), nn.ReLU(inplace=True))
        self.output_layer = OutputLayer(chans[4], drop_ratio)
        _init_like_reference(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.output_layer(self.conv5(x))


def _init_like_reference(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, TVConv):
            nn.init.ones_(m.posi_map)
