"""Running tvexport's ONNX graphs on OpenVINO's CPU plugin.

Portable graphs (standard ops) run as they are. Plugin graphs (``--tv-op plugin``, one
``tvexport::tv_dwconv`` node per TV layer) need the extension: it is built from ``ext/`` into the
cache on first use (``_build``) and added to the ``ov.Core`` before the graph is read. Only the
CPU plugin runs extension ops (they execute through ``evaluate`` on the host).

Precision: OpenVINO's CPU plugin runs float32 graphs in bfloat16 on CPUs with AMX or AVX512-BF16
unless told otherwise (5e-3 max relative error on the demo network here, far above float32
validation tolerances). tvexport sets ``INFERENCE_PRECISION_HINT`` to ``f32`` unless
``precision="bf16"`` is asked for (backend ``openvino-bf16``).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .._io import check_exported_file
from ..errors import TvexportError, missing

PRECISIONS: tuple[str, ...] = ("f32", "bf16")
DEVICE = "CPU"
# fold the 1x1 convolution before each TV op into it (fuse_pointwise_convs) unless told otherwise
FUSE_POINTWISE = True
POINTWISE_ENV = "TVEXPORT_OV_FUSE_POINTWISE"
POINTWISE_MAX_CIN = 24  # fuse_pointwise_convs: convolutions of more input channels stay
POINTWISE_MIN_BATCH = 2  # fuse_pointwise_convs: graphs of a smaller static batch stay (a dynamic batch folds)
# the same with the extension's AVX-512 kernel variant (pointwise_min_batch): a static batch 1 folds too
POINTWISE_MIN_BATCH_AVX512 = 1
AVX512_KERNEL = "x86-64-v4 (AVX-512)"  # the extension's name for that variant (ext/tv_dwconv.cpp: kernel_name)

__all__ = ["DEVICE", "PRECISIONS", "OpenVinoRunner", "load_runner", "load_runner_bf16"]


def _require_openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise missing("openvino", what="the OpenVINO backend", extra="openvino") from None
    return openvino


# OpenVINO's framing around the reason: where it was raised, the frontend's report headers
_HEADER = re.compile(r"Exception from |-- .* with a message:$")  # say nothing of what failed: never the line returned
_FRAMING = re.compile(_HEADER.pattern + r"|Check '.*' failed at |FrontEnd API failed|Model wasn't fully converted|"
                      r"Failed operations detailed log|Summary:|While validating |-- Conversion is failed for")


def _first_line(err: BaseException) -> str:
    """The useful line of an OpenVINO exception: ours (``tv_dwconv node 'name': ...``, ``tv_dwconv: ...``),
    else the first line of the reason that names tv_dwconv, else the reason's last line, OpenVINO's
    framing skipped. Text that is only framing (an assertion without a message) gives its last line
    that is neither an ``Exception from`` line nor a ``-- ... with a message:`` header, e.g. the
    ``Check '...' failed at ...`` that says what failed; without such a line, the exception's type."""
    text = str(err)
    ours = re.search(r"tv_dwconv(?: node '[^'\n]*')?: [^\n]*", text)
    if ours:
        return ours.group(0).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reason = [ln for ln in lines if not _FRAMING.match(ln)]
    named = [ln for ln in reason if "tv_dwconv" in ln]
    checks = [ln for ln in lines if not _HEADER.match(ln)]
    line = named[0] if named else reason[-1] if reason else checks[-1].rstrip(":") if checks else ""
    return re.sub(r"^-+ +", "", line)[:300] or type(err).__name__  # without a list marker such as "-- "


def _has_plugin_nodes(model: Any) -> bool:
    from ..export._plugin_ref import has_plugin_nodes

    return bool(has_plugin_nodes(model))


def _keeps_shape(data: Any, const: Any) -> bool:
    """Whether broadcasting a constant of shape ``const`` against ``data`` (a partial shape) gives
    ``data``'s shape: no more dimensions, each 1 or equal to the data's (static) one."""
    if data.rank.is_dynamic or len(const) > data.rank.get_length():
        return False
    dims = list(data)[data.rank.get_length() - len(const):]
    return all(n == 1 or (d.is_static and d.get_length() == n) for d, n in zip(dims, const))


