"""The TensorRT path: pure pieces (attributes, shape inference, build plan per TensorRT version,
profiles, sidecar, ONNX node preparation) on CPU; the CLI and runner without TensorRT; engines
built and run against the torch reference where TensorRT and a GPU exist."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from tvexport._depthwise import PLUGIN_ID, PLUGIN_ID_I8
from tvexport.errors import MissingDependencyError, TvexportError
from tvexport.trt._spec import (
    DEFAULT_BATCH,
    TVAttrs,
    check_tensorrt,
    infer_output_dims,
    parse_attrs,
    plan_build,
    profile_shapes,
    resolve_precision,
    sidecar_contents,
    sidecar_path,
)

HAS_ONNX = importlib.util.find_spec("onnx") is not None
HAS_TRT = importlib.util.find_spec("tensorrt") is not None
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="onnx is not installed")
REEXPORT_HINT = "; export the model again with tvexport export --tv-op plugin"  # how a refused tv_dwconv node is fixed
needs_trt_gpu = pytest.mark.skipif(
    not (HAS_TRT and HAS_ONNX and torch.cuda.is_available() and importlib.util.find_spec("triton")),
    reason="needs tensorrt, onnx, triton and a CUDA GPU",
)


# --------------------------------------------------------------------------- attributes and shapes


def test_parse_attrs() -> None:
    a = parse_attrs(3, stride=2, padding=1)
    assert (a.k, a.stride, a.padding) == (3, 2, 1)
    b = parse_attrs(7, stride=1, padding=3)
    assert (b.k, b.stride, b.padding) == (7, 1, 3)
    assert parse_attrs(3, stride=3, padding=1).stride == 3  # the node's bounds (stride >= 1); the kernel takes any stride
    for bad, match in [((4, 1, 2), "odd"), ((65, 1, 32), "at most 63"), ((3, 0, 1), "stride"), ((3, 1, 0), "TensorRT plugin"),
                       ((5, 1, 1), "TensorRT plugin"), ((3, 1, 3), "between 0 and k-1")]:
        with pytest.raises(ValueError, match=match):
            parse_attrs(bad[0], stride=bad[1], padding=bad[2])


def test_parse_attrs_options_are_keyword_only() -> None:
    """House standard: only the subject (k) may be positional; before, ``parse_attrs(3, 2, 1)`` read
    stride and padding by position."""
    with pytest.raises(TypeError):
        parse_attrs(3, 2, 1)  # type: ignore[misc]
    assert parse_attrs(3, padding=1, stride=2) == parse_attrs(3, stride=2, padding=1)


def test_tv_attrs_options_are_keyword_only() -> None:
    """House standard, as parse_attrs: TVAttrs is public (tvexport.trt) and only its subject (k) may
    be positional; before, ``TVAttrs(3, 2, 1)`` read stride and padding by position."""
    with pytest.raises(TypeError):
        TVAttrs(3, 2, 1)  # type: ignore[misc]
    assert TVAttrs(3, padding=1, stride=2) == parse_attrs(3, stride=2, padding=1)
    assert TVAttrs(k=3, stride=2, padding=1).stride == 2


# The bounds of the node's attributes in the OpenVINO op's words (its check_attributes, see
# test_openvino.py::test_bad_node_refused_at_compile_time): the Python sides share them.
BAD_ATTRS = [
    ({"k": 2}, "k must be a positive odd number, got 2"),
    ({"k": 0, "padding": 0}, "k must be a positive odd number, got 0"),
    ({"k": 65, "padding": 32}, "k must be at most 63, got 65"),
    ({"stride": 0}, "stride must be >= 1, got 0"),
    ({"stride": -2}, "stride must be >= 1, got -2"),
    ({"padding": 3}, "padding must be between 0 and k-1 = 2 for k=3, got 3"),
    ({"padding": -1}, "padding must be between 0 and k-1 = 2 for k=3, got -1"),
]


@needs_onnx
@pytest.mark.parametrize("attrs, message", BAD_ATTRS, ids=[",".join(f"{k}={v}" for k, v in a.items()) for a, _ in BAD_ATTRS])
def test_node_attribute_bounds_are_the_openvino_ops(attrs: dict, message: str) -> None:
    """Before: the TensorRT preparation took an odd k of any size (65 too) but only stride 1 or 2, and
    the numpy reference checked none (an even k ran, stride 0 divided by zero). Both now refuse
    what the OpenVINO op refuses, with its words."""
    from tvexport.export._plugin_ref import tv_dwconv_reference
    from tvexport.trt._onnx import prepare_tv_nodes

    spec = _spec(4, 3, 1, 5, 6, None)
    spec["attrs"] = attrs
    with pytest.raises(TvexportError) as info:
        prepare_tv_nodes(_tv_model(None, [spec]), source="m.onnx")
    assert str(info.value) == f"m.onnx: tv_dwconv node tv0: {message}" + REEXPORT_HINT
    full = {"k": 3, "stride": 1, "padding": 1, **attrs}
    x, weight = np.ones((1, 4, 5, 6), np.float32), np.ones((4, full["k"] ** 2, 5, 6), np.float32)
    with pytest.raises(ValueError) as refused:
        tv_dwconv_reference(x, weight, **full)
    assert str(refused.value) == f"tv_dwconv: {message}"


@needs_onnx
def test_node_attributes_within_the_bounds() -> None:
    """What the bounds allow: the numpy reference runs any stride and padding (here stride 3, and
    padding 0 against torch's conv); the TensorRT preparation takes stride 3 (before: refused) and
    refuses only a padding its kernel does not apply (it pads by k // 2, as tvexport exports)."""
    from tvexport.export._plugin_ref import tv_dwconv_reference
    from tvexport.trt._onnx import prepare_tv_nodes

    spec = _spec(4, 3, 3, 2, 3, "map")
    assert [(n.k, n.stride, n.oh, n.ow) for n in prepare_tv_nodes(_tv_model(None, [spec]))] == [(3, 3, 2, 3)]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 8))
    for stride, padding, (h, w) in ((3, 1, (3, 3)), (1, 0, (5, 6))):
        weight = np.broadcast_to(rng.standard_normal((4, 9, 1, 1)), (4, 9, h, w)).copy()  # one kernel per channel: a conv
        got = tv_dwconv_reference(x, weight, k=3, stride=stride, padding=padding)
        conv = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight[:, :, 0, 0].reshape(4, 1, 3, 3)),
                                          stride=stride, padding=padding, groups=4)
        np.testing.assert_allclose(got, conv.numpy(), rtol=1e-12, atol=1e-12)
    spec = _spec(4, 3, 1, 5, 6, None)
    spec["attrs"] = {"padding": 0}
    with pytest.raises(TvexportError, match=r"m.onnx: tv_dwconv node tv0: padding must be k // 2 = 1 for tvexport's TensorRT plugin .*; export the model again"):
        prepare_tv_nodes(_tv_model(None, [spec]), source="m.onnx")


def test_output_dims_known_and_symbolic() -> None:
    a = parse_attrs(3, stride=2, padding=1)
    assert infer_output_dims((4, 8, 12, 10), (8, 9, 6, 5), (8, 6, 5), a) == (4, 8, 6, 5)
    assert infer_output_dims((None, 8, 12, 10), (8, 9, 6, 5), (8, 1, 1), a) == (None, 8, 6, 5)
    assert infer_output_dims((None,) * 4, (None,) * 4, (None,) * 3, a) == (None,) * 4  # placeholder shapes


