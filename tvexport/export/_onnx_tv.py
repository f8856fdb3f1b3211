"""ONNX subgraphs for one baked TV layer: the portable decompositions and the plugin node.

Every builder takes the layer's constants as numpy arrays and returns plain ``onnx`` nodes and
initializers, so the same code serves the exporter (splicing into a torch-exported graph) and
the decomposition benchmark (single-layer graphs). Conventions:

* ``x`` is (N, C, H, W), ``weight`` (C, k*k, h, w), ``bias`` None, (C, h, w) or (C, 1, 1);
  ``h, w`` are the OUTPUT size, padding is ``k // 2``, tap ``t = ky*k + kx``.
* Portable forms use standard ONNX ops (opset >= 18) only and keep every constant as an
  initializer; the plugin form is one ``tvexport::tv_dwconv`` node.
* Kernels stay in their stored dtype (``tvexport.quantize``): float16 kernels in a float32 graph
  are initializers + ``Cast``, int8 kernels are initializers + ``DequantizeLinear`` with their
  float32 per-(channel, tap) scales, in whatever layout a form needs (``kernel_value``); the
  plugin node takes them as they are, with the scale as 4th input.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Literal

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .._depthwise import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from .onnx import AUTO, DECOMPOSITIONS, DEFAULT_DECOMPOSITION  # named there: check_options imports no onnx

PLUGIN_DOMAIN = PLUGIN_NAMESPACE  # the plugin node's ONNX domain and op type are the plugin's namespace and name
PLUGIN_OP = PLUGIN_NAME

Decomposition = Literal["shift_add", "shift_sum", "shift_hwnc", "slice_concat", "gather", "onehot_conv"]
LARGE_ACTIVATION = 1 << 21  # N*C*h*w above which the im2col form beats the shift form (stride 1)
DYNAMIC_BATCH_HINT = 16  # the batch "auto" plans a dynamic-batch graph for


@dataclasses.dataclass(frozen=True)
class TVLayerSpec:
    """One TV layer to emit: graph value names and its constants."""

    name: str  # prefix for node and initializer names (the module path)
    x: str  # input value name
    y: str  # output value name
    weight: np.ndarray  # (C, k*k, h, w): float32, float16, or int8 with ``scale``
    bias: np.ndarray | None  # (C, h, w), (C, 1, 1) or None
    stride: int
    scale: np.ndarray | None = None  # (C, k*k, 1, 1) float32 iff weight is int8: w = weight * scale
    compute: np.dtype | None = None  # the graph's float type (x, y); default: the weight's (float32 for int8)

    def __post_init__(self) -> None:
        if (self.weight.dtype == np.int8) != (self.scale is not None):
            raise ValueError(f"{self.name}: int8 kernels need a scale and other kernels none (weight {self.weight.dtype}, scale {'given' if self.scale is not None else 'none'})")
        if self.scale is not None and (self.scale.dtype != np.float32 or self.scale.shape != (*self.weight.shape[:2], 1, 1)):
            raise ValueError(f"{self.name}: scale must be float32 {(*self.weight.shape[:2], 1, 1)}, got {self.scale.dtype} {self.scale.shape}")

    @property
    def k(self) -> int:
        return int(round(self.weight.shape[1] ** 0.5))

    @property
    def float_type(self) -> np.dtype:
        """The float type of the layer's input and output (and of its kernels once converted)."""
        if self.compute is not None:
            return np.dtype(self.compute)
        return np.dtype(np.float32) if self.weight.dtype == np.int8 else self.weight.dtype

    @property
    def geometry(self) -> tuple[int, int, int, int]:
        c, _, h, w = self.weight.shape
        return c, self.k, h, w


