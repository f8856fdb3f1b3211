"""ONNX export of baked TVConv networks, and the onnxruntime backend.

Graph interface (stable):

* input ``input``: (N, 3, H, W) float32 (float16 with ``fp16_io``), N fixed (``batch``) or the
  symbolic dim ``batch`` (``dynamic_batch``); H, W are the network's input size (the trained 96 face,
  256 segmentation, or the size it was re-baked for: ``tvexport bake --input-size``);
* output ``embedding`` (N, 512) for the face networks, ``logits`` (N, num_classes, H, W) for
  DeepLabV3+; same dtype as the input.

TV layers become, with ``tv_op="portable"``, a subgraph of standard ONNX ops whose constants are
initializers (no custom domain, no generator); with ``tv_op="plugin"``, one node
``tvexport::tv_dwconv(x, weight (C, k*k, h, w), bias (C, h, w) | (C, 1, 1) | '', scale)`` with
INT attributes ``k``, ``stride``, ``padding`` and STRING attributes ``plugin_namespace="tvexport"``,
``plugin_version="1"`` (how TensorRT's ONNX parser finds a plugin; its CPU reference is in
``_plugin_ref``), each node's bias kind ("map" or "channel") recorded by node name in the JSON
metadata ``tvexport.tv_bias`` (at 1x1 both are (C, 1, 1)). BatchNorms are folded as the bake folded them (``bake --no-fold-bn`` keeps them:
``BatchNormalization`` nodes; a DWConv/dense baseline's are folded), dropout and training heads are gone. TV kernels keep the
dtype the baked model stores them in (float32, float16, or int8 with per-(channel, tap) scales:
``tvexport.quantize``); ``DequantizeLinear``/``Cast`` nodes (portable) or the plugin op
(plugin) expand them where they are used, so the file stays compressed.

How: the network is exported with ``torch.onnx.export`` (dynamo) while each ``BakedTVConv``
calls a placeholder custom op; its node is then replaced by the subgraph built from the layer's
constants (``_onnx_tv``), which keeps the graph small and its form under our control.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .._io import atomic_output, check_exported_file, check_output_path
from .._version import __version__
from ..accuracy import Reference, Tolerance, random_inputs
from ..artifacts import external_data_path
from ..bake import fold_batchnorms, tv_layer_names
from ..errors import TvexportError, first_line, missing
from ..layers import BakedTVConv, TVConv
from ..models.registry import ArchConfig, config_of
from ..quantize import KernelDType, cast_model_, stored_kernel_dtype
from ._common import Comparison, ExportResult, Runner, check_export_suffix, check_validation_floors, check_weights_fit, with_kernel_dtype

TVOp = Literal["portable", "plugin"]
TV_OPS: tuple[str, ...] = ("portable", "plugin")
DTYPES: tuple[str, ...] = ("float32", "float16")  # weights (and compute) of the graph
# The portable forms of a TV layer (built in _onnx_tv; named here, where check_options needs no onnx)
DECOMPOSITIONS: tuple[str, ...] = ("shift_add", "shift_sum", "shift_hwnc", "slice_concat", "gather", "onehot_conv")
AUTO = "auto"
DEFAULT_DECOMPOSITION = AUTO  # per layer, from benchmarks/onnx_decompositions.py (see _onnx_tv.auto_decomposition)
DEFAULT_OPSET = 18
MIN_OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAMES = {"face": "embedding", "segmentation": "logits"}
BATCH_DIM = "batch"
EXTERNAL_DATA_LIMIT = 1 << 31  # protobuf cannot hold more than 2 GB: weights go to a side file
_PLACEHOLDER_DOMAIN = "tvexport.placeholder"
_PLACEHOLDER_OP = "TVLayer"
_TRACE_BATCH = 2  # example batch of a dynamic export (torch.export specialises sizes 0 and 1)
_DYNAMIC_CHECK_BATCH = 3  # validation batch of a dynamic export: differs from the traced one

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "TV_OPS",
    "export_onnx",
    "external_data_hint",
    "load_onnx_graph",
    "load_runner",
    "onnx_graph",
    "read_metadata",
]


def _require_onnx(what: str = "ONNX export", *, importing: bool = True) -> None:
    """Refuse, as not installed, an onnx or onnxruntime that cannot be imported (not ``importing``:
    that is not there at all, found without importing it, a second's work)."""
    for pkg in ("onnx", "onnxruntime"):
        try:
            found = __import__(pkg) if importing else importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            found = None
        if found is None:
            raise missing(pkg, what=what, extra="onnx")


# --------------------------------------------------------------------------------------------
# Preparing the torch module
# --------------------------------------------------------------------------------------------

_op_registered = False


def _register_placeholder() -> None:
    """The torch custom op standing in for a TV layer during export, and its ONNX schema."""
    global _op_registered
    if _op_registered:
        return
    import onnx
    from onnx.defs import OpSchema

    @torch.library.custom_op("tvexport_onnx::tv_layer", mutates_args=())
    def tv_layer(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor | None, stride: int) -> torch.Tensor:
        from ..layers import tv_depthwise

        return tv_depthwise(x, weight, bias, stride=stride, scale=scale).to(x.dtype)

    @tv_layer.register_fake
    def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor | None, stride: int) -> torch.Tensor:
        c, _, h, w = weight.shape
        return x.new_empty((x.shape[0], c, h, w))

    if not onnx.defs.has(_PLACEHOLDER_OP, _PLACEHOLDER_DOMAIN):
        param = OpSchema.FormalParameter
        onnx.defs.register_schema(
            OpSchema(
                _PLACEHOLDER_OP, _PLACEHOLDER_DOMAIN, 1,
                inputs=[
                    param("x", "T"), param("weight", "W"),
                    param("bias", "T", param_option=OpSchema.FormalParameterOption.Optional),
                    param("scale", "S", param_option=OpSchema.FormalParameterOption.Optional),
                ],
                outputs=[param("y", "T")],
                type_constraints=[("T", ["tensor(float)", "tensor(float16)"], ""), ("W", ["tensor(float)", "tensor(float16)", "tensor(int8)"], ""), ("S", ["tensor(float)"], "")],
                attributes=[OpSchema.Attribute("stride", OpSchema.AttrType.INT, "")],
            )
        )
    _op_registered = True


