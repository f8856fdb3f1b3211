"""Baking is exact: the baked model is no worse than the unbaked float32 network against the
unbaked network in float64, for every family, k, stride, bias and storage dtype; and every real
bake bug (positions, tap order, stride-2 offsets, a dropped bias, a wrong BatchNorm fold) fails."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import pytest
import torch
from torch import nn

import tvexport
from conftest import SMALL_TV, make_model, write_checkpoint
from tvexport import _depthwise as depthwise_module
from tvexport.accuracy import DEFAULT_RTOL, Reference, random_inputs
from tvexport.bake import BakeMismatch, bake_checkpoint, bake_model, check_bake, fold_batchnorms, load_baked, save_baked
from tvexport.errors import TvexportError
from tvexport.layers import BakedTVConv, TVConv
from tvexport.models import TVSettings, list_models
from tvexport.testing import randomize_

bake_module = importlib.import_module("tvexport.bake")  # ``tvexport.bake`` itself is the bake function

CASES = [
    ("face_mobilenetv2_x0_1", TVSettings(inter_chans=8, inter_layers=1)),
    ("face_mobilenetv2_x0_1", TVSettings(k=5, bias=True, inter_chans=8, inter_layers=1)),
    ("face_shufflenetv2_x0_5", TVSettings(k=5, bias=True, inter_chans=8, inter_layers=1)),
    ("face_shufflenetv2_x0_5", TVSettings(k=3, bias=False, inter_chans=8, inter_layers=1)),
    ("deeplabv3plus_mobilenetv2", TVSettings(bias=True, inter_chans=8, inter_layers=1)),
]


def _float64_copy_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The unbaked network in float64 the plainest way (generators on every call, torch's own
    convolutions): independent of ``accuracy.Reference``."""
    with torch.no_grad():
        return copy.deepcopy(model).double()(x.double())


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