class GraphParts:
    """Nodes and initializers being collected; small constants are shared by value."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._shared: dict[bytes, str] = {}
        self._names: set[str] = set()

    def unique(self, name: str) -> str:
        base, i = name, 1
        while name in self._names:
            name = f"{base}_{i}"
            i += 1
        self._names.add(name)
        return name

    def tensor(self, name: str, array: np.ndarray) -> str:
        """A layer-owned initializer (weights)."""
        name = self.unique(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, name: str, array: np.ndarray) -> str:
        """A shared constant (indices, shapes): one initializer per distinct value."""
        array = np.ascontiguousarray(array)
        key = hashlib.sha1(str((array.dtype, array.shape)).encode() + array.tobytes()).digest()
        if key not in self._shared:
            self._shared[key] = self.tensor(name, array)
        return self._shared[key]

    def node(self, op: str, inputs: list[str], outputs: list[str] | int = 1, *, name: str, domain: str = "", **attrs: object) -> list[str]:
        name = self.unique(name)
        if isinstance(outputs, int):
            outputs = [f"{name}_out{i}" if outputs > 1 else f"{name}_out" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain, **attrs))
        return outputs

    def add_existing_names(self, names: set[str]) -> None:
        self._names |= names


def _i64(values: list[int] | tuple[int, ...]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _spans(spec: TVLayerSpec) -> tuple[int, int, int, int, int]:
    c, k, h, w = spec.geometry
    s = spec.stride
    return k, k // 2, s, s * (h - 1) + 1, s * (w - 1) + 1


def _pad(g: GraphParts, spec: TVLayerSpec) -> str:
    p = spec.k // 2
    if p == 0:
        return spec.x
    pads = g.const("tv_pads_" + str(p), _i64([0, 0, p, p, 0, 0, p, p]))
    return g.node("Pad", [spec.x, pads], name=f"{spec.name}/pad", mode="constant")[0]


def _bias(spec: TVLayerSpec) -> np.ndarray | None:
    """The bias in the graph's float type (it is small: no Cast node for it)."""
    return None if spec.bias is None else np.asarray(spec.bias).astype(spec.float_type, copy=False)


def kernel_value(g: GraphParts, spec: TVLayerSpec, name: str, layout: Callable[[np.ndarray], np.ndarray] = lambda a: a) -> str:
    """The layer's kernels rearranged by ``layout``, as a value of the graph's float type.

    ``layout`` (an indexing/transposition/reshape of the (C, k*k, h, w) array) is applied to the
    stored kernels, which stay in their dtype: float32 as a plain initializer; float16 under a
    float32 graph as an initializer + ``Cast``; int8 as an initializer + ``DequantizeLinear``,
    whose 1-D scale runs along the axis that carries (channel, tap) after ``layout`` (the same
    ``layout`` applied to the (C, k*k, 1, 1) scales tells which; two such axes are merged for the
    dequantization and split again by a ``Reshape``). onnxsim does not fold ``DequantizeLinear``;
    it folds ``Cast``, which ``keep_kernels_compressed`` undoes.
    """
    target = spec.float_type
    stored = np.ascontiguousarray(layout(spec.weight))
    if spec.scale is None:
        if stored.dtype == target:
            return g.tensor(name, stored)
        return g.node("Cast", [g.tensor(name, stored)], [g.unique(f"{name}.{target.name}")], name=f"{name}/cast", to=helper.np_dtype_to_tensor_dtype(target))[0]
    scale = np.asarray(layout(spec.scale))
    varying = [i for i, n in enumerate(scale.shape) if n > 1]
    q = g.tensor(f"{name}.int8", stored)
    if not varying:  # one channel and one tap: a per-tensor scale
        value = g.node("DequantizeLinear", [q, g.tensor(f"{name}.scale", scale.reshape(()))], name=f"{name}/dequantize")[0]
    elif len(varying) == 1:
        value = g.node("DequantizeLinear", [q, g.tensor(f"{name}.scale", scale.reshape(-1))], name=f"{name}/dequantize", axis=varying[0])[0]
    else:
        a, b = varying
        if b != a + 1:
            raise AssertionError(f"{name}: the layout separates the channel and tap axes {varying}")
        merged = (*stored.shape[:a], stored.shape[a] * stored.shape[b], *stored.shape[b + 1 :])
        q = g.node("Reshape", [q, g.const("tv_shape_" + "x".join(map(str, merged)), _i64(merged))], name=f"{name}/merge")[0]
        value = g.node("DequantizeLinear", [q, g.tensor(f"{name}.scale", scale.reshape(-1))], name=f"{name}/dequantize", axis=a)[0]
        value = g.node("Reshape", [value, g.const("tv_shape_" + "x".join(map(str, stored.shape)), _i64(stored.shape))], name=f"{name}/split")[0]
    if target != np.float32:
        value = g.node("Cast", [value], name=f"{name}/cast", to=helper.np_dtype_to_tensor_dtype(target))[0]
    return value