def _bound(node: Any) -> tuple[int, float, float] | None:
    """(data input index, lo, hi) of a Clamp, Relu, or Maximum/Minimum with a constant of equal values
    that leaves the data's shape as it is."""
    kind = node.get_type_name()
    if kind == "Clamp":
        attrs = node.get_attributes()
        return 0, float(attrs["min"]), float(attrs["max"])
    if kind == "Relu":
        return 0, 0.0, math.inf
    if kind not in ("Maximum", "Minimum"):
        return None
    for data, const in ((0, 1), (1, 0)):
        c = node.input_value(const).get_node()
        if c.get_type_name() == "Constant":
            values = np.asarray(c.get_data()).ravel()
            # all values equal, and a shape that leaves the data's as it is: a constant that broadcasts
            # to a larger shape (e.g. zeros(3, C, h, w) at batch 1) is no clamp
            if values.size == 0 or not np.all(values == values[0]) or not _keeps_shape(node.input_value(data).get_partial_shape(), c.get_output_shape(0)):
                return None
            v = float(values[0])
            return (data, v, math.inf) if kind == "Maximum" else (data, -math.inf, v)
    return None


def compose_clamps(first: tuple[float, float], then: tuple[float, float]) -> tuple[float, float]:
    """The one clamp equal to clamping to ``first`` and then to ``then`` (each ``(lo, hi)``, lo <= hi):
    ``clamp(clamp(x, a, b), c, d) == clamp(x, lo, hi)`` with ``lo = clamp(a, c, d)`` and
    ``hi = clamp(b, c, d)``. Overlapping ranges give their intersection; disjoint ones a single
    value: ``(0, 6)`` then ``(7, 8)`` is ``(7, 7)``, ``(7, 8)`` then ``(0, 6)`` is ``(6, 6)``."""
    (a, b), (c, d) = first, then
    return min(max(a, c), d), min(max(b, c), d)


def _consumers(output: Any) -> list[Any]:
    """The inputs that read ``output``, less those of nodes folded away (no consumers left)."""
    return [t for t in output.get_target_inputs()
            if t.get_node().get_type_name() == "Result" or any(o.get_target_inputs() for o in t.get_node().outputs())]


def fuse_clamps(model: Any) -> int:
    """Fold the Clamp/Relu/Maximum/Minimum (ONNX Clip) that follow a TV op, through its Transpose
    back to NCHW, into the op: it clamps its accumulators before storing them, one pass of the CPU
    plugin over the output fewer (ReLU6 follows every depthwise layer of MobileNetV2). Returns how
    many nodes were folded."""
    folded = 0
    for node in model.get_ordered_ops():
        bound = _bound(node)
        if bound is None:
            continue
        data, lo, hi = bound
        transpose = node.input_value(data)
        if transpose.get_node().get_type_name() != "Transpose" or len(_consumers(transpose)) != 1:
            continue
        out = transpose.get_node().input_value(0)
        op = out.get_node()
        if op.get_type_name() != "TVDWConvNHWC" or len(_consumers(out)) != 1:
            continue
        targets = node.output(0).get_target_inputs()
        if any(t.get_node().get_type_name() == "Result" for t in targets):
            continue  # keep the model output's name
        attrs = op.get_attributes()
        if attrs["clamp"]:  # the op's clamp runs first, then this one
            lo, hi = compose_clamps((attrs["clamp_lo"], attrs["clamp_hi"]), (lo, hi))
        op.set_attribute("clamp", True)
        op.set_attribute("clamp_lo", lo)
        op.set_attribute("clamp_hi", hi)
        for target in targets:
            target.replace_source_output(transpose)
        folded += 1
    return folded


def _live_consumers(output: Any) -> list[Any]:
    """``_consumers`` less ShapeOf nodes: they read only the shape, which a fold keeps (the ONNX
    frontend's Conv bias Reshape reads the convolution's shape through one)."""
    return [t for t in _consumers(output) if t.get_node().get_type_name() != "ShapeOf"]


def _constant(output: Any) -> np.ndarray | None:
    """The float32 value of ``output`` where it is a Constant, or a Reshape/Squeeze/Unsqueeze/Convert
    of one with a static shape (the ONNX frontend's Conv bias); else None."""
    node = output.get_node()
    kind = node.get_type_name()
    if kind == "Constant":
        return np.asarray(node.get_data(), dtype=np.float32).reshape(tuple(node.get_output_shape(0)))
    if kind in ("Reshape", "Squeeze", "Unsqueeze", "Convert") and output.get_partial_shape().is_static:
        value = _constant(node.input_value(0))
        return None if value is None else value.reshape(tuple(output.get_shape()))
    return None