def _translation_table() -> dict[Any, Any]:
    import onnxscript

    opset = onnxscript.values.Opset(_PLACEHOLDER_DOMAIN, 1)

    def tv_layer(x: Any, weight: Any, bias: Any = None, scale: Any = None, stride: int = 1) -> Any:
        return opset.TVLayer(x, weight, bias, scale, stride=stride)

    return {torch.ops.tvexport_onnx.tv_layer.default: tv_layer}


class _TVPlaceholder(nn.Module):
    """A baked layer's constants as stored (kernels in their dtype, int8 scales), bias in ``dtype``."""

    def __init__(self, layer: BakedTVConv, dtype: torch.dtype) -> None:
        super().__init__()
        self.stride = int(layer.stride)
        self.register_buffer("weight", layer.weight.detach().clone())
        self.register_buffer("bias", layer.bias.detach().to(dtype).clone() if layer.bias is not None else None)
        self.register_buffer("scale", layer.scale.detach().float().clone() if layer.scale is not None else None)
        self.bias_kind = layer.bias_kind  # at 1x1 a map and a per-channel shift have one shape: kept as state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.tvexport_onnx.tv_layer(x, self.weight, self.bias, self.scale, self.stride)


class _Float32IO(nn.Module):
    """float32 in and out around a float16 network."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(torch.float16)).to(torch.float32)


def _prepare(model: nn.Module, *, dtype: torch.dtype, fp16_io: bool) -> nn.Module:
    """A copy of ``model`` ready to trace: BatchNorms folded, TV layers as placeholders, cast."""
    if any(isinstance(m, TVConv) for m in model.modules()):
        raise TvexportError("the model still has TVConv generators", hint="bake it first (tvexport.bake_model or load_source)")
    prepared = copy.deepcopy(model).eval()
    if not any(isinstance(m, BakedTVConv) for m in prepared.modules()):
        fold_batchnorms(prepared)  # a DWConv/dense baseline, folded as a bake would
    # A baked model is exported as baked: BatchNorms that bake --no-fold-bn kept stay (folding them
    # here would round the stored kernels again, and int8 ones cannot take a scale).
    if dtype != torch.float32:
        check_weights_fit(prepared, dtype)
    cast_model_(prepared, dtype)  # float16/int8 TV kernels stay as stored
    tv_layers = {n: m for n, m in prepared.named_modules() if isinstance(m, BakedTVConv)}
    for name, layer in tv_layers.items():
        parent_name, _, child = name.rpartition(".")
        parent = prepared.get_submodule(parent_name) if parent_name else prepared
        setattr(parent, child, _TVPlaceholder(layer, dtype))
    for p in prepared.parameters():
        p.requires_grad_(False)
    if dtype == torch.float16 and not fp16_io:
        prepared = _Float32IO(prepared)
    return prepared


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """torch.onnx logs optional-dependency notes and warnings that are not the user's business."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "torch.__trace", "torch.fx", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# --------------------------------------------------------------------------------------------
# Building the graph
# --------------------------------------------------------------------------------------------

