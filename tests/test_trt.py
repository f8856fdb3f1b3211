"""The TensorRT path: pure pieces (attributes, shape inference, build plan per TensorRT version,
profiles, sidecar, ONNX node preparation) on CPU; the CLI and runner without TensorRT; engines
built and run against the torch reference where TensorRT and a GPU exist."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from tvexport.errors import MissingDependencyError, TvexportError
from tvexport.trt._spec import (
    DEFAULT_BATCH,
    PLUGIN_ID,
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
needs_trt_gpu = pytest.mark.skipif(
    not (HAS_TRT and HAS_ONNX and torch.cuda.is_available() and importlib.util.find_spec("triton")),
    reason="needs tensorrt, onnx, triton and a CUDA GPU",
)


# --------------------------------------------------------------------------- attributes and shapes


def test_parse_attrs() -> None:
    a = parse_attrs(3, 2, 1)
    assert (a.k, a.stride, a.padding) == (3, 2, 1)
    b = parse_attrs(7, 1, 3)
    assert (b.k, b.stride, b.padding) == (7, 1, 3)
    for bad, match in [((4, 1, 2), "odd"), ((3, 3, 1), "stride"), ((3, 1, 0), "padding"), ((5, 1, 1), "padding")]:
        with pytest.raises(ValueError, match=match):
            parse_attrs(*bad)


def test_output_dims_known_and_symbolic() -> None:
    a = parse_attrs(3, 2, 1)
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
        infer_output_dims(x, w, b, parse_attrs(3, 2, 1))


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
    """A hand-written ONNX graph of chained tv_dwconv nodes (independent of tvexport's exporter)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}[dtype]
    inits, graph_nodes = [], []
    cur, (c, h, w) = "x", nodes[0]["in_chw"]
    x_info = helper.make_tensor_value_info("x", elem, [batch, c, h, w])
    for i, spec in enumerate(nodes):
        wt = spec["weight"].astype(dtype)
        inits.append(numpy_helper.from_array(wt, f"w{i}"))
        inputs = [cur, f"w{i}"]
        if spec.get("bias") is not None:
            inits.append(numpy_helper.from_array(spec["bias"].astype(dtype), f"b{i}"))
            inputs.append(f"b{i}")
        k = round(wt.shape[1] ** 0.5)
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


def _spec(c: int, k: int, stride: int, oh: int, ow: int, bias: str | None, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    b = {None: None, "map": rng.standard_normal((c, oh, ow)), "channel": rng.standard_normal((c, 1, 1))}[bias]
    return {"in_chw": (c, oh * stride, ow * stride), "weight": rng.standard_normal((c, k * k, oh, ow)), "bias": b, "stride": stride}


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


@needs_onnx
@pytest.mark.parametrize(
    "attrs, match",
    [({"k": 4}, "odd"), ({"padding": 0}, "padding"), ({"stride": 3}, "stride"), ({"plugin_namespace": "other"}, "plugin_namespace"),
     ({"plugin_version": "2"}, "plugin_version")],
)
def test_prepare_rejects_bad_nodes(attrs: dict, match: str) -> None:
    from tvexport.trt._onnx import prepare_tv_nodes

    spec = _spec(4, 3, 1, 5, 6, None)
    spec["attrs"] = attrs
    with pytest.raises(TvexportError, match=match):
        prepare_tv_nodes(_tv_model(None, [spec]), source="m.onnx")


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
    data, nodes = prepare_onnx(good)
    assert data and [n.bias for n in nodes] == ["channel"]


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


# --------------------------------------------------------------------------- with TensorRT and a GPU


def _reference(x: np.ndarray, specs: list[dict]) -> np.ndarray:
    from tvexport.layers import tv_depthwise_unfold

    t = torch.from_numpy(x).double()
    for s in specs:
        b = None if s["bias"] is None else torch.from_numpy(s["bias"]).double()
        t = tv_depthwise_unfold(t, torch.from_numpy(s["weight"]).double(), b, stride=s["stride"])
    return t.numpy()


@needs_trt_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("k", [3, 5])
def test_engine_matches_reference(tmp_path: Path, dtype: str, k: int) -> None:
    from tvexport.export._common import load_runner
    from tvexport.trt.build import build_engine

    specs = [_spec(6, k, 2, 6, 5, "map", 1), _spec(6, k, 1, 6, 5, None, 2), _spec(6, k, 1, 6, 5, "channel", 3)]
    # The engine casts nothing: quantise the reference's inputs like the model's.
    specs = [dict(s, weight=s["weight"].astype(dtype).astype(np.float64),
                  bias=None if s["bias"] is None else s["bias"].astype(dtype).astype(np.float64)) for s in specs]
    onnx_path = tmp_path / "tv.onnx"
    _tv_model(onnx_path, specs, dtype=dtype)
    result = build_engine(onnx_path, tmp_path / "tv.engine", max_batch=4)
    info = json.loads(result.sidecar.read_text())
    assert info["plugin"]["layers"] == 3 and info["precision"] == dtype and [t["bias"] for t in info["tv_layers"]] == ["map", "zero", "channel"]
    run = load_runner("tensorrt", result.engine)  # the path `tvexport validate --backend tensorrt` takes
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 6, 12, 10)).astype(dtype).astype(np.float32)
        got = run(x)
        ref = _reference(x.astype(np.float64), specs)
        tol = 1e-5 if dtype == "float32" else 2e-2  # three chained float16 layers
        assert np.abs(got - ref).max() <= tol * np.abs(ref).max(), (batch, np.abs(got - ref).max())
    with pytest.raises(TvexportError, match="outside the engine's profile"):
        run(np.zeros((5, 6, 12, 10), np.float32))


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


