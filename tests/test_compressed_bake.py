"""Compressed kernels end to end (issue 14): ``bake --kernel-dtype`` (the float64 bake rounded once
to float16 / int8), checked against the unbaked network in float64 with random ``posi_map``
(stride 1 and 2, k 3 and 5, with and without bias, batch > 1); the baked file and ``inspect``;
``export`` in every ONNX form and ``validate``; the TensorRT node reader on an exported int8 plugin
graph. Deliberate bugs in the stored kernels (wrong tap order, transposed or shifted scales, a
dropped scale) must fail the same check. The OpenVINO extension's run of an exported int8 plugin
graph is in test_openvino.py; AOTInductor packages in test_compressed.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from conftest import make_model, write_checkpoint
from tinynet import tiny_tvnet
from tvexport import bake, load_baked
from tvexport.accuracy import Reference, Tolerance, random_inputs
from tvexport.layers import BakedTVConv, TVConv
from tvexport.quantize import INT8_MAX, dequantize

CASES = [(3, 1, True), (5, 2, False), (3, 2, False), (5, 1, True)]  # (k, stride, TV bias map)
_IDS = [f"k{k}s{s}{'bias' if b else 'nobias'}" for k, s, b in CASES]


def _folded_float64(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The tiny network's TV kernels and bias with its BatchNorm folded in, in float64, by the
    definitions (generator run, BN affine), sharing no code with the bake."""
    tv, bn = model[1][0], model[1][1]
    assert isinstance(tv, TVConv)
    with torch.no_grad():
        w, b = copy.deepcopy(tv).double().generate()
        s = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        shift = bn.bias.double() - bn.running_mean.double() * s
        w = w * s.view(-1, 1, 1, 1)
        b = (b * s.view(-1, 1, 1) if b is not None else 0) + shift.view(-1, 1, 1)
    return w, b


def _rel(got: torch.Tensor, truth: torch.Tensor) -> float:
    return float((got.double() - truth).abs().max() / truth.abs().max())


@pytest.mark.parametrize("dtype", ["float16", "int8"])
@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_bake_stores_compressed_kernels_of_the_float64_bake(case: tuple[int, int, bool], dtype: str) -> None:
    k, stride, bias = case
    model = tiny_tvnet(k=k, stride=stride, bias=bias)
    result = bake(model, kernel_dtype=dtype)
    assert result.report is not None and result.report.ok, result.report
    layer = result.model[1][0]
    assert isinstance(layer, BakedTVConv) and layer.weight.dtype == getattr(torch, dtype)
    w64, b64 = _folded_float64(model)
    meaning = dequantize(layer.weight, layer.scale, dtype=torch.float64)
    if dtype == "int8":
        assert layer.scale is not None and layer.scale.dtype == torch.float32 and tuple(layer.scale.shape) == (4, k * k, 1, 1)
        step = w64.abs().amax(dim=(2, 3), keepdim=True) / INT8_MAX  # one step per (channel, tap) plane
        assert bool(((meaning - w64).abs() <= step * (0.5 + 1e-6)).all())  # rounded once, to the nearest code
        assert layer.bias.dtype == torch.float32
    else:
        assert layer.scale is None and torch.equal(meaning, w64.to(torch.float16).double())
    torch.testing.assert_close(layer.bias.double(), b64.to(layer.bias.dtype).double(), rtol=0, atol=0)
    # end to end, batch 3, against the unbaked network run by plain torch in float64
    x = random_inputs((3, 3, 96, 96), seed=5)
    with torch.no_grad():
        truth = copy.deepcopy(model).double()(x.double())
        got = result.model(x)
    cosine = torch.nn.functional.cosine_similarity(got.double(), truth, dim=1)
    assert float(cosine.min()) > 0.9999 and _rel(got, truth) < (2e-2 if dtype == "int8" else 2e-3)
    assert result.kernel_errors["1.0"].max_rel <= 0.5 / INT8_MAX + 1e-6 if dtype == "int8" else result.kernel_errors["1.0"].max_rel < 1e-3