@pytest.mark.parametrize("name,tv", CASES, ids=[f"{n}-k{t.k}-bias{int(t.bias)}" for n, t in CASES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_baked_equals_unbaked(name: str, tv: TVSettings, dtype: torch.dtype) -> None:
    model = make_model(name, tv=tv)
    strides = {m.geometry.stride for m in model.modules() if isinstance(m, TVConv)}
    result = bake_model(model, dtype=dtype, batch=2)
    report = result.report
    assert report is not None and report.ok, report.worst
    assert report.float64_bake_max_rel < 1e-12  # the bake's algebra, before rounding to the storage dtype
    assert report.tolerance.rtol == DEFAULT_RTOL["float32" if dtype == torch.float32 else "float16_kernels"]
    baked = result.model
    assert not any(isinstance(m, TVConv) for m in baked.modules())
    assert all(m.weight.dtype == dtype for m in baked.modules() if isinstance(m, BakedTVConv))
    # Independent of the report: another input, the plain float64 copy as the truth, the same rule.
    x = random_inputs((1 if "deeplab" in name else 3, *model.tvexport_config.input_shape), seed=11)  # torch's float64 depthwise is slow
    truth = _float64_copy_output(model, x)
    with torch.no_grad():
        got, original = baked(x), model(x)
    if dtype == torch.float16:  # the float16 yardstick: the float32 original with its kernels in float16
        original = Reference(model, kernels=torch.float16).float32(x)
    assert _max_abs(got, truth) <= 2 * _max_abs(original, truth) + report.tolerance.rtol * float(truth.abs().max())
    if "deeplab" not in name:
        assert strides == {1, 2}


@pytest.mark.parametrize("name", ["face_mobilenetv2_x0_1", "face_shufflenetv2_x0_5"])
@pytest.mark.parametrize("atom", ["tvconv", "dwconv"])
def test_truth_is_the_unbaked_network_in_float64(name: str, atom: str) -> None:
    """Reference hoists each generator and writes depthwise convs out by definition: the same
    function as the plain float64 copy, to float64 rounding."""
    model = make_model(name, atom=atom)
    x = random_inputs((2, *model.tvexport_config.input_shape), seed=3)
    ref = Reference(model)
    plain = _float64_copy_output(model, x)
    assert _max_abs(ref.truth(x), plain) <= 1e-13 * float(plain.abs().max())
    with torch.no_grad():
        assert torch.equal(ref.float32(x), model(x))  # the float32 original is the model itself


def test_reference_keeps_the_callers_training_modes() -> None:
    """Before: ``Reference(model)`` switched the caller's model to eval mode. It works on copies,
    so each module keeps its mode, and the reference is the eval-mode network all the same."""
    model = make_model(tv=TVSettings(bias=True, inter_chans=8, inter_layers=1)).train()
    model.features[0].eval()  # a mixed mode comes back as it was
    modes = {name: m.training for name, m in model.named_modules()}
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    x = random_inputs((2, *model.tvexport_config.input_shape), seed=5)
    ref = Reference(model, kernels=torch.float16)
    truth, float32 = ref.truth(x), ref.float32(x)  # the float32 original is made on first use
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())  # no BatchNorm statistics updated
    evaluated = Reference(copy.deepcopy(model).eval(), kernels=torch.float16)
    assert torch.equal(truth, evaluated.truth(x)) and torch.equal(float32, evaluated.float32(x))


@pytest.mark.parametrize("kernels", [torch.float32, torch.float16])
def test_reference_is_of_the_model_as_constructed(kernels: torch.dtype) -> None:
    """Before: the float32 original was copied from the caller's model on first use, so weights
    changed after ``Reference(model)`` (a TV generator's, a BatchNorm's statistics) went into it but
    not into the float64 truth, made at construction. Both are of the model as constructed now."""
    model = make_model(tv=TVSettings(bias=True, inter_chans=8, inter_layers=1))
    x = random_inputs((2, *model.tvexport_config.input_shape), seed=6)
    expected = Reference(copy.deepcopy(model), kernels=kernels)
    ref = Reference(model, kernels=kernels)
    tv = next(m for m in model.modules() if isinstance(m, TVConv))
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        for p in tv.parameters():
            p.mul_(1.5)
        bn.running_var.mul_(4.0)
    assert torch.equal(ref.truth(x), expected.truth(x))
    assert torch.equal(ref.float32(x), expected.float32(x))
    assert torch.equal(ref.with_kernels(torch.int8).float32(x), expected.with_kernels(torch.int8).float32(x))


@pytest.mark.parametrize("stride,dilation,padding", [(1, 1, 1), (2, 1, 1), (1, 2, 0), (2, 3, 3)])
def test_depthwise_by_definition(stride: int, dilation: int, padding: int) -> None:
    from tvexport.accuracy import DepthwiseByDefinition

    torch.manual_seed(0)
    conv = nn.Conv2d(5, 5, 3, stride, padding, dilation=dilation, groups=5, bias=True).double()
    x = torch.randn(2, 5, 13, 11, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(DepthwiseByDefinition(conv)(x), conv(x), rtol=1e-14, atol=1e-14)


# --------------------------------------------------------------------------------------------
# Real bake bugs fail the gate (float32 and float16 kernels)
# --------------------------------------------------------------------------------------------

def _patch_from_tvconv(monkeypatch: pytest.MonkeyPatch, change) -> None:  # type: ignore[no-untyped-def]
    """Make the bake apply ``change(baked_layer, tvconv)`` to each layer it bakes."""
    original = BakedTVConv.from_tvconv.__func__

    def patched(cls, layer, **kw):  # type: ignore[no-untyped-def]
        baked = original(cls, layer, **kw)
        change(baked, layer)
        return baked

    monkeypatch.setattr(BakedTVConv, "from_tvconv", classmethod(patched))


def _transpose_taps(baked: BakedTVConv, layer: TVConv) -> None:
    c, kk, h, w = baked.weight.shape
    k = baked.k
    baked.weight.copy_(baked.weight.view(c, k, k, h, w).transpose(1, 2).reshape(c, kk, h, w))


def _roll_positions(baked: BakedTVConv, layer: TVConv) -> None:
    baked.weight.copy_(torch.roll(baked.weight, shifts=1, dims=2))


def _drop_bias(baked: BakedTVConv, layer: TVConv) -> None:
    baked.bias = None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("bug", [_transpose_taps, _roll_positions, _drop_bias], ids=["tap-order", "positions", "dropped-bias"])
def test_bake_bugs_fail_the_gate(monkeypatch: pytest.MonkeyPatch, bug, dtype: torch.dtype) -> None:  # type: ignore[no-untyped-def]
    model = make_model(tv=TVSettings(bias=True, inter_chans=8, inter_layers=1))
    assert bake_model(model, dtype=dtype, fold_bn=False).report.ok  # type: ignore[union-attr]
    _patch_from_tvconv(monkeypatch, bug)
    report = bake_model(model, dtype=dtype, fold_bn=False).report
    assert report is not None and not report.ok
    assert report.worst.max_rel > 1e-2 and not report.network.ok


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_stride2_offsets_fail_the_gate(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype) -> None:
    """The reference repo's own bug: a stride-2 layer reading every row instead of every other."""
    model = make_model()
    original = depthwise_module._taps

    def unstrided_rows(x, k, stride, h, w):  # type: ignore[no-untyped-def]
        taps = original(x, k, stride, h, w)
        if stride == 1:
            return taps
        p = k // 2
        xp = torch.nn.functional.pad(x, (p, p, p, p))
        return [xp[:, :, ky : ky + h, kx : kx + stride * (w - 1) + 1 : stride] for ky in range(k) for kx in range(k)]

    monkeypatch.setattr(depthwise_module, "_taps", unstrided_rows)
    report = bake_model(model, dtype=dtype).report
    assert report is not None and not report.ok
    failed = {c.name for c in report.layers if not c.ok}
    stride2 = {n for n, m in model.named_modules() if isinstance(m, TVConv) and m.geometry.stride == 2}
    assert failed == stride2 and len(stride2) == 4


def test_wrong_batchnorm_fold_fails_and_names_folding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fold that forgets the BatchNorm's shift: the gate fails, and the message says that
    folding is the cause (the same bake without folding passes) and suggests --no-fold-bn."""
    original = bake_module._fold_into

    def no_shift(layer: nn.Module, bn: nn.Module) -> None:
        original(layer, bn)
        if isinstance(layer, BakedTVConv):
            layer.bias = None

    monkeypatch.setattr(bake_module, "_fold_into", no_shift)
    result = bake_model(make_model())
    assert result.report is not None and not result.report.ok and result.report.bn_folding_cause
    with pytest.raises(BakeMismatch, match="BatchNorm folding causes it.*--no-fold-bn") as err:
        check_bake(result, source="face.ckpt")
    assert err.value.result is result and str(err.value).startswith("face.ckpt: baked model differs")
    assert bake_model(make_model(), fold_bn=False).report.ok  # type: ignore[union-attr]


def _scale_kernels_when_baked(monkeypatch: pytest.MonkeyPatch, model: nn.Module, layer_name: str, factor: float) -> None:
    """Make the bake scale one TV layer's kernels by ``factor`` (a controlled, tiny error)."""
    target = model.get_submodule(layer_name)

    def scale(baked: BakedTVConv, layer: TVConv) -> None:
        if layer is target:
            baked.weight.mul_(factor)

    _patch_from_tvconv(monkeypatch, scale)


@pytest.mark.parametrize("factor,ok", [(1 + 2e-6, True), (1 + 3e-5, False)])
def test_float32_floor_is_1e_5(monkeypatch: pytest.MonkeyPatch, factor: float, ok: bool) -> None:
    """On a well-conditioned network (float32 noise ~1e-7) the floor decides: a kernel scale error
    of 2e-6 passes, 3e-5 fails."""
    model = make_model()
    _scale_kernels_when_baked(monkeypatch, model, "features.3.conv.1.0", factor)
    report = bake_model(model).report
    assert report is not None and report.tolerance.rtol == 1e-5 and report.tolerance.factor == 2
    layer = next(c for c in report.layers if c.name == "features.3.conv.1.0")
    assert layer.baseline_max_rel is not None and layer.baseline_max_rel < 1e-6
    assert report.ok is ok, report.worst


def test_per_layer_report_names_the_wrong_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each TV layer is checked on its own: only the corrupted one exceeds its allowance."""
    model = make_model()
    _scale_kernels_when_baked(monkeypatch, model, "features.5.conv.1.0", 1.01)
    report = bake_model(model).report
    assert report is not None and not report.ok
    by_name = {c.name: c for c in report.layers}
    assert len(by_name) == 17
    assert by_name["features.5.conv.1.0"].max_rel > 5e-3
    assert [n for n, c in by_name.items() if not c.ok] == ["features.5.conv.1.0"]


# --------------------------------------------------------------------------------------------
# Where float32 itself is noisy: the gate follows the network's conditioning
# --------------------------------------------------------------------------------------------

def test_float32_noise_above_1e_5_passes(tmp_path: Path) -> None:
    """DeepLabV3+ in the reference's checkpoint_best.pth.tar layout with random BatchNorm
    statistics: the unbaked float32 network is >1e-5 away from float64 (so is the baked one, by
    the same amount); the old float32-vs-float32 gate at 1e-5 refused it, the rule passes it."""
    torch.manual_seed(4)
    model = randomize_(tvexport.create_model("deeplabv3plus_mobilenetv2", tv=SMALL_TV), seed=4, calibrate=False)
    src = write_checkpoint(model, tmp_path / "checkpoint_best.pth.tar", "pth.tar-dp")
    done = bake_checkpoint(src)
    report = done.result.report
    assert report is not None and report.ok and done.output == tmp_path / "checkpoint_best.baked.pt"
    assert report.network.baseline_max_rel is not None and report.network.baseline_max_rel > 1e-5
    assert report.network.max_rel < 1.5 * report.network.baseline_max_rel
    x = random_inputs((2, 3, 256, 256))
    with torch.no_grad():
        ref = model(x)
        old_gate = _max_abs(done.result.model(x), ref) / float(ref.abs().max())
    assert old_gate > 1e-5  # what the float32-vs-float32 comparison would have refused


# the intermediate widths take the code paths of x0.1 and x1.0 (minutes in all on 2 cores): slow
_INTERMEDIATE = {"face_mobilenetv2_x0_2", "face_mobilenetv2_x0_3", "face_mobilenetv2_x0_5", "face_shufflenetv2_x1_5"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _INTERMEDIATE else n for n in list_models()])
def test_every_zoo_network_bakes_with_defaults(name: str) -> None:
    """Random posi_map and LayerNorm, BatchNorm statistics measured without conditioning (outputs
    small relative to their inputs: the noisiest float32 networks; random statistics are covered
    above and in the export tests), float32 and float16 kernels."""
    torch.manual_seed(1)
    model = randomize_(tvexport.create_model(name, tv=SMALL_TV), seed=1, conditioned=False)
    for dtype in (torch.float32, torch.float16):
        report = bake_model(model, dtype=dtype).report
        assert report is not None and report.ok, (dtype, report.worst)
        assert report.float64_bake_max_rel < 1e-12


# --------------------------------------------------------------------------------------------
# Transformations, files, refusals
# --------------------------------------------------------------------------------------------

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
    assert all(p.dtype == torch.float32 for p in kept.model.state_dict().values() if p.is_floating_point())


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


def test_fold_batchnorms_without_affine_parameters() -> None:
    """Before: a BatchNorm with affine=False (no weight, no bias) raised AttributeError; it is a
    BatchNorm with weight 1 and bias 0. Checked against the unfolded network in float64."""
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4, affine=False), nn.ReLU(),
        nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4, affine=False), nn.Flatten(), nn.Linear(64, 5), nn.BatchNorm1d(5, affine=False),
    ).eval()
    for bn in (net[1], net[4], net[7]):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        truth = copy.deepcopy(net).double()(x)
        folded64 = copy.deepcopy(net).double()
        assert fold_batchnorms(folded64) == [("0", "1"), ("3", "4"), ("6", "7")]
        assert float((folded64(x) - truth).abs().max() / truth.abs().max()) < 1e-13
        assert fold_batchnorms(net) == [("0", "1"), ("3", "4"), ("6", "7")]  # float32 weights, folded in float64
        assert float((net(x.float()).double() - truth).abs().max() / truth.abs().max()) < 1e-5


def test_baked_file(tmp_path: Path) -> None:
    model = make_model(tv=TVSettings())  # the reference's generator size: generators dominate the file
    src = write_checkpoint(model, tmp_path / "face.ckpt", "lightning")
    result = bake_model(tvexport.load_checkpoint(src), dtype=torch.float16)
    out = save_baked(result, tmp_path / "face.baked.pt", source=src)
    raw = torch.load(out, weights_only=True)  # plain weights_only, no allow-list needed
    assert raw["format"] == "tvexport.baked" and raw["arch"]["name"] == "face_mobilenetv2_x0_1"
    assert not any("weight_layers" in k or "posi_map" in k or "bias_layers" in k for k in raw["state_dict"])
    stored = raw["bake"]["report"]
    assert stored["ok"] and raw["bake"]["dtype"] == "float16" and stored["truth"] == "unbaked float64"
    assert stored["float64_bake_max_rel"] < 1e-12 and stored["network"]["baseline_max_rel"] is not None
    assert out.stat().st_size < src.stat().st_size / 5
    loaded = load_baked(out)
    x = torch.rand(2, 3, 96, 96) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), result.model(x), rtol=1e-6, atol=1e-6)
    assert tvexport.load_checkpoint(out).training is False
    with pytest.raises(TvexportError, match="not a baked file"):
        load_baked(src)


def test_float16_kernels_are_rounded_once_from_float64() -> None:
    """Stored float16 kernels are the float64 bake rounded once (not float64 -> float32 -> float16)."""
    model = make_model()
    ref = Reference(model, kernels=torch.float16)
    baked64, _ = bake_module._bake_float64(model, ref, fold_bn=True)
    stored = bake_model(model, dtype=torch.float16, verify=False).model
    for name, layer in stored.named_modules():
        if isinstance(layer, BakedTVConv):
            assert torch.equal(layer.weight, baked64.get_submodule(name).weight.to(torch.float16))


def test_bake_checkpoint_is_the_cli_pipeline(tmp_path: Path, face_ckpt: Path) -> None:
    done = bake_checkpoint(face_ckpt, tmp_path / "f.baked.pt", dtype=torch.float16)
    assert done.output.exists() and done.dropped == {"head.weight": (512, 10)} and done.output_bytes == done.output.stat().st_size
    assert done.result.dtype == torch.float16 and done.result.report is not None and done.result.report.ok
    with pytest.raises(TvexportError, match="already exists"):
        bake_checkpoint(face_ckpt, tmp_path / "f.baked.pt")
    with pytest.raises(TvexportError, match="already baked"):
        bake_checkpoint(done.output, tmp_path / "g.baked.pt")
    with pytest.raises(TvexportError, match="rtol must be a finite number >= 0"):
        bake_checkpoint(tmp_path / "missing.ckpt", rtol=-1)  # checked before the file is even read


def test_baking_a_baked_model_is_refused_before_any_work(tmp_path: Path, face_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: bake() of a model loaded from a .baked.pt built the float64 Reference, then failed
    with a bare AssertionError in _bake_float64. It is refused as the CLI refuses a baked file."""
    done = bake_checkpoint(face_ckpt, tmp_path / "f.baked.pt", verify=False)
    baked = tvexport.load_checkpoint(done.output)

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the refusal")

    monkeypatch.setattr(bake_module, "Reference", no_work)
    for options in ({}, {"input_size": (72, 72)}, {"verify": False}):
        with pytest.raises(TvexportError, match="^the model is already baked.*bake the original checkpoint") as err:
            tvexport.bake(baked, **options)  # type: ignore[arg-type]
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(("name", "says"), [
    ("x.onnx", ".onnx names an ONNX model, but tvexport bake writes a baked file; name it {stem}.baked.pt, or export an ONNX model with: tvexport export {src} -o {out}"),
    ("x.pt2", ".pt2 names an AOTInductor package, but tvexport bake writes a baked file; name it {stem}.baked.pt, or export an AOTInductor package with: tvexport export {src} -o {out}"),
    ("x.engine", ".engine names a TensorRT engine, but tvexport bake writes a baked file; name it {stem}.baked.pt, or build an engine"),
])
def test_baked_output_named_as_another_artefact_is_refused_before_any_work(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, says: str) -> None:
    """Before: `bake -o x.onnx` wrote a torch baked file named .onnx, exit 0."""
    def work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output was checked")

    source, out = tmp_path / "src.ckpt", tmp_path / name
    source.write_bytes(b"unread")
    line = f"-o {out}: " + says.format(stem=tmp_path / "x", src=source, out=out)
    monkeypatch.setattr(bake_module, "read_checkpoint", work)
    with pytest.raises(TvexportError) as err:
        bake_checkpoint(source, out)
    assert str(err.value).startswith(line), str(err.value)
    r = cli("bake", source, "-o", out)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {line}"), r.stderr
    with pytest.raises(TvexportError, match="but tvexport bake writes a baked file"):
        save_baked(object(), out)  # type: ignore[arg-type]  # refused before the result is looked at
    assert list(tmp_path.iterdir()) == [source]
    for fine in ("x.baked.pt", "x.pt", "x.pth", "x.ckpt", "x.bin", "x"):
        bake_module.check_baked_output(tmp_path / fine, source=source)


def test_save_baked_of_something_else_says_what_to_pass(tmp_path: Path) -> None:
    """save_baked given the model itself (before: AttributeError "'X' object has no attribute
    'model'" from inside baked_payload) or bake_checkpoint's record says what to pass; nothing written."""
    model = make_model(tv=SMALL_TV)
    with pytest.raises(TypeError, match=r"^save_baked takes a BakeResult, not \w+; bake the model first: save_baked\(bake_model\(model\), path\)$"):
        save_baked(model, tmp_path / "m.baked.pt")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"not dict; pass what bake_model returns$"):
        save_baked({}, tmp_path / "m.baked.pt")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_bake_refusals_say_what_to_do_instead(cli, tmp_path: Path, face_ckpt: Path) -> None:
    """Before: a DWConv baseline was "nothing to bake" with no fix, and a baked file given with
    --input-size was told "export it directly" although a re-bake was asked for."""
    dw = write_checkpoint(make_model(atom="dwconv"), tmp_path / "dw.ckpt", "lightning")
    r = cli("bake", dw, "-o", tmp_path / "dw.baked.pt")
    assert r.exit_code == 2 and r.stderr.strip() == (
        f"error: {dw} is a face_mobilenetv2_x0_1 dwconv baseline without TVConv layers; there is nothing to bake; export it as it is "
        f"(tvexport export {dw}), or compare it with a TV network: tvexport bench TV_CHECKPOINT --baseline {dw}"), r.stderr
    baked = bake_checkpoint(face_ckpt, tmp_path / "f.baked.pt", verify=False).output
    r = cli("bake", baked, "-o", tmp_path / "g.baked.pt")
    assert r.exit_code == 2 and r.stderr.strip() == f"error: {baked} is already baked; export it directly: tvexport export {baked}", r.stderr
    r = cli("bake", baked, "--input-size", "72x72", "-o", tmp_path / "g.baked.pt")
    assert r.exit_code == 2 and r.stderr.strip() == (
        f"error: {baked} is already baked: its TV generators are gone, so it cannot be re-baked for another input size; "
        "re-bake the original checkpoint with --input-size"), r.stderr
    assert not (tmp_path / "g.baked.pt").exists() and not (tmp_path / "dw.baked.pt").exists()


def test_verification_options_are_refused_without_verification(tmp_path: Path) -> None:
    """Before: bake_model(batch=..., seed=...) and bake_checkpoint(seed=...) with verify=False
    silently ignored them (the CLI refused --batch with --no-verify)."""
    model = make_model()
    for option, match in (({"seed": 1}, "^seed seeds"), ({"seed": 0}, "^seed seeds"), ({"batch": 3}, "^--batch sizes"), ({"rtol": 1e-3}, "^--rtol/--atol")):
        with pytest.raises(TvexportError, match=match + ".*(does|do) not apply with --no-verify"):
            bake_model(model, verify=False, **option)  # type: ignore[arg-type]
        with pytest.raises(TvexportError, match=match):
            bake_model(model, verify=False, input_size=(80, 80), **option)  # type: ignore[arg-type]
        with pytest.raises(TvexportError, match=match):
            bake_checkpoint(tmp_path / "missing.ckpt", verify=False, **option)  # type: ignore[arg-type]  # before the file is read
    assert bake_model(model, verify=False).report is None
    report = bake_model(model, batch=3, seed=5).report
    assert report is not None and (report.batch, report.seed) == (3, 5)
    report = bake_model(model).report
    assert report is not None and (report.batch, report.seed) == (2, 0)
    resized = bake_model(model, input_size=(80, 80), batch=3, seed=5)  # re-bake by kernels: the options reach the trained-size check
    assert resized.report is not None and (resized.report.batch, resized.report.seed) == (3, 5)


@pytest.mark.parametrize("option,said", [
    ({"batch": 0}, "--batch 0 is not a number of input rows; give an integer >= 1, e.g. --batch 2"),
    ({"batch": -1}, "--batch -1 is not a number of input rows"),
    ({"batch": 2.5}, "--batch 2.5 is not a number of input rows"),
    ({"seed": 2**70}, f"--seed {2**70} is out of range; give an integer from -2\\*\\*63 to 2\\*\\*63 - 1"),
    ({"seed": -(2**63) - 1}, f"--seed {-(2**63) - 1} is out of range"),
    ({"seed": 1.5}, "--seed 1.5 is not an integer; give an integer from"),
])
def test_bad_verification_batch_or_seed_is_one_line_before_any_work(tmp_path: Path, option: dict[str, object], said: str) -> None:
    """Before: bake(batch=0) and bake_checkpoint(batch=0) wrote a file "verified" on zero inputs;
    a negative batch or a seed beyond 64 bits raised torch's RuntimeError/ValueError (the CLI's
    --batch min=1 and --seed range were the only guard)."""
    model = make_model()
    with pytest.raises(TvexportError, match="^" + said):
        bake_model(model, **option)  # type: ignore[arg-type]
    with pytest.raises(TvexportError, match="^" + said):
        bake_model(model, input_size=(80, 80), **option)  # type: ignore[arg-type]
    with pytest.raises(TvexportError, match="^" + said):
        bake_checkpoint(tmp_path / "missing.ckpt", tmp_path / "out.baked.pt", **option)  # type: ignore[arg-type]  # before the file is read
    assert not (tmp_path / "out.baked.pt").exists()


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


@pytest.mark.parametrize("kernel_dtype", ["float32", "float16"])
def test_nonfinite_kernels_from_finite_weights_are_refused(kernel_dtype: str) -> None:
    """A BatchNorm with a negative running_var folds into NaN kernels although every weight is
    finite: refused even without verification (which would catch it), unless allow_nonfinite."""
    model = make_model()
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    bn.running_var[0] = -1.0
    with pytest.raises(TvexportError, match="baking made NaN/Inf in .* from finite weights"):
        bake_model(model, kernel_dtype=kernel_dtype, verify=False)  # type: ignore[arg-type]
    assert bake_model(model, kernel_dtype=kernel_dtype, verify=False, allow_nonfinite=True).model is not None  # type: ignore[arg-type]


def test_bake_model_keeps_the_callers_training_modes() -> None:
    """The docstring's promise: the model is not modified, its modules' training modes included
    (bake runs it in eval mode: a BatchNorm in training mode is not updated by the verification)."""
    model = make_model().train()
    model.features[0].eval()  # a mixed mode comes back as it was, not as one model.train(mode)
    modes = {name: m.training for name, m in model.named_modules()}
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    result = bake_model(model)
    assert result.report is not None and result.report.ok
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    with pytest.raises(TvexportError):  # restored when the bake refuses, too
        bake_model(model, verify=False, rtol=1e-3)
    assert {name: m.training for name, m in model.named_modules()} == modes
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    bn.running_var[0] = -1.0  # NaN kernels from finite weights: refused after the model ran in eval mode
    with pytest.raises(TvexportError, match="baking made NaN/Inf"):
        bake_model(model, verify=False)
    assert {name: m.training for name, m in model.named_modules()} == modes
    with pytest.raises(TvexportError, match="not built by tvexport"):  # not a module: bake's own refusal
        bake_model("model.ckpt")  # type: ignore[arg-type]