def _channel_bias(add: Any, data: Any) -> np.ndarray | None:
    """The (C,) bias an Add adds to ``data`` (an NCHW output of C channels): its other input, a
    constant broadcasting over channels only ((1, C, 1, 1), (C, 1, 1), a scalar); else None."""
    shape = data.get_partial_shape()
    if add.get_type_name() != "Add" or shape.rank.is_dynamic or shape.rank.get_length() != 4 or shape[1].is_dynamic:
        return None
    other = [v for v in add.input_values() if v != data]
    value = _constant(other[0]) if len(other) == 1 else None
    channels = shape[1].get_length()
    if value is None or not _keeps_shape(shape, value.shape):
        return None
    dims = (1,) * (4 - value.ndim) + value.shape
    if any(d != 1 for i, d in enumerate(dims) if i != 1):
        return None  # varies over the batch or the positions
    return np.broadcast_to(value.reshape(dims)[0, :, 0, 0], (channels,)).astype(np.float32)


def _pointwise_source(transpose: Any) -> tuple[Any, np.ndarray | None, tuple[float, float] | None] | None:
    """(Convolution, bias or None, clamp or None) where ``transpose``'s input is a 1x1 convolution
    (strides and dilations 1, no padding, one group, constant float32 weight), then optionally an
    Add of a per-channel constant bias, then optionally Clamp/Relu/Maximum/Minimum (composed into
    one clamp), each output read by the next node only; else None."""
    value = transpose.input_value(0)
    clamp: tuple[float, float] | None = None
    bias: np.ndarray | None = None
    for _ in range(4):  # clamps nearest the transpose come first: they run last
        node = value.get_node()
        bound = _bound(node)
        if bound is None or len(_live_consumers(value)) != 1:
            break
        data, lo, hi = bound
        clamp = (lo, hi) if clamp is None else compose_clamps((lo, hi), clamp)
        value = node.input_value(data)
    node = value.get_node()
    if node.get_type_name() == "Add" and len(_live_consumers(value)) == 1:
        for data in node.input_values():
            if data.get_node().get_type_name() == "Convolution" and (b := _channel_bias(node, data)) is not None:
                bias, value = b, data
                break
    conv = value.get_node()
    if conv.get_type_name() != "Convolution" or len(_live_consumers(value)) != 1:
        return None
    attrs = conv.get_attributes()
    weight = conv.input_value(1)
    ws = weight.get_partial_shape()
    if (list(attrs["strides"]) != [1, 1] or list(attrs["dilations"]) != [1, 1] or any(attrs["pads_begin"]) or any(attrs["pads_end"])
            or attrs["auto_pad"] not in ("explicit", "notset", "valid") or ws.is_dynamic or list(ws.to_shape())[2:] != [1, 1]
            or weight.get_node().get_type_name() != "Constant" or conv.get_input_element_type(0).get_type_name() != "f32"):
        return None
    return conv, bias, clamp


def _residual(value: Any) -> bool:
    """Whether ``value`` is an Add of two computed tensors (a residual connection): the CPU plugin
    fuses it into the convolution before it, which then writes in place."""
    node = value.get_node()
    return node.get_type_name() == "Add" and all(_constant(v) is None for v in node.input_values())


NCHW_TO_NHWC = (0, 2, 3, 1)  # the Transpose the ONNX conversion puts before each TV op (ext/tv_dwconv.cpp: convert_onnx)


def _permutation(transpose: Any) -> tuple[int, ...] | None:
    """The axis order of a Transpose node whose order is a Constant; None where it is computed."""
    order = transpose.input_value(1)
    if order.get_node().get_type_name() != "Constant":
        return None
    return tuple(int(v) for v in np.asarray(order.get_node().get_data()).ravel())


