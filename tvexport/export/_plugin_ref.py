"""CPU reference of the ``tvexport::tv_dwconv`` node, in numpy only (independent of the torch code).

Node spec (shared with the TensorRT plugin):

* op_type ``tv_dwconv``, domain ``tvexport``;
* inputs ``x`` (N, C, H, W) float32/float16; ``weight`` (C, k*k, h, w) float32, float16 or int8;
  ``bias`` (C, h, w) or (C, 1, 1) float, or the empty name when absent; ``scale`` (C, k*k, 1, 1)
  float32 iff ``weight`` is int8 (``w = weight * scale``);
* INT attributes ``k`` (odd, <= 63), ``stride`` (>= 1), ``padding`` (0..k-1), as every path checks
  them (``tvexport._depthwise.check_node_attrs``; the TensorRT plugin also needs ``padding`` =
  ``k // 2``, what its kernel applies); STRING attributes ``plugin_namespace`` =
  "tvexport" and ``plugin_version`` = "1" (what TensorRT's ONNX parser uses to find the plugin);
  TensorRT's INT ``aot`` (its plugin creation request) may be there too; any other attribute is
  refused by every tvexport path (``tvexport._depthwise.NODE_ATTRS``), as each runtime would drop it
  (the OpenVINO extension's conversion cannot list a node's attributes: a C++ program loading it
  checks the file with tvexport/openvino/ext/node_attrs.hpp first, as examples/openvino_runner does);
* output (N, C, h, w)::

    out[n, c, i, j] = sum_{ky, kx} w[c, ky*k + kx, i, j] * xpad[n, c, i*stride + ky, j*stride + kx] (+ bias[c, i, j])

  in x's dtype.

Two ways to run it: ``reference_ops()`` for ``onnx.reference.ReferenceEvaluator`` (the node as
is), and ``ort_session_model()`` + ``register_ort_op()`` for onnxruntime through
onnxruntime-extensions' Python ops. The Python-op bridge only passes string attributes and
fixed float32 signatures, so the ORT model is adapted in memory (integer attributes written as
strings, every node given four float32 inputs: int8 codes as floats, an absent bias as zeros, an
absent scale as ones; x cast to float32 and the output back to x's type); the file is not changed.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .._depthwise import PLUGIN_NAMESPACE, PLUGIN_VERSION, check_node_attr_names, check_node_attrs, check_node_bias
from ..errors import CallbackFailures
from ._onnx_tv import PLUGIN_DOMAIN, PLUGIN_OP


def tv_dwconv_reference(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    *,
    k: int,
    stride: int,
    padding: int,
) -> np.ndarray:
    """The node's math, accumulated in float64 (int8 kernels dequantized exactly); returns ``x.dtype``."""
    check_node_attrs(k, stride, padding)
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"tv_dwconv: expected 4-D x and weight, got {x.shape} and {weight.shape}")
    n, c, hin, win = x.shape
    cw, kk, h, w = weight.shape
    if kk != k * k or cw != c:
        raise ValueError(f"tv_dwconv: weight {weight.shape} does not match C={c}, k={k}")
    if (hin + 2 * padding - k) // stride + 1 != h or (win + 2 * padding - k) // stride + 1 != w:
        raise ValueError(f"tv_dwconv: input {x.shape} with k={k} stride={stride} padding={padding} does not give {h}x{w}")
    if bias is not None:
        check_node_bias(bias.shape, c, h, w)
    wd = weight.astype(np.float64)
    if weight.dtype == np.int8:
        if scale is None or scale.shape != (c, kk, 1, 1):
            raise ValueError(f"tv_dwconv: int8 weight needs a scale of shape {(c, kk, 1, 1)}, got {None if scale is None else scale.shape}")
        wd = wd * scale.astype(np.float64)
    elif scale is not None:
        raise ValueError(f"tv_dwconv: a scale only goes with int8 weight, not {weight.dtype}")
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((n, c, h, w), dtype=np.float64)
    for ky in range(k):
        for kx in range(k):
            window = xp[:, :, ky : ky + stride * (h - 1) + 1 : stride, kx : kx + stride * (w - 1) + 1 : stride]
            out += window * wd[:, ky * k + kx]
    if bias is not None:
        out += bias.astype(np.float64)
    return out.astype(x.dtype)


def _check_plugin_attrs(plugin_namespace: Any, plugin_version: Any) -> None:
    if plugin_namespace != PLUGIN_NAMESPACE or plugin_version != PLUGIN_VERSION:
        raise ValueError(
            f"tv_dwconv: plugin_namespace/plugin_version are {plugin_namespace!r}/{plugin_version!r}, "
            f"expected {PLUGIN_NAMESPACE!r}/{PLUGIN_VERSION!r}"
        )


# --------------------------------------------------------------------------------------------
# onnx.reference
# --------------------------------------------------------------------------------------------

def reference_ops() -> list[type]:
    """Custom ops for ``onnx.reference.ReferenceEvaluator(model, new_ops=reference_ops())``."""
    from onnx.reference.op_run import OpRun

    class tv_dwconv(OpRun):  # noqa: N801 (the class name is the op_type)
        op_domain = PLUGIN_DOMAIN

        def __init__(self, onnx_node, run_params, schema=None):  # type: ignore[no-untyped-def]
            check_node_attr_names([a.name for a in onnx_node.attribute], node=f"tv_dwconv node {onnx_node.name!r}")
            super().__init__(onnx_node, run_params, schema)

        def _run(self, x, weight, bias=None, scale=None, k=None, stride=None, padding=None, plugin_namespace=None, plugin_version=None, aot=None):  # type: ignore[no-untyped-def]
            _check_plugin_attrs(plugin_namespace, plugin_version)
            return (tv_dwconv_reference(x, weight, bias, scale, k=int(k), stride=int(stride), padding=int(padding)),)

    return [tv_dwconv]