@pytest.mark.parametrize(
    "x, w, b, match",
    [
        ((1, 8, 12, 10), (8, 25, 6, 5), None, "taps"),
        ((1, 7, 12, 10), (8, 9, 6, 5), None, "channels"),
        ((1, 8, 14, 10), (8, 9, 6, 5), None, "trained size"),
        ((1, 8, 12, 10), (8, 9, 6, 5), (8, 5, 6), "bias"),
        ((1, 8, 12), (8, 9, 6, 5), None, "rank"),
    ],
)
def test_output_dims_reject_inconsistent_nodes(x, w, b, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        infer_output_dims(x, w, b, parse_attrs(3, stride=2, padding=1))


# --------------------------------------------------------------------------- build plan per version


def test_tensorrt_version_gate() -> None:
    assert check_tensorrt("10.9.0.34", has_aot=True) == (10, 9, 0)
    assert check_tensorrt("11.3.0", has_aot=True)[0] == 11
    for version, aot in [("10.8.0", False), ("10.8.0", True), ("10.13.0", False), ("8.6.1", False)]:
        with pytest.raises(TvexportError, match="10.9"):
            check_tensorrt(version, has_aot=aot)


def test_build_plan_tensorrt10() -> None:
    p = plan_build("10.13.3.9", fp16=False)
    assert p.strongly_typed and not p.fp16_flag
    assert resolve_precision(p, fp16_requested=False, network_has_half=False) == "float32"
    assert resolve_precision(p, fp16_requested=False, network_has_half=True) == "float16"
    p16 = plan_build("10.13.3.9", fp16=True)  # weakly typed + FP16 flag lowers a float32 model
    assert not p16.strongly_typed and p16.fp16_flag
    assert resolve_precision(p16, fp16_requested=True, network_has_half=False) == "mixed-fp16"


def test_build_plan_tensorrt11_is_always_strongly_typed() -> None:
    for fp16 in (False, True):
        p = plan_build("11.0.0", fp16=fp16)
        assert p.strongly_typed and not p.fp16_flag
    p = plan_build("11.4.1", fp16=True)
    assert resolve_precision(p, fp16_requested=True, network_has_half=True) == "float16"  # already half: fine
    with pytest.raises(TvexportError, match="strongly typed"):
        resolve_precision(p, fp16_requested=True, network_has_half=False)


class _Tensor:  # the parts of tensorrt.ITensor that build.py reads
    def __init__(self, name: str, dtype: str) -> None:
        self.name, self.dtype = name, dtype


class _Layer:  # tensorrt.ILayer: inputs (None for an absent optional one) and outputs
    def __init__(self, inputs: list[_Tensor | None], outputs: list[_Tensor]) -> None:
        self._inputs, self._outputs = inputs, outputs
        self.num_inputs, self.num_outputs = len(inputs), len(outputs)

    def get_input(self, j: int) -> _Tensor | None:
        return self._inputs[j]

    def get_output(self, j: int) -> _Tensor:
        return self._outputs[j]


class _Network:  # tensorrt.INetworkDefinition: inputs and layers in the parser's order
    def __init__(self, inputs: list[_Tensor], layers: list[_Layer]) -> None:
        self._inputs, self._layers = inputs, layers
        self.num_inputs, self.num_layers = len(inputs), len(layers)

    def get_input(self, i: int) -> _Tensor:
        return self._inputs[i]

    def get_layer(self, i: int) -> _Layer:
        return self._layers[i]


def _tv_network(x: str, compute: str, kernels: str) -> _Network:
    """What onnx-tensorrt makes of input -> [Cast] -> tv_dwconv(x, weight, bias) -> [Cast] -> output:
    each initializer the plugin reads becomes a constant layer of the initializer's type (the
    kernels reshaped by a weights-only shuffle here, as an optimizer may leave them)."""
    inp = _Tensor("input", x)
    layers, a = [], inp
    if compute != x:
        a = _Tensor("input_cast", compute)
        layers.append(_Layer([inp], [a]))
    w, w2, b = _Tensor("weight", kernels), _Tensor("weight_shuffled", kernels), _Tensor("bias", compute)
    layers += [_Layer([], [w]), _Layer([w, None], [w2]), _Layer([], [b])]
    y = _Tensor("tv_out", compute)
    layers.append(_Layer([a, w2, b], [y]))
    if compute != x:
        layers.append(_Layer([y], [_Tensor("output", x)]))
    return _Network([inp], layers)


def test_precision_comes_from_activations_not_from_weights() -> None:
    """A float32 network with float16 TV kernels (HALF constants) is float32: TF32 off, sidecar and
    validate say float32, TensorRT 11 refuses --fp16. Half activations make it float16."""
    from tvexport.trt.build import _network_has_half

    trt = types.SimpleNamespace(float32="FLOAT", float16="HALF")
    half = _network_has_half(trt, _tv_network("FLOAT", "FLOAT", "HALF"))
    assert not half
    for version in ("10.9.0", "11.4.0"):
        assert resolve_precision(plan_build(version, fp16=False), fp16_requested=False, network_has_half=half) == "float32"
    with pytest.raises(TvexportError, match="strongly typed"):
        resolve_precision(plan_build("11.4.0", fp16=True), fp16_requested=True, network_has_half=half)
    assert not _network_has_half(trt, _tv_network("FLOAT", "FLOAT", "FLOAT"))
    assert _network_has_half(trt, _tv_network("HALF", "HALF", "HALF"))  # float16 I/O
    assert _network_has_half(trt, _tv_network("FLOAT", "HALF", "HALF"))  # float16 network, float32 I/O
    assert _network_has_half(trt, _tv_network("HALF", "HALF", "FLOAT"))
    # half two layers after the input: activation status passes from layer to layer
    inp, w = _Tensor("input", "FLOAT"), _Tensor("w", "FLOAT")
    a, b = _Tensor("conv_out", "FLOAT"), _Tensor("conv_half", "HALF")
    deep = _Network([inp], [_Layer([], [w]), _Layer([inp, w], [a]), _Layer([a], [b]), _Layer([b], [_Tensor("output", "FLOAT")])])
    assert _network_has_half(trt, deep)


# --------------------------------------------------------------------------- profiles and sidecar


def test_dynamic_batch_profile() -> None:
    p = profile_shapes("input", (-1, 3, 96, 96))
    assert (p.min[0], p.opt[0], p.max[0]) == DEFAULT_BATCH and p.min[1:] == (3, 96, 96) and p.dynamic
    p = profile_shapes("input", (-1, 3, 96, 96), min_batch=2, opt_batch=8, max_batch=64)
    assert (p.min, p.opt, p.max) == ((2, 3, 96, 96), (8, 3, 96, 96), (64, 3, 96, 96))
    assert profile_shapes("input", (-1, 3, 8, 8), min_batch=40).max[0] == 40  # max follows a large min
    assert profile_shapes("input", (-1, 3, 8, 8), max_batch=4).max[0] == 4


def test_static_batch_profile() -> None:
    p = profile_shapes("x", (2, 3, 8, 8))
    assert p.min == p.opt == p.max == (2, 3, 8, 8) and not p.dynamic
    assert profile_shapes("x", (2, 3, 8, 8), max_batch=2).max[0] == 2
    with pytest.raises(TvexportError, match="fixed batch 2"):
        profile_shapes("x", (2, 3, 8, 8), max_batch=32)


@pytest.mark.parametrize(
    "shape, kw, match",
    [((-1, 3, -1, 96), {}, "trained size"), ((-1, 3, 96), {}, "NCHW"), ((-1, 3, 8, 8), {"min_batch": 4, "opt_batch": 2}, "min <= opt"),
     ((-1, 3, 8, 8), {"opt_batch": 9, "max_batch": 8}, "opt <= max")],
)
def test_bad_profiles(shape, kw, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TvexportError, match=match):
        profile_shapes("x", shape, **kw)


def test_sidecar() -> None:
    assert sidecar_path(Path("out/model.engine")) == Path("out/model.engine.json")
    info = sidecar_contents(
        tensorrt_version="10.13.0", gpu={"name": "NVIDIA H100", "compute_capability": "9.0"}, plan=plan_build("10.13.0", fp16=False),
        precision="float32", profile=profile_shapes("input", (-1, 3, 96, 96)),
        inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 3, 96, 96]}],
        outputs=[{"name": "embedding", "dtype": "float32", "shape": [-1, 512]}], source="m.onnx", source_sha256="ab" * 32,
        tv_layers=[{"name": "tv0", "channels": 32, "k": 3}], plugin_layers=17, workspace_mb=None, build_seconds=12.3456,
        tvexport_version="0.1.0",
    )
    back = json.loads(json.dumps(info))
    assert back["tensorrt"] == "10.13.0" and back["gpu"]["name"] == "NVIDIA H100" and back["precision"] == "float32"
    assert back["profile"]["max"] == [32, 3, 96, 96] and back["strongly_typed"] is True
    assert back["plugin"] == {"id": PLUGIN_ID, "version": "1", "implementation": "aot-triton-ptx", "layers": 17}
    assert back["build_seconds"] == 12.346


def test_plugin_module_keeps_runtime_annotations() -> None:
    """tensorrt.plugin inspects the decorated functions' annotations: they must not be strings."""
    src = Path(__file__).resolve().parents[1] / "tvexport" / "trt" / "plugin.py"
    tree = ast.parse(src.read_text())
    assert not any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body)


# --------------------------------------------------------------------------- ONNX preparation


def _tv_model(path: Path | None, nodes: list[dict], *, dtype: str = "float32", batch: int | str = "N"):  # type: ignore[no-untyped-def]
    """A hand-written ONNX graph of chained tv_dwconv nodes (independent of tvexport's exporter),
    in the shared compressed-kernel form: ``spec["wdtype"]`` float32, float16 or int8 (then with a
    float32 scale (C, k*k, 1, 1) as 4th input and the empty name for a missing bias)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}[dtype]
    inits, graph_nodes = [], []
    cur, (c, h, w) = "x", nodes[0]["in_chw"]
    x_info = helper.make_tensor_value_info("x", elem, [batch, c, h, w])
    for i, spec in enumerate(nodes):
        wdtype = spec.get("wdtype", dtype)
        if wdtype == "int8":
            q, scale = _quantize(spec["weight"])
            inits += [numpy_helper.from_array(q, f"w{i}"), numpy_helper.from_array(scale, f"s{i}")]
        else:
            inits.append(numpy_helper.from_array(spec["weight"].astype(wdtype), f"w{i}"))
        inputs = [cur, f"w{i}"]
        if spec.get("bias") is not None:
            inits.append(numpy_helper.from_array(spec["bias"].astype(dtype), f"b{i}"))
            inputs.append(f"b{i}")
        if wdtype == "int8":
            inputs += [""] * (3 - len(inputs)) + [f"s{i}"]
        k = round(spec["weight"].shape[1] ** 0.5)
        attrs = {"k": k, "stride": spec["stride"], "padding": k // 2, "plugin_namespace": "tvexport", "plugin_version": "1"}
        attrs.update(spec.get("attrs", {}))
        out = f"y{i}"
        graph_nodes.append(helper.make_node("tv_dwconv", inputs, [out], name=f"tv{i}", domain="tvexport", **attrs))
        cur = out
    c, _, oh, ow = nodes[-1]["weight"].shape
    y_info = helper.make_tensor_value_info(cur, elem, [batch, c, oh, ow])
    graph = helper.make_graph(graph_nodes, "tv", [x_info], [y_info], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("tvexport", 1)])
    if path is not None:
        onnx.save(model, str(path))
    return model


def _quantize(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per (channel, tap): ``weight ~ q * scale``."""
    scale = (np.abs(weight).max(axis=(2, 3), keepdims=True) / 127).astype(np.float32)
    return np.clip(np.rint(weight / scale), -127, 127).astype(np.int8), scale


def _spec(c: int, k: int, stride: int, oh: int, ow: int, bias: str | None, seed: int = 0, wdtype: str | None = None) -> dict:
    rng = np.random.default_rng(seed)
    b = {None: None, "map": rng.standard_normal((c, oh, ow)), "channel": rng.standard_normal((c, 1, 1))}[bias]
    spec = {"in_chw": (c, oh * stride, ow * stride), "weight": rng.standard_normal((c, k * k, oh, ow)), "bias": b, "stride": stride}
    return spec if wdtype is None else dict(spec, wdtype=wdtype)


@needs_onnx
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_prepare_adds_a_zero_bias_where_missing(dtype: str) -> None:
    from onnx import numpy_helper

    from tvexport.trt._onnx import prepare_tv_nodes

    model = _tv_model(None, [_spec(4, 3, 2, 5, 6, None), _spec(4, 5, 1, 5, 6, "map", 1)], dtype=dtype)
    first_attrs = model.graph.node[0].attribute
    for a in [a for a in first_attrs if a.name.startswith("plugin_")]:  # missing on the first node: filled in
        first_attrs.remove(a)
    nodes = prepare_tv_nodes(model)
    assert [(n.k, n.stride, n.bias, n.dtype) for n in nodes] == [(3, 2, "zero", dtype), (5, 1, "map", dtype)]
    first = model.graph.node[0]
    assert len(first.input) == 3
    zero = {t.name: t for t in model.graph.initializer}[first.input[2]]
    arr = numpy_helper.to_array(zero)
    assert arr.shape == (4, 1, 1) and arr.dtype == np.dtype(dtype) and not arr.any()
    attrs = {a.name: a for a in first.attribute}
    assert attrs["plugin_namespace"].s == b"tvexport" and attrs["plugin_version"].s == b"1"
    assert len(model.graph.node[1].input) == 3 and model.graph.node[1].input[2] == "b1"  # untouched
    assert [(n.name, n.op_type) for n in model.graph.node] == [("tv_dwconv", "tv_dwconv")] * 2  # both parser readings
    assert [n.name for n in nodes] == ["tv0", "tv1"]  # the sidecar keeps the exported names


@needs_onnx
def test_prepare_rewrites_int8_nodes_to_their_own_plugin() -> None:
    from onnx import numpy_helper

    from tvexport.trt._onnx import prepare_tv_nodes

    model = _tv_model(None, [_spec(4, 3, 2, 5, 6, None, wdtype="int8"), _spec(4, 3, 1, 5, 6, "map", 1, wdtype="int8"),
                             _spec(4, 3, 1, 5, 6, "channel", 2, wdtype="float16")])
    nodes = prepare_tv_nodes(model)
    assert [(n.plugin, n.dtype, n.bias) for n in nodes] == [("tv_dwconv_i8", "int8", "zero"), ("tv_dwconv_i8", "int8", "map"),
                                                             ("tv_dwconv", "float16", "channel")]
    first, second, third = model.graph.node
    assert (first.op_type, first.name, len(first.input), first.input[3]) == ("tv_dwconv_i8", "tv_dwconv_i8", 4, "s0")
    zero = numpy_helper.to_array({t.name: t for t in model.graph.initializer}[first.input[2]])
    assert zero.dtype == np.float32 and not zero.any()  # int8 kernels: a float bias
    assert list(second.input) == ["y0", "w1", "b1", "s1"] and list(third.input) == ["y1", "w2", "b2"]


