"""Re-baking for another input size (tvexport.resize): exact at the trained size, resampling checked
against an independent implementation, verified where a reference exists, and every command
accepting the re-baked file."""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import tvexport
from conftest import make_model, write_checkpoint
from tinynet import tiny_tvnet
from tvexport import resize
from tvexport.bake import bake_model, load_baked, save_baked
from tvexport.errors import TvexportError
from tvexport.layers import BakedTVConv, TVConv
from tvexport.models import TVSettings, create_model
from tvexport.models.face import OutputLayer
from tvexport.quantize import compress_kernels, dequantize
from tvexport.resize import resample_map, resize_unbaked

K5_BIAS = TVSettings(k=5, bias=True, inter_chans=8, inter_layers=1)


def _tv(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, (TVConv, BakedTVConv))}


def _same_bake(a: nn.Module, b: nn.Module, size: tuple[int, int]) -> float:
    """Largest relative difference of two baked networks: every tensor, and outputs in float64."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    worst = max(float((sa[k].double() - sb[k].double()).abs().max() / sb[k].double().abs().max().clamp_min(1e-300)) for k in sa if sa[k].is_floating_point())
    x = torch.rand((2, 3, *size), generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        ya, yb = copy.deepcopy(a).double()(x), copy.deepcopy(b).double()(x)
    return max(worst, float((ya - yb).abs().max() / yb.abs().max()))


# --------------------------------------------------------------------------------------------
# At the trained size a re-bake is the ordinary bake
# --------------------------------------------------------------------------------------------

TRAINED_CASES = [  # both methods x both interpolations, float16 storage, k 3 and 5, bias maps
    ("face_mobilenetv2_x0_1", TVSettings(inter_chans=8, inter_layers=1), "generator", "bilinear", torch.float32),
    ("face_mobilenetv2_x0_1", TVSettings(inter_chans=8, inter_layers=1), "kernels", "bicubic", torch.float16),
    ("face_shufflenetv2_x0_5", K5_BIAS, "generator", "bicubic", torch.float32),
    ("face_shufflenetv2_x0_5", K5_BIAS, "kernels", "bilinear", torch.float32),
]


@pytest.mark.parametrize("name,tv,method,interpolation,dtype", TRAINED_CASES, ids=[f"{c[0]}-k{c[1].k}-{c[2]}-{c[3]}-{str(c[4])[6:]}" for c in TRAINED_CASES])
def test_trained_size_rebake_is_the_ordinary_bake(name: str, tv: TVSettings, method: str, interpolation: str, dtype: torch.dtype) -> None:
    model = make_model(name, tv=tv)
    plain = bake_model(model, dtype=dtype, verify=False)
    again = resize.bake_resized(model, (96, 96), resample=method, interpolation=interpolation, bake=functools.partial(bake_model, dtype=dtype, verify=False))  # type: ignore[arg-type]
    assert again.config == plain.config and again.config.input_hw is None and again.tv_layers == plain.tv_layers
    assert again.resize is not None and again.resize["input_size"] == again.resize["trained_input_size"] == [96, 96]
    assert _same_bake(again.model, plain.model, (96, 96)) <= 1e-12
    # so bake_model given the model's own size bakes the ordinary way: nothing resampled, no resize record
    same = bake_model(model, dtype=dtype, verify=False, input_size=(96, 96), resample=method, interpolation=interpolation)  # type: ignore[arg-type]
    assert same.resize is None and same.config == plain.config and same.tv_layers == plain.tv_layers
    assert _same_bake(same.model, plain.model, (96, 96)) == 0.0


def test_trained_size_check_catches_a_wrong_resampler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above can fail: a resampler that transposes (h, w) is not the identity at 96x96."""
    model = make_model()
    plain = bake_model(model, verify=False)
    original = resize.resample_map
    monkeypatch.setattr(resize, "resample_map", lambda t, size, **kw: original(t.transpose(-1, -2), size, **kw))
    for method in ("generator", "kernels"):
        wrong = resize.bake_resized(model, (96, 96), resample=method, bake=functools.partial(bake_model, verify=False))  # type: ignore[arg-type]
        assert _same_bake(wrong.model, plain.model, (96, 96)) > 1e-3


