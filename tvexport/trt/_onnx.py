"""Read the ``tv_dwconv`` nodes of an ONNX model and put them in the form the plugins take.

The exporter's node is ``tvexport::tv_dwconv(x, weight, bias, scale)`` with ``bias`` optional
(the empty name when absent) and ``scale`` present iff ``weight`` is int8. TensorRT's Python plugins
have a fixed number of inputs, so here

* a node without a bias gets a zero per-channel bias (exact: adding 0 changes nothing);
* an int8 node becomes ``tv_dwconv_i8(x, weight, bias, scale)``, a plugin of its own;
* every node is named after its op type: older onnx-tensorrt parsers pass the node name, newer ones
  the op type, to the plugin creator, and ``tensorrt.plugin`` looks the plugin up by that name
  (TensorRT keeps layer names unique by itself);
* the plugin namespace/version attributes are checked and filled in where missing, and an ``aot``
  attribute asking for a just-in-time implementation is refused (the plugins are ahead-of-time).

A node's bias kind is read off its shape, except at 1x1 where a map and a per-channel shift are
both (C, 1, 1): there the exporter's record (metadata ``tvexport.tv_bias``) says which.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .._depthwise import PLUGIN_NAME, PLUGIN_NAME_I8, PLUGIN_NAMESPACE, PLUGIN_VERSION, check_node_attr_names, check_node_bias
from ..errors import TvexportError, missing
from ..kernels._config import BIAS_MAP, bias_mode
from ._spec import parse_attrs

# How to fix a node this preparation refuses: tvexport writes every node right (the OpenVINO op's
# conversion gives the same advice); a node that is not was written by another tool or damaged.
REEXPORT_COMMAND = "tvexport export --tv-op plugin"
REEXPORT = f"export the model again with {REEXPORT_COMMAND}"


@dataclasses.dataclass(frozen=True)
class TVNode:
    """One ``tv_dwconv`` node as the engine will run it."""

    name: str  # the node's name in the exported model
    channels: int
    k: int
    stride: int
    oh: int
    ow: int
    bias: str  # "map", "channel" or "zero" (added here)
    dtype: str  # of the kernels: float32, float16 or int8
    plugin: str  # the plugin's op type: tv_dwconv or tv_dwconv_i8

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _constant_tensors(graph: Any) -> dict[str, Any]:
    tensors = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value":
                    tensors[node.output[0]] = a.t
    return tensors


def _recorded_bias_kinds(model: Any, source: str) -> dict[str, str]:
    """The exporter's ``tvexport.tv_bias`` record (node name -> "map"/"channel"); {} for older files."""
    text = next((p.value for p in model.metadata_props if p.key == "tvexport.tv_bias"), None)
    if text is None:
        return {}
    try:
        kinds = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        kinds = None
    if not isinstance(kinds, dict) or not all(isinstance(k, str) and v in ("map", "channel") for k, v in kinds.items()):
        raise TvexportError(f"{source}: its metadata tvexport.tv_bias is damaged ({text[:80]!r})", hint=REEXPORT)
    return kinds


