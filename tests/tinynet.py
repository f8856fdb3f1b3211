"""A tiny TVConv network with a zoo config (face 3x96x96 input) for tests that compile code:
one TV layer (k, stride 1 or 2, optional bias map) between convs, BatchNorms to fold, random posi_map.
Inductor and AOTInductor compile it in seconds, where a zoo network takes a minute."""

from __future__ import annotations

import torch
from torch import nn

from tvexport.layers import TVConv, tv_output_size
from tvexport.models import ArchConfig
from tvexport.testing import randomize_


def tiny_tvnet(*, k: int = 3, stride: int = 2, bias: bool = True, atom: str = "tvconv", seed: int = 0, input_size: tuple[int, int] = (96, 96)) -> nn.Module:
    """``input_size`` other than 96x96: the network as re-baked for that size (TV layer sized for it)."""
    torch.manual_seed(seed)
    h, w = (tv_output_size(tv_output_size(n, 3, 2), k, stride) for n in input_size)
    if atom == "tvconv":
        mid: nn.Module = TVConv(4, TVConv_k=k, stride=stride, TVConv_inter_chans=8, TVConv_inter_layers=1, TVConv_Bias=bias, h=h, w=w)
    else:
        mid = nn.Conv2d(4, 4, k, stride, k // 2, groups=4, bias=False)
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU6()),
        nn.Sequential(mid, nn.BatchNorm2d(4), nn.ReLU6()),
        nn.Conv2d(4, 6, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    )
    cfg = ArchConfig("face_mobilenetv2", width=0.1, atom="tvconv" if atom == "tvconv" else "dwconv").with_input_size(input_size)
    model.tvexport_config = cfg  # type: ignore[assignment]
    return randomize_(model, seed=seed).eval()