def pointwise_min_batch(kernel: str | None) -> int:
    """The smallest static batch fuse_pointwise_convs folds at with the extension's kernel variant
    ``kernel`` (``OpenVinoRunner.kernel``): POINTWISE_MIN_BATCH_AVX512 with the AVX-512 one, else
    POINTWISE_MIN_BATCH. Issue 17 (pw49), a Zen 4 (AVX-512), face MobileNetV2 x0.1 batch 1, 2
    threads, folded at batch 1 (openvino_ab.py --switch pointwise, POINTWISE_MIN_BATCH patched to 1;
    wall B/A folded / not, float32 / float16 / int8, nulls in brackets): AVX-512 variant 0.947 (0.961)
    / 0.815 (1.005) / 1.027 (1.007) (load 2.2; p10-p90 of float32 and int8 span 1: not resolved)
    and again 0.796 (0.978) / 0.831 (1.018) / 0.818 (1.017): the separate 1x1 convolutions' time
    saved outweighs the prologue's, with the prologue's input channels at compile time (kernel.cpp:
    pointwise); the AVX2 variant on the same machine (TVEXPORT_OV_KERNEL=avx2) 1.012 (1.021) / 1.035
    (1.002) / 1.026 (0.999): it stays unfolded there (benchmarks/results/
    openvino_pointwise_zen4_pw49_minbatch1{,_avx2}_x0_1_b1*.md). Separate runs, not back to back:
    OpenVINO's other ops (the separate convolutions among them) took 0.39-0.82 ms unfolded in the
    AVX-512 runs (0.62-0.82 in the second, where the fold gained most) against 0.31-0.36 in the AVX2
    run, so part of the difference between the variants may be the machine's state. The Zen 5
    (AVX-512) read 1.02-1.07 with the earlier, slower AVX-512 prologue (stop 40; not measured since)."""
    return POINTWISE_MIN_BATCH_AVX512 if kernel == AVX512_KERNEL else POINTWISE_MIN_BATCH


def fuse_pointwise_convs(model: Any, *, min_batch: int | None = None) -> tuple[str, ...]:
    """Fold the 1x1 convolution (+ per-channel bias, + Clamp/Relu) that feeds a TV op through its
    Transpose to NHWC into the op (its ``pre_pointwise`` prologue, kernel.hpp): the op reads the
    convolution's narrow input and computes the expanded channels as it fills its rows, so the
    expanded activation (MobileNetV2's 6x) is never written to memory nor read back. The op's data
    input becomes the convolution's input through the op's Transpose to NHWC, which the CPU plugin
    drops (the input's producer writes channels-last), or, where that input is a residual Add, the
    input itself, NCHW (``pre_nchw``; the kernel reads either): after a convolution with the Add
    fused in place the plugin cannot drop the Transpose (MergeTransposeReorder) and ran it as a
    Transpose + Reorder (face MobileNetV2 x0.1 batch 16: 0.64 ms before features.2), where the
    plain layout costs one Reorder. Convolutions of more than POINTWISE_MAX_CIN input channels stay:
    the prologue's cin * C multiply-adds per position then cost more than the memory traffic
    saved (face MobileNetV2 x1.0 at batch 16, op + convolution per layer: cin 16 and 24 gained
    0.13-0.90 ms, cin 32 lost 0.09-0.28 ms; cin 58-160 lost more; benchmarks/results/README.md).
    Nor at a static batch below ``min_batch`` (default POINTWISE_MIN_BATCH; the runner passes
    pointwise_min_batch of its kernel variant: 1 with AVX-512): at batch 1 the expanded activations stay in cache, and face MobileNetV2
    x0.1 read 1.02-1.07x slower folded (Zen 5, stop 40, the earlier prologue; 4 runs, none resolved
    alone; on a Zen 4 the AVX2 variant 1.01-1.04, pw49). The weight (Cin, Cp) and bias (Cp),
    zero-padded to Cp = C rounded up to 16, become its last two inputs. float32 activations only;
    ops whose input does not match (another consumer, a kernel or stride other than 1, a Transpose of
    another order than NCHW to NHWC, ...) are
    left as they are. Returns the names (the ONNX node names) of the TV ops a convolution was folded into."""
    from openvino import opset13 as ops

    folded: list[str] = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "TVDWConvNHWC" or op.get_attributes().get("pre_pointwise", True):
            continue  # not ours, or an extension without the prologue / already folded
        transpose = op.input_value(0)
        if transpose.get_node().get_type_name() != "Transpose" or len(_consumers(transpose)) != 1:
            continue
        if _permutation(transpose.get_node()) != NCHW_TO_NHWC:
            continue  # the prologue reads the convolution's input NCHW, or NHWC through this very order
        if op.get_input_element_type(0).get_type_name() != "f32":
            continue
        found = _pointwise_source(transpose.get_node())
        if found is None:
            continue
        conv, bias, clamp = found
        weight = np.asarray(conv.input_value(1).get_node().get_data(), dtype=np.float32)  # (C, Cin, 1, 1)
        channels, cin = weight.shape[:2]
        if cin > POINTWISE_MAX_CIN:
            continue
        batch = conv.get_input_partial_shape(0)[0]
        if batch.is_static and batch.get_length() < (POINTWISE_MIN_BATCH if min_batch is None else min_batch):
            continue
        cols = (channels + 15) // 16 * 16  # kernel.hpp: pointwise_columns
        w = np.zeros((cin, cols), dtype=np.float32)
        w[:, :channels] = weight[:, :, 0, 0].T
        b = np.zeros((cols,), dtype=np.float32)
        if bias is not None:
            b[:channels] = bias
        op.set_attribute("pre_pointwise", True)
        op.set_attribute("pre_clamp", clamp is not None)
        op.set_attribute("pre_lo", float(clamp[0]) if clamp else 0.0)
        op.set_attribute("pre_hi", float(clamp[1]) if clamp else 0.0)
        nchw = _residual(conv.input_value(0))
        op.set_attribute("pre_nchw", nchw)
        if not nchw:  # through the op's Transpose (its only reader: checked above)
            transpose.get_node().input(0).replace_source_output(conv.input_value(0))
            transpose.get_node().validate_and_infer_types()
        x = conv.input_value(0) if nchw else transpose
        op.set_arguments([x, *op.input_values()[1:], ops.constant(w).output(0), ops.constant(b).output(0)])
        op.validate_and_infer_types()
        folded.append(op.get_friendly_name())
    return tuple(folded)