def prepare_tv_nodes(model: Any, *, source: str = "model") -> list[TVNode]:
    """Check and complete every ``tv_dwconv`` node of ``model`` (an ``onnx.ModelProto``) in place."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    consts = _constant_tensors(graph)
    recorded = _recorded_bias_kinds(model, source)
    names = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output}
    nodes: list[TVNode] = []
    for idx, node in enumerate(graph.node):
        if node.op_type != PLUGIN_NAME:
            continue
        label = node.name or f"#{idx}"
        where = f"{source}: tv_dwconv node {label}"
        try:  # TensorRT's parser would pass the plugin its own fields only, and drop the rest unsaid
            check_node_attr_names([a.name for a in node.attribute], node=where)
        except ValueError as err:
            raise TvexportError(str(err), hint=REEXPORT) from None
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for key in ("k", "stride", "padding"):
            if not isinstance(attrs.get(key), int):
                raise TvexportError(f"{where} lacks the integer attribute {key!r}", hint=REEXPORT)
        try:
            tv = parse_attrs(attrs["k"], stride=attrs["stride"], padding=attrs["padding"], node=where)
        except ValueError as err:
            raise TvexportError(str(err), hint=REEXPORT) from None
        for key, want in (("plugin_namespace", PLUGIN_NAMESPACE), ("plugin_version", PLUGIN_VERSION)):
            got = attrs.get(key)
            if got is None:
                node.attribute.append(helper.make_attribute(key, want))
            elif (got.decode() if isinstance(got, bytes) else got) != want:
                raise TvexportError(f"{where} has {key}={got!r}; tvexport's plugin is {want!r}", hint=REEXPORT)
        # Current parsers take an INT "aot" attribute as the creation request (onnx-tensorrt
        # importerUtils.cpp, createPlugin: static_cast<bool>(attrs.get<int>("aot", 0)), so nonzero
        # strict AOT, and 0 strict JIT, which an attribute of another type and an int64 whose low
        # 32 bits are 0 also read as); the plugins are AOT only.
        if "aot" in attrs and (type(attrs["aot"]) is not int or attrs["aot"] % 2**32 == 0):
            raise TvexportError(f"{where} has aot={attrs['aot']!r}; tvexport's plugin is ahead-of-time only (aot=1, or no aot attribute)", hint=REEXPORT)
        inputs = list(node.input)
        if len(inputs) not in (2, 3, 4) or not inputs[0] or not inputs[1]:
            raise TvexportError(f"{where} has inputs {inputs}; expected (x, weight[, bias[, scale]])", hint=REEXPORT)
        weight = consts.get(inputs[1])
        if weight is None:
            raise TvexportError(f"{where}: its weight {inputs[1]!r} is not a constant", hint="the TV kernels must be baked into the model")
        dims = list(weight.dims)
        if len(dims) != 4 or dims[1] != tv.k * tv.k:
            raise TvexportError(f"{where}: weight has shape {dims}; expected (C, {tv.k * tv.k}, OH, OW) for k={tv.k}", hint=REEXPORT)
        c, kk, oh, ow = dims
        np_dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(weight.data_type))
        if np_dtype not in (np.float32, np.float16, np.int8):
            raise TvexportError(f"{where}: weight is {np_dtype}; tvexport's plugin takes float32, float16 or int8 (with a scale)", hint=REEXPORT)
        scale_name = inputs[3] if len(inputs) == 4 else ""
        if np_dtype == np.int8:
            scale = consts.get(scale_name) if scale_name else None
            if scale is None or scale.data_type != onnx.TensorProto.FLOAT or list(scale.dims) not in ([c, kk, 1, 1], [c, kk]):
                got = "none" if scale is None else f"{list(scale.dims)} of type {onnx.helper.tensor_dtype_to_np_dtype(scale.data_type)}"
                raise TvexportError(f"{where}: int8 weight needs a constant float32 scale of shape [{c}, {kk}, 1, 1] as 4th input, got {got}", hint=REEXPORT)
        elif scale_name:
            raise TvexportError(f"{where}: a scale input only goes with int8 weights, this weight is {np_dtype}", hint=REEXPORT)
        bias_name = inputs[2] if len(inputs) >= 3 else ""
        if bias_name:
            bias = consts.get(bias_name)
            if bias is None:
                raise TvexportError(f"{where}: its bias {bias_name!r} is not a constant", hint="the TV bias must be baked into the model")
            try:  # the node's rule (rank 3, no leading 1s): every wrong shape gets its message
                check_node_bias(bias.dims, c, oh, ow, node=where)
            except ValueError as err:
                raise TvexportError(str(err), hint=REEXPORT) from None
            mode = bias_mode(tuple(bias.dims), channels=c, oh=oh, ow=ow)  # (C, h, w) or (C, 1, 1) now: a map or per channel
            bias_kind = "map" if mode == BIAS_MAP else "channel"
            if oh == ow == 1 and node.name in recorded:  # (C, 1, 1) either way: the layer's kind as exported
                bias_kind = recorded[node.name]
        else:
            bias_name = f"{node.name or 'tv_dwconv'}_{idx}_zero_bias"
            while bias_name in names:
                bias_name += "_"
            names.add(bias_name)
            zero_dtype = np.float32 if np_dtype == np.int8 else np_dtype
            graph.initializer.append(numpy_helper.from_array(np.zeros((c, 1, 1), dtype=zero_dtype), bias_name))
            bias_kind = "zero"
        op_type = PLUGIN_NAME_I8 if np_dtype == np.int8 else PLUGIN_NAME
        del node.input[:]
        node.input.extend([inputs[0], inputs[1], bias_name] + ([scale_name] if np_dtype == np.int8 else []))
        node.op_type = op_type
        node.name = op_type  # what older parsers hand to the plugin creator instead of the op type
        nodes.append(TVNode(label, c, tv.k, tv.stride, oh, ow, bias_kind, str(np_dtype), op_type))
    return nodes


def _check_external_data(model: Any, path: Path) -> list[Path]:
    """The external data files of the model at ``path`` (sorted, each once); refuse weights the
    parser would look for outside the model's directory, or not find there. Checks the tensors
    tvexport writes as external data: the top graph's initializers and Constant nodes' ``value``
    (not sparse initializers or If/Loop subgraphs, which tvexport never writes; the parser's own
    error reports those)."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    files = set()
    for tensor in _constant_tensors(model.graph).values():
        if not uses_external_data(tensor):
            continue
        location = ExternalDataInfo(tensor).location
        rel = Path(location)
        if rel.is_absolute() or ".." in rel.parts or not (path.parent / rel).is_file():
            raise TvexportError(f"{path}: the weights of {tensor.name!r} are in {location!r}, which is not a file beside it",
                                hint="keep the model's external data files next to it, or export it again")
        files.add(path.parent / rel)
    return sorted(files)