# --------------------------------------------------------------------------------------------
# onnxruntime (onnxruntime-extensions Python op)
# --------------------------------------------------------------------------------------------

_ORT_ATTRS = ("k", "stride", "padding", "plugin_namespace", "plugin_version")
_registered = False
# A Python exception inside an onnxruntime Python op aborts the process: the kernel keeps it here
# and returns NaN; ``ort_failures()`` collects them for one run (one list per run, kept by the thread
# that runs it: runs in several threads neither report nor clear each other's, see CallbackFailures).
_ORT_FAILURES = CallbackFailures()


def ort_failures() -> contextlib.AbstractContextManager[list[str]]:
    """``with ort_failures() as errors: session.run(...)``: what the onnxruntime kernel met in that run."""
    return _ORT_FAILURES.collecting()


def register_ort_op() -> str:
    """Register the numpy kernel as ``tvexport::tv_dwconv`` with onnxruntime-extensions (once per
    process); returns the custom-op library path to pass to ``SessionOptions.register_custom_ops_library``."""
    global _registered
    from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op

    if not _registered:
        f32, s = PyCustomOpDef.dt_float, PyCustomOpDef.dt_string

        @onnx_op(op_type=f"{PLUGIN_DOMAIN}::{PLUGIN_OP}", inputs=[f32, f32, f32, f32], outputs=[f32], attrs={a: s for a in _ORT_ATTRS})
        def _tv_dwconv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, scale: np.ndarray, **attrs: str) -> np.ndarray:
            try:
                _check_plugin_attrs(attrs["plugin_namespace"], attrs["plugin_version"])
                wd = weight.astype(np.float64) * scale.astype(np.float64)  # int8 codes (exact as float32) times their scales
                return tv_dwconv_reference(x, wd, bias, k=int(attrs["k"]), stride=int(attrs["stride"]), padding=int(attrs["padding"])).astype(np.float32)
            except Exception as err:  # noqa: BLE001 - must not propagate into onnxruntime (abort)
                _ORT_FAILURES.record(str(err))
                return np.full((x.shape[0], *weight.shape[:1], *weight.shape[2:]), np.nan, dtype=np.float32)

        _registered = True
    return get_library_path()


def has_plugin_nodes(model: onnx.ModelProto) -> bool:
    return any(n.domain == PLUGIN_DOMAIN and n.op_type == PLUGIN_OP for n in model.graph.node)


def check_plugin_node_attrs(model: onnx.ModelProto) -> None:
    """Refuse a plugin node with an attribute the node does not take (``_depthwise.NODE_ATTRS``):
    ValueError ``"tv_dwconv node 'name': unknown attribute ..."``. Every runtime would drop it."""
    for node in model.graph.node:
        if node.domain == PLUGIN_DOMAIN and node.op_type == PLUGIN_OP:
            check_node_attr_names([a.name for a in node.attribute], node=f"tv_dwconv node {node.name!r}")


def ort_session_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose plugin nodes fit the Python-op bridge (see module docstring)."""
    model = copy.deepcopy(model)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if not (node.domain == PLUGIN_DOMAIN and node.op_type == PLUGIN_OP):
            new_nodes.append(node)
            continue
        inputs = list(node.input) + [""] * (4 - len(node.input))
        if len(node.input) not in (2, 3, 4) or any(name and name not in inits for name in inputs[1:]) or not inputs[1]:
            raise ValueError(f"tv_dwconv node {node.name!r}: inputs must be (x, weight[, bias[, scale]]) with constant weight, bias and scale")
        check_node_attr_names([a.name for a in node.attribute], node=f"tv_dwconv node {node.name!r}")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        missing = [a for a in _ORT_ATTRS if a not in attrs]
        if missing:
            raise ValueError(f"tv_dwconv node {node.name!r} lacks attribute(s) {', '.join(missing)}")
        weight = numpy_helper.to_array(inits[inputs[1]])
        c, kk, h, w = weight.shape
        bias = numpy_helper.to_array(inits[inputs[2]]) if inputs[2] else np.zeros((c, 1, 1), np.float32)
        scale = numpy_helper.to_array(inits[inputs[3]]) if inputs[3] else None
        if (weight.dtype == np.int8) != (scale is not None) or (scale is not None and scale.shape != (c, kk, 1, 1)):
            raise ValueError(f"tv_dwconv node {node.name!r}: {weight.dtype} weight with scale {None if scale is None else scale.shape}: "
                             f"int8 weight needs a scale (C, k*k, 1, 1), other weights none")
        tag = node.name or node.output[0]
        names = [f"{tag}.ort_{part}" for part in ("x", "weight", "bias", "scale", "y")]
        graph.initializer.extend([
            numpy_helper.from_array(weight.astype(np.float32), names[1]),
            numpy_helper.from_array(bias.astype(np.float32), names[2]),
            numpy_helper.from_array((scale if scale is not None else np.ones((c, kk, 1, 1))).astype(np.float32), names[3]),
        ])
        str_attrs = {a: (v.decode() if isinstance(v, bytes) else str(v)) for a, v in attrs.items() if a in _ORT_ATTRS}
        new_nodes.append(helper.make_node("Cast", [node.input[0]], [names[0]], to=onnx.TensorProto.FLOAT))
        new_nodes.append(helper.make_node(PLUGIN_OP, names[:4], [names[4]], name=node.name, domain=PLUGIN_DOMAIN, **str_attrs))
        new_nodes.append(helper.make_node("CastLike", [names[4], node.input[0]], [node.output[0]]))  # back to x's type
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = {i for n in graph.node for i in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model
