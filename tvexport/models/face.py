"""Face-recognition backbones of the reference (96x96 RGB in [-1, 1] -> 512-d embedding).

``tv`` is the dict of TVConv keyword arguments when the depthwise convs are TVConv, ``None``
for the plain depthwise (DWConv) baseline -- the reference's ``atom='base'``. ``input_size`` is
the (H, W) the network is built for (96x96, the trained size, unless re-baked for another): each
TV layer's (h, w) follows from it through the strides before it, each stride-2 conv or pool
rounding up (ceil(n / 2)) as padded convs do.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import TVConv
from ._blocks import ConvBNReLU, InvertedResidual, Size, make_divisible, strided

FACE_INPUT = 96
FINAL_MAP = 6  # the final feature map at 96x96 (total stride 16), pooled by the reference's AvgPool2d(6)
EMBEDDING = 512

# t (expansion), c (channels), n (repeats), s (stride of the first repeat); at 96x96 the blocks'
# depthwise convs output 96, 48, 24, 12, 12, 6, 6
MOBILENETV2_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
SHUFFLENETV2_STAGES = {  # width -> stage output channels (conv1, stage2, stage3, stage4, conv5)
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
}
SHUFFLENETV2_REPEATS = (4, 8, 4)  # stage outputs at 96x96: 24, 12, 6


class OutputLayer(nn.Module):
    """BN2d [-> Dropout] -> average pool -> flatten -> Linear -> BN1d.

    The reference pools with AvgPool2d(6): a fixed 6x6 window, which at 96x96 is the whole final
    map. At another input size the final map is ``final`` (h, w) != 6x6 and the head averages the
    whole map instead (AdaptiveAvgPool2d(1)), the same function at 96x96; either way the Linear
    gets C*1*1 features and the embedding keeps its 512 dimensions.
    """

    def __init__(self, channels: int, drop_ratio: float, feat_dim: int = EMBEDDING, final: Size = (FINAL_MAP, FINAL_MAP)):
        super().__init__()
        self.layer1: nn.Module = (
            nn.Sequential(nn.BatchNorm2d(channels), nn.Dropout(drop_ratio)) if drop_ratio > 0 else nn.BatchNorm2d(channels)
        )
        self.layer2 = nn.Sequential(nn.Linear(channels, feat_dim), nn.BatchNorm1d(feat_dim))
        self.pool: nn.Module = nn.AvgPool2d(FINAL_MAP) if final == (FINAL_MAP, FINAL_MAP) else nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layer1(x))
        return self.layer2(x.flatten(1))


def mobilenetv2_channels(width: float) -> tuple[int, list[int]]:
    """(stem channels, output channels of each inverted-residual block) for a width multiplier."""
    stem = make_divisible(32 * width)
    outs = []
    for _, c, n, _ in MOBILENETV2_SETTING:
        outs += [make_divisible(c * width)] * n
    return stem, outs


class FaceMobileNetV2(nn.Module):
    def __init__(
        self, width: float = 1.0, *, tv: dict[str, object] | None = None, drop_ratio: float = 0.0, input_size: Size = (FACE_INPUT, FACE_INPUT)
    ):
        super().__init__()
        stem, _ = mobilenetv2_channels(width)
        last_channel = 512
        features: list[nn.Module] = [ConvBNReLU(3, stem, stride=1)]
        inp, hw = stem, input_size
        for t, c, n, s in MOBILENETV2_SETTING:
            oup = make_divisible(c * width)
            hw = strided(hw, s)
            for i in range(n):
                features.append(InvertedResidual(inp, oup, s if i == 0 else 1, hw, t, tv=tv))
                inp = oup
        features.append(ConvBNReLU(inp, make_divisible(last_channel * max(1.0, width)), kernel_size=1))
        self.features = nn.Sequential(*features)
        self.output_layer = OutputLayer(last_channel, drop_ratio, final=hw)
        _init_like_reference(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.features(x))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit; its depthwise convs are TVConv (``tv`` given) or plain depthwise."""

    def __init__(self, inp: int, oup: int, hw: Size, stride: int, tv: dict[str, object] | None):
        super().__init__()
        self.stride = stride
        branch = oup // 2
        if stride == 1 and inp != branch * 2:
            raise ValueError("a stride-1 ShuffleNetV2 unit needs inp == oup")
        if stride > 1:
            self.branch1 = nn.Sequential(
                self._depthwise(inp, hw, stride, tv),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch, 1, 1, 0, bias=False),
                nn.BatchNorm2d(branch),
                nn.ReLU(inplace=True),
            )
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch, branch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
            self._depthwise(branch, hw, stride, tv),
            nn.BatchNorm2d(branch),
            nn.Conv2d(branch, branch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
        )

    @staticmethod
    def _depthwise(channels: int, hw: Size, stride: int, tv: dict[str, object] | None) -> nn.Module:
        if tv is None:
            return nn.Conv2d(channels, channels, 3, stride, 1, bias=False, groups=channels)
        return TVConv(channels, h=hw[0], w=hw[1], stride=stride, **tv)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class FaceShuffleNetV2(nn.Module):
    def __init__(
        self, width: float = 1.0, *, tv: dict[str, object] | None = None, drop_ratio: float = 0.0, input_size: Size = (FACE_INPUT, FACE_INPUT)
    ):
        super().__init__()
        if width not in SHUFFLENETV2_STAGES:
            raise ValueError(f"ShuffleNetV2 width must be one of {sorted(SHUFFLENETV2_STAGES)}, got {width}")
        chans = SHUFFLENETV2_STAGES[width]
        self.conv1 = nn.Sequential(nn.Conv2d(3, chans[0], 3, 1, 1, bias=False), nn.BatchNorm2d(chans[0]), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inp, hw = chans[0], strided(input_size, 2)  # conv1 (stride 1), maxpool (stride 2)
        for idx, (repeats, oup) in enumerate(zip(SHUFFLENETV2_REPEATS, chans[1:4])):
            hw = strided(hw, 2)
            units = [ShuffleUnit(inp, oup, hw, 2, tv)] + [ShuffleUnit(oup, oup, hw, 1, tv) for _ in range(repeats - 1)]
            setattr(self, f"stage{idx + 2}", nn.Sequential(*units))
            inp = oup
        self.conv5 = nn.Sequential(nn.Conv2d(inp, chans[4], 1, 1, 0, bias=False), nn.BatchNorm2d(chans[4]), nn.ReLU(inplace=True))
        self.output_layer = OutputLayer(chans[4], drop_ratio, final=hw)
        _init_like_reference(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.output_layer(self.conv5(x))


def _init_like_reference(model: nn.Module) -> None:
    """The reference's random init. Skipped on the meta device (a network built there holds
    shapes only, for a state dict to fill), where ``normal_`` alone costs about 1.5 s per process:
    torch imports torch._dynamo to run it."""
    if next(model.parameters()).is_meta:
        return
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