def _pointwise_default(fuse: bool | None) -> bool:
    """``fuse`` where given, else ``TVEXPORT_OV_FUSE_POINTWISE`` (0 or 1), else FUSE_POINTWISE."""
    if fuse is not None:
        return bool(fuse)
    env = os.environ.get(POINTWISE_ENV, "")
    if env not in ("", "0", "1"):
        raise TvexportError(f"{POINTWISE_ENV}={env!r} is neither 0 nor 1", hint=f"set {POINTWISE_ENV}=0 or 1, or unset it")
    return FUSE_POINTWISE if env == "" else env == "1"


class OpenVinoRunner:
    """An ONNX graph (path or ``onnx.ModelProto``) compiled for OpenVINO's CPU plugin.

    NCHW float32 in, float32 out. ``threads`` sets ``INFERENCE_NUM_THREADS`` (default: OpenVINO's
    choice); ``precision`` sets ``INFERENCE_PRECISION_HINT``; ``extension`` overrides the
    library loaded for plugin nodes (default: the cached build, built if missing); ``profile``
    turns on OpenVINO's per-node counters (``request.profiling_info``); ``fuse_pointwise`` folds
    the 1x1 convolution before each TV op into it (``fuse_pointwise_convs``; default: the environment's
    ``TVEXPORT_OV_FUSE_POINTWISE=0|1``, else FUSE_POINTWISE); ``folded_pointwise`` counts the folds and
    ``pointwise_ops`` names the TV ops that took them.
    """

    def __init__(
        self, source: str | Path | Any, *, what: str | None = None, threads: int | None = None, precision: str = "f32",
        extension: str | Path | None = None, profile: bool = False, fuse_pointwise: bool | None = None,
    ) -> None:
        ov = _require_openvino()
        import onnx

        if precision not in PRECISIONS:
            raise TvexportError(f"unknown OpenVINO precision {precision!r}", hint=f"choose one of {', '.join(PRECISIONS)}")
        if isinstance(source, onnx.ModelProto):
            proto, path = source, None
        else:
            path = check_exported_file(source, what="an ONNX model", dir_hint="give the .onnx file inside it")
            from ..export.onnx import load_onnx_graph

            proto = load_onnx_graph(path)
        self.what = what or (path.name if path is not None else "the ONNX graph")
        self.precision = precision
        self.fused = _has_plugin_nodes(proto)
        core = ov.Core()
        self.extension: Path | None = None
        if self.fused:
            from ..export._plugin_ref import check_plugin_node_attrs
            from ._build import extension_path

            try:  # the extension's conversion reads attributes by name and cannot list the others (ov::frontend::NodeContext)
                check_plugin_node_attrs(proto)
            except ValueError as err:
                raise TvexportError(f"OpenVINO {ov.__version__} cannot compile {self.what}: {err}",
                                    hint="export the model again with tvexport export --tv-op plugin") from None

            self.extension = Path(extension) if extension is not None else extension_path()
            try:
                core.add_extension(str(self.extension))
            except Exception as err:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
                raise TvexportError(f"OpenVINO cannot load the extension {self.extension}: {_first_line(err)}", hint="rebuild it: tvexport extension build openvino --force") from err
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if profile:
            config["PERF_COUNT"] = True
        self.threads = threads
        pointwise = _pointwise_default(fuse_pointwise)
        try:
            if path is not None:
                model = core.read_model(str(path))
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    tmp_path = Path(tmp) / "model.onnx"
                    onnx.save(proto, str(tmp_path))
                    model = core.read_model(str(tmp_path))
            self.folded = fuse_clamps(model) if self.fused else 0  # Clamp/Relu/Min/Max nodes folded into TV ops
            # the TV ops the 1x1 convolutions were folded into: their counters then hold the convolution's time too
            self.kernel = self._kernel_variant() if self.fused else None
            self.pointwise_ops: tuple[str, ...] = (fuse_pointwise_convs(model, min_batch=pointwise_min_batch(self.kernel))
                                                   if self.fused and pointwise else ())
            self.folded_pointwise = len(self.pointwise_ops)  # 1x1 convolutions folded
            self.compiled = core.compile_model(model, DEVICE, config)
        except Exception as err:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
            raise TvexportError(f"OpenVINO {ov.__version__} cannot compile {self.what}: {_first_line(err)}") from err
        self.request = self.compiled.create_infer_request()
        inp = self.compiled.inputs[0]
        shape = inp.get_partial_shape()
        self.input_shape: tuple[int | None, ...] = tuple(d.get_length() if d.is_static else None for d in shape)
        self.input_dtype = np.float16 if inp.get_element_type() == ov.Type.f16 else np.float32

    def _kernel_variant(self) -> str | None:
        """The instruction-set variant the extension picked on this CPU (``TVEXPORT_OV_KERNEL`` read as
        it loaded): for reports, and the smallest static batch the 1x1 fold takes (pointwise_min_batch);
        None where the library does not say (the fold then keeps POINTWISE_MIN_BATCH)."""
        import ctypes

        try:
            fn = ctypes.CDLL(str(self.extension)).tvexport_openvino_kernel
        except (OSError, AttributeError):
            return None
        fn.restype = ctypes.c_char_p
        return str(fn().decode())

    @property
    def inference_precision(self) -> str:
        """The precision the compiled model computes in, read back from it (``f32``, ``bf16``, ``f16``)."""
        value = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        return str(value.get_type_name()) if hasattr(value, "get_type_name") else str(value)

    @property
    def batch(self) -> int | None:
        """The fixed batch size, or None when the batch dimension is dynamic."""
        return self.input_shape[0] if self.input_shape else None

    def check_input(self, x: np.ndarray) -> None:
        """Raise a one-line ``TvexportError`` unless ``x`` has the compiled model's input shape (a dynamic dimension takes any size)."""
        expected = self.input_shape
        if x.ndim != len(expected) or any(e is not None and e != d for e, d in zip(expected, x.shape)):
            want = "(" + ", ".join(str(e) if e is not None else "N" for e in expected) + ")"
            raise TvexportError(f"input has shape {tuple(x.shape)}, but {self.what} expects {want}", hint="give an input of that shape")

    def input_tensor(self, x: np.ndarray) -> object:
        """A copy of ``x`` as an ``ov.Tensor`` (for ``request.set_input_tensor``)."""
        import openvino as ov

        return ov.Tensor(np.ascontiguousarray(x, dtype=self.input_dtype))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self.check_input(x)
        try:
            out = self.request.infer({0: np.ascontiguousarray(x, dtype=self.input_dtype)})
        except Exception as err:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
            raise TvexportError(f"OpenVINO failed to run {self.what}: {_first_line(err)}") from err
        return np.asarray(out[self.compiled.outputs[0]], dtype=np.float32)


def load_runner(path: Path) -> OpenVinoRunner:
    """The ``openvino`` validation backend: float32 inference (``INFERENCE_PRECISION_HINT`` f32)."""
    return OpenVinoRunner(path)


def load_runner_bf16(path: Path) -> OpenVinoRunner:
    """The ``openvino-bf16`` validation backend: the CPU plugin's bfloat16 inference."""
    return OpenVinoRunner(path, precision="bf16")
