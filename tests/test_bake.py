"""Baking is exact: baked == unbaked (the reference forward) for every family, k, stride, bias, dtype."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import tvexport
from conftest import make_model, write_checkpoint
from tvexport.bake import bake_model, fold_batchnorms, load_baked, save_baked
from tvexport.errors import TvexportError
from tvexport.layers import BakedTVConv, TVConv
from tvexport.models import TVSettings

CASES = [
    ("face_mobilenetv2_x0_1", TVSettings(inter_chans=8, inter_layers=1)),
    ("face_mobilenetv2_x0_1", TVSettings(k=5, bias=True, inter_chans=8, inter_layers=1)),
    ("face_shufflenetv2_x0_5", TVSettings(k=5, bias=True, inter_chans=8, inter_layers=1)),
    ("face_shufflenetv2_x0_5", TVSettings(k=3, bias=False, inter_chans=8, inter_layers=1)),
    ("deeplabv3plus_mobilenetv2", TVSettings(bias=True, inter_chans=8, inter_layers=1)),
]


@pytest.mark.parametrize("name,tv", CASES, ids=[f"{n}-k{t.k}-bias{int(t.bias)}" for n, t in CASES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_baked_equals_unbaked(name: str, tv: TVSettings, dtype: torch.dtype) -> None:
    model = make_model(name, tv=tv)
    strides = {m.geometry.stride for m in model.modules() if isinstance(m, TVConv)}
    result = bake_model(model, dtype=dtype, batch=2)
    assert result.report is not None and result.report.ok, result.report.worst
    baked = result.model
    assert not any(isinstance(m, TVConv) for m in baked.modules())
    assert all(m.weight.dtype == dtype for m in baked.modules() if isinstance(m, BakedTVConv))
    # Independent of the report: a different input batch and seed, compared directly.
    gen = torch.Generator().manual_seed(11)
    x = torch.rand((3, *model.tvexport_config.input_shape), generator=gen) * 2 - 1
    with torch.no_grad():
        ref, got = model(x), baked(x)
    rel = float((got - ref).abs().max() / ref.abs().max())
    assert rel <= (1e-5 if dtype == torch.float32 else 1e-3), rel
    if "deeplab" not in name:
        assert strides == {1, 2}


def test_verification_catches_a_wrong_bake(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: kernels read at the wrong positions (a stride-2 style row mix-up)."""
    original = BakedTVConv.from_tvconv.__func__

    def shifted(cls, layer):  # type: ignore[no-untyped-def]
        baked = original(cls, layer)
        baked.weight.copy_(torch.roll(baked.weight, shifts=1, dims=2))
        return baked

    monkeypatch.setattr(BakedTVConv, "from_tvconv", classmethod(shifted))
    report = bake_model(make_model()).report
    assert report is not None and not report.ok
    assert report.worst.max_rel > 1e-3


def _scale_kernels_when_baked(monkeypatch: pytest.MonkeyPatch, model: nn.Module, layer_name: str, factor: float) -> None:
    """Make the bake scale one TV layer's kernels by ``factor`` (a controlled, tiny error)."""
    original = BakedTVConv.from_tvconv.__func__
    posi_map = model.get_submodule(layer_name).posi_map  # random per layer; bake works on a copy

    def scaled(cls, layer):  # type: ignore[no-untyped-def]
        baked = original(cls, layer)
        if torch.equal(layer.posi_map, posi_map):
            baked.weight.mul_(factor)
        return baked

    monkeypatch.setattr(BakedTVConv, "from_tvconv", classmethod(scaled))


@pytest.mark.parametrize("factor,ok", [(1 + 2e-6, True), (1 + 3e-5, False)])
def test_float32_gate_is_1e_5(monkeypatch: pytest.MonkeyPatch, factor: float, ok: bool) -> None:
    """The default float32 gate sits at 1e-5 relative: 2e-6 passes, 3e-5 fails."""
    model = make_model()
    _scale_kernels_when_baked(monkeypatch, model, "features.3.conv.1.0", factor)
    report = bake_model(model).report
    assert report is not None and report.rtol == 1e-5
    assert report.ok is ok, report.worst


