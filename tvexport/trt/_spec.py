"""Everything about the TensorRT path that needs neither TensorRT nor a GPU: plugin attributes and
shape inference, type combinations, the version-dependent build plan, optimization-profile shapes,
the sidecar.

Supported versions, and why:

* TensorRT >= 10.9: the first release with ahead-of-time Python plugins (``tensorrt.plugin.aot_impl``,
  ``QuickPluginCreationRequest``); checked by ``check_tensorrt``. TensorRT >= 10.14 is recommended:
  10.9-10.13 hand the kernel name to the builder from a std::string that is already destroyed
  (see ``tvexport.trt.plugin``). Tested on CPU through the real ``tensorrt.plugin`` package of the
  10.9 and 11.4 bindings wheels (tests/test_trt.py); engines themselves are only built on a GPU.
* TensorRT 11 removed weak typing: precision comes from the ONNX dtypes (``STRONG_TYPING_ONLY``).
* ONNX parsers that pass the node name instead of the op type to ``createPlugin`` (older
  onnx-tensorrt releases) find the plugin too, because ``tvexport.trt._onnx`` names every plugin
  node after its op type.
* Triton >= 3.2 (3.2-3.9 checked): ``kernels._triton`` handles the per-version differences (constant
  keys, alignment attributes, hidden scratch parameters, the default PTX ISA).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._depthwise import PLUGIN_ID, PLUGIN_VERSION, check_node_attrs, tv_output_size
from ..artifacts import ENGINE_SIDECAR_FORMAT as SIDECAR_FORMAT
from ..artifacts import sidecar_path
from ..errors import TvexportError
from ..kernels._config import bias_mode

MIN_TENSORRT = (10, 9)  # first release with ahead-of-time Python plugins (tensorrt.plugin.aot_impl)
STRONG_TYPING_ONLY = 11  # TensorRT 11 removed weak typing: precision comes from the network's dtypes
DEFAULT_BATCH = (1, 1, 32)  # min, opt, max of a dynamic batch when none is given (opt defaults to min)

Dim = int | None  # None: unknown at this point (dynamic, or TensorRT's placeholder shapes)

# Type combinations the plugins advertise (tensorrt.plugin.AutoTuneCombination syntax: "*" options
# are independent), one per activation type ``{x}``: each gets its own tactics, as the tile
# candidates depend on the activation width (kernels._config.aot_configs), and TensorRT 10's weakly
# typed --fp16 build reports FLOAT inputs to autotune while it times the HALF combinations too. The
# output always has x's type, which is the type the register function declares; kernels and bias
# keep their stored type.
ACTIVATION_TYPES = {"FP32": 4, "FP16": 2}  # AutoTuneCombination type -> bytes per activation
FLOAT_TYPES = "{x}, FP32*FP16, FP32*FP16, {x}"  # x, weight, bias, out
INT8_TYPES = "{x}, INT8, FP32*FP16, FP32, {x}"  # x, weight, bias, scale, out


@dataclasses.dataclass(frozen=True)
class TVAttrs:
    """The integer attributes of a ``tv_dwconv`` node: ``TVAttrs(k, stride=..., padding=...)``
    (``parse_attrs`` validates them)."""

    k: int
    _: dataclasses.KW_ONLY
    stride: int
    padding: int


def parse_attrs(k: int, *, stride: int, padding: int, node: str = "tv_dwconv") -> TVAttrs:
    """Validate a node's attributes: the bounds every path shares (``check_node_attrs``), and the
    padding the plugin's kernel applies, k // 2 (what tvexport exports); ValueError ``"{node}: ..."``
    says which one is wrong."""
    k, stride, padding = int(k), int(stride), int(padding)
    check_node_attrs(k, stride, padding, node=node)
    if padding != k // 2:
        raise ValueError(f"{node}: padding must be k // 2 = {k // 2} for tvexport's TensorRT plugin (its kernel pads by k // 2), got {padding}")
    return TVAttrs(k, stride=stride, padding=padding)


def infer_output_dims(x: Sequence[Dim], weight: Sequence[Dim], bias: Sequence[Dim] | None, attrs: TVAttrs) -> tuple[Dim, Dim, Dim, Dim]:
    """Output dims (N, C, OH, OW) of ``tv_dwconv``; checks every dim that is known."""
    if len(x) != 4:
        raise ValueError(f"tv_dwconv input must be NCHW (rank 4), got rank {len(x)}")
    if len(weight) != 4:
        raise ValueError(f"tv_dwconv weight must be (C, k*k, OH, OW) (rank 4), got rank {len(weight)}")
    n, c, h, w = x
    wc, kk, oh, ow = weight
    if kk is not None and kk != attrs.k * attrs.k:
        raise ValueError(f"tv_dwconv weight holds {kk} taps per position, attribute k={attrs.k} needs {attrs.k * attrs.k}")
    if c is not None and wc is not None and c != wc:
        raise ValueError(f"tv_dwconv weight has {wc} channels, input has {c}")
    for size, out, axis in ((h, oh, "height"), (w, ow, "width")):
        if size is not None and out is not None and tv_output_size(size, attrs.k, attrs.stride) != out:
            raise ValueError(
                f"tv_dwconv input {axis} {size} gives output {tv_output_size(size, attrs.k, attrs.stride)} "
                f"with k={attrs.k}, stride={attrs.stride}, but the kernels are for {out}: TVConv only runs at its trained size"
            )
    if bias is not None and None not in (*bias, wc, oh, ow):
        bias_mode(tuple(bias), channels=wc, oh=oh, ow=ow)  # type: ignore[arg-type]
    return (n, wc, oh, ow)


def parse_version(version: str) -> tuple[int, int, int]:
    m = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    if not m:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(g or 0) for g in m.groups())  # type: ignore[return-value]


def check_tensorrt(version: str, *, has_aot: bool) -> tuple[int, int, int]:
    """Refuse TensorRT releases without ahead-of-time Python plugins."""
    v = parse_version(version)
    if v[:2] < MIN_TENSORRT or not has_aot:
        need = ".".join(map(str, MIN_TENSORRT))
        raise TvexportError(
            f"TensorRT {version} has no ahead-of-time Python plugins, which tvexport's TV plugin needs",
            hint=f"install TensorRT >= {need}: pip install 'tensorrt>={need}'",
        )
    return v


@dataclasses.dataclass(frozen=True)
class BuildPlan:
    """How to create the network: strongly typed (precision from the ONNX dtypes) or weakly typed
    with the FP16 builder flag (TensorRT 10 only)."""

    tensorrt: tuple[int, int, int]
    strongly_typed: bool
    fp16_flag: bool


def plan_build(version: str, *, fp16: bool) -> BuildPlan:
    """How TensorRT ``version`` builds the network: strongly typed (TensorRT 11 always; 10 unless
    ``fp16``, which asks for FP16 kernels beyond the ONNX dtypes through the builder flag)."""
    v = parse_version(version)
    if v[0] >= STRONG_TYPING_ONLY:
        return BuildPlan(v, strongly_typed=True, fp16_flag=False)
    # TensorRT 10: strongly typed unless FP16 kernels are asked for on top of the ONNX dtypes.
    return BuildPlan(v, strongly_typed=not fp16, fp16_flag=fp16)


def resolve_precision(plan: BuildPlan, *, fp16_requested: bool, network_has_half: bool) -> str:
    """The engine's precision: 'float32', 'float16' (from the ONNX dtypes) or 'mixed-fp16' (builder flag)."""
    if plan.fp16_flag:
        return "mixed-fp16"
    if network_has_half:
        return "float16"
    if fp16_requested:  # strongly typed and the model is float32: --fp16 cannot apply
        raise TvexportError(
            f"TensorRT {'.'.join(map(str, plan.tensorrt))} builds strongly typed networks, so precision comes from "
            "the ONNX dtypes and --fp16 cannot lower a float32 model",
            hint="export the model in float16 (tvexport export --dtype float16) and build it without --fp16",
        )
    return "float32"