def _io_names(cfg: ArchConfig) -> tuple[str, str]:
    return INPUT_NAME, OUTPUT_NAMES[cfg.spec.task]


def check_options(*, tv_op: str = "portable", opset: int = DEFAULT_OPSET, batch: int = 1, dtype: str = "float32", decomposition: str | None = None) -> None:
    """Reject bad export options before any work (TvexportError). Imports neither onnx nor
    onnxruntime: ``check_runtime`` makes the checks that do (the opset the installed onnx knows)."""
    _require_onnx(importing=False)
    decomposition = DEFAULT_DECOMPOSITION if decomposition is None else decomposition

    if tv_op not in TV_OPS:
        raise TvexportError(f"unknown --tv-op {tv_op!r}", hint=f"choose one of {', '.join(TV_OPS)}")
    if opset < MIN_OPSET:
        _refuse_opset(opset)
    if batch < 1:
        raise TvexportError(f"batch must be >= 1, got {batch}")
    if dtype not in DTYPES:
        raise TvexportError(f"unknown dtype {dtype!r}", hint=f"choose one of {', '.join(DTYPES)}")
    if decomposition != AUTO and decomposition not in DECOMPOSITIONS:
        raise TvexportError(f"unknown TV decomposition {decomposition!r}", hint=f"choose one of {AUTO}, {', '.join(DECOMPOSITIONS)}")


def check_runtime(*, opset: int = DEFAULT_OPSET, **_options: object) -> None:
    """The option checks ``check_options`` leaves out: they import onnx and onnxruntime (a second),
    which ``export_checkpoint`` does once the checkpoint's input is known to fit in memory."""
    _require_onnx()
    import onnx

    if opset > onnx.defs.onnx_opset_version():
        _refuse_opset(opset)


def _refuse_opset(opset: int) -> None:
    _require_onnx()
    import onnx  # only to name the newest opset in the hint

    raise TvexportError(f"opset {opset} is not supported", hint=f"choose an opset from {MIN_OPSET} to {onnx.defs.onnx_opset_version()} (default {DEFAULT_OPSET})")


def onnx_graph(
    model: nn.Module,
    *,
    tv_op: TVOp = "portable",
    opset: int = DEFAULT_OPSET,
    batch: int = 1,
    dynamic_batch: bool = False,
    dtype: str = "float32",
    fp16_io: bool = False,
    decomposition: str | None = None,
) -> Any:
    """The (unsimplified) ``onnx.ModelProto`` of a baked zoo network; nothing is written."""
    _require_onnx()
    import onnx

    decomposition = DEFAULT_DECOMPOSITION if decomposition is None else decomposition
    check_options(tv_op=tv_op, opset=opset, batch=batch, dtype=dtype, decomposition=decomposition)
    check_runtime(opset=opset)
    if dynamic_batch and batch != 1:
        raise TvexportError(f"batch {batch} and a dynamic batch were both asked for", hint="give --batch N or --dynamic-batch, not both")
    if fp16_io and dtype != "float16":
        raise TvexportError("float16 I/O needs float16 weights", hint="add --dtype float16")
    cfg = config_of(model)
    _register_placeholder()
    prepared = _prepare(model, dtype=getattr(torch, dtype), fp16_io=fp16_io)
    in_name, out_name = _io_names(cfg)
    example_batch = _TRACE_BATCH if dynamic_batch else batch
    in_dtype = torch.float16 if (dtype == "float16" and fp16_io) else torch.float32
    example = torch.zeros((example_batch, *cfg.input_shape), dtype=in_dtype)
    dynamic_shapes = ({0: torch.export.Dim(BATCH_DIM, min=1, max=4096)},) if dynamic_batch else None
    with _quiet_export():
        try:
            program = torch.onnx.export(
                prepared, (example,), dynamo=True, opset_version=opset, input_names=[in_name], output_names=[out_name],
                dynamic_shapes=dynamic_shapes, custom_translation_table=_translation_table(), optimize=True, verbose=False,
            )
        except Exception as err:  # the exporter wraps everything in its own error types
            first = first_line(err, limit=300)
            raise TvexportError(f"torch.onnx.export failed for {cfg.name}: {first}", hint="run with --verbose for the traceback") from err
    proto = program.model_proto
    _clean(proto, cfg)
    used = _splice_tv_layers(proto, tv_op=tv_op, decomposition=decomposition, batch=None if dynamic_batch else batch, compute=dtype)
    if dynamic_batch:
        _name_batch_dim(proto)
    tv_bias = {n: m.bias_kind for n, m in prepared.named_modules() if isinstance(m, _TVPlaceholder) and m.bias_kind} if tv_op == "plugin" else {}
    # the record is read by node name (trt/_onnx.py): every key must name the layer's plugin node
    from ._onnx_tv import PLUGIN_OP

    unnamed = set(tv_bias) - {node.name for node in proto.graph.node if node.op_type == PLUGIN_OP}
    assert not unnamed, f"tvexport.tv_bias names no plugin node: {sorted(unnamed)[:3]}"
    _set_metadata(proto, cfg, tv_op=tv_op, dtype=dtype, kernel_dtype=stored_kernel_dtype(model, dtype=dtype), fp16_io=fp16_io, opset=opset,
                  decomposition=_describe(used) if tv_op == "portable" and used else None, tv_bias=tv_bias)
    if _graph_bytes(proto) >= EXTERNAL_DATA_LIMIT:
        return proto  # shape inference needs a serialised model; onnxruntime infers at load time
    return onnx.shape_inference.infer_shapes(proto, data_prop=True)


