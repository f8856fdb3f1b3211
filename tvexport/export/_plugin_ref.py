"""CPU reference of the ``tvexport::tv_dwconv`` node, in numpy only (independent of the torch code).

Node spec (shared with the TensorRT plugin):

* op_type ``tv_dwconv``, domain ``tvexport``;
* inputs ``x`` (N, C, H, W), ``weight`` (C, k*k, h, w), optional ``bias`` (C, h, w);
* INT attributes ``k``, ``stride``, ``padding``; STRING attributes ``plugin_namespace`` =
  "tvexport" and ``plugin_version`` = "1" (what TensorRT's ONNX parser uses to find the plugin);
* output (N, C, h, w)::

    out[n, c, i, j] = sum_{ky, kx} weight[c, ky*k + kx, i, j] * xpad[n, c, i*stride + ky, j*stride + kx] (+ bias[c, i, j])

Two ways to run it: ``reference_ops()`` for ``onnx.reference.ReferenceEvaluator`` (the node as
is), and ``ort_session_model()`` + ``register_ort_op()`` for onnxruntime through
onnxruntime-extensions' Python ops. The Python-op bridge only passes string attributes and
fixed float32 signatures, so the ORT model is adapted in memory (integer attributes written as
strings, an absent bias given as zeros, float16 nodes wrapped in Casts); the file is not changed.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._onnx_tv import PLUGIN_DOMAIN, PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION


def tv_dwconv_reference(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *, k: int, stride: int, padding: int
) -> np.ndarray:
    """The node's math, accumulated in float64; returns ``x.dtype``."""
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"tv_dwconv: expected 4-D x and weight, got {x.shape} and {weight.shape}")
    n, c, hin, win = x.shape
    cw, kk, h, w = weight.shape
    if kk != k * k or cw != c:
        raise ValueError(f"tv_dwconv: weight {weight.shape} does not match C={c}, k={k}")
    if (hin + 2 * padding - k) // stride + 1 != h or (win + 2 * padding - k) // stride + 1 != w:
        raise ValueError(f"tv_dwconv: input {x.shape} with k={k} stride={stride} padding={padding} does not give {h}x{w}")
    if bias is not None and bias.shape != (c, h, w):
        raise ValueError(f"tv_dwconv: bias must be (C, h, w) = {(c, h, w)}, got {bias.shape}")
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((n, c, h, w), dtype=np.float64)
    wd = weight.astype(np.float64)
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

        def _run(self, x, weight, bias=None, k=None, stride=None, padding=None, plugin_namespace=None, plugin_version=None):  # type: ignore[no-untyped-def]
            _check_plugin_attrs(plugin_namespace, plugin_version)
            return (tv_dwconv_reference(x, weight, bias, k=int(k), stride=int(stride), padding=int(padding)),)

    return [tv_dwconv]


# --------------------------------------------------------------------------------------------
# onnxruntime (onnxruntime-extensions Python op)
# --------------------------------------------------------------------------------------------

_ORT_ATTRS = ("k", "stride", "padding", "plugin_namespace", "plugin_version")
_registered = False
_errors: list[str] = []  # a Python exception inside an onnxruntime Python op aborts the process


def pop_ort_errors() -> list[str]:
    """Errors the onnxruntime kernel met since the last call (it returns NaN instead of raising)."""
    errors = list(_errors)
    _errors.clear()
    return errors


def register_ort_op() -> str:
    """Register the numpy kernel as ``tvexport::tv_dwconv`` with onnxruntime-extensions (once per
    process); returns the custom-op library path to pass to ``SessionOptions.register_custom_ops_library``."""
    global _registered
    from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op

    if not _registered:
        f32, s = PyCustomOpDef.dt_float, PyCustomOpDef.dt_string

        @onnx_op(op_type=f"{PLUGIN_DOMAIN}::{PLUGIN_OP}", inputs=[f32, f32, f32], outputs=[f32], attrs={a: s for a in _ORT_ATTRS})
        def _tv_dwconv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, **attrs: str) -> np.ndarray:
            try:
                _check_plugin_attrs(attrs["plugin_namespace"], attrs["plugin_version"])
                return tv_dwconv_reference(x, weight, bias, k=int(attrs["k"]), stride=int(attrs["stride"]), padding=int(attrs["padding"]))
            except Exception as err:  # noqa: BLE001 - must not propagate into onnxruntime (abort)
                _errors.append(str(err))
                return np.full((x.shape[0], *weight.shape[:1], *weight.shape[2:]), np.nan, dtype=np.float32)

        _registered = True
    return get_library_path()


def has_plugin_nodes(model: onnx.ModelProto) -> bool:
    return any(n.domain == PLUGIN_DOMAIN and n.op_type == PLUGIN_OP for n in model.graph.node)


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
        if len(node.input) not in (2, 3) or node.input[1] not in inits or (len(node.input) == 3 and node.input[2] not in inits):
            raise ValueError(f"tv_dwconv node {node.name!r}: inputs must be (x, weight[, bias]) with constant weight and bias")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        missing = [a for a in _ORT_ATTRS if a not in attrs]
        if missing:
            raise ValueError(f"tv_dwconv node {node.name!r} lacks attribute(s) {', '.join(missing)}")
        weight = numpy_helper.to_array(inits[node.input[1]])
        half = weight.dtype == np.float16
        c, _, h, w = weight.shape
        bias = numpy_helper.to_array(inits[node.input[2]]) if len(node.input) == 3 else np.zeros((c, h, w), np.float32)
        tag = node.name or node.output[0]
        w_name, b_name = f"{tag}.ort_weight", f"{tag}.ort_bias"
        graph.initializer.extend([numpy_helper.from_array(weight.astype(np.float32), w_name), numpy_helper.from_array(bias.astype(np.float32), b_name)])
        x, y = node.input[0], node.output[0]
        if half:
            new_nodes.append(helper.make_node("Cast", [x], [f"{tag}.ort_x"], to=onnx.TensorProto.FLOAT))
            x, y = f"{tag}.ort_x", f"{tag}.ort_y"
        str_attrs = {a: (v.decode() if isinstance(v, bytes) else str(v)) for a, v in attrs.items() if a in _ORT_ATTRS}
        new_nodes.append(helper.make_node(PLUGIN_OP, [x, w_name, b_name], [y], name=node.name, domain=PLUGIN_DOMAIN, **str_attrs))
        if half:
            new_nodes.append(helper.make_node("Cast", [y], [node.output[0]], to=onnx.TensorProto.FLOAT16))
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = {i for n in graph.node for i in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model