def _transposed(scale: torch.Tensor) -> torch.Tensor:
    c, kk = scale.shape[:2]
    return scale.flatten().view(kk, c).t().reshape(c, kk, 1, 1).contiguous()


BUGS = {
    "wrong tap order": lambda m: m.set_kernels(m.weight.flip(1).contiguous(), m.bias, scale=m.scale.flip(1).contiguous()),
    "scale axis transposed": lambda m: m.set_kernels(m.weight, m.bias, scale=_transposed(m.scale)),
    "scale of the next tap": lambda m: m.set_kernels(m.weight, m.bias, scale=m.scale.roll(1, dims=1).contiguous()),
    "dropped scale": lambda m: m.set_kernels(m.weight, m.bias, scale=torch.full_like(m.scale, float(m.scale.mean()))),
}


@pytest.mark.parametrize("bug", [None, *BUGS])
def test_deliberate_int8_bugs_fail_the_check(bug: str | None) -> None:
    """The rule the bake and export apply to int8 kernels (against the float64 truth, yardstick the
    float32 network with the same quantization) passes the bake as stored and fails each bug."""
    model = tiny_tvnet(k=5, stride=2, bias=True)
    baked = bake(model, kernel_dtype="int8").model
    if bug is not None:
        BUGS[bug](baked[1][0])
    reference = Reference(model, kernels=torch.int8)
    x = random_inputs((3, 3, 96, 96), seed=1)
    with torch.no_grad():
        (comparison,) = reference.compare({"network": baked(x)}, x, tolerance=Tolerance.default(reference.precision()))
    assert comparison.ok == (bug is None), comparison.verdict()


# --------------------------------------------------------------------------------------------
# The CLI: bake, the baked file, inspect, export, validate
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def baked_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """face MobileNetV2 x0.1 (small generators) checkpoint, baked with each kernel dtype by the CLI."""
    from tvexport.cli import main

    tmp = tmp_path_factory.mktemp("compressed")
    ckpt = write_checkpoint(make_model(), tmp / "face.ckpt", "lightning")
    files = {"ckpt": ckpt}
    for dtype in ("float32", "float16", "int8"):
        out = tmp / f"face_{dtype}.baked.pt"
        assert main(["bake", str(ckpt), "-o", str(out), "--kernel-dtype", dtype, "--json"]) == 0
        files[dtype] = out
    return files


def test_baked_file_stores_int8_kernels_and_scales(baked_files: dict[str, Path]) -> None:
    payload = torch.load(baked_files["int8"], weights_only=True)
    sd = payload["state_dict"]
    tv = [k.removesuffix(".weight") for k, v in sd.items() if k.endswith(".weight") and v.dtype == torch.int8]
    assert tv and payload["bake"]["dtype"] == "int8" and sorted(tv) == sorted(payload["bake"]["tv_layers"])
    for name in tv:
        c, kk = sd[f"{name}.weight"].shape[:2]
        assert sd[f"{name}.scale"].dtype == torch.float32 and tuple(sd[f"{name}.scale"].shape) == (c, kk, 1, 1)
        assert payload["bake"]["tv_layers"][name]["kernels"]["error"]["max_rel"] <= 0.5 / INT8_MAX + 1e-6
    # the file shrinks by what the kernels save (int8: 3 of 4 bytes per value, less the scales;
    # float16: 2 of 4): the other weights stay float32 (the 0.3x holds where TV kernels
    # are more than ~95% of the file; benchmarks/results/compressed_kernels.md)
    f32 = torch.load(baked_files["float32"], weights_only=True)["state_dict"]
    kernel_bytes = sum(f32[f"{name}.weight"].numel() * 4 for name in tv)
    size = {dtype: baked_files[dtype].stat().st_size for dtype in ("float32", "float16", "int8")}
    assert size["float32"] - size["int8"] >= 0.74 * kernel_bytes and size["float32"] - size["float16"] >= 0.49 * kernel_bytes
    model = load_baked(baked_files["int8"])  # kernels stay int8, run in float32
    layers = [m for m in model.modules() if isinstance(m, BakedTVConv)]
    assert {m.weight.dtype for m in layers} == {torch.int8} and all(m.scale is not None for m in layers)
    assert {m.weight.dtype for m in load_baked(baked_files["float16"]).modules() if isinstance(m, BakedTVConv)} == {torch.float16}