def _clean(proto: Any, cfg: ArchConfig) -> None:
    """Drop per-node export provenance (stack traces, fx nodes): it is most of a small graph's text."""
    graph = proto.graph
    for node in graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for vi in (*graph.input, *graph.output, *graph.value_info):
        del vi.metadata_props[:]
    for init in graph.initializer:
        del init.metadata_props[:]
    del proto.metadata_props[:]
    graph.name = cfg.name
    proto.producer_name = "tvexport"
    proto.producer_version = __version__


def _describe(used: dict[str, int]) -> str:
    """``{"shift_add": 13, "onehot_conv": 4}`` -> ``"shift_add x13, onehot_conv x4"``."""
    return ", ".join(f"{m} x{n}" for m, n in sorted(used.items(), key=lambda kv: -kv[1]))


def _splice_tv_layers(proto: Any, *, tv_op: str, decomposition: str, batch: int | None, compute: str = "float32") -> dict[str, int]:
    """Replace each placeholder node by the TV subgraph; returns how many layers used which form."""
    from onnx import helper, numpy_helper

    from ._onnx_tv import GraphParts, TVLayerSpec, emit_plugin, emit_portable

    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    placeholders = [n for n in graph.node if n.domain == _PLACEHOLDER_DOMAIN]
    used_elsewhere = {i for n in graph.node if n.domain != _PLACEHOLDER_DOMAIN for i in n.input}
    replaced: set[str] = set()
    for node in placeholders:
        for name in filter(None, node.input[1:]):
            if name not in inits:
                raise AssertionError(f"TV layer constant {name} is not an initializer")
            if name not in used_elsewhere:
                replaced.add(name)
    parts = GraphParts()
    parts.add_existing_names(
        {t.name for t in graph.initializer if t.name not in replaced} | {n.name for n in graph.node}
        | {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    )
    new_nodes = []
    used: dict[str, int] = {}
    for node in graph.node:
        if node.domain != _PLACEHOLDER_DOMAIN:
            new_nodes.append(node)
            continue
        weight_name = node.input[1]
        layer = weight_name[: -len(".weight")] if weight_name.endswith(".weight") else weight_name
        stride = next(helper.get_attribute_value(a) for a in node.attribute if a.name == "stride")
        inputs = list(node.input) + [""] * (4 - len(node.input))
        spec = TVLayerSpec(
            name=layer,
            x=node.input[0],
            y=node.output[0],
            weight=numpy_helper.to_array(inits[weight_name]),
            bias=numpy_helper.to_array(inits[inputs[2]]) if inputs[2] else None,
            stride=int(stride),
            scale=numpy_helper.to_array(inits[inputs[3]]) if inputs[3] else None,
            compute=np.dtype(compute),
        )
        start = len(parts.nodes)
        if tv_op == "plugin":
            emit_plugin(parts, spec)
            form = "plugin"
        else:
            form = emit_portable(parts, spec, decomposition, batch=batch)
        used[form] = used.get(form, 0) + 1
        new_nodes.extend(parts.nodes[start:])
    kept = [t for t in graph.initializer if t.name not in replaced]
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + parts.initializers)
    opsets = [o for o in proto.opset_import if o.domain != _PLACEHOLDER_DOMAIN]
    if tv_op == "plugin" and placeholders:
        from ._onnx_tv import PLUGIN_DOMAIN

        opsets.append(helper.make_opsetid(PLUGIN_DOMAIN, 1))
    del proto.opset_import[:]
    proto.opset_import.extend(opsets)
    # value_info of the placeholder outputs stays valid (same names): it types the plugin outputs,
    # which shape inference cannot see through; that of the replaced constants would be stale.
    kept_info = [vi for vi in graph.value_info if vi.name not in replaced]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    return used