# --------------------------------------------------------------------------- plugin wiring (stub TensorRT)


class _Expr:
    """Stand-in for tensorrt.plugin.ShapeExpr: an int, or a symbolic expression kept as a tuple."""

    def __init__(self, v: object) -> None:
        self.v = v

    is_fake = False

    @property
    def is_constant(self) -> bool:
        return isinstance(self.v, int)

    def constant_value(self) -> int:
        assert isinstance(self.v, int)
        return self.v


def _stub_tensorrt() -> tuple[types.ModuleType, types.ModuleType, dict]:
    """Just enough of ``tensorrt`` / ``tensorrt.plugin`` to import tvexport.trt.plugin and call what it
    registers the way TensorRT does. Checks the decorated signatures like tensorrt.plugin does:
    tensors first, then attributes, then outputs[, tactic]; annotations must be real types."""
    import inspect

    reg: dict = {}
    trt = types.ModuleType("tensorrt")
    trt.float32, trt.float16, trt.int8 = "FLOAT", "HALF", "INT8"  # type: ignore[attr-defined]
    trtp = types.ModuleType("tensorrt.plugin")

    class TensorDesc:
        def __init__(self, shape: tuple, dtype: str) -> None:
            self.shape_expr, self.dtype = tuple(s if isinstance(s, _Expr) else _Expr(s) for s in shape), dtype

    class KernelLaunchParams:
        grid_x = grid_y = grid_z = block_x = 1
        shared_mem = 0

    class SymIntExprs(list):
        @classmethod
        def from_tuple(cls, items):  # type: ignore[no-untyped-def]
            return cls(items)

    def signature_names(fn):  # type: ignore[no-untyped-def]
        sig = inspect.signature(fn)
        assert not any(isinstance(p.annotation, str) for p in sig.parameters.values()), "string annotations"
        return list(sig.parameters)

    def register(pid):  # type: ignore[no-untyped-def]
        def deco(fn):  # type: ignore[no-untyped-def]
            sig = inspect.signature(fn)
            tensors = [n for n, p in sig.parameters.items() if p.annotation is TensorDesc]
            attrs = [n for n, p in sig.parameters.items() if p.annotation is not TensorDesc]
            assert signature_names(fn) == tensors + attrs and all(sig.parameters[a].annotation in (int, float, str, bool, bytes) for a in attrs)
            reg[pid] = {"desc": fn, "tensors": tensors, "attrs": attrs}
            return fn
        return deco

    def later(kind, tail):  # type: ignore[no-untyped-def]
        def dec(pid):  # type: ignore[no-untyped-def]
            def deco(fn):  # type: ignore[no-untyped-def]
                names, r = signature_names(fn), reg[pid]
                assert names[: len(r["tensors"])] == r["tensors"] and names[-len(tail):] == tail, (kind, names)
                assert set(names[len(r["tensors"]): -len(tail)]) <= set(r["attrs"]), (kind, names)
                r[kind] = fn
                return fn
            return deco
        return dec

    trtp.TensorDesc, trtp.KernelLaunchParams, trtp.SymIntExprs = TensorDesc, KernelLaunchParams, SymIntExprs  # type: ignore[attr-defined]
    trtp.AutoTuneCombination = lambda *a: ("combination", *a)  # type: ignore[attr-defined]
    trtp.SymInt32 = lambda v: ("i32", v.v if isinstance(v, _Expr) else v)  # type: ignore[attr-defined]
    trtp.cdiv = lambda a, b: _Expr(("cdiv", a.v, b))  # type: ignore[attr-defined]
    trtp.from_shape_expr = lambda shape, dtype: TensorDesc(shape, dtype)  # type: ignore[attr-defined]
    trtp.register = register  # type: ignore[attr-defined]
    trtp.autotune = later("autotune", ["outputs"])  # type: ignore[attr-defined]
    trtp.aot_impl = later("aot_impl", ["outputs", "tactic"])  # type: ignore[attr-defined]
    trtp.impl = later("impl", ["outputs", "stream"])  # type: ignore[attr-defined]
    trt.plugin = trtp  # type: ignore[attr-defined]
    return trt, trtp, reg