def test_bake_at_its_own_size_is_the_ordinary_bake_verified(cli, face_ckpt: Path, tmp_path: Path) -> None:
    """Before: `bake --input-size 96x96` of a 96x96 network resampled (the identity) and recorded "no
    unbaked network exists at 96x96 to verify against", though the ordinary bake verifies against one."""
    for i, extra in enumerate(([], ["--resample", "generator", "--interpolation", "bilinear"])):
        r = cli("bake", face_ckpt, "-o", tmp_path / f"{i}.baked.pt", "--input-size", "96x96", *extra, "--json")
        assert r.exit_code == 0, r.stderr
        done = json.loads(r.stdout)
        assert done["resize"] is None and done["input_size"] == [96, 96] and done["report"]["ok"] and done["report"]["truth"] == "unbaked float64"
        r = cli("inspect", tmp_path / f"{i}.baked.pt")
        assert r.exit_code == 0 and "re-baked" not in r.stdout and "no unbaked network" not in r.stdout, r.stdout
    with pytest.raises(TvexportError, match="^unknown resample method 'nearest'"):  # still refused at the own size
        bake_model(make_model(), input_size=(96, 96), resample="nearest")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", ["72x72", 72, (72,), (72, 72, 3), (True, 72), (72.0, 72), (0, 72), (72, -1), [72, 72.5]])
def test_malformed_input_size_in_the_api_is_one_line(tmp_path: Path, size: object) -> None:
    """Before: bake(input_size="72x72") raised a raw ValueError, 72 a TypeError, (72,) a ValueError
    from unpacking; (True, 72) was read as 1x72 (the CLI parses --input-size first)."""
    said = f"^input_size {re.escape(repr(size))} is not \\(H, W\\), two positive integers; e.g. input_size=\\(112, 112\\)$"
    with pytest.raises(TvexportError, match=said):
        bake_model(make_model(), input_size=size, verify=False)  # type: ignore[arg-type]
    with pytest.raises(TvexportError, match=said):
        tvexport.bake_checkpoint(tmp_path / "missing.ckpt", tmp_path / "o.baked.pt", input_size=size)  # type: ignore[arg-type]  # before the file is read
    assert list(tmp_path.iterdir()) == []


def test_empty_resample_or_interpolation_is_refused_not_the_default() -> None:
    """Before: ``resample=""`` or ``interpolation=""`` (an unknown value) was read as the default
    (``resample or DEFAULT_RESAMPLE``): a re-bake by a method nobody chose."""
    from tvexport.resize import check_resample

    with pytest.raises(TvexportError, match="^unknown resample method ''"):
        check_resample("", None)
    with pytest.raises(TvexportError, match="^unknown interpolation ''"):
        check_resample(None, "")
    with pytest.raises(TvexportError, match="^unknown interpolation ''"):
        bake_model(make_model(), input_size=(72, 72), interpolation="", verify=False)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Resampling: half-pixel centres, clamped edges, float64, the right axes
# --------------------------------------------------------------------------------------------