def _name_batch_dim(proto: Any) -> None:
    for vi in (*proto.graph.input, *proto.graph.output):
        dim = vi.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = BATCH_DIM


def _set_metadata(
    proto: Any, cfg: ArchConfig, *, tv_op: str, dtype: str, kernel_dtype: str | None, fp16_io: bool, opset: int, decomposition: str | None,
    tv_bias: dict[str, str] | None = None,
) -> None:
    """``tv_bias``: each plugin node's bias kind by node name ("map" or "channel"), recorded as
    ``tvexport.tv_bias`` (JSON) because a 1x1 layer's bias has the same shape either way."""
    from onnx import helper

    in_name, out_name = _io_names(cfg)
    io_type = "float16" if fp16_io and dtype == "float16" else "float32"
    meta = {
        "tvexport.version": __version__,
        "tvexport.arch": cfg.name,
        "tvexport.atom": cfg.atom,
        "tvexport.tv_op": tv_op,
        "tvexport.dtype": dtype,
        "tvexport.io_dtype": io_type,
        **({"tvexport.kernel_dtype": kernel_dtype} if kernel_dtype else {}),
        "tvexport.input": in_name,
        "tvexport.output": out_name,
    }
    if decomposition is not None:
        meta["tvexport.decomposition"] = decomposition
    if tv_bias:
        meta["tvexport.tv_bias"] = json.dumps(tv_bias, separators=(",", ":"))
    helper.set_model_props(proto, meta)
    c, h, w = cfg.input_shape
    proto.doc_string = (
        f"{cfg.name} ({cfg.atom}) exported by tvexport {__version__}: input '{in_name}' (N, {c}, {h}, {w}) {io_type} in [-1, 1], "
        f"output '{out_name}'; TV layers as {tv_op}" + (f" ({decomposition})" if decomposition else "") + f"; weights {dtype}"
        + (f", TV kernels {kernel_dtype}." if kernel_dtype else ".")
    )


def _graph_bytes(proto: Any) -> int:
    return sum(len(t.raw_data) for t in proto.graph.initializer)


def check_graph(proto: Any, *, what: str) -> None:
    """``onnx.checker.check_model(full_check=True)``, turned into a TvexportError."""
    import onnx

    try:
        if _graph_bytes(proto) < EXTERNAL_DATA_LIMIT:
            onnx.checker.check_model(proto, full_check=True)
        else:  # too big to serialise in one message: check a weight-less copy
            light = copy.deepcopy(proto)
            for t in light.graph.initializer:
                t.ClearField("raw_data")
            onnx.checker.check_model(light, full_check=False)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        first = first_line(err, limit=300)
        raise TvexportError(f"the {what} ONNX graph is invalid: {first}", hint="this is a tvexport bug; please report it") from err


def simplify_graph(proto: Any) -> Any:
    """Run onnxsim on ``proto`` (constant folding, dead code, fusions) and check its result."""
    try:
        import onnxsim
    except ImportError:
        raise missing("onnxsim", what="graph simplification", extra="onnx") from None
    with _quiet_export():
        try:
            simplified, ok = onnxsim.simplify(copy.deepcopy(proto), check_n=0, certify=False)
        except Exception as err:  # onnxsim raises bare RuntimeErrors from C++
            first = first_line(err, limit=300)
            raise TvexportError(f"onnxsim failed: {first}", hint="export with --no-simplify") from err
    if not ok:
        raise TvexportError("onnxsim could not validate the simplified graph", hint="export with --no-simplify")
    from ._onnx_tv import keep_kernels_compressed

    keep_kernels_compressed(simplified, proto)  # onnxsim folds Cast(float16 kernels) into float32 ones
    check_graph(simplified, what="simplified")
    return simplified


# --------------------------------------------------------------------------------------------
# Running graphs with onnxruntime
# --------------------------------------------------------------------------------------------