def _tap_slices(g: GraphParts, spec: TVLayerSpec, xp: str) -> list[str]:
    k, _, s, span_h, span_w = _spans(spec)
    axes = g.const("tv_axes_hw", _i64([2, 3]))
    steps = g.const(f"tv_steps_{s}", _i64([s, s]))
    taps = []
    for ky in range(k):
        for kx in range(k):
            starts = g.const(f"tv_start_{ky}_{kx}", _i64([ky, kx]))
            ends = g.const(f"tv_end_{ky + span_h}_{kx + span_w}", _i64([ky + span_h, kx + span_w]))
            taps.append(g.node("Slice", [xp, starts, ends, axes, steps], name=f"{spec.name}/slice{ky * k + kx}")[0])
    return taps


def _emit_to(g: GraphParts, spec: TVLayerSpec, op: str, inputs: list[str], *, name: str, final: bool, **attrs: object) -> str:
    return g.node(op, inputs, [spec.y] if final else 1, name=name, **attrs)[0]


def shift_products(g: GraphParts, spec: TVLayerSpec, *, use_sum: bool) -> None:
    """Pad, then per tap a strided Slice times that tap's kernel plane; accumulate with Add (or one Sum)."""
    xp = _pad(g, spec)
    taps = _tap_slices(g, spec, xp)
    products = []
    bias = _bias(spec)
    for t, tap in enumerate(taps):
        wt = kernel_value(g, spec, f"{spec.name}.weight_tap{t}", lambda a, t=t: a[:, t])
        products.append(g.node("Mul", [tap, wt], name=f"{spec.name}/mul{t}")[0])
    inputs = products + ([g.tensor(f"{spec.name}.bias", bias)] if bias is not None else [])
    if use_sum:
        _emit_to(g, spec, "Sum", inputs, name=f"{spec.name}/sum", final=True)
        return
    acc = inputs[0]
    for i, term in enumerate(inputs[1:], start=1):
        acc = _emit_to(g, spec, "Add", [acc, term], name=f"{spec.name}/add{i}", final=i == len(inputs) - 1)


def shift_hwnc(g: GraphParts, spec: TVLayerSpec) -> None:
    """shift_add in a spatial-major layout: Transpose to (H, W, N, C), Pad and slice the two OUTER
    axes (each tap is a few long contiguous copies instead of h rows of w floats per channel),
    multiply by kernel planes stored as (h, w, 1, C), accumulate, Transpose back to NCHW."""
    c, k, h, w = spec.geometry
    _, p, s, span_h, span_w = _spans(spec)
    xt = g.node("Transpose", [spec.x], name=f"{spec.name}/to_hwnc", perm=[2, 3, 0, 1])[0]
    if p:
        xt = g.node("Pad", [xt, g.const(f"tv_pads_hwnc_{p}", _i64([p, p, 0, 0, p, p, 0, 0]))], name=f"{spec.name}/pad", mode="constant")[0]
    axes = g.const("tv_axes_01", _i64([0, 1]))
    steps = g.const(f"tv_steps_{s}", _i64([s, s]))
    acc = None
    for ky in range(k):
        for kx in range(k):
            t = ky * k + kx
            starts = g.const(f"tv_start_{ky}_{kx}", _i64([ky, kx]))
            ends = g.const(f"tv_end_{ky + span_h}_{kx + span_w}", _i64([ky + span_h, kx + span_w]))
            tap = g.node("Slice", [xt, starts, ends, axes, steps], name=f"{spec.name}/slice{t}")[0]
            wt = kernel_value(g, spec, f"{spec.name}.weight_tap{t}", lambda a, t=t: a[:, t].transpose(1, 2, 0)[:, :, None, :])
            prod = g.node("Mul", [tap, wt], name=f"{spec.name}/mul{t}")[0]
            acc = prod if acc is None else g.node("Add", [acc, prod], name=f"{spec.name}/add{t}")[0]
    bias = _bias(spec)
    if bias is not None:  # (C, 1, 1) broadcasts as (C,) over (h, w, N, C); a map becomes (h, w, 1, C)
        b = bias.reshape(c) if bias.shape[-2:] == (1, 1) else np.ascontiguousarray(bias.transpose(1, 2, 0)[:, :, None, :])
        acc = g.node("Add", [acc, g.tensor(f"{spec.name}.bias", b)], name=f"{spec.name}/bias")[0]
    assert acc is not None
    g.node("Transpose", [acc], [spec.y], name=f"{spec.name}/to_nchw", perm=[2, 3, 0, 1])