@dataclasses.dataclass(frozen=True)
class PreparedOnnx:
    """A model read once for ``tvexport build``."""

    data: bytes  # the graph for TensorRT's parser, external weights left in their files
    nodes: list[TVNode]
    metadata: dict[str, str]  # tvexport.arch, tvexport.atom, ... (``export.onnx.read_metadata``)
    external_data: list[Path]  # the files holding its external weights, sorted


def prepare_onnx(path: Path) -> PreparedOnnx:
    """The model's bytes ready for TensorRT's parser, its TV nodes and metadata, read once. Weights
    stored as external data stay in their files: the parser reads them from beside ``path``."""
    try:
        import onnx  # noqa: F401 - load_onnx_graph's
        from google.protobuf.message import EncodeError
    except ImportError:
        raise missing("onnx", what="tvexport build", extra="onnx") from None
    # protobuf refuses to read or write a message of 2 GB or more; ONNX keeps larger models' weights in
    # external data files, which TensorRT's parser reads itself (build_engine gives it the model's path)
    from ..export.onnx import _metadata, external_data_hint, load_onnx_graph

    path = Path(path)
    model = load_onnx_graph(path, command=REEXPORT_COMMAND)
    external = _check_external_data(model, path)
    metadata = _metadata(model)
    nodes = prepare_tv_nodes(model, source=str(path))
    try:
        return PreparedOnnx(model.SerializeToString(), nodes, metadata, external)
    except (EncodeError, ValueError):  # upb: EncodeError; the pure-Python protobuf: ValueError
        raise TvexportError(f"{path} is too large for TensorRT's parser: its graph is over protobuf's 2 GB limit", hint=external_data_hint(REEXPORT_COMMAND)) from None