def _session(source: Any, *, threads: int | None = None, spin: bool = True, what: str) -> Any:
    """An onnxruntime CPU session for a path or ModelProto; plugin nodes run on the numpy reference.
    ``spin=False``: the intra-op threads sleep as soon as a run ends instead of spinning for more work."""
    import onnx
    import onnxruntime as ort

    from ._plugin_ref import has_plugin_nodes, ort_session_model, register_ort_op

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = source if isinstance(source, onnx.ModelProto) else None
    if model is None:  # a file: onnxruntime reads it, unless plugin nodes must be rewritten first
        graph = load_onnx_graph(Path(source))
        if has_plugin_nodes(graph):
            model = _with_external_data(graph, Path(source))
    if model is not None and has_plugin_nodes(model):
        try:
            options.register_custom_ops_library(register_ort_op())
        except ImportError:
            raise missing("onnxruntime-extensions", what="running tv_dwconv plugin nodes on onnxruntime", extra="onnx") from None
        try:
            model = ort_session_model(model)
        except ValueError as err:  # a plugin node the reference cannot take: bad input, one line
            raise TvexportError(f"onnxruntime cannot load {what}: {err}", hint="export the model again with tvexport export --tv-op plugin") from None
    try:
        if model is None:
            return ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        if _graph_bytes(model) >= EXTERNAL_DATA_LIMIT:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.onnx"
                onnx.save(model, str(path), save_as_external_data=True, location=external_data_path(path).name)
                return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        first = first_line(err, limit=300)
        raise TvexportError(f"onnxruntime {ort.__version__} cannot load {what}: {first}") from err


def external_data_hint(command: str = "tvexport export") -> str:
    """How to fix a model over protobuf's 2 GB limit; ``command`` exports it again."""
    return f"keep its weights in a side file: export it again with {command} --external-data (other tools: onnx.save_model(..., save_as_external_data=True))"