def test_per_layer_report_names_the_wrong_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each TV layer is checked on its own: only the corrupted one exceeds the tolerance."""
    model = make_model()
    _scale_kernels_when_baked(monkeypatch, model, "features.5.conv.1.0", 1.01)
    report = bake_model(model).report
    assert report is not None and not report.ok
    by_name = {e.name: e for e in report.layers}
    assert len(by_name) == 17
    assert by_name["features.5.conv.1.0"].max_rel > 5e-3
    assert all(e.max_rel <= 1e-5 for n, e in by_name.items() if n != "features.5.conv.1.0")


def test_bias_is_not_dropped() -> None:
    model = make_model(tv=TVSettings(bias=True, inter_chans=8, inter_layers=1))
    result = bake_model(model, fold_bn=False)
    assert result.report is not None and result.report.ok
    layers = [m for m in result.model.modules() if isinstance(m, BakedTVConv)]
    assert all(m.bias is not None and m.bias.shape == m.weight.shape[:1] + m.weight.shape[2:] for m in layers)


def test_fold_bn_switch() -> None:
    model = make_model()
    folded = bake_model(model)
    kept = bake_model(model, fold_bn=False)
    count = lambda m: sum(isinstance(x, (nn.BatchNorm1d, nn.BatchNorm2d)) for x in m.modules())  # noqa: E731
    assert count(kept.model) == count(model) and kept.folded == []
    assert count(folded.model) == 1  # only output_layer.layer1 (BN after ReLU6) cannot fold backwards
    assert kept.report is not None and kept.report.ok


def test_fold_batchnorms_on_plain_convs() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)).eval()
    for bn in (net[1], net[4]):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.normal_()
        bn.bias.data.normal_()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = net(x)
        pairs = fold_batchnorms(net)
        torch.testing.assert_close(net(x), ref, rtol=1e-5, atol=1e-5)
    assert pairs == [("0", "1"), ("3", "4")]


def test_baked_file(tmp_path: Path) -> None:
    model = make_model(tv=TVSettings())  # the reference's generator size: generators dominate the file
    src = write_checkpoint(model, tmp_path / "face.ckpt", "lightning")
    # float16 storage of 17 layers of full-size kernels lands near 1e-3 relative at the embedding
    # (rounding accumulates); the file format, not the tolerance, is under test here.
    result = bake_model(tvexport.load_checkpoint(src), dtype=torch.float16, rtol=3e-3)
    out = save_baked(result, tmp_path / "face.baked.pt", source=src)
    raw = torch.load(out, weights_only=True)  # plain weights_only, no allow-list needed
    assert raw["format"] == "tvexport.baked" and raw["arch"]["name"] == "face_mobilenetv2_x0_1"
    assert not any("weight_layers" in k or "posi_map" in k or "bias_layers" in k for k in raw["state_dict"])
    assert raw["bake"]["report"]["ok"] and raw["bake"]["dtype"] == "float16"
    assert out.stat().st_size < src.stat().st_size / 5
    loaded = load_baked(out)
    x = torch.rand(2, 3, 96, 96) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), result.model(x), rtol=1e-6, atol=1e-6)
        ref = model(x)
    assert float((loaded(x) - ref).abs().max() / ref.abs().max()) < 3e-3
    assert tvexport.load_checkpoint(out).training is False
    with pytest.raises(TvexportError, match="not a baked file"):
        load_baked(src)


def test_float16_overflow_is_refused() -> None:
    model = make_model()
    with torch.no_grad():
        layer = model.features[1].conv[0][0]
        layer.weight_layers[-1].weight.mul_(1e6)
    with pytest.raises(TvexportError, match="overflows float16"):
        bake_model(model, dtype=torch.float16, verify=False)


def test_nonfinite_weights() -> None:
    model = make_model()
    with torch.no_grad():
        model.features[3].conv[1][0].posi_map[0, 0, 1, 1] = float("inf")
    with pytest.raises(TvexportError, match="NaN/Inf.*--allow-nonfinite"):
        bake_model(model)
    assert bake_model(model, allow_nonfinite=True, verify=False).model is not None