def test_bake_reports_kernel_bytes_and_storage_error(cli, baked_files: dict[str, Path], tmp_path: Path) -> None:
    r = cli("bake", baked_files["ckpt"], "-o", tmp_path / "a.baked.pt", "--kernel-dtype", "int8")
    assert r.exit_code == 0, r.stderr
    assert "TV kernels int8" in r.stdout and "x float32" in r.stdout and "cosine" in r.stdout and "kernels int8" in r.stdout
    r = cli("bake", baked_files["ckpt"], "-o", tmp_path / "b.baked.pt", "--kernel-dtype", "int8", "--json")
    d = json.loads(r.stdout)
    assert d["kernel_dtype"] == "int8" and d["report"]["ok"] and d["report"]["tolerance"]["rtol"] == Tolerance.default("int8_kernels").rtol
    assert d["kernel_bytes"] < 0.26 * d["kernel_float32_bytes"] and d["kernel_errors"]
    r = cli("bake", baked_files["ckpt"], "-o", tmp_path / "c.baked.pt", "--kernel-dtype", "int4")
    assert r.exit_code == 2 and "int4" in r.stderr


def test_inspect_shows_bytes_and_storage_error_per_layer(cli, baked_files: dict[str, Path]) -> None:
    d = json.loads(cli("inspect", baked_files["int8"], "--json").stdout)
    assert d["baked_dtype"] == "int8"
    for layer in d["tv_layers"]:
        assert layer["kernel_dtype"] == "int8" and 0 < layer["kernel_error"]["max_rel"] <= 0.5 / INT8_MAX + 1e-6
        kk = layer["k"] ** 2
        bias = 0 if layer["bias"] == "none" else layer["channels"] * (layer["h"] * layer["w"] if layer["bias"] == "map" else 1)
        assert layer["kernel_bytes"] == layer["channels"] * kk * (layer["h"] * layer["w"] + 4) + 4 * bias  # int8 codes + float32 scales + bias
    assert d["baked_bytes"] == sum(layer["kernel_bytes"] for layer in d["tv_layers"])
    out = cli("inspect", baked_files["int8"]).stdout
    assert "storage max rel" in out and "int8" in out


def _initializer_bytes(path: Path) -> dict[str, int]:
    """Bytes of the graph's initializers by dtype name."""
    import onnx
    from onnx import numpy_helper

    out: dict[str, int] = {}
    for t in onnx.load(str(path)).graph.initializer:
        a = numpy_helper.to_array(t)
        out[a.dtype.name] = out.get(a.dtype.name, 0) + a.nbytes
    return out


def _kernel_values(baked: Path) -> int:
    payload = torch.load(baked, weights_only=True)
    return sum(payload["state_dict"][f"{name}.weight"].numel() for name in payload["bake"]["tv_layers"])


