"""TVConv math: baked layers against the unbaked reference forward (unfold, generator each call)."""

from __future__ import annotations

import pytest
import torch

from tvexport.layers import BakedTVConv, TVConv, tv_depthwise, tv_depthwise_unfold, tv_output_size


def _random_tvconv(channels: int, k: int, stride: int, h: int, bias: bool, seed: int = 0) -> TVConv:
    torch.manual_seed(seed)
    layer = TVConv(channels, TVConv_k=k, stride=stride, TVConv_inter_chans=8, TVConv_inter_layers=1, TVConv_Bias=bias, h=h, w=h + 2)
    with torch.no_grad():
        layer.posi_map.normal_()  # ones would make every position equal and hide position bugs
        for m in layer.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0.0, 0.1)
    return layer.eval()


def _independent_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """Direct loops over output positions: the definition, nothing shared with the code under test."""
    c, kk, h, w = weight.shape
    k = int(kk**0.5)
    p = k // 2
    xp = torch.nn.functional.pad(x, (p, p, p, p)).double()
    out = torch.zeros(x.shape[0], c, h, w, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            patch = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k].reshape(x.shape[0], c, kk)
            out[:, :, i, j] = (patch * weight[:, :, i, j].double()).sum(-1)
    if bias is not None:
        out += bias.double()
    return out


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_baked_layer_equals_unbaked(k: int, stride: int, bias: bool) -> None:
    h = 7
    layer = _random_tvconv(6, k, stride, h, bias)
    x = torch.randn(3, 6, h * stride, (h + 2) * stride)
    baked = BakedTVConv.from_tvconv(layer)
    with torch.no_grad():
        ref = layer(x)
        got = baked(x)
        weight, bias_map = layer.generate()
        direct = _independent_reference(x, weight, bias_map, stride)
    assert baked.weight.shape == (6, k * k, h, h + 2)
    assert (baked.bias is not None) == bias
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ref.double(), direct, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("storage", [torch.float32, torch.float16], ids=["fp32-kernels", "fp16-kernels"])
def test_baked_layer_float16_activations(k: int, stride: int, bias: bool, storage: torch.dtype) -> None:
    """float16 in, float16 out, float32 accumulation: only the output rounding (2**-11) is lost."""
    h = 7
    layer = _random_tvconv(6, k, stride, h, bias)
    baked = BakedTVConv.from_tvconv(layer).to(storage)
    x = torch.randn(3, 6, h * stride, (h + 2) * stride).half()
    with torch.no_grad():
        got = baked(x)
        ref = _independent_reference(x.double(), baked.weight.double(), None if baked.bias is None else baked.bias.double(), stride)
    assert got.dtype == torch.float16 and got.shape == ref.shape
    scale = float(ref.abs().max())
    assert scale > 0.1
    err = float((got.double() - ref).abs().max())
    assert err <= 2 ** -11 * scale * 1.01, err / scale


def test_positions_really_differ() -> None:
    """Guard against a vacuous test: with random posi_map the kernels vary across positions."""
    weight, _ = _random_tvconv(4, 3, 1, 6, False).generate()
    assert (weight[..., 0, 0] - weight[..., 3, 4]).abs().max() > 1e-3


@pytest.mark.parametrize("stride", [1, 2])
def test_shift_form_equals_unfold_form(stride: int) -> None:
    torch.manual_seed(1)
    w = torch.randn(5, 25, 6, 6)
    b = torch.randn(5, 6, 6)
    x = torch.randn(2, 5, 6 * stride, 6 * stride)
    torch.testing.assert_close(tv_depthwise(x, w, b, stride=stride), tv_depthwise_unfold(x, w, b, stride=stride), rtol=1e-5, atol=1e-5)


def test_per_channel_bias_broadcasts() -> None:
    w = torch.randn(3, 9, 4, 4)
    b = torch.randn(3, 1, 1)
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(tv_depthwise(x, w, b), tv_depthwise(x, w) + b)


def test_wrong_input_size_is_refused() -> None:
    with pytest.raises(ValueError, match="trained input size"):
        tv_depthwise(torch.randn(1, 3, 10, 10), torch.randn(3, 9, 4, 4))


def test_reference_state_dict_layout() -> None:
    layer = TVConv(8, TVConv_k=3, stride=2, TVConv_Bias=True, h=12, w=12)
    sd = layer.state_dict()
    for name in ("TVConv_k", "TVConv_k_square", "stride", "channels", "h", "w"):
        assert sd[name].dtype == torch.int64 and sd[name].dim() == 0
    assert int(sd["TVConv_k_square"]) == 9 and int(sd["h"]) == 12
    assert sd["posi_map"].shape == (1, 4, 12, 12) and bool((sd["posi_map"] == 1).all())
    assert sd["weight_layers.0.0.weight"].shape == (64, 4, 3, 3)
    assert sd["weight_layers.3.1.weight"].shape == (64, 12, 12)  # LayerNorm over (C, h, w)
    assert sd["weight_layers.4.weight"].shape == (8 * 9, 64, 3, 3)
    assert "weight_layers.4.bias" not in sd and sd["bias_layers.4.weight"].shape == (8, 64, 3, 3)


def test_output_size() -> None:
    assert tv_output_size(96, 3, 2) == 48 and tv_output_size(96, 5, 1) == 96