def slice_concat(g: GraphParts, spec: TVLayerSpec) -> None:
    """im2col by k*k Slices concatenated tap-major, then Mul with (k*k, C, h, w) kernels and ReduceSum."""
    c, k, h, w = spec.geometry
    xp = _pad(g, spec)
    taps = _tap_slices(g, spec, xp)
    cols = g.node("Concat", taps, name=f"{spec.name}/im2col", axis=1)[0]
    cols = g.node("Reshape", [cols, g.const(f"tv_shape_{k * k}x{c}x{h}x{w}", _i64([0, k * k, c, h, w]))], name=f"{spec.name}/cols")[0]
    wt = kernel_value(g, spec, f"{spec.name}.weight_tcp", lambda a: a.transpose(1, 0, 2, 3))
    prod = g.node("Mul", [cols, wt], name=f"{spec.name}/mul")[0]
    _reduce_and_bias(g, spec, prod, axis=1)


def gather(g: GraphParts, spec: TVLayerSpec) -> None:
    """im2col by one Gather of precomputed flat indices into the padded plane, then Mul and ReduceSum."""
    c, k, h, w = spec.geometry
    _, p, s, span_h, span_w = _spans(spec)
    xp = _pad(g, spec)
    # The taps read a (s*(h-1) + k) x (s*(w-1) + k) window of the padded input. With stride 1 that
    # is all of it; with stride 2 the input is 2h or 2h - 1 rows (a re-baked network at a size its
    # stride chain does not divide), so cut the window out to know the row pitch.
    H, W = span_h + k - 1, span_w + k - 1
    if s > 1:
        window = [g.const("tv_zeros_2", _i64([0, 0])), g.const(f"tv_end_{H}_{W}", _i64([H, W])), g.const("tv_axes_hw", _i64([2, 3]))]
        xp = g.node("Slice", [xp, *window], name=f"{spec.name}/window")[0]
    flat = g.node("Reshape", [xp, g.const(f"tv_shape_flat{c}x{H * W}", _i64([0, c, H * W]))], name=f"{spec.name}/flatten")[0]
    ky, kx = np.divmod(np.arange(k * k), k)
    rows = ky[:, None, None] + s * np.arange(h)[None, :, None]
    cols = kx[:, None, None] + s * np.arange(w)[None, None, :]
    idx = (rows * W + cols).reshape(k * k, h * w).astype(np.int64)
    gathered = g.node("Gather", [flat, g.const(f"tv_gather_{k}_{s}_{h}x{w}", idx)], name=f"{spec.name}/im2col", axis=2)[0]  # (N, C, kk, hw)
    wt = kernel_value(g, spec, f"{spec.name}.weight_flat", lambda a: a.reshape(a.shape[0], a.shape[1], -1))
    prod = g.node("Mul", [gathered, wt], name=f"{spec.name}/mul")[0]
    red = g.node("ReduceSum", [prod, g.const("tv_axis_2", _i64([2]))], name=f"{spec.name}/reduce", keepdims=0)[0]
    bias = _bias(spec)
    shape = g.const(f"tv_shape_{c}x{h}x{w}", _i64([0, c, h, w]))
    if bias is None:
        g.node("Reshape", [red, shape], [spec.y], name=f"{spec.name}/unflatten")
        return
    out = g.node("Reshape", [red, shape], name=f"{spec.name}/unflatten")[0]
    g.node("Add", [out, g.tensor(f"{spec.name}.bias", bias)], [spec.y], name=f"{spec.name}/bias")