@dataclasses.dataclass(frozen=True)
class Profile:
    """Optimization-profile shapes of the (single) network input."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def dynamic(self) -> bool:
        """Whether the shapes differ between ``min`` and ``max``."""
        return self.min != self.max

    def to_dict(self) -> dict[str, Any]:
        """The profile as a JSON-serialisable dict (shapes as lists)."""
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def profile_shapes(
    name: str,
    shape: Sequence[int],
    *,
    min_batch: int | None = None,
    opt_batch: int | None = None,
    max_batch: int | None = None,
) -> Profile:
    """Profile for an NCHW input whose only dynamic dim (-1) may be the batch."""
    shape = tuple(int(d) for d in shape)
    if len(shape) != 4:
        raise TvexportError(f"network input {name!r} has shape {shape}; expected NCHW")
    if any(d < 0 for d in shape[1:]):
        raise TvexportError(
            f"network input {name!r} has dynamic channel/height/width {shape}",
            hint="TVConv networks only run at their trained size: export with a fixed C, H, W",
        )
    given = (min_batch, opt_batch, max_batch)
    if shape[0] >= 0:  # static batch: the profile is that batch
        if any(b is not None and b != shape[0] for b in given):
            raise TvexportError(
                f"the ONNX model has a fixed batch {shape[0]}, so --min/--opt/--max-batch cannot differ from it",
                hint="export it with a dynamic batch, or drop the batch options",
            )
        return Profile(name, shape, shape, shape)
    lo = min_batch if min_batch is not None else DEFAULT_BATCH[0]
    hi = max_batch if max_batch is not None else max(DEFAULT_BATCH[2], lo, opt_batch or 0)
    opt = opt_batch if opt_batch is not None else lo  # tune for the smallest batch (latency) unless told
    if not 1 <= lo <= opt <= hi:
        raise TvexportError(f"batch sizes must satisfy 1 <= min <= opt <= max, got min {lo}, opt {opt}, max {hi}")
    rest = shape[1:]
    return Profile(name, (lo, *rest), (opt, *rest), (hi, *rest))


def default_engine_path(onnx_path: Path) -> Path:
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.stem + ".engine")


def sidecar_contents(
    *,
    tensorrt_version: str,
    gpu: dict[str, Any],
    plan: BuildPlan,
    precision: str,
    profile: Profile,
    inputs: Sequence[dict[str, Any]],
    outputs: Sequence[dict[str, Any]],
    source: str,
    source_sha256: str,
    tv_layers: Sequence[dict[str, Any]],
    plugin_layers: int,
    workspace_mb: int | None,
    build_seconds: float,
    tvexport_version: str,
    arch: str | None = None,
    atom: str | None = None,
    source_external_data: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """JSON-ready facts about an engine: what built it, for which GPU, with which shapes, and the
    network it runs (``arch``/``atom`` from the ONNX metadata; ``tvexport validate`` checks them).
    ``source`` records the ONNX file's SHA-256 and, in ``external_data``, the path (relative to the
    ONNX file) and SHA-256 of each file its weights are kept in (``--external-data``), sorted; the
    graph file's hash alone does not change with the weights kept outside it."""
    return {
        "format": SIDECAR_FORMAT,
        "format_version": 1,
        "tvexport": tvexport_version,
        "arch": arch,
        "atom": atom,
        "tensorrt": tensorrt_version,
        "gpu": dict(gpu),
        "precision": precision,
        "strongly_typed": plan.strongly_typed,
        "fp16_builder_flag": plan.fp16_flag,
        "profile": profile.to_dict(),
        "inputs": [dict(i) for i in inputs],
        "outputs": [dict(o) for o in outputs],
        "plugin": {"id": PLUGIN_ID, "version": PLUGIN_VERSION, "implementation": "aot-triton-ptx", "layers": plugin_layers},
        "tv_layers": [dict(t) for t in tv_layers],
        "source": {"path": source, "sha256": source_sha256, "external_data": [dict(d) for d in source_external_data]},
        "workspace_mb": workspace_mb,
        "build_seconds": round(build_seconds, 3),
    }