def _weights_1d(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """(n_out, n_in) interpolation matrix, written from the definitions (not from torch)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = (i + 0.5) * n_in / n_out - 0.5
        if mode == "bilinear":
            src = max(src, 0.0)
            i0 = min(int(math.floor(src)), n_in - 1)
            lam = src - i0
            m[i, i0] += 1 - lam
            m[i, min(i0 + 1, n_in - 1)] += lam
        else:  # cubic convolution, a = -0.75, taps clamped to the edge
            i0 = int(math.floor(src))
            t = src - i0
            a = -0.75
            ws = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
                  ((a + 2) * t - (a + 3)) * t * t + 1,
                  ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1]
            ws.append(1 - sum(ws))
            for j, wt in zip(range(i0 - 1, i0 + 3), ws):
                m[i, min(max(j, 0), n_in - 1)] += wt
    return m


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_resample_map_is_standard_interpolation_in_float64(mode: str) -> None:
    t = torch.randn(2, 3, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = resample_map(t, (8, 4), interpolation=mode)  # type: ignore[arg-type]
    mh, mw = _weights_1d(5, 8, mode), _weights_1d(7, 4, mode)
    want = np.einsum("ih,abhw,jw->abij", mh, t.numpy(), mw)
    assert got.shape == (2, 3, 8, 4) and got.dtype == torch.float64
    assert np.abs(got.numpy() - want).max() <= 1e-12
    # float32 tensors are computed in float64 and rounded once
    t32 = t.float()
    exact = resample_map(t32.double(), (8, 4), interpolation=mode)  # type: ignore[arg-type]
    assert torch.equal(resample_map(t32, (8, 4), interpolation=mode), exact.float())  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Geometry at other sizes: non-square, not divided by the stride chain
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(112, 80), (72, 100)])
def test_tv_layers_follow_the_stride_chain(size: tuple[int, int]) -> None:
    model = create_model("face_mobilenetv2_x0_1", tv=TVSettings(inter_chans=4, inter_layers=0), input_size=size)
    h, w = size
    expected = [(math.ceil(h / d), math.ceil(w / d)) for d in (1, 2, 2, 4, 4, 4, 8, 8, 8, 8, 8, 8, 8, 16, 16, 16, 16)]
    assert [(m.geometry.h, m.geometry.w) for m in _tv(model).values()] == expected
    assert all(int(m.h) == m.geometry.h and int(m.w) == m.geometry.w for m in _tv(model).values())
    with torch.no_grad():  # each TVConv checks that its input gives its (h, w)
        assert model(torch.zeros(2, 3, *size)).shape == (2, 512)


def test_deeplab_stride_chain_and_size_agnostic_rest() -> None:
    """258 is not 16 * 17: the unpadded first conv gives 128, so the ASPP runs at 16 (not ceil(258/16))."""
    model = create_model("deeplabv3plus_mobilenetv2", tv=TVSettings(inter_chans=4, inter_layers=0), input_size=(258, 190))
    assert {(m.geometry.h, m.geometry.w) for m in _tv(model).values()} == {(16, 12)}
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 258, 190)).shape == (1, 2, 258, 190)


def test_too_small_sizes_are_refused_in_one_line(cli, face_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(TvexportError, match=r"input size 8x96 is too small .* valid sizes are HxW with H, W >= 16"):
        bake_model(make_model(), input_size=(8, 96))
    out = tmp_path / "out"
    out.mkdir()
    r = cli("bake", face_ckpt, "--input-size", "15x15", "-o", out / "x.baked.pt")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "valid sizes are HxW with H, W >= 16" in r.stderr
    r = cli("bake", face_ckpt, "--resample", "kernels", "-o", out / "x.baked.pt")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "--input-size" in r.stderr
    with pytest.raises(TvexportError, match="unknown resample method 'nearest'"):
        bake_model(make_model(), input_size=(112, 112), resample="nearest")  # type: ignore[arg-type]
    with pytest.raises(TvexportError, match="only zoo networks can be re-baked"):
        bake_model(tiny_tvnet(), input_size=(112, 112))
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------------------------
# The two methods at a new size
# --------------------------------------------------------------------------------------------

def test_generator_method_resamples_posi_map_and_layernorm_and_is_verified() -> None:
    model = make_model()
    resized = resize_unbaked(model, (112, 80), interpolation="bicubic")
    assert resized.tvexport_config.input_size == (112, 80) and model.tvexport_config.input_hw is None
    for name, new in _tv(resized).items():
        old = model.get_submodule(name)
        size = (new.geometry.h, new.geometry.w)
        assert (int(new.h), int(new.w)) == size
        assert torch.equal(new.posi_map, resample_map(old.posi_map, size, interpolation="bicubic"))
        norms = [(n, m) for n, m in old.named_modules() if isinstance(m, nn.LayerNorm)]
        assert norms
        for n, norm in norms:
            assert torch.equal(new.get_submodule(n).weight, resample_map(norm.weight, size, interpolation="bicubic"))
            assert torch.equal(new.get_submodule(n).bias, resample_map(norm.bias, size, interpolation="bicubic"))
    result = bake_model(model, input_size=(112, 80), resample="generator", interpolation="bicubic")
    assert result.report is not None and result.report.ok, result.report.worst
    assert result.resize is not None and result.resize["verified_at"] == [112, 80] and result.resize["resample"] == "generator"
    # independently of the report: the resized unbaked network, another input and batch
    x = torch.rand(3, 3, 112, 80, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        ref, got = resized(x), result.model(x)
    assert float((got - ref).abs().max() / ref.abs().max()) <= 1e-5


def _float64_kernels(model: nn.Module, *, fold_bn: bool) -> nn.Module:
    """The bake of ``model`` in float64, before its kernels are rounded to a storage dtype."""
    from tvexport.accuracy import Reference
    from tvexport.bake import _bake_float64

    return _bake_float64(model, Reference(model), fold_bn=fold_bn)[0]


def test_kernels_method_resamples_the_trained_bake() -> None:
    model = make_model("face_shufflenetv2_x0_5", tv=K5_BIAS)
    trained = _float64_kernels(model, fold_bn=False)  # the trained bake before its kernels are rounded to float32
    result = bake_model(model, fold_bn=False, input_size=(80, 112), resample="kernels", interpolation="bilinear")
    assert result.report is not None and result.report.ok
    assert result.resize is not None and result.resize["verified_at"] == [96, 96] and "none at the input size" in result.resize["reference"]
    layers = _tv(result.model)
    assert len(layers) == 19 and all(m.bias_kind == "map" for m in layers.values())
    for name, layer in layers.items():
        src = trained.get_submodule(name)
        size = tuple(layer.weight.shape[-2:])
        assert result.tv_layers[name]["h"] == size[0] and result.tv_layers[name]["w"] == size[1]
        assert torch.equal(layer.weight, resample_map(src.weight, size, interpolation="bilinear").float())
        assert torch.equal(layer.bias, resample_map(src.bias, size, interpolation="bilinear").float())
    with torch.no_grad():
        assert result.model(torch.zeros(2, 3, 80, 112)).shape == (2, 512)


@pytest.mark.parametrize("kernel_dtype", ["int8", "float16"])
def test_compressed_rebake_rounds_the_resampled_float_kernels_once(kernel_dtype: str) -> None:
    """Before: compressed kernels were dequantized, resampled and compressed again (int8 values up
    to 1.5 steps from the resampled kernels), and the storage error recorded was the trained-size
    bake's (2x too small). Now the float64 kernels are resampled and rounded once: each stored
    value is within half a step (int8: of its own (channel, tap) plane; float16: of its own
    value) of them, and the error recorded is against them."""
    model = make_model("face_shufflenetv2_x0_5", tv=K5_BIAS)
    floats = _float64_kernels(model, fold_bn=False)  # the trained-size bake before rounding
    result = bake_model(model, fold_bn=False, kernel_dtype=kernel_dtype, input_size=(80, 112), interpolation="bicubic")  # type: ignore[arg-type]
    assert result.report is not None and result.report.ok  # the trained-size bake, verified as usual
    layers = _tv(result.model)
    assert layers and set(result.kernel_errors) == set(layers)
    for name, layer in layers.items():
        assert isinstance(layer, BakedTVConv) and layer.weight.dtype == getattr(torch, kernel_dtype)
        src = floats.get_submodule(name)
        size = tuple(layer.weight.shape[-2:])
        ideal = resample_map(src.weight, size, interpolation="bicubic")
        assert ideal.dtype == torch.float64
        stored = dequantize(layer.weight, layer.scale, dtype=torch.float64)
        err = (stored - ideal).abs()
        if kernel_dtype == "int8":
            assert layer.scale is not None
            assert bool((err <= 0.5 * layer.scale.double() * (1 + 1e-6)).all()), float((err / layer.scale.double()).max())
        else:
            assert bool((err <= 2.0**-11 * ideal.abs() + 2.0**-25).all())
        want, scale = compress_kernels(ideal, getattr(torch, kernel_dtype))
        assert torch.equal(layer.weight, want) and (scale is None or torch.equal(layer.scale, scale))
        recorded = result.kernel_errors[name]
        assert result.tv_layers[name]["kernels"]["error"] == recorded.to_dict()
        assert recorded.max_rel == float((stored - ideal).abs().max() / ideal.abs().max())
        bias = resample_map(src.bias, size, interpolation="bicubic").to(layer.bias.dtype)
        assert torch.equal(layer.bias, bias)  # rounded once to its storage dtype from the resampled float map


def test_deeplab_rebake() -> None:
    model = make_model("deeplabv3plus_mobilenetv2", tv=TVSettings(bias=True, inter_chans=4, inter_layers=0))
    result = bake_model(model, input_size=(128, 192))
    assert result.report is not None and result.report.ok, result.report.worst
    assert {(g["h"], g["w"]) for g in result.tv_layers.values()} == {(8, 12)}
    with torch.no_grad():
        assert result.model(torch.zeros(1, 3, 128, 192)).shape == (1, 2, 128, 192)


REBAKE_1X1 = [  # the smallest sizes leave the last TV layers 1x1, where a folded BatchNorm's shift and a bias map look alike
    ("face_mobilenetv2_x0_1", TVSettings(inter_chans=8, inter_layers=1), (16, 16), torch.float32),
    ("face_mobilenetv2_x0_1", TVSettings(inter_chans=8, inter_layers=1), (16, 16), torch.int8),
    pytest.param("deeplabv3plus_mobilenetv2", TVSettings(inter_chans=4, inter_layers=0), (17, 17), torch.float32, marks=pytest.mark.slow),  # ~25 s
]


@pytest.mark.parametrize("name,tv,size,dtype", REBAKE_1X1, ids=[f"{v[0]}-{v[2][0]}x{v[2][1]}-{str(v[3])[6:]}" for v in (getattr(c, "values", c) for c in REBAKE_1X1)])
def test_rebake_to_1x1_layers_with_folded_batchnorm(name: str, tv: TVSettings, size: tuple[int, int], dtype: torch.dtype) -> None:
    """Resampled kernels (the default) with BatchNorm folded (the default) where TV layers end up
    1x1: each folded shift stays a per-channel bias, recorded as such; the kernels are the
    trained bake's resampled, that bake is verified against the float64 truth, and the generator
    method at the same size is verified against its own float64 truth."""
    model = make_model(name, tv=tv)
    trained = bake_model(model, kernel_dtype=dtype, verify=False)
    baked64 = _float64_kernels(model, fold_bn=True)
    result = bake_model(model, kernel_dtype=dtype, input_size=size)
    assert result.report is not None and result.report.ok, result.report.worst
    layers = _tv(result.model)
    assert any(tuple(m.weight.shape[-2:]) == (1, 1) for m in layers.values())
    for lname, layer in layers.items():
        src = trained.model.get_submodule(lname)
        assert isinstance(layer, BakedTVConv) and isinstance(src, BakedTVConv)
        assert layer.bias_kind == src.bias_kind == result.tv_layers[lname]["bias"] == "channel"
        exact = resample_map(baked64.get_submodule(lname).weight, tuple(layer.weight.shape[-2:]))  # rounded once, after resampling
        want, scale = compress_kernels(exact, dtype)
        assert torch.equal(layer.weight, want) and (scale is None or torch.equal(layer.scale, scale))
        assert torch.equal(layer.bias, src.bias)  # a per-channel shift holds at any size
    with torch.no_grad():
        assert torch.isfinite(result.model(torch.zeros(1, 3, *size))).all()
    gen = bake_model(model, kernel_dtype=dtype, input_size=size, resample="generator")
    assert gen.report is not None and gen.report.ok, gen.report.worst
    assert {g["bias"] for g in gen.tv_layers.values()} == {"channel"}


def test_cli_inspect_shows_a_folded_shift_at_1x1_as_channel(cli, face_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "f16.baked.pt"
    r = cli("bake", face_ckpt, "--input-size", "16x16", "-o", out)
    assert r.exit_code == 0, r.stderr
    rows = json.loads(cli("inspect", out, "--json").stdout)["tv_layers"]
    assert any((t["h"], t["w"]) == (1, 1) for t in rows) and {t["bias"] for t in rows} == {"channel"}
    # files baked before the kind was layer state recorded such a shift as "map": read as "channel"
    payload = torch.load(out, weights_only=True)
    for g in payload["bake"]["tv_layers"].values():
        if (g["h"], g["w"]) == (1, 1):
            g["bias"] = "map"
    torch.save(payload, out)
    rows = json.loads(cli("inspect", out, "--json").stdout)["tv_layers"]
    assert {t["bias"] for t in rows} == {"channel"}
    assert all(m.bias_kind == "channel" for m in _tv(load_baked(out)).values())


def test_bias_map_at_1x1_stays_a_map() -> None:
    """The other kind at 1x1: a TV bias map (BatchNorm folded into it) keeps its kind."""
    model = make_model("deeplabv3plus_mobilenetv2", tv=TVSettings(bias=True, inter_chans=4, inter_layers=0))
    result = bake_model(model, input_size=(16, 16), verify=False)
    assert {(g["h"], g["w"], g["bias"]) for g in result.tv_layers.values()} == {(1, 1, "map")}


def test_set_kernels_checks_the_bias_kind() -> None:
    layer = BakedTVConv(4, k=3, stride=1, h=1, w=1)
    layer.set_kernels(torch.zeros(4, 9, 1, 1), torch.ones(4, 1, 1), bias_kind="channel")
    assert layer.bias_kind == "channel"
    layer.set_kernels(torch.zeros(4, 9, 1, 1), torch.ones(4, 1, 1))  # keeps it
    assert layer.bias_kind == "channel"
    layer = BakedTVConv(4, k=3, stride=1, h=2, w=3, bias="map")
    with pytest.raises(ValueError, match="channel bias of shape"):
        layer.set_kernels(torch.zeros(4, 9, 2, 3), torch.ones(4, 2, 3), bias_kind="channel")
    # a bias assigned directly, of the other kind: set_kernels without bias_kind follows it (as
    # compress_layer calls it), not the kind the layer was built with
    layer = BakedTVConv(4, k=3, stride=1, h=2, w=3, bias="channel")
    layer.bias = torch.ones(4, 2, 3)
    layer.set_kernels(torch.zeros(4, 9, 2, 3), layer.bias)
    assert layer.bias_kind == "map"


@pytest.mark.parametrize("method", ["kernels", "generator"])
def test_unverified_rebake_says_so(method: str) -> None:
    result = bake_model(make_model(), input_size=(72, 72), resample=method, verify=False)  # type: ignore[arg-type]
    assert result.report is None and result.resize is not None
    assert result.resize["verified_at"] is None and result.resize["reference"] == "not verified (--no-verify)"
    note = resize.describe_resize(result.resize)
    assert "not verified" in note and "verification covers" not in note and "verified against" not in note


def test_rebake_of_a_network_built_at_another_size_records_that_size() -> None:
    """A network built at 112x112 (trained 96x96) and re-baked for 80x80: its maps, and the bake
    that is verified, are at 112x112."""
    from tvexport.testing import randomize_

    model = randomize_(create_model("face_mobilenetv2_x0_1", tv=TVSettings(inter_chans=4, inter_layers=0), input_size=(112, 112)))
    for method in ("kernels", "generator"):
        result = bake_model(model, input_size=(80, 80), resample=method)  # type: ignore[arg-type]
        assert result.resize is not None and result.report is not None and result.report.ok
        assert result.resize["source_input_size"] == [112, 112] and result.resize["trained_input_size"] == [96, 96]
        assert result.resize["verified_at"] == ([112, 112] if method == "kernels" else [80, 80])
        note = resize.describe_resize(result.resize)
        assert note.startswith("re-baked for input 80x80 from 112x112 (trained 96x96): ")
        assert ("covers the 112x112 bake" in note) == (method == "kernels")
    # records written before source_input_size: the trained size
    old = {k: v for k, v in result.resize.items() if k != "source_input_size"}
    assert resize.describe_resize(old).startswith("re-baked for input 80x80 (trained 96x96): ")


def test_cli_no_verify_rebake_notes(cli, face_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "nv.baked.pt"
    r = cli("bake", face_ckpt, "--input-size", "72", "--no-verify", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert "not verified" in r.stdout and "verification covers" not in r.stdout
    r = cli("inspect", out)
    assert r.exit_code == 0 and "not verified" in r.stdout and "verification covers" not in r.stdout
    assert torch.load(out, weights_only=True)["bake"]["resize"]["verified_at"] is None
    # files written before verified_at followed --no-verify recorded a verification that never ran;
    # the file's missing report says otherwise, and the note follows the report
    payload = torch.load(out, weights_only=True)
    for method, claim in (("kernels", "the report checks the 96x96 bake they come from"), ("generator", "the unbaked network resampled")):
        payload["bake"]["resize"].update(resample=method, verified_at=[96, 96] if method == "kernels" else [72, 72], reference=claim)
        assert payload["bake"]["report"] is None
        torch.save(payload, out)
        r = cli("inspect", out)
        assert r.exit_code == 0 and "not verified" in r.stdout, r.stdout
        assert "verification covers" not in r.stdout and "verified against" not in r.stdout, r.stdout


@pytest.mark.parametrize(("text", "size"), [("96", (96, 96)), ("96x80", (96, 80)), (" 96 X 80 ", (96, 80)), ("72,100", (72, 100))])
def test_parse_input_size(text: str, size: tuple[int, int]) -> None:
    assert resize.parse_input_size(text) == size


@pytest.mark.parametrize("text", ["96x", "x96", "96xx80", "96,", "96x80,", "1x2x3", "", "axb", "-5", "9 6", "\u0663x\u0663", "\uff19\uff16"])
def test_parse_input_size_reads_the_whole_text(text: str) -> None:
    with pytest.raises(TvexportError, match=f"cannot read input size {re.escape(repr(text))}; write HxW"):
        resize.parse_input_size(text)


def test_parse_input_size_calls_zero_too_small(cli, face_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(TvexportError, match="input size 0x96 is too small"):
        resize.parse_input_size("0x96")
    for text, what in (("0x96", "input size 0x96 is too small"), ("96x", "cannot read input size '96x'")):
        r = cli("bake", face_ckpt, "--input-size", text, "-o", tmp_path / "x.baked.pt")
        assert r.exit_code == 2 and r.stderr.count("\n") == 1 and what in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "x.baked.pt").exists()


# --------------------------------------------------------------------------------------------
# The face networks' head
# --------------------------------------------------------------------------------------------

def test_global_average_equals_avgpool6_at_96() -> None:
    """At 96x96 the final map is 6x6: AvgPool2d(6) (the reference) is a global average pool."""
    x = torch.randn(4, 512, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(nn.AvgPool2d(6)(x), nn.AdaptiveAvgPool2d(1)(x), rtol=0, atol=1e-15)
    model = make_model().double()
    assert isinstance(model.output_layer.pool, nn.AvgPool2d)
    glob = copy.deepcopy(model)
    glob.output_layer.pool = nn.AdaptiveAvgPool2d(1)
    x = torch.rand(2, 3, 96, 96, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        a, b = model(x), glob(x)
    assert float((a - b).abs().max() / a.abs().max()) <= 1e-13


@pytest.mark.parametrize("name,size", [("face_mobilenetv2_x0_1", (112, 112)), ("face_shufflenetv2_x0_5", (192, 144))])
def test_head_averages_the_whole_map_at_other_sizes(name: str, size: tuple[int, int]) -> None:
    model = create_model(name, tv=TVSettings(inter_chans=4, inter_layers=0), input_size=size).double()
    head = model.output_layer
    assert isinstance(head, OutputLayer) and isinstance(head.pool, nn.AdaptiveAvgPool2d)
    final = (math.ceil(size[0] / 16), math.ceil(size[1] / 16))
    channels = head.layer2[0].in_features
    feats = torch.randn(3, channels, *final, dtype=torch.float64)
    with torch.no_grad():
        want = head.layer2(head.layer1(feats).mean(dim=(2, 3)))  # whole map, C*1*1 features into the Linear
        assert torch.allclose(head(feats), want, rtol=0, atol=1e-12)
        assert model(torch.zeros(2, 3, *size, dtype=torch.float64)).shape == (2, 512)


# --------------------------------------------------------------------------------------------
# The baked file and every command
# --------------------------------------------------------------------------------------------

def test_rebaked_file_records_sizes_and_round_trips(tmp_path: Path) -> None:
    result = bake_model(make_model(), input_size=(80, 112), resample="kernels", verify=False)
    path = save_baked(result, tmp_path / "r.baked.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["arch"]["input_hw"] == [80, 112] and payload["arch"]["trained_input_size"] == [96, 96]
    assert payload["bake"]["resize"]["resample"] == "kernels" and payload["bake"]["resize"]["interpolation"] == "bicubic"  # the defaults
    loaded = load_baked(path)
    assert loaded.tvexport_config == result.config and loaded.tvexport_config.input_shape == (3, 80, 112)
    x = torch.rand(2, 3, 80, 112) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), result.model(x))


def test_baked_files_from_before_input_sizes_still_load(tmp_path: Path) -> None:
    path = save_baked(bake_model(make_model(), verify=False), tmp_path / "old.baked.pt")
    payload = torch.load(path, weights_only=True)
    for key in ("input_hw", "input_size", "trained_input_size"):
        del payload["arch"][key]
    del payload["bake"]["resize"]
    torch.save(payload, path)
    assert load_baked(path).tvexport_config.input_size == (96, 96)
    payload["arch"]["input_hw"] = [4, 4]
    torch.save(payload, path)
    with pytest.raises(TvexportError, match="baked file metadata is damaged"):
        load_baked(path)


@pytest.fixture(scope="module")
def rebaked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A face network re-baked by the CLI for 72x100 (non-square, not divided by 16), kernels, bicubic."""
    from tvexport.cli import main

    tmp = tmp_path_factory.mktemp("rebaked")
    ckpt = write_checkpoint(make_model(), tmp / "face.ckpt", "lightning")
    out = tmp / "face72x100.baked.pt"
    assert main(["bake", str(ckpt), "--input-size", "72x100", "--resample", "kernels", "--interpolation", "bicubic", "-o", str(out)]) == 0
    return out


def test_cli_bake_and_inspect(cli, rebaked: Path) -> None:
    r = cli("inspect", rebaked)
    assert r.exit_code == 0 and "input 3x72x100" in r.stdout
    assert "re-baked for input 72x100 (trained 96x96): baked kernels resampled (bicubic)" in r.stdout
    summary = json.loads(cli("inspect", rebaked, "--json").stdout)
    assert summary["input_shape"] == [3, 72, 100] and summary["config"]["input_hw"] == [72, 100]
    assert [(t["h"], t["w"]) for t in summary["tv_layers"]][-1] == (5, 7)


def test_cli_bake_json_reports_the_resize(cli, face_ckpt: Path, tmp_path: Path) -> None:
    r = cli("bake", face_ckpt, "--input-size", "128", "-o", tmp_path / "r.baked.pt", "--json", "--resample", "generator")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["input_size"] == [128, 128] and out["resize"]["resample"] == "generator" and out["resize"]["interpolation"] == "bicubic"
    assert out["resize"]["verified_at"] == [128, 128] and out["report"]["ok"]


@pytest.mark.parametrize("tv_op,decomposition", [("portable", "auto"), ("portable", "gather"), ("plugin", None)])
def test_cli_export_and_validate_rebaked(cli, rebaked: Path, tmp_path: Path, tv_op: str, decomposition: str | None) -> None:
    """At 72x100 two stride-2 TV layers read odd inputs (25 and 9 rows): no form may assume 2h."""
    out = tmp_path / f"r_{tv_op}.onnx"
    form = ("--decomposition", decomposition) if decomposition else ()
    r = cli("export", rebaked, "-o", out, "--tv-op", tv_op, *form, "--no-simplify", "--dynamic-batch")
    assert r.exit_code == 0, r.stderr
    r = cli("validate", out, "--against", rebaked, "--batch", "3", "--json")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["input_shape"] == [3, 3, 72, 100]
    wrong = tmp_path / "x96.npy"
    np.save(wrong, np.zeros((1, 3, 96, 96), dtype=np.float32))
    r = cli("validate", out, "--against", rebaked, "--input", wrong)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "expects (N, 3, 72, 100)" in r.stderr


def test_cli_bench_rebaked(cli, rebaked: Path, tmp_path: Path) -> None:
    fast = ["--min-iters", "2", "--min-seconds", "0", "--warmup-seconds", "0", "--threads", "1", "-b", "torch-baked"]
    r = cli("bench", rebaked, *fast, "--input-size", "72x100", "--json", tmp_path / "b.json")
    assert r.exit_code == 0, r.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["arch"]["input_shape"] == [3, 72, 100] and {n["label"] for n in report["networks"]} == {"tvconv", "dwconv"}
    r = cli("bench", rebaked, *fast, "--input-size", "96x96")
    assert r.exit_code == 2 and "runs only at its re-baked input size 72x100, not 96x96" in r.stderr
    # an architecture name (random weights) is built at the size asked for
    r = cli("bench", "face_mobilenetv2_x0_1", *fast, "--input-size", "64x80", "--json", tmp_path / "b1.json")
    assert r.exit_code == 0, r.stderr
    assert json.loads((tmp_path / "b1.json").read_text())["arch"]["input_shape"] == [3, 64, 80]
    # a DWConv baseline checkpoint (trained size) is rebuilt at the TV network's size
    dw = write_checkpoint(make_model(atom="dwconv"), tmp_path / "dw.pth.tar", "pth.tar")
    r = cli("bench", rebaked, *fast, "--baseline", dw, "--json", tmp_path / "b2.json")
    assert r.exit_code == 0, r.stderr
    assert json.loads((tmp_path / "b2.json").read_text())["networks"][1]["origin"] == "checkpoint dw.pth.tar"


def test_aoti_package_at_a_rebaked_size(tmp_path: Path) -> None:
    """AOTInductor builds its example and checks from the config's input size: a tiny network as
    re-baked for 90x70, whose stride-2 TV layer reads an odd (45x35) input."""
    pytest.importorskip("torch._inductor")
    from tvexport.export.aoti import export_aoti, load_runner

    unbaked = tiny_tvnet(stride=2, bias=True, input_size=(90, 70))
    assert _tv(unbaked)["1.0"].geometry.h == 23
    result = export_aoti(bake_model(unbaked).model, tmp_path / "t.pt2", batch=2)
    assert result.ok and result.info["input_shape"] == [2, 3, 90, 70]
    x = np.random.default_rng(0).random((2, 3, 90, 70), dtype=np.float32) * 2 - 1
    with torch.no_grad():
        ref = unbaked(torch.from_numpy(x)).numpy()
    got = load_runner(tmp_path / "t.pt2")(x)
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.slow
def test_cli_aoti_export_of_a_rebaked_zoo_network(cli, rebaked: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.pt2"
    r = cli("export", rebaked, "--format", "aoti", "-o", out)
    assert r.exit_code == 0, r.stderr
    r = cli("validate", out, "--against", rebaked, "--backend", "aoti", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["input_shape"] == [1, 3, 72, 100]


def test_public_api() -> None:
    assert tvexport.bake is bake_model
    model = tvexport.create_model("face_mobilenetv2_x0_1", input_size=(64, 48))
    assert model.tvexport_config.input_shape == (3, 64, 48)