@pytest.mark.parametrize("tv_op", ["portable", "plugin"])
def test_export_keeps_int8_kernels_and_validates(cli, baked_files: dict[str, Path], tmp_path: Path, tv_op: str) -> None:
    import onnx

    sizes, values = {}, _kernel_values(baked_files["int8"])
    for dtype in ("float32", "int8"):
        out = tmp_path / f"{dtype}.onnx"
        r = cli("export", baked_files[dtype], "-o", out, "--tv-op", tv_op, "--batch", "2", "--json")
        assert r.exit_code == 0, r.stderr
        d = json.loads(r.stdout)
        assert d["ok"] and d["info"]["kernel_dtype"] == dtype
        sizes[dtype] = out.stat().st_size
    assert sizes["float32"] - sizes["int8"] >= 0.74 * 4 * values  # the kernels shrink 4x in the file
    f32, i8 = _initializer_bytes(tmp_path / "float32.onnx"), _initializer_bytes(tmp_path / "int8.onnx")
    assert values <= i8["int8"] <= 1.01 * values and f32["float32"] - i8["float32"] >= 0.99 * 4 * values  # int8 codes, no float32 copy of them
    proto = onnx.load(str(tmp_path / "int8.onnx"))
    ops = {n.op_type for n in proto.graph.node}
    if tv_op == "portable":
        assert "DequantizeLinear" in ops
    else:
        nodes = [n for n in proto.graph.node if n.op_type == "tv_dwconv"]
        inits = {t.name: t for t in proto.graph.initializer}
        for n in nodes:
            assert n.domain == "tvexport" and len(n.input) == 4 and n.input[3] in inits
            w, s = inits[n.input[1]], inits[n.input[3]]
            assert w.data_type == onnx.TensorProto.INT8 and s.data_type == onnx.TensorProto.FLOAT and list(s.dims) == [*w.dims[:2], 1, 1]
    r = cli("validate", tmp_path / "int8.onnx", "--against", baked_files["ckpt"], "--json")  # checked against the unbaked float64 truth
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["ok"] and "int8 kernels" in d["baseline"]


def test_int8_plugin_node_is_what_the_tensorrt_reader_takes(tmp_path: Path) -> None:
    """tvexport.trt reads the exporter's node (no TensorRT needed): int8 weight + float32 scale,
    renamed to the int8 plugin with the bias slot filled."""
    from tvexport._depthwise import PLUGIN_NAME_I8
    from tvexport.export.onnx import onnx_graph
    from tvexport.trt._onnx import prepare_tv_nodes

    baked = bake(tiny_tvnet(k=5, stride=2, bias=False), kernel_dtype="int8").model
    proto = onnx_graph(baked, tv_op="plugin", batch=2)
    nodes = prepare_tv_nodes(proto)
    assert [n.dtype for n in nodes] == ["int8"]
    (node,) = [n for n in proto.graph.node if n.op_type == PLUGIN_NAME_I8]
    assert len(node.input) == 4 and all(node.input)