def test_plugin_wiring_with_stub_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    from tvexport.kernels._config import BIAS_CHANNEL, SCALAR_ARGS

    trt, trtp, reg = _stub_tensorrt()
    compiled: list[dict] = []
    fake_triton = types.ModuleType("tvexport.kernels._triton")  # no triton in this process: record the request
    fake_triton.driver_ptx_version = lambda: 85  # type: ignore[attr-defined]

    def compile_tv_kernel(**kw):  # type: ignore[no-untyped-def]
        compiled.append(kw)
        return types.SimpleNamespace(name="tv_dwconv_kernel", ptx=".version 8.5", block_threads=32 * kw["config"].num_warps, shared_mem=0)

    fake_triton.compile_tv_kernel = compile_tv_kernel  # type: ignore[attr-defined]
    for name, mod in {"tensorrt": trt, "tensorrt.plugin": trtp, "tvexport.kernels._triton": fake_triton}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    import importlib

    import tvexport.trt as trt_pkg

    saved = trt_pkg.__dict__.get("plugin")
    monkeypatch.delitem(sys.modules, "tvexport.trt.plugin", raising=False)  # restored after the test
    try:
        importlib.import_module("tvexport.trt.plugin")  # registers into the stub
    finally:  # leave no stub-bound plugin module behind for real TensorRT tests
        sys.modules.pop("tvexport.trt.plugin", None)
        if saved is None:
            trt_pkg.__dict__.pop("plugin", None)
        else:
            trt_pkg.plugin = saved  # type: ignore[attr-defined]
    r = reg[PLUGIN_ID]
    assert r["tensors"] == ["x", "weight", "bias"] and r["attrs"] == ["k", "stride", "padding"]
    assert "aot_impl" in r and "autotune" in r and "impl" not in r  # AOT only: engines never call Python

    TD = trtp.TensorDesc
    x, w, b = TD(("N", 6, 12, 10), "HALF"), TD((6, 9, 6, 5), "HALF"), TD((6, 1, 1), "HALF")
    out = r["desc"](x, w, b, k=3, stride=2, padding=1)
    assert [e.v for e in out.shape_expr] == ["N", 6, 6, 5] and out.dtype == "HALF"
    with pytest.raises(ValueError, match="trained size"):
        r["desc"](TD(("N", 6, 14, 10), "HALF"), w, b, k=3, stride=2, padding=1)

    name, ptx, launch, extra = r["aot_impl"](x, w, b, 3, 2, 1, (out,), 0)
    req = compiled[-1]
    assert (name, ptx) == ("tv_dwconv_kernel", ".version 8.5")
    assert (req["dtype"], req["k"], req["stride"], req["bias"], req["ptx_version"]) == ("fp16", 3, 2, BIAS_CHANNEL, 85)
    cfg = req["config"]
    assert launch.grid_x == -(-6 * 6 * 5 // cfg.block) and launch.grid_y.v == ("cdiv", "N", cfg.batch_per_program)
    assert launch.block_x == 32 * cfg.num_warps and launch.shared_mem == 0
    assert len(extra) == len(SCALAR_ARGS) and all(e[0] == "i32" for e in extra)
    assert [e[1] for e in extra] == ["N", 6, 12, 10, 6, 5, cfg.batch_per_program]  # N, C, H, W, OH, OW, BATCH_PER
    with pytest.raises(ValueError, match="one dtype"):
        r["aot_impl"](x, TD((6, 9, 6, 5), "FLOAT"), b, 3, 2, 1, (out,), 0)
    with pytest.raises(ValueError, match="constant shape"):
        r["aot_impl"](x, TD(("C", 9, 6, 5), "HALF"), b, 3, 2, 1, (out,), 0)