def onehot_conv(g: GraphParts, spec: TVLayerSpec) -> None:
    """im2col by a grouped Conv with one-hot k x k kernels (C*k*k outputs), then Mul and ReduceSum."""
    c, k, h, w = spec.geometry
    s, p = spec.stride, k // 2
    onehot = np.zeros((c * k * k, 1, k, k), dtype=spec.float_type)
    t = np.arange(c * k * k) % (k * k)
    onehot[np.arange(c * k * k), 0, t // k, t % k] = 1
    cols = g.node("Conv", [spec.x, g.const(f"tv_onehot_{c}_{k}", onehot)], name=f"{spec.name}/im2col", group=c, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])[0]
    cols = g.node("Reshape", [cols, g.const(f"tv_shape_{c}x{k * k}x{h}x{w}", _i64([0, c, k * k, h, w]))], name=f"{spec.name}/cols")[0]
    prod = g.node("Mul", [cols, kernel_value(g, spec, f"{spec.name}.weight")], name=f"{spec.name}/mul")[0]
    _reduce_and_bias(g, spec, prod, axis=2)


def _reduce_and_bias(g: GraphParts, spec: TVLayerSpec, prod: str, *, axis: int) -> None:
    bias = _bias(spec)
    axes = g.const(f"tv_axis_{axis}", _i64([axis]))
    if bias is None:
        g.node("ReduceSum", [prod, axes], [spec.y], name=f"{spec.name}/reduce", keepdims=0)
        return
    red = g.node("ReduceSum", [prod, axes], name=f"{spec.name}/reduce", keepdims=0)[0]
    g.node("Add", [red, g.tensor(f"{spec.name}.bias", bias)], [spec.y], name=f"{spec.name}/bias")


BUILDERS: dict[str, Callable[[GraphParts, TVLayerSpec], None]] = {
    "shift_add": lambda g, s: shift_products(g, s, use_sum=False),
    "shift_sum": lambda g, s: shift_products(g, s, use_sum=True),
    "shift_hwnc": shift_hwnc,
    "slice_concat": slice_concat,
    "gather": gather,
    "onehot_conv": onehot_conv,
}


def auto_decomposition(spec: TVLayerSpec, batch: int | None) -> str:
    """The decomposition ``"auto"`` picks for one layer (``batch`` None: dynamic, planned as 16).

    Fitted to onnxruntime CPU timings on an Intel Xeon (the Zen 4 re-run in
    benchmarks/results/onnx_decompositions.md favours one-hot on more stride-1 layers at batch
    1): the one-hot grouped-Conv im2col + Mul + ReduceSum (4 nodes) wins on stride-2 layers,
    whose strided Slices copy in short runs, and on stride-1 layers with large activations
    (N*C*h*w >= 2**21); the shift form (Pad, k*k Slices, Mul, Add) wins on the other stride-1
    layers, where the kernel planes dominate the traffic and the im2col's k*k-fold arithmetic
    does not pay off.
    """
    c, _, h, w = spec.geometry
    n = DYNAMIC_BATCH_HINT if batch is None else batch
    if spec.stride == 1 and n * c * h * w < LARGE_ACTIVATION:
        return "shift_add"
    return "onehot_conv"


def emit_portable(g: GraphParts, spec: TVLayerSpec, method: str = DEFAULT_DECOMPOSITION, *, batch: int | None = 1) -> str:
    """Standard-op subgraph computing ``spec.y`` from ``spec.x``; returns the decomposition used."""
    if method == AUTO:
        method = auto_decomposition(spec, batch)
    if method not in BUILDERS:
        raise ValueError(f"unknown TV decomposition {method!r}; choose one of {AUTO}, {', '.join(BUILDERS)}")
    BUILDERS[method](g, spec)
    return method