def test_export_carries_float16_kernels_through(cli, baked_files: dict[str, Path], tmp_path: Path) -> None:
    """A float16 baked file exports float16 kernels (not upcast to float32: issue 18, item 6)."""
    out = tmp_path / "h.onnx"
    r = cli("export", baked_files["float16"], "-o", out, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["info"]["kernel_dtype"] == "float16"
    assert _initializer_bytes(out).get("float16", 0) >= 2 * _kernel_values(baked_files["float16"])


def test_export_compresses_float32_kernels_and_refuses_to_round_twice(cli, baked_files: dict[str, Path], tmp_path: Path) -> None:
    r = cli("export", baked_files["float32"], "-o", tmp_path / "a.onnx", "--kernel-dtype", "int8", "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["info"]["kernel_dtype"] == "int8" and d["ok"] and d["comparisons"][0]["tolerance"]["rtol"] == Tolerance.default("int8_kernels").rtol
    r = cli("export", baked_files["int8"], "-o", tmp_path / "b.onnx", "--kernel-dtype", "float16")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "int8" in lines[0] and "round" in lines[0] and "--kernel-dtype" in lines[0], r.stderr
    assert not (tmp_path / "b.onnx").exists()


def test_export_without_validation_builds_no_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ``export_onnx``/``export_aoti`` with ``kernel_dtype`` and ``validate=False`` built a
    ``Reference`` (float64 copies of the network) they never used. With validation, the reference
    is still the float32 model's, made for the compressed kernels (its int8 tolerance)."""
    from tvexport.export import aoti
    from tvexport.export.onnx import export_onnx

    baked = bake(tiny_tvnet(k=3, stride=2, bias=True), verify=False).model
    checked = export_onnx(baked, tmp_path / "v.onnx", tv_op="plugin", batch=2, simplify=False, kernel_dtype="int8")
    assert checked.ok and checked.info["kernel_dtype"] == "int8"
    assert {c.tolerance.rtol for c in checked.comparisons} == {Tolerance.default("int8_kernels").rtol}

    def no_reference(self: Reference, *args: object, **kwargs: object) -> None:
        raise AssertionError("a Reference was built for an export without validation")

    monkeypatch.setattr(Reference, "__init__", no_reference)
    result = export_onnx(baked, tmp_path / "n.onnx", tv_op="plugin", batch=2, simplify=False, kernel_dtype="int8", validate=False)
    assert result.comparisons == [] and result.info["kernel_dtype"] == "int8"

    class Compiling(Exception):
        pass

    def stop(*args: object, **kwargs: object) -> None:  # AOTInductor: stop where the (minute-long) compile would start
        raise Compiling

    monkeypatch.setattr(aoti, "_export_program", stop)
    with pytest.raises(Compiling):
        aoti.export_aoti(baked, tmp_path / "n.pt2", kernel_dtype="int8", validate=False)


def test_export_checkpoint_with_kernel_dtype(cli, baked_files: dict[str, Path], tmp_path: Path) -> None:
    """A checkpoint is baked straight to int8 (from float64) and checked against its unbaked float64 truth."""
    r = cli("export", baked_files["ckpt"], "-o", tmp_path / "c.onnx", "--kernel-dtype", "int8", "--tv-op", "plugin", "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["info"]["kernel_dtype"] == "int8" and d["truth"] == "unbaked float64" and "int8 kernels" in d["baseline"]


def test_kernel_dtype_refused_for_a_baseline_without_tv_layers(cli, tmp_path: Path) -> None:
    src = write_checkpoint(make_model(atom="dwconv"), tmp_path / "dw.ckpt", "lightning")
    r = cli("export", src, "-o", tmp_path / "dw.onnx", "--kernel-dtype", "int8")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "without TV layers" in lines[0] and not (tmp_path / "dw.onnx").exists(), r.stderr


def test_export_float16_overflow_names_the_file(cli, tmp_path: Path) -> None:
    """Kernels beyond float16's range, from a checkpoint (baked on the fly) or a float32 baked file
    compressed by export: one line naming the file and the layer, as bake says it; nothing written."""
    from tvexport.bake import save_baked

    model = make_model()
    with torch.no_grad():
        model.features[1].conv[0][0].weight_layers[-1].weight.mul_(1e6)
    ckpt = write_checkpoint(model, tmp_path / "big.ckpt", "lightning")
    baked = save_baked(bake(model, verify=False), tmp_path / "big.baked.pt")
    for source in (ckpt, baked):
        r = cli("export", source, "-o", tmp_path / "h.onnx", "--kernel-dtype", "float16")
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith(f"error: {source}: baked weight of features.1.conv.0.0 overflows float16"), lines[0]
        assert "--kernel-dtype float32" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.baked.pt", "big.ckpt"]


def test_export_of_nonfinite_kernels_keeps_them_nonfinite_and_refuses_to_validate(cli, tmp_path: Path) -> None:
    """A baked file with a NaN (channel, tap) plane (``bake --allow-nonfinite``), exported with int8
    kernels: as float16 kernels keep NaN/Inf, int8 keeps the plane non-finite (scale NaN, codes 0),
    the artefact computes NaN where the torch model does. Validation cannot pass against NaN
    outputs: refused up front in one line naming the file and --no-validate (it used to run the
    export and then suggest raising --rtol/--atol)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from tvexport.bake import save_baked

    model = make_model()
    with torch.no_grad():
        model.features[1].conv[0][0].weight_layers[-1].weight[4] = float("nan")  # generator output plane 4: channel 0, tap 4
    baked = save_baked(bake(model, verify=False, allow_nonfinite=True), tmp_path / "nan.baked.pt")

    def refused(*argv: object) -> None:
        r = cli(*argv)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith(f"error: {baked}: 1 weight tensor holds NaN/Inf (features.1.conv.0.0.weight)") and "--no-validate" in lines[0], lines[0]

    refused("export", baked, "-o", tmp_path / "v.onnx", "--kernel-dtype", "int8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.baked.pt"]
    x = random_inputs((1, 3, 96, 96)).numpy()
    with torch.no_grad():
        want = load_baked(baked)(torch.from_numpy(x)).numpy()
    assert np.isnan(want).any()
    for dtype in ("int8", "float16"):
        plugin, out = tmp_path / f"{dtype}.plugin.onnx", tmp_path / f"{dtype}.onnx"
        for path, tv_op in ((plugin, "plugin"), (out, "portable")):
            r = cli("export", baked, "-o", path, "--kernel-dtype", dtype, "--tv-op", tv_op, "--no-validate")
            assert r.exit_code == 0, r.stderr
        inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(plugin)).graph.initializer}  # the plugin node's inputs: kernels as stored
        weight = inits["features.1.conv.0.0.weight"].reshape(-1, 96 * 96)
        if dtype == "int8":
            scale = inits["features.1.conv.0.0.scale"].reshape(-1)
            assert np.isnan(scale[4]) and (weight[4] == 0).all() and np.isfinite(np.delete(scale, 4)).all()
        else:
            assert np.isnan(weight[4]).all() and np.isfinite(np.delete(weight, 4, axis=0)).all()
        sess = ort.InferenceSession(str(out))
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        refused("validate", out, "--against", baked)


def test_export_float16_graph_handles_nonfinite_and_overflow_as_kernel_dtype_does(cli, tmp_path: Path) -> None:
    """``--dtype float16`` (the whole graph) as ``--kernel-dtype float16``: NaN/Inf kernels (a bake
    with --allow-nonfinite) stay non-finite and are not called an overflow (Inf was, NaN passed
    unseen); a finite value beyond float16 is, in one line naming the file, the tensor and the fix."""
    import onnx
    from onnx import numpy_helper

    from tvexport.bake import save_baked

    result = bake(make_model(), verify=False)
    first, second = [m for m in result.model.modules() if isinstance(m, BakedTVConv)][:2]
    with torch.no_grad():
        first.weight[0, 0, 0, 0] = float("inf")
        second.weight[0, 0, 0, 0] = float("nan")
    nonfinite = save_baked(result, tmp_path / "nonfinite.baked.pt")
    for option in (["--kernel-dtype", "float16"], ["--dtype", "float16"]):
        out = tmp_path / "n.onnx"
        r = cli("export", nonfinite, "-o", out, "--no-validate", "--force", *option)
        assert r.exit_code == 0 and "overflow" not in r.stderr, (option, r.stderr)
        values = [numpy_helper.to_array(t).astype("float64") for t in onnx.load(str(out)).graph.initializer]
        assert any(bool((v == float("inf")).any()) for v in values) and any(bool((v != v).any()) for v in values), option
    with torch.no_grad():
        first.weight[0, 0, 0, 1] = 1e6  # beside the Inf: the finite peak is what overflows
    big = save_baked(result, tmp_path / "big.baked.pt")
    for option, says in ((["--kernel-dtype", "float16"], "baked weight of features.1.conv.0.0"), (["--dtype", "float16"], "weight features.1.conv.0.0.weight")):
        r = cli("export", big, "-o", tmp_path / "b.onnx", "--no-validate", *option)  # validation refuses its NaN/Inf first
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith(f"error: {big}: {says} overflows float16 (max |value| 1e+06 > 65504)"), lines[0]
        assert f"{option[0]} float32" in lines[0]
    assert not (tmp_path / "b.onnx").exists()


def test_check_weights_fit_ignores_nonfinite_and_names_the_source(tmp_path: Path) -> None:
    from tvexport.errors import TvexportError
    from tvexport.export._common import check_weights_fit

    layer = torch.nn.Linear(4, 4)
    with torch.no_grad():
        layer.weight[0, 0], layer.weight[1, 1], layer.bias[0] = float("inf"), float("-inf"), float("nan")
    check_weights_fit(layer, torch.float16)  # non-finite stays non-finite: no overflow
    with torch.no_grad():
        layer.weight[2, 2] = -7e4
    with pytest.raises(TvexportError, match=r"^x\.pt: weight weight overflows float16 \(max \|value\| 70000 > 65504\); export with --dtype float32$"):
        check_weights_fit(layer, torch.float16, source="x.pt")