@needs_onnx
@pytest.mark.parametrize("case, match", [("no-scale", "needs a constant float32 scale"), ("scale-shape", "needs a constant float32 scale"),
                                         ("float-scale", "only goes with int8"), ("int32", "takes float32, float16 or int8")])
def test_prepare_rejects_bad_compressed_kernels(case: str, match: str) -> None:
    from onnx import numpy_helper

    from tvexport.trt._onnx import prepare_tv_nodes

    model = _tv_model(None, [_spec(4, 3, 1, 5, 6, "map", wdtype="float32" if case in ("float-scale", "int32") else "int8")])
    node, inits = model.graph.node[0], model.graph.initializer
    if case == "no-scale":
        del node.input[3]
    elif case == "scale-shape":
        inits.append(numpy_helper.from_array(np.ones((4, 9, 2, 1), np.float32), "bad_scale"))
        node.input[3] = "bad_scale"
    elif case == "float-scale":
        inits.append(numpy_helper.from_array(np.ones((4, 9, 1, 1), np.float32), "s0"))
        node.input.append("s0")
    else:
        inits.remove(next(t for t in inits if t.name == "w0"))
        inits.append(numpy_helper.from_array(np.ones((4, 9, 5, 6), np.int32), "w0"))
    with pytest.raises(TvexportError, match=match) as info:
        prepare_tv_nodes(model, source="m.onnx")
    assert str(info.value).startswith("m.onnx: tv_dwconv node tv0") and str(info.value).endswith(REEXPORT_HINT)


@needs_onnx
@pytest.mark.parametrize(
    "attrs, match",
    [({"k": 4}, "odd"), ({"padding": 0}, "padding"), ({"stride": 0}, "stride"), ({"plugin_namespace": "other"}, "plugin_namespace"),
     ({"plugin_version": "2"}, "plugin_version"),
     # before: kept, and TensorRT's parser, which passes the plugin its own fields only, dropped it unsaid
     ({"dilation": 2}, "unknown attribute 'dilation'; tv_dwconv takes k, stride, padding, plugin_namespace, plugin_version")],
)
def test_prepare_rejects_bad_nodes(attrs: dict, match: str) -> None:
    """Before: the attribute refusals said what and which node, not how to fix it (the OpenVINO
    op's conversion says to export again); now one line with the fix, as the other checks."""
    from tvexport.trt._onnx import prepare_tv_nodes

    spec = _spec(4, 3, 1, 5, 6, None)
    spec["attrs"] = attrs
    with pytest.raises(TvexportError, match=match) as info:
        prepare_tv_nodes(_tv_model(None, [spec]), source="m.onnx")
    said = str(info.value)
    assert said.startswith("m.onnx: tv_dwconv node tv0") and said.endswith(REEXPORT_HINT) and "\n" not in said, said


@needs_onnx
def test_prepare_refuses_a_one_dimensional_bias() -> None:
    """A (C,) bias initializer is refused before TensorRT sees it, as by the op's other paths
    (its numpy reference cannot validate one either): a per-channel bias is (C, 1, 1)."""
    from tvexport.trt._onnx import prepare_tv_nodes

    spec = _spec(4, 3, 1, 5, 4, "channel")
    spec["bias"] = spec["bias"].reshape(4)  # C == OW: torch would add it along W
    with pytest.raises(TvexportError, match=r"m.onnx: tv_dwconv node tv0: bias must be .* got \(4,\); a per-channel bias is \(C, 1, 1\)"):
        prepare_tv_nodes(_tv_model(None, [spec]), source="m.onnx")


@needs_onnx
@pytest.mark.parametrize("shape", [(4, 5, 1), (4, 1, 6), (2, 5, 6), (4, 6, 5)])
def test_prepare_refuses_a_wrong_rank3_bias_as_the_numpy_reference_does(shape: tuple) -> None:
    """Before: the TensorRT preparation said "TV bias of shape ... fits neither ..." for a wrong
    rank-3 bias while the numpy reference said "bias must be (C, h, w) = ...": one message now."""
    from tvexport.export._plugin_ref import tv_dwconv_reference
    from tvexport.trt._onnx import prepare_tv_nodes

    spec = _spec(4, 3, 1, 5, 6, "map")
    spec["bias"] = np.ones(shape, np.float32)
    message = f"bias must be (C, h, w) = (4, 5, 6) or (C, 1, 1), got {shape}"
    with pytest.raises(TvexportError) as info:
        prepare_tv_nodes(_tv_model(None, [spec]), source="m.onnx")
    assert str(info.value) == f"m.onnx: tv_dwconv node tv0: {message}" + REEXPORT_HINT
    with pytest.raises(ValueError) as refused:
        tv_dwconv_reference(np.ones((1, 4, 5, 6), np.float32), np.ones((4, 9, 5, 6), np.float32), spec["bias"], k=3, stride=1, padding=1)
    assert str(refused.value) == f"tv_dwconv: {message}"


@needs_onnx
@pytest.mark.parametrize("bias", ["map", "channel"])
def test_prepare_refuses_a_bias_with_leading_ones(bias: str) -> None:
    """Before: a (1, C, h, w) or (1, C, 1, 1) bias initializer was taken (the torch forms broadcast
    leading 1s away), though the numpy reference and the OpenVINO op refuse it (rank 3 only);
    tvexport never writes one. Refused now, with the numpy reference's message."""
    from tvexport.export._plugin_ref import tv_dwconv_reference
    from tvexport.trt._onnx import prepare_tv_nodes

    spec = _spec(4, 3, 1, 5, 6, bias)
    spec["bias"] = spec["bias"][None]
    shape = (1, 4, 5, 6) if bias == "map" else (1, 4, 1, 1)
    message = f"bias must be (C, h, w) = (4, 5, 6) or (C, 1, 1), got {shape}"
    with pytest.raises(TvexportError) as info:
        prepare_tv_nodes(_tv_model(None, [spec]), source="m.onnx")
    assert str(info.value) == f"m.onnx: tv_dwconv node tv0: {message}" + REEXPORT_HINT
    x, weight = np.ones((1, 4, 5, 6), np.float32), np.ones((4, 9, 5, 6), np.float32)
    with pytest.raises(ValueError) as refused:
        tv_dwconv_reference(x, weight, spec["bias"].astype(np.float32), k=3, stride=1, padding=1)
    assert str(refused.value) == f"tv_dwconv: {message}"


@needs_onnx
def test_prepare_rejects_non_constant_kernels_and_bad_files(tmp_path: Path) -> None:
    from tvexport.trt._onnx import prepare_onnx, prepare_tv_nodes

    model = _tv_model(None, [_spec(4, 3, 1, 5, 6, None)])
    model.graph.node[0].input[1] = "x"
    with pytest.raises(TvexportError, match="not a constant"):
        prepare_tv_nodes(model)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(TvexportError, match="not a readable ONNX"):
        prepare_onnx(bad)
    good = tmp_path / "good.onnx"
    _tv_model(good, [_spec(2, 3, 1, 4, 4, "channel")])
    prepared = prepare_onnx(good)
    assert prepared.data and [n.bias for n in prepared.nodes] == ["channel"] and prepared.external_data == []


@needs_onnx
def test_prepare_labels_a_1x1_bias_by_the_layers_kind(cli, face_ckpt: Path, tmp_path: Path) -> None:
    """At 1x1 a folded BatchNorm's shift and a TV bias map are both (C, 1, 1): the node list takes
    the kind the baked layer carries (recorded by the exporter), not a guess from the shape."""
    from conftest import make_model
    from tvexport.bake import bake_model, load_baked
    from tvexport.export.onnx import onnx_graph
    from tvexport.layers import BakedTVConv
    from tvexport.models import TVSettings
    from tvexport.trt._onnx import prepare_onnx, prepare_tv_nodes

    baked, out = tmp_path / "f16.baked.pt", tmp_path / "f16.onnx"
    assert cli("bake", face_ckpt, "--input-size", "16x16", "--no-verify", "-o", baked).exit_code == 0
    r = cli("export", baked, "--tv-op", "plugin", "--no-validate", "-o", out)  # simplified, as shipped
    assert r.exit_code == 0, r.stderr
    kinds = {n: m.bias_kind for n, m in load_baked(baked).named_modules() if isinstance(m, BakedTVConv)}
    nodes = prepare_onnx(out).nodes
    assert any((n.oh, n.ow) == (1, 1) for n in nodes) and set(kinds.values()) == {"channel"}
    assert {n.name: n.bias for n in nodes} == kinds
    # the other kind at 1x1: a TV bias map (BatchNorm folded into it), also with float32 I/O around float16
    model = bake_model(make_model("deeplabv3plus_mobilenetv2", tv=TVSettings(bias=True, inter_chans=4, inter_layers=0)),
                       input_size=(16, 16), verify=False).model
    for dtype in ("float32", "float16"):
        nodes = prepare_tv_nodes(onnx_graph(model, tv_op="plugin", dtype=dtype))
        assert nodes and {(n.oh, n.ow, n.bias) for n in nodes} == {(1, 1, "map")}
    # files exported before the record: the shape alone, as before; a damaged record is refused
    import onnx

    proto = onnx.load(out)  # the file exported above (not a second export of the same baked file)
    record = next(p for p in proto.metadata_props if p.key == "tvexport.tv_bias")
    for damaged in ("[1", "[" * 100_000 + "]" * 100_000):  # the second: a RecursionError in json
        record.value = damaged
        with pytest.raises(TvexportError, match="m.onnx: its metadata tvexport.tv_bias is damaged"):
            prepare_tv_nodes(proto, source="m.onnx")
    proto.metadata_props.remove(record)
    assert {n.bias for n in prepare_tv_nodes(proto) if (n.oh, n.ow) == (1, 1)} == {"map"}


# --------------------------------------------------------------------------- without TensorRT


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import tensorrt`` fail, whether or not it is installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def test_build_without_tensorrt_is_one_line_and_writes_nothing(cli, tmp_path: Path, no_tensorrt: None) -> None:  # type: ignore[no-untyped-def]
    res = cli("build", tmp_path / "x.onnx", "-o", tmp_path / "y.engine")
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "tensorrt" in lines[0] and "install" in lines[0], res.stderr
    assert list(tmp_path.iterdir()) == []


def test_runner_without_tensorrt(tmp_path: Path, no_tensorrt: None) -> None:
    from tvexport.export._common import load_runner

    with pytest.raises(MissingDependencyError, match="tensorrt"):
        load_runner("tensorrt", tmp_path / "m.engine")