def emit_plugin(g: GraphParts, spec: TVLayerSpec) -> None:
    """One ``tvexport::tv_dwconv`` node: inputs (x, weight (C, k*k, h, w) as stored, bias (C, h, w) /
    (C, 1, 1) in the graph's float type or '' when absent, scale (C, k*k, 1, 1) iff weight is int8)."""
    inputs = [spec.x, g.tensor(f"{spec.name}.weight", spec.weight)]
    bias = _bias(spec)
    inputs.append(g.tensor(f"{spec.name}.bias", bias) if bias is not None else "")
    if spec.scale is not None:
        inputs.append(g.tensor(f"{spec.name}.scale", spec.scale))
    while inputs[-1] == "":  # trailing absent inputs are left out
        inputs.pop()
    g.node(
        PLUGIN_OP, inputs, [spec.y], name=spec.name or "tv_dwconv", domain=PLUGIN_DOMAIN,
        k=spec.k, stride=spec.stride, padding=spec.k // 2,
        plugin_namespace=PLUGIN_NAMESPACE, plugin_version=PLUGIN_VERSION,
    )


def keep_kernels_compressed(simplified: onnx.ModelProto, original: onnx.ModelProto) -> int:
    """Undo a simplifier's folding of ``Cast(float16 kernels)`` into float32 initializers, in place.

    For every ``Cast`` of a float16 initializer in ``original`` whose output became an initializer
    of ``simplified`` holding exactly the cast values, put back the float16 initializer and the
    ``Cast``. Returns how many were restored.
    """
    inits = {t.name: t for t in original.graph.initializer}
    folded = {t.name: t for t in simplified.graph.initializer}
    restored = []
    for node in original.graph.node:
        if node.op_type != "Cast" or node.domain not in ("", "ai.onnx") or node.input[0] not in inits:
            continue
        src, out = inits[node.input[0]], node.output[0]
        if src.data_type != onnx.TensorProto.FLOAT16 or out not in folded:
            continue
        half = numpy_helper.to_array(src)
        value = numpy_helper.to_array(folded[out])
        if value.dtype != np.float32 or value.shape != half.shape or not np.array_equal(value, half.astype(np.float32)):
            continue
        restored.append((node, src, out))
    if not restored:
        return 0
    gone = {out for _, _, out in restored}
    kept = [t for t in simplified.graph.initializer if t.name not in gone]
    del simplified.graph.initializer[:]
    simplified.graph.initializer.extend(kept + [src for _, src, _ in restored])
    nodes = [node for node, _, _ in restored] + list(simplified.graph.node)
    del simplified.graph.node[:]
    simplified.graph.node.extend(nodes)
    return len(restored)


def layer_model(
    weight: np.ndarray,
    bias: np.ndarray | None,
    *,
    stride: int,
    method: str,
    batch: int | str = 1,
    opset: int = 18,
    scale: np.ndarray | None = None,
    compute: np.dtype | None = None,
) -> onnx.ModelProto:
    """A one-layer model ``x -> y`` (method: a decomposition name or ``"plugin"``); for tests and benchmarks.

    ``weight`` float32/float16/int8 (with ``scale``); ``compute`` is the float type of x and y
    (default: the weight's, float32 for int8)."""
    c, _, h, w = weight.shape
    spec = TVLayerSpec("tv", "x", "y", weight, bias, stride, scale=scale, compute=compute)
    elem = helper.np_dtype_to_tensor_dtype(spec.float_type)
    g = GraphParts()
    g.add_existing_names({"x", "y"})
    if method == "plugin":
        emit_plugin(g, spec)
    else:
        emit_portable(g, spec, method, batch=batch if isinstance(batch, int) else None)
    graph = helper.make_graph(
        g.nodes,
        f"tv_{method}",
        [helper.make_tensor_value_info("x", elem, [batch, c, stride * h, stride * w])],
        [helper.make_tensor_value_info("y", elem, [batch, c, h, w])],
        g.initializers,
    )
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(PLUGIN_DOMAIN, 1)] if method == "plugin" else [])
    return helper.make_model(graph, opset_imports=opsets, producer_name="tvexport")