def load_onnx_graph(path: str | Path, *, command: str = "tvexport export") -> Any:
    """The ``ModelProto`` of the ONNX file ``path``, without loading external weights. An unreadable
    file is one TvexportError: the file, the parser's error and its first line, and the fix: export
    it again with ``command``, or, for a file over protobuf's 2 GB limit, keep its weights in a side file."""
    import onnx

    path = Path(path)
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf decode errors have no common base
        first = first_line(err, limit=300, default="")
        try:
            too_big = path.stat().st_size >= EXTERNAL_DATA_LIMIT
        except OSError:  # gone or unreadable since: onnx's error says which
            too_big = False
        hint = f"a single ONNX file holds at most 2 GB: {external_data_hint(command)}" if too_big else f"export it again with {command}"
        raise TvexportError(f"{path} is not a readable ONNX file ({type(err).__name__}{': ' + first if first else ''})", hint=hint) from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an ONNX file (``tvexport.arch``, ``tvexport.atom``, ``tvexport.dtype``, ...),
    without loading external weights."""
    return _metadata(load_onnx_graph(path))


def _with_external_data(model: Any, path: Path) -> Any:
    """``model`` (read from ``path`` by ``load_onnx_graph``) with its external weights loaded from
    beside ``path``; a missing or unreadable weights file is one TvexportError."""
    from onnx.external_data_helper import load_external_data_for_model

    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as err:  # noqa: BLE001 - OSError, onnx's ValidationError for a path outside the directory
        first = first_line(err, limit=300, default="")
        raise TvexportError(f"{path}: its external weights cannot be read ({type(err).__name__}{': ' + first if first else ''})",
                            hint="keep the model's external data files next to it, or export it again") from None
    return model


class OrtRunner:
    """A loaded ONNX graph on onnxruntime CPU: NCHW float32 in, float32 out."""

    def __init__(self, source: Any, *, what: str, threads: int | None = None, spin: bool = True) -> None:
        """``spin=False`` for timing sessions side by side: each session's threads otherwise spin
        after its run, and take the cores the next session's run needs (2-core VM, face
        MobileNetV2 x1.0 DWConv: 1.77 ms alone, 7.09 ms interleaved with the TV session; 3.70 ms
        interleaved without spinning; benchmarks/results/ort_spinning.md)."""
        self.what = what
        self.session = _session(source, threads=threads, spin=spin, what=what)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape: tuple[int | str | None, ...] = tuple(inp.shape)
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32

    @property
    def batch(self) -> int | None:
        """The fixed batch size, or None when the batch dimension is dynamic."""
        n = self.input_shape[0] if self.input_shape else None
        return n if isinstance(n, int) else None

    def check_input(self, x: np.ndarray) -> None:
        expected = self.input_shape
        ok = x.ndim == len(expected) and all(not isinstance(e, int) or e == d for e, d in zip(expected, x.shape))
        if not ok:
            want = "(" + ", ".join(str(e) if isinstance(e, int) else "N" for e in expected) + ")"
            raise TvexportError(f"input has shape {tuple(x.shape)}, but {self.what} expects {want}", hint="give an input of that shape")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self.check_input(x)
        from ._plugin_ref import ort_failures

        with ort_failures() as errors:  # what this run's plugin nodes met (they return NaN instead of raising)
            try:
                out = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=self.input_dtype)})[0]
            except Exception as err:  # onnxruntime's own exception types
                first = first_line(err, limit=300)
                raise TvexportError(f"onnxruntime failed to run {self.what}: {first}") from err
        if errors:
            raise TvexportError(f"tv_dwconv node of {self.what} is invalid: {errors[0]}")
        return np.asarray(out, dtype=np.float32)


def load_runner(path: str | Path) -> Runner:
    """The ``onnxruntime`` backend: run an exported ``.onnx`` file (plugin nodes on the numpy reference)."""
    _require_onnx("running an ONNX model")
    path = check_exported_file(path, what="an ONNX model", dir_hint="give the .onnx file inside it")
    return OrtRunner(path, what=path.name)


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------

def validate_graphs(reference: Reference, graphs: dict[str, Any], *, x: torch.Tensor, tolerance: Tolerance) -> list[Comparison]:
    """Check each ONNX graph (label -> ModelProto) run on onnxruntime against ``reference``
    (float64 truth; no worse than torch float32 by ``tolerance``)."""
    outputs = {label: OrtRunner(proto, what=f"the {label} graph")(x.numpy()) for label, proto in graphs.items()}
    return reference.compare(outputs, x, tolerance=tolerance)


def _node_count(proto: Any) -> int:
    return len(proto.graph.node)


def export_onnx(
    model: nn.Module,
    output: str | Path,
    *,
    tv_op: TVOp = "portable",
    opset: int = DEFAULT_OPSET,
    batch: int = 1,
    dynamic_batch: bool = False,
    dtype: str = "float32",
    fp16_io: bool = False,
    simplify: bool = True,
    validate: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    force: bool = False,
    external_data: bool | None = None,
    decomposition: str | None = None,
    reference: Reference | None = None,
    kernel_dtype: KernelDType | torch.dtype | None = None,
) -> ExportResult:
    """Export a baked zoo network (or a DWConv/dense baseline) to ``output`` (.onnx).

    Validates by default: seeded random inputs through onnxruntime, for the raw graph and, unless
    ``simplify=False``, the onnxsim-simplified one (which is what gets written), checked against
    ``reference`` (default ``Reference(model)``; ``load_source`` gives the unbaked network of a
    checkpoint): no worse than torch float32 vs the float64 truth, by ``Tolerance`` with floors
    ``rtol``/``atol`` (defaults by ``dtype`` and kernel dtype; refused without ``validate``). ``kernel_dtype`` (float32,
    float16, int8; default as stored) stores float32 TV kernels compressed (``with_kernel_dtype``:
    the reference's float32 original then holds the same rounded kernels). Raises ``ValidationMismatch`` (nothing written)
    otherwise. ``external_data`` (default: only above 2 GB) writes the weights to
    ``<output>.data`` beside the graph. An ``output`` named as another kind of file (``x.pt2``,
    ``x.baked.pt``, ``x.engine``) is refused before any work.
    """
    from .validate import check_comparisons

    start = time.perf_counter()
    check_export_suffix(output, format="onnx", given="onnx")  # as export() refuses it, before "already exists"
    output = check_output_path(Path(output), force=force)
    check_validation_floors(validate, rtol=rtol, atol=atol)
    if external_data:  # <output>.data, before any work (when external_data is None, only a graph over 2 GB writes one)
        check_output_path(external_data_path(output), force=force)
    if validate and reference is None:
        reference = Reference(model)  # of the model as given (its training modes untouched): with_kernel_dtype makes it one for compressed kernels
    if kernel_dtype is not None:
        model, reference = with_kernel_dtype(model, kernel_dtype, reference=reference)
    tolerance = Tolerance.default(reference.precision(dtype=dtype) if reference is not None else "float32", rtol=rtol, atol=atol)
    cfg = config_of(model)
    raw = onnx_graph(model, tv_op=tv_op, opset=opset, batch=batch, dynamic_batch=dynamic_batch, dtype=dtype, fp16_io=fp16_io, decomposition=decomposition)
    check_graph(raw, what="exported")
    graphs = {"onnxruntime (raw)": raw}
    final = raw
    notes = []
    if simplify and _graph_bytes(raw) >= EXTERNAL_DATA_LIMIT:
        simplify = False
        notes.append("onnxsim skipped: a graph over 2 GB cannot be simplified in memory")
    if simplify:
        final = simplify_graph(raw)
        graphs["onnxruntime (simplified)"] = final
    comparisons: list[Comparison] = []
    if validate:
        n = _DYNAMIC_CHECK_BATCH if dynamic_batch else batch
        x = random_inputs((n, *cfg.input_shape), seed=0)
        assert reference is not None
        comparisons = validate_graphs(reference, graphs, x=x, tolerance=tolerance)
        check_comparisons(comparisons, prefix=f"{cfg.name}: ", suffix="; nothing written")
    use_external = external_data if external_data is not None else _graph_bytes(final) >= EXTERNAL_DATA_LIMIT
    extra = _write(final, output, force=force, external=use_external, notes=notes)
    from ._onnx_tv import PLUGIN_OP

    in_name, out_name = _io_names(cfg)
    info = {
        "tv_op": tv_op,
        "decomposition": _metadata(final).get("tvexport.decomposition"),
        "tv_layers": len(tv_layer_names(model)),
        "opset": opset,
        "dtype": dtype,
        "kernel_dtype": stored_kernel_dtype(model, dtype=dtype),
        "io_dtype": "float16" if dtype == "float16" and fp16_io else "float32",
        "batch": None if dynamic_batch else batch,
        "simplified": simplify,
        "nodes": _node_count(final),
        "nodes_raw": _node_count(raw),
        "tv_nodes": sum(1 for n in final.graph.node if n.op_type == PLUGIN_OP),
        "initializer_bytes": _graph_bytes(final),
        "file_bytes": output.stat().st_size + sum(p.stat().st_size for p in extra),
        "input": {"name": in_name, "shape": _shape_of(final.graph.input[0])},
        "output": {"name": out_name, "shape": _shape_of(final.graph.output[0])},
        "notes": notes,
    }
    return ExportResult(output, "onnx", cfg.name, comparisons, time.perf_counter() - start, extra, info)


def _metadata(proto: Any) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def _shape_of(vi: Any) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim]


def _keeps_weights_in(graph: Path, location: str) -> bool:
    """Whether the ONNX file ``graph`` keeps initializers in the external file ``location`` (read
    without its data; False for anything that is not a readable ONNX graph)."""
    import onnx

    try:
        proto = onnx.load(str(graph), load_external_data=False)
    except Exception:  # not ONNX, unreadable: not ours to clean up after
        return False
    return any(e.key == "location" and e.value == location for t in proto.graph.initializer for e in t.external_data)


def _write(proto: Any, output: Path, *, force: bool, external: bool, notes: list[str] | None = None) -> list[Path]:
    """Write atomically; with ``external`` the weights go to ``<name>.data`` (both renamed into place).

    Without ``external``, ``force`` also removes the ``<name>.data`` of the graph it replaces when
    that graph kept its weights there (an earlier external-data export), once the new
    self-contained graph is in place (said in ``notes``); any other file of that name stays.
    """
    import onnx

    data = external_data_path(output)
    if not external:
        stale = force and data.is_file() and _keeps_weights_in(output, data.name)
        with atomic_output(output, force=force) as tmp:
            onnx.save(proto, str(tmp))
        if stale:
            try:
                data.unlink()
                said = f"removed {data.name}, the weights of the --external-data export this one replaces (the new graph holds its own)"
            except OSError as err:  # the new graph is complete: say so, do not fail
                said = f"could not remove {data.name}, the weights of the export this one replaces ({err.strerror or err}): remove it by hand"
            if notes is not None:
                notes.append(said)
        return []
    from onnx.external_data_helper import convert_model_to_external_data

    check_output_path(data, force=force)
    try:
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    except OSError as err:  # as atomic_output says it for a self-contained graph
        raise TvexportError(f"cannot write in {output.parent} ({err.strerror or err})", hint="choose another output path") from None
    try:
        # onnx moves the tensors out of the proto it saves: give it a copy. The location is set
        # by hand: onnx's own `location=` refuses a name that exists in the *working* directory.
        proto = copy.deepcopy(proto)
        convert_model_to_external_data(proto, all_tensors_to_one_file=True, location=None, size_threshold=1024)
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = data.name
        onnx.save_model(proto, str(tmpdir / output.name))
        if not (tmpdir / data.name).exists():  # every tensor under the threshold
            (tmpdir / data.name).write_bytes(b"")
        for name in (output.name, data.name):
            _chmod_like_umask(tmpdir / name)
        # Two renames cannot be one atomic step: keep the previous weights until the graph is in
        # place, and put them back if anything (Ctrl-C included) stops us in between.
        backup = tmpdir / "previous.data"
        if data.exists():
            try:
                os.link(data, backup)
            except OSError:
                shutil.copy2(data, backup)
        os.replace(tmpdir / data.name, data)
        try:
            os.replace(tmpdir / output.name, output)
        except BaseException:
            if backup.exists():
                os.replace(backup, data)
            else:
                data.unlink(missing_ok=True)
            raise
    except OSError as err:
        raise TvexportError(f"could not write {output} ({err.strerror or err})", hint="check free disk space and permissions") from None
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return [data]


def _chmod_like_umask(path: Path) -> None:
    """Temporary files are created 0600; a deployable artefact gets the usual 0666 & ~umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
