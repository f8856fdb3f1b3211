"""Compressed baked kernels (float16, int8 with one float32 scale per (channel, tap)): the quantizer,
the baked layer, every artefact form, each against a float64 truth computed independently from
the stored values (numpy: ``q * scale`` in float64), and deliberate bugs that must fail.

Tolerances: a correct float32 computation with stored kernels lands within float32 rounding of
the float64 truth of those same stored kernels (<= 1e-6 relative for one layer here); what the
storage itself loses is checked separately, per plane, against half a quantization step.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from conftest import make_model
from tvexport.bake import bake_model
from tvexport.errors import TvexportError
from tvexport.layers import BakedTVConv
from tvexport.quantize import INT8_MAX, KernelError, cast_model_, compress_layer, compress_kernels, dequantize, kernel_dtype, quantize_int8

LAYERS = [  # (channels, k, stride, h, w, bias kind): stride 1/2, k 3/5, bias map/channel/none
    (4, 3, 1, 6, 7, None),
    (5, 3, 2, 4, 5, "map"),
    (3, 5, 1, 7, 6, "channel"),
    (3, 5, 2, 5, 4, "map"),
]
_IDS = [f"C{c}k{k}s{s}{b or ''}" for c, k, s, _, _, b in LAYERS]


def _planes(c: int, kk: int, h: int, w: int, *, seed: int = 0) -> np.ndarray:
    """Kernels whose (channel, tap) planes differ in magnitude by 3 orders, as generator outputs
    do: a coarser scale than per (channel, tap) loses the small planes."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((c, kk, h, w)) * 10.0 ** rng.uniform(-2, 1, (c, kk, 1, 1))).astype(np.float32)


def _layer(c: int, k: int, s: int, h: int, w: int, bias: str | None, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    b = None if bias is None else rng.standard_normal((c, h, w) if bias == "map" else (c, 1, 1)).astype(np.float32)
    x = rng.standard_normal((3, c, s * h, s * w)).astype(np.float32)  # batch 3
    return _planes(c, k * k, h, w, seed=seed), b, x


def _truth(x: np.ndarray, w64: np.ndarray, b: np.ndarray | None, stride: int) -> np.ndarray:
    """The TV op by its definition in float64: direct loops over taps, nothing shared with tvexport."""
    c, kk, h, wd = w64.shape
    k = int(round(kk**0.5))
    p = k // 2
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)))
    out = np.zeros((x.shape[0], c, h, wd))
    for ky in range(k):
        for kx in range(k):
            out += xp[:, :, ky : ky + stride * (h - 1) + 1 : stride, kx : kx + stride * (wd - 1) + 1 : stride] * w64[:, ky * k + kx]
    return out if b is None else out + b.astype(np.float64)