def test_tensorrt_without_aot_plugins_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    old = types.ModuleType("tensorrt")
    old.__version__ = "10.8.0.43"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", old)
    from tvexport.trt.build import build_engine

    with pytest.raises(TvexportError, match=r">= 10\.9"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine")
    assert list(tmp_path.iterdir()) == []


class _FakeILogger:
    """A stand-in for ``tensorrt.ILogger`` (its severities, in TensorRT's order)."""

    class Severity:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self) -> None:
        pass


def _fake_tensorrt(monkeypatch: pytest.MonkeyPatch, **attrs: object) -> types.ModuleType:
    """A stand-in ``tensorrt`` module, installed for the test: TensorRT 10.13 (past the version gate,
    with AOT plugins), ``_FakeILogger`` as its ``ILogger``, and ``attrs`` set on it."""
    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.13.0"  # type: ignore[attr-defined]
    fake.QuickPluginCreationRequest = object  # type: ignore[attr-defined]
    fake.ILogger = _FakeILogger  # type: ignore[attr-defined]
    for name, value in attrs.items():
        setattr(fake, name, value)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


@pytest.fixture
def fake_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``tensorrt`` that passes the version gate (the input checks come before any TensorRT call)."""
    _fake_tensorrt(monkeypatch)


@pytest.mark.parametrize("case", ["missing", "directory", "empty"])
def test_build_and_runner_check_their_input_file_as_other_commands(case: str, tmp_path: Path, fake_tensorrt: None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: their own "does not exist" check, which called a directory missing and let an empty
    file through (to "needs a CUDA GPU" here). Now ``_io.check_input_file``'s lines, as other inputs."""
    from tvexport.trt import runner
    from tvexport.trt.build import build_engine

    # no GPU here: the engine file is checked before CUDA is required (a missing file is not "needs a CUDA GPU")
    model, engine = tmp_path / "m.onnx", tmp_path / "m.engine"
    if case == "directory":
        model.mkdir()
        engine.mkdir()
    elif case == "empty":
        model.touch()
        engine.touch()
    said = {"missing": (f"{model}: no such file; export one first: tvexport export", f"{engine}: no such file; build one with: tvexport build"),
            "directory": (f"{model} is a directory, not an ONNX model; give the .onnx file inside it",
                          f"{engine} is a directory, not a TensorRT engine; give the .engine file inside it"),
            "empty": (f"{model} is empty (0 bytes); the export or copy did not finish", f"{engine} is empty (0 bytes); the build or copy did not finish")}[case]
    with pytest.raises(TvexportError) as info:
        build_engine(model, tmp_path / "out.engine")
    assert str(info.value).startswith(said[0]), info.value
    with pytest.raises(TvexportError) as info:
        runner.load_runner(engine)
    assert str(info.value).startswith(said[1]), info.value
    assert not (tmp_path / "out.engine").exists()


@pytest.mark.parametrize("output", ["m.onnx", "m"])
def test_build_refuses_to_overwrite_its_source(cli, output: str, tmp_path: Path, fake_tensorrt: None) -> None:  # type: ignore[no-untyped-def]
    """Before: ``build m.onnx -o m.onnx --force`` went on to replace the ONNX by the engine (``-o m``:
    the sidecar m.json by then); bake and export refuse this."""
    model = tmp_path / ("m.onnx" if output == "m.onnx" else "m.json")
    model.write_bytes(b"not read")
    res = cli("build", model, "-o", tmp_path / output, "--force")
    assert res.exit_code == 2 and res.stderr.strip().splitlines() == [f"error: output {model} is the input file; give another output path with -o"], res.stderr
    assert model.read_bytes() == b"not read" and sorted(p.name for p in tmp_path.iterdir()) == [model.name]


BUILD_SUFFIX_REFUSED = [
    ("y.onnx", ".onnx names an ONNX model, but tvexport build writes a TensorRT engine; name it {stem}.engine, or export an ONNX model with: tvexport export CHECKPOINT -o {out}"),
    ("y.pt2", ".pt2 names an AOTInductor package, but tvexport build writes a TensorRT engine; name it {stem}.engine, or export an AOTInductor package with: tvexport export CHECKPOINT -o {out}"),
    ("y.baked.pt", ".baked.pt names a baked file, but tvexport build writes a TensorRT engine; name it {stem}.engine, or make a baked file with: tvexport bake CHECKPOINT -o {out}"),
    ("y.pth", ".pth names a torch checkpoint, but tvexport build writes a TensorRT engine; name it {stem}.engine"),
]


@pytest.mark.parametrize(("name", "says"), BUILD_SUFFIX_REFUSED, ids=[n for n, _ in BUILD_SUFFIX_REFUSED])
def test_build_refuses_an_output_suffix_of_another_kind(cli, name: str, says: str, tmp_path: Path, fake_tensorrt: None) -> None:  # type: ignore[no-untyped-def]
    """Before: `tvexport build m.onnx -o y.onnx` wrote a TensorRT engine named y.onnx (and y.json
    beside it), which onnxruntime, the runners and the user take for an ONNX model; export and bake
    refuse such a suffix. Refused before CUDA is needed (none here), as export's check is."""
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read")
    out = tmp_path / name
    res = cli("build", model, "-o", out)
    expected = f"error: -o {out}: " + says.format(out=out, stem=tmp_path / "y")
    assert res.exit_code == 2 and res.stderr.strip().splitlines() == [expected], res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [model.name]


def test_build_refuses_the_suffix_before_the_output_is_found_to_exist(cli, tmp_path: Path, fake_tensorrt: None) -> None:  # type: ignore[no-untyped-def]
    """Before: an existing ``-o y.pt2`` was "already exists; pass --force", and --force then gave the suffix error."""
    model, out = tmp_path / "m.onnx", tmp_path / "y.pt2"
    model.write_bytes(b"not read")
    out.write_bytes(b"kept")
    res = cli("build", model, "-o", out)
    expected = f"error: -o {out}: " + BUILD_SUFFIX_REFUSED[1][1].format(out=out, stem=tmp_path / "y")
    assert res.exit_code == 2 and res.stderr.strip().splitlines() == [expected], res.stderr
    assert out.read_bytes() == b"kept" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "y.pt2"]