def _meaning(weight: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """What stored kernels mean, in float64, by the contract: ``weight * scale`` for int8."""
    return weight.astype(np.float64) * (1.0 if scale is None else scale.astype(np.float64))


def _rel(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(np.asarray(got, np.float64) - ref).max() / np.abs(ref).max())


def _half_step_ok(w: np.ndarray, meaning: np.ndarray) -> bool:
    """Every value within half an int8 step of its OWN (channel, tap) plane (plus float32 rounding)."""
    step = np.abs(w.astype(np.float64)).max(axis=(2, 3), keepdims=True) / INT8_MAX
    return bool((np.abs(meaning - w) <= step * (0.5 + 1e-6)).all())


# --------------------------------------------------------------------------------------------
# The quantizer
# --------------------------------------------------------------------------------------------

def test_int8_one_scale_per_channel_and_tap() -> None:
    w = _planes(6, 9, 5, 7)
    w[2, 4] = 0.0  # an all-zero plane
    q, scale = (t.numpy() for t in quantize_int8(torch.from_numpy(w)))
    assert q.dtype == np.int8 and scale.dtype == np.float32 and scale.shape == (6, 9, 1, 1)
    expected = (np.abs(w.astype(np.float64)).max(axis=(2, 3), keepdims=True) / 127).astype(np.float32)
    expected[2, 4] = 1.0
    np.testing.assert_array_equal(scale, expected)  # max|w[c, t]| / 127 (1 for a zero plane)
    assert np.abs(q).max() <= 127 and (q[2, 4] == 0).all()
    peaks = np.abs(q.astype(np.int32)).max(axis=(2, 3))
    assert (np.delete(peaks.ravel(), 2 * 9 + 4) == 127).all()  # each plane uses its full range
    assert _half_step_ok(w, _meaning(q, scale))


def test_nonfinite_planes_stay_nonfinite() -> None:
    """NaN/Inf kernels (only baked with --allow-nonfinite): int8 cannot hold them, so their
    planes read NaN (scale NaN, codes 0) and every other plane is quantized as alone; float16
    keeps them as they are and refuses only finite values beyond its range."""
    w = _planes(2, 9, 3, 3)
    bad = w.copy()
    bad[0, 1, 1, 1], bad[1, 2, 0, 0], bad[1, 3, 2, 2] = np.nan, np.inf, -np.inf
    q, scale = (t.numpy() for t in quantize_int8(torch.from_numpy(bad)))
    q_ok, scale_ok = (t.numpy() for t in quantize_int8(torch.from_numpy(w)))
    planes = [(0, 1), (1, 2), (1, 3)]
    mask = np.zeros((2, 9), bool)
    for c, t in planes:
        mask[c, t] = True
        assert np.isnan(scale[c, t]).all() and (q[c, t] == 0).all() and np.isnan(_meaning(q[c, t], scale[c, t])).all()
    np.testing.assert_array_equal(scale[~mask], scale_ok[~mask])
    np.testing.assert_array_equal(q[~mask], q_ok[~mask])
    half, _ = compress_kernels(torch.from_numpy(bad), torch.float16)
    np.testing.assert_array_equal(half.numpy(), bad.astype(np.float16))  # NaN, +Inf, -Inf where they were
    with pytest.raises(TvexportError, match=r"overflows float16 \(max \|value\| [0-9.e+]+ > 65504\)"):
        compress_kernels(torch.from_numpy(bad) * 1e5, torch.float16)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_allow_nonfinite_bakes_compressed_kernels(dtype: str) -> None:
    """What --allow-nonfinite promises (bake anyway) holds for compressed kernels too: the damaged
    layer's kernels stay non-finite, the others are as in a bake of finite weights."""
    model = make_model()
    clean = bake_model(model, kernel_dtype=dtype, verify=False).model  # type: ignore[arg-type]
    with torch.no_grad():
        model.features[3].conv[1][0].posi_map[0, 0, 1, 1] = float("nan")
    baked = bake_model(model, kernel_dtype=dtype, verify=False, allow_nonfinite=True).model  # type: ignore[arg-type]
    for name, layer in baked.named_modules():
        if isinstance(layer, BakedTVConv):
            meaning = dequantize(layer.weight, layer.scale, dtype=torch.float64)
            if name == "features.3.conv.1.0":
                assert not torch.isfinite(meaning).any()
            else:
                assert torch.equal(layer.weight, clean.get_submodule(name).weight)


def test_coarser_or_misplaced_scales_fail_the_half_step_check() -> None:
    """The check above is what catches a quantizer with one scale per channel only, or scales on the wrong axis."""
    w = _planes(6, 9, 5, 7)
    per_channel = np.abs(w).max(axis=(1, 2, 3), keepdims=True) / 127
    assert not _half_step_ok(w, np.round(w / per_channel) * per_channel)
    q, scale = (t.numpy() for t in quantize_int8(torch.from_numpy(w)))
    wrong_axis = scale.reshape(6, 9)[:, ::-1].reshape(6, 9, 1, 1)  # taps' scales reversed
    assert not _half_step_ok(w, _meaning(q, wrong_axis))


def test_dequantize_and_compress() -> None:
    w = torch.from_numpy(_planes(3, 25, 4, 4))
    q, s = compress_kernels(w.double(), torch.int8)
    assert q.dtype == torch.int8 and s is not None
    exact = dequantize(q, s, dtype=torch.float64)
    np.testing.assert_array_equal(exact.numpy(), _meaning(q.numpy(), s.numpy()))  # q * s is exact in float64
    half, none = compress_kernels(w, torch.float16)
    assert half.dtype == torch.float16 and none is None
    err = KernelError.between(exact, w)
    assert err.rms_rel > 0 and 0 < err.max_rel <= 0.5 / 127 * 1.0001  # max over the largest plane: half its step
    e, d = w.numpy().astype(np.float64), exact.numpy() - w.numpy().astype(np.float64)  # by the definitions, in numpy
    assert err.max_abs == pytest.approx(np.abs(d).max(), rel=1e-12)
    assert err.max_rel == pytest.approx(np.abs(d).max() / np.abs(e).max(), rel=1e-12)
    assert err.rms_rel == pytest.approx(np.sqrt(np.mean(d**2)) / np.sqrt(np.mean(e**2)), rel=1e-12)
    with pytest.raises(ValueError, match="need their scale"):
        dequantize(q)
    from tvexport.errors import TvexportError

    with pytest.raises(TvexportError, match="overflows float16"):
        compress_kernels(w * 1e5, torch.float16)
    with pytest.raises(TvexportError, match="float32, float16, int8"):
        kernel_dtype("int4")


# --------------------------------------------------------------------------------------------
# The baked layer (torch): eager per tap, CUDA/compiled forms are tested elsewhere
# --------------------------------------------------------------------------------------------

def _baked_layer(c: int, k: int, s: int, h: int, w: int, bias: str | None, dtype: torch.dtype) -> tuple[BakedTVConv, np.ndarray, np.ndarray | None, np.ndarray]:
    weight, b, x = _layer(c, k, s, h, w, bias)
    layer = BakedTVConv(c, k=k, stride=s, h=h, w=w, bias=bias and ("channel" if b.shape[1:] == (1, 1) else "map"))
    layer.set_kernels(torch.from_numpy(weight), None if b is None else torch.from_numpy(b))
    if dtype != torch.float32:
        compress_layer(layer, dtype)
    return layer, weight, b, x


def _stored_meaning(layer: BakedTVConv) -> np.ndarray:
    return _meaning(layer.weight.numpy(), None if layer.scale is None else layer.scale.numpy())


@pytest.mark.parametrize("dtype", [torch.float16, torch.int8], ids=["fp16", "int8"])
@pytest.mark.parametrize("case", LAYERS, ids=_IDS)
def test_baked_layer_runs_stored_kernels(case: tuple, dtype: torch.dtype) -> None:  # type: ignore[type-arg]
    layer, weight, b, x = _baked_layer(*case, dtype)
    assert layer.weight.dtype == dtype and (layer.scale is not None) == (dtype == torch.int8)
    meaning = _stored_meaning(layer)
    if dtype == torch.int8:
        assert _half_step_ok(weight, meaning)
    bias = None if layer.bias is None else layer.bias.numpy()
    truth = _truth(x, meaning, bias, case[2])
    with torch.no_grad():
        got = layer(torch.from_numpy(x)).numpy()
        got64 = copy.deepcopy(layer).double()(torch.from_numpy(x).double()).numpy()  # a float64 run: exact products
    assert got.dtype == np.float32 and _rel(got, truth) < 1e-6
    assert _rel(got64, truth) < 1e-13


def test_cast_model_keeps_compressed_kernels() -> None:
    """``cast_model_`` (used by exporters and benches) converts everything but compressed kernels."""
    layer16, *_ = _baked_layer(*LAYERS[1], torch.float16)
    layer8, *_ = _baked_layer(*LAYERS[1], torch.int8)
    plain, *_ = _baked_layer(*LAYERS[1], torch.float32)
    net = torch.nn.Sequential(layer16, torch.nn.Identity(), layer8, plain, torch.nn.Conv2d(5, 5, 1).half())
    cast_model_(net, torch.float32)
    assert (layer16.weight.dtype, layer16.bias.dtype) == (torch.float16, torch.float16)
    assert (layer8.weight.dtype, layer8.scale.dtype, layer8.bias.dtype) == (torch.int8, torch.float32, torch.float32)
    assert net[4].weight.dtype == torch.float32
    cast_model_(net, torch.float16)
    assert plain.weight.dtype == torch.float16 and layer8.scale.dtype == torch.float32


def test_eager_cpu_never_converts_all_kernels_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per call, the CPU form converts one (C, h, w) tap at a time, not the whole (C, k*k, h, w) tensor."""
    layer, *_ , x = _baked_layer(*LAYERS[2], torch.int8)
    whole = tuple(layer.weight.shape)
    seen: list[tuple[int, ...]] = []
    real_to = torch.Tensor.to

    def spy(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        if self.dtype in (torch.int8, torch.float16):
            seen.append(tuple(self.shape))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    with torch.no_grad():
        layer(torch.from_numpy(x))
    assert seen and whole not in seen and all(s == (whole[0], *whole[2:]) for s in seen)


# --------------------------------------------------------------------------------------------
# ONNX: every portable form and the plugin node keep kernels compressed and expand them right
# --------------------------------------------------------------------------------------------

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime_extensions")

from tvexport.export import onnx as tvonnx  # noqa: E402
from tvexport.export._onnx_tv import DECOMPOSITIONS, keep_kernels_compressed, layer_model  # noqa: E402
from tvexport.export._plugin_ref import reference_ops  # noqa: E402


def _stored(weight: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    if dtype == "int8":
        q, s = quantize_int8(torch.from_numpy(weight))
        return q.numpy(), s.numpy()
    return weight.astype(np.float16), None


def _kernel_inits(model: object) -> dict[str, np.dtype]:
    """dtype of every initializer holding kernel values (bytes: more than a scale row)."""
    return {t.name: onnx.helper.tensor_dtype_to_np_dtype(t.data_type) for t in model.graph.initializer if ".weight" in t.name and not t.name.endswith(".scale")}


@pytest.mark.parametrize("dtype", ["float16", "int8"])
@pytest.mark.parametrize("method", [*DECOMPOSITIONS, "plugin"])
@pytest.mark.parametrize("case", LAYERS, ids=_IDS)
def test_layer_graph_with_stored_kernels(case: tuple, method: str, dtype: str) -> None:  # type: ignore[type-arg]
    weight, b, x = _layer(*case)
    stored, scale = _stored(weight, dtype)
    model = layer_model(stored, b, stride=case[2], method=method, batch="N", scale=scale, compute=np.float32)
    onnx.checker.check_model(model, full_check=True)
    kinds = set(_kernel_inits(model).values())
    assert kinds == {np.dtype(dtype)}, kinds  # no float32 copy of the kernels in the file
    truth = _truth(x, _meaning(stored, scale), b, case[2])
    got = tvonnx.OrtRunner(model, what="layer")(x)
    assert _rel(got, truth) < 1e-6
    if method == "plugin":
        from onnx.reference import ReferenceEvaluator

        (node,) = model.graph.node
        assert len(node.input) == (4 if dtype == "int8" else (3 if b is not None else 2))
        if dtype == "int8" and b is None:
            assert node.input[2] == ""  # absent bias: the empty name keeps the scale 4th
        evaluated = ReferenceEvaluator(model, new_ops=reference_ops()).run(None, {"x": x})[0]
        assert _rel(evaluated, truth) < 1e-6


@pytest.mark.parametrize("method", ["shift_add", "onehot_conv", "plugin"])
def test_int8_kernels_in_a_float16_graph(method: str) -> None:
    weight, b, x = _layer(*LAYERS[3])
    q, scale = _stored(weight, "int8")
    model = layer_model(q, b, stride=2, method=method, batch=3, scale=scale, compute=np.float16)
    runner = tvonnx.OrtRunner(model, what="layer")
    assert runner.input_dtype == np.float16
    assert _rel(runner(x), _truth(x.astype(np.float16), _meaning(q, scale), b, 2)) < 2e-3  # float16 activations


@pytest.mark.parametrize("bug", ["missing dequantization", "scale of the wrong tap", "per-channel scale"])
def test_deliberate_bugs_fail_the_layer_check(bug: str) -> None:
    """The same check as above on graphs broken the ways a compressed export could break."""
    weight, b, x = _layer(*LAYERS[1])
    q, scale = _stored(weight, "int8")
    model = layer_model(q, b, stride=2, method="shift_add", batch=3, scale=scale)
    truth = _truth(x, _meaning(q, scale), b, 2)
    assert _rel(tvonnx.OrtRunner(model, what="layer")(x), truth) < 1e-6
    graph = model.graph
    if bug == "missing dequantization":  # the int8 codes used as values
        for node in graph.node:
            if node.op_type == "DequantizeLinear":
                node.op_type = "Cast"
                del node.input[1:]
                node.attribute.pop()
                node.attribute.append(onnx.helper.make_attribute("to", onnx.TensorProto.FLOAT))
    else:
        inits = {t.name: t for t in graph.initializer}
        for t in range(9):
            name = f"tv.weight_tap{t}.scale"
            if bug == "scale of the wrong tap":
                value = scale[:, 8 - t].reshape(-1)
            else:  # one scale per channel (its largest tap's) for every tap
                value = scale.reshape(5, 9).max(axis=1)
            inits[name].CopyFrom(onnx.numpy_helper.from_array(value.astype(np.float32), name))
    assert _rel(tvonnx.OrtRunner(model, what="layer")(x), truth) > 1e-2


def test_onnxsim_keeps_float16_and_int8_kernels() -> None:
    """onnxsim folds Cast(float16 initializer) into float32; the exporter puts the float16 kernels back."""
    onnxsim = pytest.importorskip("onnxsim")
    weight, b, x = _layer(*LAYERS[0])
    for dtype in ("float16", "int8"):
        stored, scale = _stored(weight, dtype)
        model = layer_model(stored, b, stride=1, method="shift_add", batch=3, scale=scale, compute=np.float32)
        simplified, ok = onnxsim.simplify(model, check_n=0)
        assert ok
        if dtype == "float16":  # what onnxsim alone does
            assert set(_kernel_inits(simplified).values()) == {np.dtype(np.float32)}
        restored = keep_kernels_compressed(simplified, model)
        assert (restored == 9) == (dtype == "float16")
        assert set(_kernel_inits(simplified).values()) == {np.dtype(dtype)}
        onnx.checker.check_model(simplified, full_check=True)
        truth = _truth(x, _meaning(stored, scale), b, 1)
        assert _rel(tvonnx.OrtRunner(simplified, what="layer")(x), truth) < 1e-6
        kernel_bytes = sum(len(t.raw_data) for t in simplified.graph.initializer if ".weight" in t.name)
        assert kernel_bytes <= weight.nbytes * {"float16": 0.5, "int8": 0.25 + 4 / (6 * 7)}[dtype]  # + one float32 scale per plane


# --------------------------------------------------------------------------------------------
# AOTInductor: the package stores the compressed constants and dequantizes in the fused TV loop
# --------------------------------------------------------------------------------------------

def _package_source(path: object, suffix: str) -> str:
    import zipfile

    with zipfile.ZipFile(path) as z:  # type: ignore[arg-type]
        return "".join(z.read(n).decode() for n in z.namelist() if n.endswith(suffix))


@pytest.fixture(scope="module", params=[("int8", 5, 2, True), ("float16", 3, 1, False)], ids=["int8-k5s2-map", "fp16-k3s1-none"])
def compressed_package(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, torch.nn.Module, object, str]:
    from tinynet import tiny_tvnet

    from tvexport import bake
    from tvexport.export.aoti import export_aoti

    dtype, k, stride, bias = request.param
    baked32 = bake(tiny_tvnet(k=k, stride=stride, bias=bias)).model
    baked = copy.deepcopy(baked32)
    from tvexport.quantize import compress_model

    compress_model(baked, getattr(torch, dtype))
    path = tmp_path_factory.mktemp("aoti") / f"tiny_{dtype}.pt2"
    # export --kernel-dtype on a float32 baked model: compressed there, validated against its
    # float64 truth with the float32 model's kernels rounded the same way as the yardstick
    result = export_aoti(baked32, path, dynamic_batch=True, batch=2, max_batch=4, kernel_dtype=dtype)
    return path, baked, result, dtype


def test_package_keeps_kernels_compressed(compressed_package: tuple) -> None:  # type: ignore[type-arg]
    path, baked, result, dtype = compressed_package
    (layer,) = [m for m in baked.modules() if isinstance(m, BakedTVConv)]
    numel = layer.weight.numel()
    info = result.info
    assert info["kernel_dtype"] == dtype and result.ok
    constants = info["constant_bytes"]
    size = {"int8": 1, "float16": 2}[dtype]
    assert constants[dtype] == numel * size  # the k*k tap planes, in their stored dtype
    assert constants["float32"] < numel * 4  # no float32 copy of the kernels was folded in
    kernels = _package_source(path, ".kernel.cpp")
    loads = {"int8": "Vectorized<int8_t>::loadu", "float16": "Vectorized<at::Half>::loadu"}[dtype]
    assert kernels.count(loads) >= layer.k**2  # each tap read in its stored dtype inside the loop
    if dtype == "int8":
        assert "_dequantize_per_channel_" in kernels  # the dequantization fused into the TV loop


@pytest.mark.parametrize("batch", [1, 3])
def test_package_matches_float64_truth(compressed_package: tuple, batch: int) -> None:  # type: ignore[type-arg]
    from tvexport.bake import random_inputs
    from tvexport.export.aoti import load_runner

    path, baked, _, _ = compressed_package
    x = random_inputs((batch, 3, 96, 96), seed=batch)
    with torch.no_grad():
        truth = copy.deepcopy(baked).double()(x.double()).numpy()  # stored kernels, exact in float64
    got = load_runner(path)(x.numpy())
    assert _rel(got, truth) < 1e-5


def test_package_without_dequantization_fails_validation(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """A traced form that drops the int8 scales (the package computing with raw codes) is refused."""
    from tinynet import tiny_tvnet

    from tvexport import _depthwise, bake
    from tvexport.export.aoti import export_aoti
    from tvexport.export.validate import ValidationMismatch
    from tvexport.quantize import compress_model

    baked = bake(tiny_tvnet(k=3, stride=2, bias=False)).model
    compress_model(baked, torch.int8)
    monkeypatch.setattr(_depthwise, "_dequantize_traced", lambda plane, scale: plane.float())
    with pytest.raises(ValidationMismatch):
        export_aoti(baked, tmp_path / "bad.pt2", batch=2)  # type: ignore[operator]


@pytest.mark.parametrize("stored", ["float16", "int8"])
def test_compress_model_refuses_kernels_already_compressed(stored: str) -> None:
    """Compressing float16/int8 kernels again would round them twice: ValueError, nothing changed
    (not even the float32 layers before the compressed one)."""
    from tvexport.quantize import compress_model

    whole = bake_model(make_model(), kernel_dtype=stored, verify=False).model
    for target in (torch.int8, torch.float16):
        with pytest.raises(ValueError, match=rf"already stores {stored} kernels; only float32/float64 kernels are compressed \(to {str(target)[6:]}\)"):
            compress_model(whole, target)
    mixed = bake_model(make_model(), verify=False).model
    layers = [m for m in mixed.modules() if isinstance(m, BakedTVConv)]
    compress_layer(layers[-1], getattr(torch, stored))
    before = {k: v.clone() for k, v in mixed.state_dict().items()}
    with pytest.raises(ValueError, match="only float32/float64 kernels are compressed"):
        compress_model(mixed, torch.int8)
    after = mixed.state_dict()
    assert before.keys() == after.keys() and all(v.dtype == after[k].dtype and torch.equal(v, after[k]) for k, v in before.items())


def test_stored_kernel_dtype_takes_the_graph_dtype_by_keyword_only() -> None:
    from tvexport.quantize import stored_kernel_dtype

    baked = bake_model(make_model(), verify=False).model
    assert stored_kernel_dtype(baked) == "float32" and stored_kernel_dtype(baked, dtype="float16") == "float16"  # float32 kernels follow the graph
    with pytest.raises(TypeError):
        stored_kernel_dtype(baked, "float16")  # type: ignore[misc]
    compress_layer(next(m for m in baked.modules() if isinstance(m, BakedTVConv)), torch.int8)
    assert stored_kernel_dtype(baked, dtype="float16") == "mixed" and stored_kernel_dtype(torch.nn.Linear(2, 2)) is None


def test_overflow_checks_the_rounding_edge_and_float32_storage() -> None:
    """float16 holds values below 65520 (they round to 65504): only those that round to Inf are
    refused, with numbers that say why; a float64 bake beyond float32's range is refused too,
    rather than stored as Inf (kernels and bias)."""
    edge = torch.tensor([65504.0, 65519.0, -65519.9, 1.0], dtype=torch.float64).view(1, 4, 1, 1)
    half, _ = compress_kernels(edge, torch.float16)
    assert half.float().view(-1).tolist() == [65504.0, 65504.0, -65504.0, 1.0]
    with pytest.raises(TvexportError, match=r"^kernels overflows float16 \(max \|value\| 65520 > 65504\);") as err:
        compress_kernels(edge.clone().index_fill_(1, torch.tensor([3]), -65520.0), torch.float16)
    assert "--kernel-dtype float32" in (err.value.hint or "")
    big = torch.tensor([1e39, 0.0, 0.0, 3.0], dtype=torch.float64).view(1, 4, 1, 1)
    with pytest.raises(TvexportError, match=r"^k overflows float32 \(max \|value\| 1e\+39 > 3\.40282e\+38\);"):
        compress_kernels(big, torch.float32, name="k")
    assert compress_kernels(big.clone().fill_(math.inf), torch.float32)[0].isinf().all()  # non-finite stays as it is: not an overflow
    for dtype in (torch.int8, torch.float16):  # int8's scale and dequantized values are float32 too (was codes 127 x scale 7.9e36 = Inf)
        with pytest.raises(TvexportError, match=r"^k overflows float32 \(max \|value\| 1e\+39 > 3\.40282e\+38\);") as err:
            compress_kernels(big, dtype, name="k")
        assert "--kernel-dtype" not in (err.value.hint or "")  # float32 kernels would not hold them either
    layer = BakedTVConv(1, k=2, stride=1, h=1, w=1, bias="map", dtype=torch.float64)
    layer.set_kernels(torch.ones(1, 4, 1, 1, dtype=torch.float64), torch.full((1, 1, 1), -1e39, dtype=torch.float64))
    with pytest.raises(TvexportError, match=r"^baked bias of L overflows float32"):
        compress_layer(layer, torch.float32, name="L")