@pytest.mark.parametrize("name", ["y.engine", "y.plan", "y.trt", "y"])
def test_build_takes_an_engine_suffix_or_none(name: str, tmp_path: Path, fake_tensorrt: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suffix check passes the engine suffixes and a name without one (it goes on to CUDA)."""
    from tvexport.trt import build

    def no_cuda(what: str) -> None:
        raise TvexportError("reached CUDA")

    monkeypatch.setattr(build, "require_cuda", no_cuda)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read")
    with pytest.raises(TvexportError, match="^reached CUDA$"):
        build.build_engine(model, tmp_path / name)


@pytest.mark.parametrize("verbose", [False, True])
def test_logger_keeps_errors_and_prints_only_when_verbose(verbose: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: TensorRT's ERROR lines were printed before the one ``error:`` line that carries them."""
    from tvexport.trt._env import Logger

    trt = types.SimpleNamespace(ILogger=_FakeILogger)
    logger = Logger(trt, verbose=verbose)  # type: ignore[arg-type]
    logger.log(_FakeILogger.Severity.ERROR, "parse failed")
    logger.log(_FakeILogger.Severity.INTERNAL_ERROR, "assertion")
    logger.log(_FakeILogger.Severity.WARNING, "a warning")
    assert logger.errors == ["parse failed", "assertion"]
    said = capsys.readouterr()
    assert said.out == "" and said.err == ("[TensorRT] parse failed\n[TensorRT] assertion\n[TensorRT] a warning\n" if verbose else "")
    assert logger.last_error("none") == "assertion"
    logger.log(_FakeILogger.Severity.ERROR, "  \n ")  # a blank message neither raises nor hides the last real one
    logger.log(_FakeILogger.Severity.ERROR, "\n  bad shape  \n  at layer 3\n")
    assert logger.last_error("none") == "bad shape"
    logger.errors.append(" ")
    assert logger.last_error("none") == "bad shape"
    logger.errors.clear()
    assert logger.last_error("none") == "none"


class _FakeEngine:
    """A deserialized engine with one NCHW input of ``shape`` (batch -1: the profile ``batches``)."""

    def __init__(self, shape: tuple[int, ...], batches: tuple[int, int]) -> None:
        self.shape, self.batches, self.num_io_tensors = shape, batches, 2
        self.asked: list[str] = []  # the input's shape and profile queries, in order

    def get_tensor_name(self, i: int) -> str:
        return ("input", "output")[i]

    def get_tensor_mode(self, name: str) -> str:
        return "in" if name == "input" else "out"

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name == "input":
            self.asked.append("shape")
        return self.shape if name == "input" else (self.shape[0], 512)

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple:
        self.asked.append("profile")
        lo, hi = self.batches
        return (lo, *self.shape[1:]), (lo, *self.shape[1:]), (hi, *self.shape[1:])

    def create_execution_context(self) -> None:
        return None


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``make(shape, batches)``: an engine file that ``TensorRTRunner`` loads through a stand-in
    ``tensorrt`` (no GPU: CUDA is not required, and running it records the input)."""
    import torch._dynamo  # noqa: F401 - imported by baking; it looks up tensorrt's spec, which the stand-in has none of

    from tvexport.trt import runner

    engines: dict[bytes, _FakeEngine] = {}
    _fake_tensorrt(monkeypatch, TensorIOMode=types.SimpleNamespace(INPUT="in", OUTPUT="out"),
                   Runtime=lambda logger: types.SimpleNamespace(deserialize_cuda_engine=engines.get))
    monkeypatch.setitem(sys.modules, "tvexport.trt.plugin", types.ModuleType("tvexport.trt.plugin"))  # no triton needed
    monkeypatch.setattr(runner, "require_cuda", lambda what: types.SimpleNamespace(cuda=types.SimpleNamespace(Stream=lambda: None)))
    seen: list[tuple[int, ...]] = []
    real_execute = runner.TensorRTRunner._execute
    monkeypatch.setattr(runner.TensorRTRunner, "_execute", lambda self, x: seen.append(x.shape) or np.zeros((x.shape[0], 512), np.float32))

    def make(shape: tuple[int, ...], batches: tuple[int, int], name: str = "m.engine") -> Path:
        path = tmp_path / name
        path.write_bytes(name.encode())
        engines[name.encode()] = _FakeEngine(shape, batches)
        return path

    make.seen = seen  # type: ignore[attr-defined]
    make.engines = engines  # type: ignore[attr-defined]
    make.real_execute = real_execute  # type: ignore[attr-defined]
    return make


def test_runner_says_its_batch_and_checks_inputs_before_running(fake_engine) -> None:  # type: ignore[no-untyped-def]
    """Before: no ``batch`` or ``check_input``, so validate sent 2 rows to a fixed batch-1 engine
    and was told to rebuild with --min/--max-batch, which build refuses for a fixed-batch ONNX."""
    from tvexport.trt.runner import load_runner

    fixed = load_runner(fake_engine((1, 3, 96, 96), (1, 1), "fixed.engine"))
    assert fixed.batch == 1
    fixed.check_input(np.zeros((1, 3, 96, 96), np.float32))
    with pytest.raises(TvexportError) as info:
        fixed.check_input(np.zeros((2, 3, 96, 96), np.float32))
    assert "batch 2 is outside the engine's profile [1, 1]" in str(info.value) and "give 1 rows, or build" in str(info.value)
    assert "validate" not in str(info.value)  # bench and API callers see it too: validate adds its own --batch advice
    with pytest.raises(TvexportError, match="does not fit engine"):
        fixed.check_input(np.zeros((1, 3, 64, 64), np.float32))
    dynamic = load_runner(fake_engine((-1, 3, 96, 96), (4, 32), "dynamic.engine"))
    assert dynamic.batch is None
    with pytest.raises(TvexportError, match=r"give 4 to 32 rows, or build"):
        dynamic(np.zeros((2, 3, 96, 96), np.float32))
    assert fake_engine.seen == []  # refused before running
    assert dynamic(np.zeros((4, 3, 96, 96), np.float32)).shape == (4, 512)


@pytest.mark.parametrize("logged", [None, "  \n", "illegal address\n  in kernel"])
def test_runner_reports_only_the_error_of_the_failed_run(fake_engine, logged: str | None) -> None:  # type: ignore[no-untyped-def]
    """Before: the logger kept every error, so a run that failed without logging reported an
    older one (and a blank message raised IndexError)."""
    from tvexport.trt.runner import load_runner

    run = load_runner(fake_engine((1, 3, 96, 96), (1, 1)))
    run._logger.log(_FakeILogger.Severity.ERROR, "an earlier failure")

    class Tensor:
        def __init__(self, shape: tuple[int, ...]) -> None:
            self.shape = shape

        def to(self, *args: object, **kwargs: object) -> Tensor:
            return self

        def contiguous(self) -> Tensor:
            return self

        def data_ptr(self) -> int:
            return 0

    def execute_async_v3(stream: int) -> bool:
        if logged is not None:
            run._logger.log(_FakeILogger.Severity.ERROR, logged)
        return False

    run._torch = types.SimpleNamespace(cuda=types.SimpleNamespace(stream=lambda s: contextlib.nullcontext()),
                                       from_numpy=lambda a: Tensor(a.shape), empty=lambda shape, **kw: Tensor(shape))
    run._stream = types.SimpleNamespace(cuda_stream=0)
    run.tensor_dtype = lambda name: None
    run.context = types.SimpleNamespace(set_input_shape=lambda *a: True, set_tensor_address=lambda *a: True,
                                        get_tensor_shape=lambda name: (1, 512), execute_async_v3=execute_async_v3)
    with pytest.raises(TvexportError) as info:
        fake_engine.real_execute(run, np.zeros((1, 3, 96, 96), np.float32))
    detail = "" if logged is None or not logged.strip() else ": illegal address"
    assert str(info.value) == f"TensorRT failed to run {run.path}{detail}"


def test_validate_uses_a_fixed_batch_engines_batch(fake_engine, face_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from tvexport.export import validate

    engine = fake_engine((1, 3, 96, 96), (1, 1))
    report = validate.validate_artifact(engine, face_ckpt)  # the stand-in's zeros do not match: only the batch matters here
    assert report.input_shape == (1, 3, 96, 96) and fake_engine.seen == [(1, 3, 96, 96)]
    monkeypatch.setattr(validate, "load_source", lambda *a, **k: pytest.fail("baked before the input was checked"))
    dynamic = fake_engine((-1, 3, 96, 96), (4, 32), "dynamic.engine")
    with pytest.raises(TvexportError, match=r"takes batch 4 to 32, the input has 2; validate with --batch 4"):
        validate.validate_artifact(dynamic, face_ckpt)
    with pytest.raises(TvexportError, match="validate with --batch 1"):
        validate.validate_artifact(engine, face_ckpt, batch=2)


class _FakeNetwork:
    """A parsed network with one static NCHW float32 input and no layers."""

    num_inputs, num_outputs, num_layers = 1, 1, 0

    def get_input(self, i: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(name="x", shape=(1, 4, 10, 12), dtype="float32")

    def get_output(self, i: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(name="y", shape=(1, 4, 5, 6), dtype="float32")


def _plugin_raised(line: str) -> None:
    """What tvexport's plugin does with the first line of what a callback raises (plugin._kept)."""
    from tvexport.trt import _env

    _env.record_plugin_failure(line)


@pytest.fixture
def fake_builder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``build(onnx=None, **state)``: ``build_engine`` through a stand-in ``tensorrt`` (no GPU, no
    plugin; installed for ``tvexport build`` too) on ``onnx`` (default: a small static-batch TV model,
    m.onnx). ``state``: the parser calls ``parse_hook(path)``, keeps ``plugin_parse`` as the plugin
    would, logs ``parse_logs`` as errors and succeeds (``parsed_ok``); the builder calls
    ``build_hook(network)``, keeps ``plugin_build``, logs ``build_logs`` and returns ``built`` (None:
    the build failed); ``build.parsed`` records what the parser was given (model bytes, path);
    ``build.state`` is the state, for builds run without ``build``."""
    import tvexport.trt.build as trt_build

    state: dict = {"parse_logs": (), "build_logs": (), "built": b"engine", "plugin_parse": (), "plugin_build": (), "parsed_ok": True,
                   "parse_hook": None, "build_hook": None}
    parsed: list[tuple[bytes, str]] = []
    created: list[int] = []  # create_network's flags

    class Parser:
        num_errors = 0

        def __init__(self, network: object, logger: object) -> None:
            self.logger = logger

        def parse(self, data: bytes, path: str) -> bool:
            parsed.append((data, path))
            if state["parse_hook"]:
                state["parse_hook"](path)
            for line in state["plugin_parse"]:
                _plugin_raised(line)  # what tvexport's plugin callbacks keep when they raise
            for msg in state["parse_logs"]:
                self.logger.log(_FakeILogger.Severity.ERROR, msg)  # type: ignore[attr-defined]
            ok = state["parsed_ok"]() if callable(state["parsed_ok"]) else state["parsed_ok"]
            self.num_errors = 0 if ok else 1
            return ok

        def get_error(self, i: int) -> types.SimpleNamespace:
            return types.SimpleNamespace(desc=lambda: "the parser's own error")

    class Builder:
        def __init__(self, logger: object) -> None:
            self.logger = logger

        def create_network(self, flags: int) -> _FakeNetwork:
            created.append(flags)
            return _FakeNetwork()

        def create_builder_config(self) -> types.SimpleNamespace:
            return types.SimpleNamespace(set_flag=lambda f: None, clear_flag=lambda f: None)

        def build_serialized_network(self, network: object, config: object) -> bytes | None:
            if state["build_hook"]:
                state["build_hook"](network)
            for line in state["plugin_build"]:
                _plugin_raised(line)
            for msg in state["build_logs"]:
                self.logger.log(_FakeILogger.Severity.ERROR, msg)  # type: ignore[attr-defined]
            return state["built"]

    _fake_tensorrt(monkeypatch, float32="float32", float16="float16", int32="int32", int64="int64", bool="bool",
                   # TensorRT 10.9-10.x's values (include/NvInfer.h: kEXPLICIT_BATCH 0, kSTRONGLY_TYPED 1,
                   # kPREFER_JIT_PYTHON_PLUGINS 2, kPREFER_AOT_PYTHON_PLUGINS 3; 11.x renumbers them)
                   NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=1, PREFER_JIT_PYTHON_PLUGINS=2, PREFER_AOT_PYTHON_PLUGINS=3),
                   BuilderFlag=types.SimpleNamespace(FP16=0),
                   LayerType=types.SimpleNamespace(PLUGIN_V3="plugin"), OnnxParser=Parser, Builder=Builder)
    monkeypatch.setattr(trt_build, "require_cuda", lambda what: None)
    monkeypatch.setattr(trt_build, "load_plugin", lambda what: None)  # no triton needed: the stand-in builder calls no plugin
    monkeypatch.setattr(trt_build, "_gpu", lambda torch: {"name": "stand-in"})

    def build(onnx: Path | None = None, **given: object) -> object:
        state.update(given)
        if onnx is None:
            onnx = tmp_path / "m.onnx"
            _tv_model(onnx, [_spec(4, 3, 2, 5, 6, None)], batch=1)
        return trt_build.build_engine(onnx, tmp_path / "m.engine")

    build.parsed = parsed  # type: ignore[attr-defined]
    build.state = state  # type: ignore[attr-defined]
    build.created = created  # type: ignore[attr-defined]
    return build


@needs_onnx
@pytest.mark.parametrize("build_logs", [(), ("  \n",), ("out of memory\n  for tactic 3",)])
def test_failed_build_reports_only_its_own_error(fake_builder, build_logs: tuple[str, ...], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Before: the log was not cleared before the build, as it is before a run, so a build that
    failed without saying why reported an error logged earlier (here by the parser, which went on)."""
    result = fake_builder()  # the stand-in builds: the failures below are the builder's
    assert result.engine.read_bytes() == b"engine" and json.loads(result.sidecar.read_text())["tv_layers"][0]["name"] == "tv0"
    result.engine.unlink()
    result.sidecar.unlink()
    with pytest.raises(TvexportError) as info:
        fake_builder(parse_logs=("an error the parser recovered from",), build_logs=build_logs, built=None)
    detail = "out of memory" if build_logs and build_logs[0].strip() else "see the TensorRT log (--verbose)"
    assert str(info.value) == f"TensorRT failed to build an engine from {tmp_path / 'm.onnx'}: {detail}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # nothing written


@needs_onnx
def test_build_creates_a_strongly_typed_network_that_prefers_aot_plugins(fake_builder) -> None:  # type: ignore[no-untyped-def]
    """The flags the parser's plugin creation request follows (onnx-tensorrt importerUtils.cpp:
    kPREFER_AOT_PYTHON_PLUGINS -> PREFER_AOT, what tests/_trt_core.parse_node assumes), by name, as
    their numbers differ between TensorRT 10 and 11."""
    fake_builder()
    assert fake_builder.created == [(1 << 1) | (1 << 3)]


@needs_onnx
@pytest.mark.parametrize("stage", ["parse", "build"])
def test_failed_build_reports_what_the_plugin_raised(fake_builder, stage: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """TensorRT catches an exception a Python plugin callback raises and writes it to std::cerr,
    not to the ILogger (python/src/infer/pyPlugin.cpp: PLUGIN_API_CATCH and 'Exception thrown from
    get_output_shapes()'), so its log holds only its own consequence. Before: the one line said
    that consequence and the plugin's refusal, with its fix, was lost in a stderr dump. Now the
    first refusal of this build is the line; one kept from an earlier build is not."""
    refusal = "tv_dwconv input height 18 gives output 9 with k=3, stride=2, but the kernels are for 8" + REEXPORT_HINT
    _plugin_raised("a refusal outside any build")  # kept for no build
    with pytest.raises(TvexportError) as info:
        if stage == "parse":
            fake_builder(plugin_parse=(refusal, "a later consequence"), parse_logs=("Could not create the plugin",), parsed_ok=False)
        else:
            fake_builder(plugin_build=(refusal,), build_logs=("IPluginV3QuickAOTBuild failed",), built=None)
    verb = "could not parse" if stage == "parse" else "failed to build an engine from"
    assert str(info.value) == f"TensorRT {verb} {tmp_path / 'm.onnx'}: {refusal}"
    with pytest.raises(TvexportError) as info:  # the refusal of the build before is not this one's
        fake_builder(plugin_parse=(), plugin_build=(), build_logs=("out of memory",), built=None, parse_logs=(), parsed_ok=True)
    assert str(info.value).endswith(": out of memory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # nothing written


@needs_onnx
def test_concurrent_builds_report_only_their_own_plugin_failures(fake_builder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Before: the plugin's refusals were kept in one list per process (_env.PLUGIN_FAILURES) that
    every build cleared and read, so of two builds in two threads, one whose builder failed for a
    reason of its own (out of memory) reported the refusal of the other's parse. Each build now
    reports what was raised in its own thread; a refusal raised outside any build is kept for none."""
    import threading

    import tvexport.trt.build as trt_build

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    for path in (a, b):
        _tv_model(path, [_spec(4, 3, 2, 5, 6, None)], batch=1)
    b_parsing, a_refused = threading.Event(), threading.Event()

    def parse(path: str) -> None:  # A's parse refuses its node while B's build runs
        if path == str(a):
            assert b_parsing.wait(30)
            _plugin_raised("the refusal of a.onnx's node")
            a_refused.set()
        else:
            b_parsing.set()

    def build(network: object) -> None:  # B's builder fails after A's refusal
        assert a_refused.wait(30)

    def parsed_ok() -> bool:
        return threading.current_thread().name != "a"

    errors: dict[str, str] = {}

    def run(name: str, path: Path) -> None:
        try:
            trt_build.build_engine(path, tmp_path / f"{name}.engine")
        except TvexportError as err:
            errors[name] = str(err)

    fake_builder.state.update(parse_hook=parse, build_hook=build, built=None, build_logs=("out of memory",), parsed_ok=parsed_ok)
    threads = [threading.Thread(target=run, args=(name, path), name=name) for name, path in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == {"a": f"TensorRT could not parse {a}: the refusal of a.onnx's node",
                      "b": f"TensorRT failed to build an engine from {b}: out of memory"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx"]  # nothing written


def _save_with_external_data(model: object, path: Path) -> None:
    import onnx

    onnx.save_model(model, str(path), save_as_external_data=True, location=path.name + ".data", size_threshold=0)


@needs_onnx
def test_build_leaves_external_weights_to_the_parser(fake_builder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Before: the weights were loaded into the model handed to the parser, so a model over 2 GB
    (which ONNX keeps as external data) could not be serialized. TensorRT's parser reads them from
    the files beside the model's path, which it is given."""
    import onnx

    onnx_path = tmp_path / "m.onnx"
    _save_with_external_data(_tv_model(None, [_spec(4, 3, 2, 5, 6, "map")], batch=1), onnx_path)
    result = fake_builder(onnx_path)
    assert result.info["tv_layers"][0]["bias"] == "map"
    ((data, path),) = fake_builder.parsed
    assert path == str(onnx_path)
    given = {t.name: t for t in onnx.ModelProto.FromString(data).graph.initializer}
    assert all(given[n].data_location == onnx.TensorProto.EXTERNAL and not given[n].raw_data for n in ("w0", "b0"))


@needs_onnx
def test_build_reads_the_model_once(fake_builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Before: build_engine parsed the model in prepare_onnx and again for its metadata
    (read_metadata). The preparation now hands its metadata on."""
    import onnx

    onnx_path = tmp_path / "m.onnx"
    model = _tv_model(None, [_spec(4, 3, 2, 5, 6, None)], batch=1)
    onnx.helper.set_model_props(model, {"tvexport.arch": "face_mobilenetv2_x0_1", "tvexport.atom": "a3"})
    onnx.save_model(model, str(onnx_path))
    loads = []
    real_load = onnx.load
    monkeypatch.setattr(onnx, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    result = fake_builder(onnx_path)
    assert len(loads) == 1 and (result.info["arch"], result.info["atom"]) == ("face_mobilenetv2_x0_1", "a3")


@needs_onnx
def test_sidecar_hashes_the_external_weights(fake_builder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Before: the sidecar's source.sha256 covered the graph file only, so two exports that differ
    only in weights kept as external data recorded the same source. Each data file's hash is
    recorded too, with its path relative to the model."""
    import hashlib

    import onnx
    from onnx import numpy_helper

    onnx_path, data_path = tmp_path / "m.onnx", tmp_path / "m.onnx.data"
    records = []
    for step in range(2):
        model = _tv_model(None, [_spec(4, 3, 2, 5, 6, "map")], batch=1)  # saving moves its weights out
        if step:  # the same graph, other weights
            w0 = next(t for t in model.graph.initializer if t.name == "w0")
            w0.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w0) + 1, "w0"))
        for p in (onnx_path, data_path):
            p.unlink(missing_ok=True)
        _save_with_external_data(model, onnx_path)
        source = fake_builder(onnx_path).info["source"]
        (tmp_path / "m.engine").unlink()
        (tmp_path / "m.engine.json").unlink()
        assert source["sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        assert source["external_data"] == [{"path": "m.onnx.data", "sha256": hashlib.sha256(data_path.read_bytes()).hexdigest()}]
        records.append(source)
    assert records[0]["sha256"] == records[1]["sha256"] and records[0]["external_data"] != records[1]["external_data"]
    onnx.save_model(_tv_model(None, [_spec(4, 3, 2, 5, 6, "map")], batch=1), str(onnx_path))  # one file: nothing outside it
    assert fake_builder(onnx_path).info["source"]["external_data"] == []


@needs_onnx
@pytest.mark.parametrize("location", ["gone.data", "../m.onnx.data", "/abs/m.onnx.data"])
def test_build_refuses_external_weights_not_beside_the_model(cli, fake_builder, tmp_path: Path, location: str) -> None:  # type: ignore[no-untyped-def]
    """Loading the weights used to check where they are (onnx's own message); the parser that reads
    them now is not handed a location that is missing or outside the model's directory."""
    import onnx

    onnx_path = tmp_path / "m.onnx"
    _save_with_external_data(_tv_model(None, [_spec(4, 3, 2, 5, 6, None)], batch=1), onnx_path)
    model = onnx.load(str(onnx_path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(model, str(onnx_path))
    res = cli("build", onnx_path, "-o", tmp_path / "m.engine")
    assert res.exit_code == 2 and res.stderr.strip().splitlines() == [
        f"error: {onnx_path}: the weights of 'w0' are in {location!r}, which is not a file beside it; "
        "keep the model's external data files next to it, or export it again"], res.stderr
    assert not fake_builder.parsed and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


@needs_onnx
def test_build_of_a_model_over_protobufs_limit_is_one_line(cli, fake_builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Before: protobuf's EncodeError (serializing 2 GB or more) escaped ``tvexport build`` as an
    internal error. The size is faked: serializing refuses, as protobuf does past 2 GB; a single file
    past 2 GB cannot be read at all."""
    import onnx
    from google.protobuf.message import EncodeError

    from tvexport.export import onnx as tvonnx

    class TooBig:
        def __init__(self, model: object) -> None:
            self._model = model

        def __getattr__(self, name: str) -> object:
            return getattr(self._model, name)

        def SerializeToString(self) -> bytes:  # noqa: N802 - protobuf's name
            raise EncodeError("Failed to serialize proto")

    onnx_path = tmp_path / "m.onnx"
    _tv_model(onnx_path, [_spec(4, 3, 2, 5, 6, None)], batch=1)
    real_load = onnx.load
    monkeypatch.setattr(onnx, "load", lambda *a, **k: TooBig(real_load(*a, **k)))
    hint = "keep its weights in a side file: export it again with tvexport export --tv-op plugin --external-data (other tools: onnx.save_model(..., save_as_external_data=True))"
    res = cli("build", onnx_path, "-o", tmp_path / "m.engine")
    assert res.exit_code == 2 and res.stderr.strip().splitlines() == [
        f"error: {onnx_path} is too large for TensorRT's parser: its graph is over protobuf's 2 GB limit; {hint}"], res.stderr
    monkeypatch.setattr(onnx, "load", real_load)
    onnx_path.write_bytes(b"\x00garbage")
    monkeypatch.setattr(tvonnx, "EXTERNAL_DATA_LIMIT", 4)  # a file this large cannot be a readable model
    res = cli("build", onnx_path, "-o", tmp_path / "m.engine")
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {onnx_path} is not a readable ONNX file (DecodeError: ") and lines[0].endswith(
        f"; a single ONNX file holds at most 2 GB: {hint}"), res.stderr
    assert not fake_builder.parsed and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("shape, batches", [((1, 3, 96, 96), (1, 1)), ((-1, 3, 96, 96), (1, 8))], ids=["fixed", "dynamic"])
def test_validate_asks_the_engine_its_input_shape_once(fake_engine, face_ckpt: Path, shape: tuple, batches: tuple) -> None:  # type: ignore[no-untyped-def]
    """Before: validate asked for the input's shape (and a dynamic engine's profile) for its batch
    check and again for each of the runner's (``batch``, ``batch_range``, ``check_input`` before
    baking and again in the call). A deserialized engine's shapes do not change: the runner reads
    them once, when it loads the engine."""
    from tvexport.export import validate

    engine = fake_engine(shape, batches)
    validate.validate_artifact(engine, face_ckpt, batch=1)
    assert fake_engine.seen == [(1, 3, 96, 96)]
    assert fake_engine.engines[engine.name.encode()].asked == (["shape"] if shape[0] > 0 else ["shape", "profile"])


# --------------------------------------------------------------------------- with TensorRT and a GPU


def _stored_weight(spec: dict, dtype: str) -> np.ndarray:
    """The kernels as the ONNX model stores them, in float64 (int8: dequantized)."""
    wdtype = spec.get("wdtype", dtype)
    if wdtype == "int8":
        q, scale = _quantize(spec["weight"])
        return q.astype(np.float64) * scale.astype(np.float64)
    return spec["weight"].astype(wdtype).astype(np.float64)


def _reference(x: np.ndarray, specs: list[dict], dtype: str = "float32") -> np.ndarray:
    from tvexport.layers import tv_depthwise_unfold

    t = torch.from_numpy(x).double()
    for s in specs:  # the engine casts nothing: the reference reads what the model stores
        b = None if s["bias"] is None else torch.from_numpy(s["bias"].astype(dtype).astype(np.float64))
        t = tv_depthwise_unfold(t, torch.from_numpy(_stored_weight(s, dtype)), b, stride=s["stride"])
    return t.numpy()


@needs_trt_gpu
@pytest.mark.parametrize("dtype, wdtype", [("float32", None), ("float16", None), ("float32", "float16"), ("float32", "int8"), ("float16", "int8")])
@pytest.mark.parametrize("k", [3, 5])
def test_engine_matches_reference(tmp_path: Path, dtype: str, wdtype: str | None, k: int) -> None:
    from tvexport.export._common import load_runner
    from tvexport.trt.build import build_engine

    specs = [_spec(6, k, 2, 6, 5, "map", 1, wdtype), _spec(6, k, 1, 6, 5, None, 2, wdtype), _spec(6, k, 1, 6, 5, "channel", 3, wdtype)]
    onnx_path = tmp_path / "tv.onnx"
    _tv_model(onnx_path, specs, dtype=dtype)
    result = build_engine(onnx_path, tmp_path / "tv.engine", max_batch=4)
    info = json.loads(result.sidecar.read_text())
    assert info["plugin"]["layers"] == 3 and info["precision"] == dtype and [t["bias"] for t in info["tv_layers"]] == ["map", "zero", "channel"]
    assert {t["dtype"] for t in info["tv_layers"]} == {wdtype or dtype}
    run = load_runner("tensorrt", result.engine)  # the path `tvexport validate --backend tensorrt` takes
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 6, 12, 10)).astype(dtype).astype(np.float32)
        got = run(x)
        ref = _reference(x.astype(np.float64), specs, dtype)
        tol = 1e-5 if dtype == "float32" else 2e-2  # three chained float16 layers
        assert np.abs(got - ref).max() <= tol * np.abs(ref).max(), (batch, np.abs(got - ref).max())
    with pytest.raises(TvexportError, match="outside the engine's profile"):
        run(np.zeros((5, 6, 12, 10), np.float32))


@needs_trt_gpu
def test_fp16_flag_refuses_int8_kernels(tmp_path: Path) -> None:
    import tensorrt

    from tvexport.trt.build import build_engine

    if not tensorrt.__version__.startswith("10."):
        pytest.skip("--fp16 only exists with TensorRT 10")
    onnx_path = tmp_path / "tv.onnx"
    _tv_model(onnx_path, [_spec(4, 3, 1, 8, 8, None, wdtype="int8")])
    with pytest.raises(TvexportError, match="int8 TV kernels"):
        build_engine(onnx_path, tmp_path / "tv.engine", fp16=True)
    assert not (tmp_path / "tv.engine").exists()


@needs_trt_gpu
def test_build_cli_writes_engine_and_sidecar(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    onnx_path = tmp_path / "tv.onnx"
    _tv_model(onnx_path, [_spec(4, 3, 1, 8, 8, None)])
    res = cli("build", onnx_path, "--min-batch", 1, "--max-batch", 8, "--json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert Path(info["engine"]).is_file() and Path(info["sidecar"]).is_file() and info["profile"]["max"][0] == 8
    res = cli("build", onnx_path)  # exists: refused without --force
    assert res.exit_code == 2 and "--force" in res.stderr


# --------------------------------------------------------------------------- the real tensorrt.plugin package

# NVIDIA's bindings wheels whose ``tensorrt.plugin`` (pure Python) the plugins are tested against:
# the first release with AOT plugins and the newest 11.x. The wheel's compiled core needs
# libnvinfer, so tests/_trt_core.py stands in for it; two versions cannot be installed side by
# side, so the tests fetch the wheels with pip (cached in .pytest_cache, or from a directory in
# $TVEXPORT_TRT_WHEELS) and import from the unpacked files.
TRT_BINDINGS = ("10.9.0.34", "11.4.0.106")


@pytest.fixture(scope="session")
def trt_wheels(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import os
    import subprocess

    from _trt_core import unpack_plugin_package

    given = os.environ.get("TVEXPORT_TRT_WHEELS")
    pytest_cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    if given:
        cache = Path(given)
    elif pytest_cache is not None:
        cache = Path(pytest_cache.mkdir("tensorrt-bindings"))
    else:
        cache = tmp_path_factory.mktemp("tensorrt-bindings")
    out = {}
    for version in TRT_BINDINGS:
        wheels = sorted(cache.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
        if not wheels:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
                   "--python-version", "3.11", "--implementation", "cp", "-d", str(cache), f"tensorrt-cu12-bindings=={version}"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
            wheels = sorted(cache.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
            if not wheels:
                msg = f"could not fetch tensorrt-cu12-bindings=={version}: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}"
                if os.environ.get("CI"):
                    pytest.fail(msg)
                pytest.skip(msg + " (offline? set TVEXPORT_TRT_WHEELS to a directory holding the wheels)")
        out[version] = unpack_plugin_package(wheels[0], cache / f"unpacked-{version}")
    return out


@pytest.fixture(params=TRT_BINDINGS)
def real_trt(request: pytest.FixtureRequest, trt_wheels: dict[str, Path], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """NVIDIA's ``tensorrt.plugin`` of one release with tvexport's plugins registered into it."""
    import importlib

    from _trt_core import load_real_plugin_package

    import tvexport.trt as trt_pkg

    version = request.param
    saved = {k: v for k, v in sys.modules.items() if k == "tensorrt" or k.startswith("tensorrt.") or k == "tvexport.trt.plugin"}
    try:
        core, trtp = load_real_plugin_package(trt_wheels[version], version)
        sys.modules.pop("tvexport.trt.plugin", None)
        plugin = importlib.import_module("tvexport.trt.plugin")
        monkeypatch.setattr(plugin, "_build_arch", lambda: 90)  # compile for sm_90 without a GPU
        yield version, core, trtp, plugin
    finally:
        for k in [k for k in sys.modules if k == "tensorrt" or k.startswith("tensorrt.") or k == "tvexport.trt.plugin"]:
            del sys.modules[k]
        sys.modules.update(saved)
        if "tvexport.trt.plugin" in saved:
            trt_pkg.plugin = saved["tvexport.trt.plugin"]  # type: ignore[attr-defined]


def _prepared_nodes(specs: list[dict], dtype: str = "float32") -> list:
    from tvexport.trt._onnx import prepare_tv_nodes

    model = _tv_model(None, specs, dtype=dtype)
    prepare_tv_nodes(model)
    return list(model.graph.node)


def test_real_package_validates_and_registers_both_plugins(real_trt) -> None:  # type: ignore[no-untyped-def]
    version, core, trtp, _ = real_trt
    from tensorrt.plugin import _lib

    for pid, tensors in ((PLUGIN_ID, ["x", "weight", "bias"]), (PLUGIN_ID_I8, ["x", "weight", "bias", "scale"])):
        d = _lib.QDP_REGISTRY[pid]
        assert d.input_tensor_names == tensors and list(d.input_attrs) == ["k", "stride", "padding"]
        assert d.aot_impl_func is not None and d.impl_func is None and d.autotune_func is not None  # AOT only: engines never call Python
        assert d.aot_impl_attr_names == ["k", "stride", "padding"]  # get_launch_params passes every attribute, in this order
        ns, name = pid.split("::")
        creator = core.get_plugin_registry().get_creator(name, "1", ns)
        assert [f.name for f in creator.field_names] == ["k", "stride", "padding"]
        assert {f.type for f in creator.field_names} == {core.PluginFieldType.INT32}  # array attributes (see plugin.Int)


@pytest.mark.parametrize("pass_node_name", [False, True], ids=["op-type", "node-name"])
def test_parsers_find_the_plugin_by_either_name(real_trt, pass_node_name: bool) -> None:  # type: ignore[no-untyped-def]
    """Prepared nodes are named after their op type, so parsers that hand the node name to the
    creator find the plugin too; an unprepared node name ('tv0') would not be found."""
    from _trt_core import parse_node

    _, core, _, _ = real_trt
    nodes = _prepared_nodes([_spec(4, 3, 2, 5, 6, None), _spec(4, 3, 1, 5, 6, "map", 1, wdtype="int8")])
    for node in nodes:
        plugin = parse_node(core, node, pass_node_name=pass_node_name)
        attrs = {name: v.tolist() for name, v in plugin.attrs.items()}
        assert plugin.plugin_name == node.op_type and attrs == {"k": [3], "stride": [2 if node.op_type == "tv_dwconv" else 1], "padding": [1]}
    if pass_node_name:
        nodes[0].name = "tv0"
        with pytest.raises(KeyError):
            parse_node(core, nodes[0], pass_node_name=True)


@pytest.mark.parametrize("aot", [0, 1, "yes", 2**32, -1])
def test_a_nodes_aot_attribute_is_the_parsers_creation_request(real_trt, aot: object) -> None:  # type: ignore[no-untyped-def]
    """Current onnx-tensorrt parsers take a node's INT attribute ``aot`` as the plugin creation
    request over the network's PREFER_AOT flag (importerUtils.cpp, createPlugin:
    ``static_cast<bool>(attrs.get<int>("aot", 0))``, nonzero STRICT_AOT, 0 STRICT_JIT). Before:
    tvexport passed aot=0 on, and tensorrt.plugin refused the node for want of a JIT
    implementation, which tvexport's plugins do not have; now the node is refused before parsing,
    with the fix. aot=1 (or -1) asks for what the plugins are; 2**32 is 0 as the parser's int32
    (before review40 it passed tvexport's check and the parser asked for JIT)."""
    from _trt_core import parse_node

    from tvexport.trt._onnx import prepare_tv_nodes

    _, core, _, _ = real_trt
    spec = _spec(4, 3, 1, 5, 6, None)
    spec["attrs"] = {"aot": aot}
    model = _tv_model(None, [spec])
    aot_ok = aot in (1, -1)
    if not aot_ok:
        raw = next(n for n in model.graph.node if n.op_type == "tv_dwconv")
        with pytest.raises(ValueError, match="JIT implementation requested, but not defined"):  # what TensorRT would say
            parse_node(core, raw, pass_node_name=False)
        with pytest.raises(TvexportError) as info:
            prepare_tv_nodes(model, source="m.onnx")
        said = str(info.value)
        assert said.startswith("m.onnx: tv_dwconv node tv0 has aot=") and said.endswith(REEXPORT_HINT) and "\n" not in said, said
        return
    prepare_tv_nodes(model, source="m.onnx")
    plugin = parse_node(core, model.graph.node[0], pass_node_name=False)
    assert type(plugin).__name__ == "_TemplateAOTPlugin"


# (input types, the types a strongly typed network hands the plugin) per kernel form
_NETWORKS = {
    "fp32": ("float32", "float32"),
    "fp16": ("float16", "float16"),
    "fp32-x-fp16-w": ("float32", "float16"),
    "fp16-x-int8-w": ("float16", "int8"),
    "fp32-x-int8-w": ("float32", "int8"),
}


def _builder(core, plugin_mod, version: str, net: str, stride: int = 2, bias: str | None = "channel", profile=(1, 4, 32)):  # type: ignore[no-untyped-def]
    from _trt_core import Builder, parse_node

    xdt, wdt = _NETWORKS[net]
    spec = _spec(6, 3, stride, 8, 6, bias, wdtype=wdt)
    node = _prepared_nodes([spec], dtype=xdt)[0]
    t = {"float32": core.float32, "float16": core.float16, "int8": core.int8}
    c, h, w = spec["in_chw"]
    inputs = [((-1, c, h, w), t[xdt]), ((6, 9, 8, 6), t[wdt]), ((6, 1, 1) if bias != "map" else (6, 8, 6), t[xdt] if wdt != "int8" else core.float32)]
    if wdt == "int8":
        inputs.append(((6, 9, 1, 1), core.float32))
    return Builder(version, parse_node(core, node, pass_node_name=False), inputs, profile), inputs


@pytest.mark.parametrize("net", list(_NETWORKS))
def test_strongly_typed_build_through_the_real_package(real_trt, net: str) -> None:  # type: ignore[no-untyped-def]
    """The builder's whole conversation with the AOT plugin, for every kernel form: output type and
    shape, a type combination matching the network's types, one kernel per tactic whose PTX takes
    exactly (inputs, N, output), and launch dimensions covering every output."""
    from tvexport.kernels._config import aot_configs, cdiv
    from tvexport.kernels._ptx import entry_params

    version, core, _, plugin_mod = real_trt
    b, inputs = _builder(core, plugin_mod, version, net)
    out_type, out_dims = b.output()
    assert out_type == inputs[0][1]  # the output has x's type
    assert [d.evaluate({"N": 5}) for d in out_dims] == [5, 6, 8, 6]
    want = tuple(t for _, t in inputs) + (out_type,)
    combos = b.combinations()
    assert want in combos, (want, combos)
    assert all(cb[-1] == cb[0] for cb in combos)  # every advertised combination: output type == x type
    kernels = b.kernels(want)
    x_bytes = 2 if inputs[0][1] == core.float16 else 4
    configs = aot_configs(6, plane=48, opt_batch=4, x_bytes=x_bytes)  # opt batch 4 of the profile
    assert sorted(k["tactic"] for k in kernels) == list(range(1, len(configs) + 1))
    for kern in kernels:
        cfg = configs[kern["tactic"] - 1]
        assert len(kern["name"]) <= 15
        params = [t for t, _ in entry_params(kern["ptx"])]
        assert params == ["u64"] * len(inputs) + ["u32", "u64"], params  # no hidden triton parameters
        for n in (1, 5, 32):
            launch = kern["launch"](n)
            assert launch["grid_x"] == 6 * cdiv(48, cfg.block) * cdiv(n, cfg.batch_tile) and launch["grid_y"] == launch["grid_z"] == 1
            assert launch["block_x"] == 32 * cfg.num_warps and launch["shared_mem"] <= 4096
            assert kern["extra"](n) == [n]


@pytest.mark.parametrize("case", ["input-size", "kernel-type"])
def test_plugin_refusals_say_how_to_fix_the_node(real_trt, case: str) -> None:  # type: ignore[no-untyped-def]
    """Before: a node the plugin refuses during a build (an input of another size than the kernels
    were baked for, kernels of a type the plugin does not take) was said without the fix the
    preparation gives for the same nodes: export the model again."""
    from _trt_core import Builder

    version, core, _, plugin_mod = real_trt
    b, inputs = _builder(core, plugin_mod, version, "fp32")
    if case == "input-size":  # x is 16x12 for these kernels (stride 2, 8x6 output): give 18x12
        b = Builder(version, b.plugin, [((-1, 6, 18, 12), core.float32), *inputs[1:]], b.profile)
        with pytest.raises(ValueError) as info:
            b.output()
        assert "tv_dwconv input height 18 gives output 9" in str(info.value)
    else:  # float kernels at the int8 plugin (its type combinations keep TensorRT from this: the check's own words)
        desc = [types.SimpleNamespace(dtype=t) for t in (core.float32, core.float32, core.float32, core.float32)]
        with pytest.raises(ValueError) as info:
            plugin_mod.tv_dwconv_i8_aot_impl(*desc, *(np.array([v], np.int32) for v in (3, 2, 1)), (desc[0],), 1)
        assert "tvexport::tv_dwconv_i8 takes int8 kernels and float32 scales" in str(info.value)
    assert str(info.value).endswith(REEXPORT_HINT) and "\n" not in str(info.value), info.value


def test_plugin_callbacks_keep_what_they_raise_for_the_build(real_trt, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """What a callback raises never reaches TensorRT's log (pyPlugin.cpp prints it to std::cerr), so
    the plugin keeps each line for the build run in the callback's thread (tvexport.trt._env.plugin_failures)
    for build_engine: a refused node (shape pass) and a failed kernel compile (AOT pass) alike."""
    from _trt_core import Builder

    from tvexport.trt import _env

    version, core, _, plugin_mod = real_trt
    b, inputs = _builder(core, plugin_mod, version, "fp32")
    bad = Builder(version, b.plugin, [((-1, 6, 18, 12), core.float32), *inputs[1:]], b.profile)
    with _env.plugin_failures() as failures, pytest.raises(ValueError) as info:
        bad.output()
    assert failures == [str(info.value)] and str(info.value).endswith(REEXPORT_HINT)

    def compile_fails(*args: object) -> None:
        raise RuntimeError("the compiled TV kernel needs a global_scratch buffer\n  (more detail)")

    monkeypatch.setattr(plugin_mod, "_compile", compile_fails)
    with _env.plugin_failures() as failures:
        b.output()
        combo = tuple(t for _, t in inputs) + (inputs[0][1],)
        assert combo in b.combinations()
        with pytest.raises(RuntimeError):
            b.kernels(combo)
    assert failures == ["the compiled TV kernel needs a global_scratch buffer"]


def test_compile_errors_do_not_say_to_export_again(real_trt, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Before: the fix for a refused node ("export the model again") was added to every ValueError
    of the AOT implementation, the tile choice's and the kernel compile's included, which exporting
    again cannot fix. Now only the node checks carry it."""
    version, core, _, plugin_mod = real_trt
    b, inputs = _builder(core, plugin_mod, version, "fp32")
    b.output()
    combo = tuple(t for _, t in inputs) + (inputs[0][1],)
    assert combo in b.combinations()

    def compile_refuses(*args: object) -> None:
        raise ValueError("the compile's own refusal")

    monkeypatch.setattr(plugin_mod, "_compile", compile_refuses)
    with pytest.raises(ValueError) as info:
        b.kernels(combo)
    assert str(info.value) == "the compile's own refusal"


@pytest.mark.parametrize("case", ["layer", "max-batch"])
def test_engines_the_kernels_32_bit_indices_cannot_address_are_refused(real_trt, case: str) -> None:  # type: ignore[no-untyped-def]
    """Before: the Triton launcher refused a layer whose one sample (C*H*W) or kernel tensor
    (C*k*k*OH*OW) has over 2**31 - 1 elements, but the plugin compiled it, and the kernel's 32-bit
    channel offsets (c * H*W, c * k*k*OH*OW: shl.b32 / mul.lo.s32 in its PTX) wrapped; a profile
    whose max batch needs more than 2**31 - 1 programs, or an N beyond int32, was built too. Now the
    plugin refuses both before compiling, with what fixes each (before, the layer's refusal said no fix)."""
    from _trt_core import Builder

    version, core, _, plugin_mod = real_trt
    b, inputs = _builder(core, plugin_mod, version, "fp32")  # k=3, stride 2
    f32 = core.float32
    if case == "layer":  # C*H*W = 2**32
        c, h, w = 65536, 256, 256
        b = Builder(version, b.plugin, [((-1, c, h, w), f32), ((c, 9, h // 2, w // 2), f32), ((c, 1, 1), f32)], b.profile)
    else:
        b = Builder(version, b.plugin, inputs, (1, 4, 2**31))
    b.output()
    combo = tuple(t for _, t in b.inputs) + (f32,)
    assert combo in b.combinations()
    with pytest.raises(ValueError) as info:
        b.kernels(combo)
    said = str(info.value)
    assert "\n" not in said and not said.endswith(REEXPORT_HINT), said  # exporting again would not fix it
    if case == "layer":
        assert "is too large for the fused kernel: one sample of its input (C*H*W) has 4294967296 elements" in said, said
        assert said.endswith("; export the model with --tv-op portable, whose standard ONNX ops TensorRT builds without tvexport's plugin"), said
    else:
        assert "batch 2147483648" in said and said.endswith("build the engine with a smaller --max-batch"), said


def test_batch_one_profile_gets_batch_tile_one(real_trt) -> None:  # type: ignore[no-untyped-def]
    version, core, _, plugin_mod = real_trt
    b, inputs = _builder(core, plugin_mod, version, "fp32", profile=(1, 1, 8))
    b.output()
    combo = tuple(t for _, t in inputs) + (inputs[0][1],)
    assert combo in b.combinations()
    kernels = b.kernels(combo)
    assert kernels
    for kern in kernels:
        assert kern["launch"](3)["grid_x"] == 3 * kern["launch"](1)["grid_x"]  # one sample per program


@pytest.mark.parametrize("xdt", ["float32", "float16"])
def test_each_activation_type_gets_its_own_tactics(real_trt, xdt: str) -> None:  # type: ignore[no-untyped-def]
    """The tile candidates depend on the activation width (aot_configs x_bytes). Before: autotune
    gave every combination the tactics of the type TensorRT reported (FLOAT, in TensorRT 10's
    weakly typed --fp16 build, which times the HALF combinations too), so for a 16x16 plane the
    HALF combination got two tactics for its one tile size: the same kernel compiled and timed
    twice. Now each activation type's combinations carry exactly its own candidates."""
    from _trt_core import Builder

    from tvexport.kernels._config import aot_configs

    version, core, _, plugin_mod = real_trt
    b, _ = _builder(core, plugin_mod, version, "fp32")  # k=3, stride 2
    t = {"float32": core.float32, "float16": core.float16}[xdt]
    b = Builder(version, b.plugin, [((-1, 6, 32, 32), t), ((6, 9, 16, 16), core.float32), ((6, 1, 1), core.float32)], (1, 4, 32))
    b.output()
    combos = b.combinations()
    for x_type, x_bytes in ((core.float32, 4), (core.float16, 2)):
        want = len(aot_configs(6, plane=256, opt_batch=4, x_bytes=x_bytes))
        combo = (x_type, core.float32, core.float32, x_type)
        assert combo in combos
        kernels = b.kernels(combo)
        assert sorted(k["tactic"] for k in kernels) == list(range(1, want + 1)), (x_type, [k["tactic"] for k in kernels])
        assert len({k["launch"](4)["grid_x"] for k in kernels}) == want  # one distinct tile size per tactic
    assert len(aot_configs(6, plane=256, opt_batch=4, x_bytes=4)) != len(aot_configs(6, plane=256, opt_batch=4, x_bytes=2))  # the case this is about


def test_weakly_typed_fp16_build_is_consistent(real_trt) -> None:  # type: ignore[no-untyped-def]
    """TensorRT 10 --fp16: the network is float32 and TensorRT reports FLOAT inputs; the plugin
    declares a FLOAT output, that all-FLOAT combination is advertised, every advertised combination
    keeps output == x, and the all-HALF one TensorRT may pick compiles and launches too."""
    version, core, _, plugin_mod = real_trt
    if not version.startswith("10."):
        pytest.skip("TensorRT 11 has no weak typing")
    b, _ = _builder(core, plugin_mod, version, "fp32")
    out_type, _ = b.output()
    combos = b.combinations()
    f, h = core.float32, core.float16
    assert out_type == f and (f, f, f, f) in combos and (h, h, h, h) in combos
    assert all(cb[-1] == cb[0] for cb in combos)
    assert all(k["launch"](2)["grid_x"] > 0 for k in b.kernels((h, h, h, h)))
