"""Build a TensorRT engine from an exported ONNX model with the TV plugin (``tvexport build``)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from .._io import atomic_output, check_exported_file, check_output_path, output_file, refuse_input_as_output, refuse_stdin
from .._version import __version__
from ..artifacts import check_output_suffix
from ..errors import TvexportError, first_line
from ._env import Logger, load_plugin, plugin_failures, require_cuda, require_tensorrt
from ._spec import (
    Profile,
    default_engine_path,
    plan_build,
    profile_shapes,
    resolve_precision,
    sidecar_contents,
    sidecar_path,
)

WHAT = "tvexport build"


@dataclasses.dataclass
class BuildResult:
    engine: Path
    sidecar: Path
    info: dict[str, Any]
    seconds: float


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):  # external data files can be gigabytes
            h.update(chunk)
    return h.hexdigest()


def _dtype_name(trt: Any, dtype: Any) -> str:
    names = {trt.float32: "float32", trt.float16: "float16", trt.int32: "int32", trt.int64: "int64", trt.bool: "bool"}
    return names.get(dtype, str(dtype))


def _tensor_info(trt: Any, tensor: Any) -> dict[str, Any]:
    return {"name": tensor.name, "dtype": _dtype_name(trt, tensor.dtype), "shape": list(tensor.shape)}


def _network_has_half(trt: Any, network: Any) -> bool:
    """Whether the network computes in float16: an input, or a tensor computed from one, is HALF.

    Tensors computed from weights alone do not count: the ONNX parser turns each initializer a
    plugin reads into a constant layer of the initializer's type, so a float32 network with
    float16 TV kernels has HALF constants and still computes in float32. Layers come in the
    parser's (topological) order; a layer with no activation input (a constant, or one that only
    reads constants) produces weights.
    """
    activations: set[str] = set()  # names of the tensors computed from the network's inputs
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.dtype == trt.float16:
            return True
        activations.add(tensor.name)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        inputs = (layer.get_input(j) for j in range(layer.num_inputs))
        if not any(t is not None and t.name in activations for t in inputs):
            continue  # weights only
        for j in range(layer.num_outputs):
            tensor = layer.get_output(j)
            if tensor.dtype == trt.float16:
                return True
            activations.add(tensor.name)
    return False


def _count_plugin_layers(trt: Any, network: Any) -> int:
    kinds = {getattr(trt.LayerType, n) for n in ("PLUGIN_V3", "PLUGIN_V2", "PLUGIN") if hasattr(trt.LayerType, n)}
    return sum(1 for i in range(network.num_layers) if network.get_layer(i).type in kinds)


def _gpu(torch: Any) -> dict[str, Any]:
    dev = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(dev)
    return {
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "sm_count": props.multi_processor_count,
        "cuda_runtime": torch.version.cuda,
    }


def build_engine(
    onnx_path: Path,
    output: Path | None = None,
    *,
    fp16: bool = False,
    min_batch: int | None = None,
    opt_batch: int | None = None,
    max_batch: int | None = None,
    workspace_mb: int | None = None,
    force: bool = False,
    verbose: bool = False,
) -> BuildResult:
    """Parse ``onnx_path`` (tv_dwconv nodes become the AOT Triton plugin), build for the current
    GPU with a dynamic-batch profile, and write the engine and its JSON sidecar atomically."""
    trt = require_tensorrt(WHAT)  # before anything else: without TensorRT nothing is read or written
    refuse_stdin(onnx_path, what="ONNX model")
    onnx_path = check_exported_file(onnx_path, what="an ONNX model", dir_hint="give the .onnx file inside it", missing_hint="export one first: tvexport export")
    out = output_file(output) if output is not None else default_engine_path(onnx_path)
    side = sidecar_path(out)
    refuse_input_as_output(out, source=onnx_path)
    check_output_suffix(out, writes="tensorrt", by=WHAT)  # a wrong name before "already exists" (--force would not fix it)
    check_output_path(out, force=force)  # refuse_input_as_output did "is the input file"
    check_output_path(side, force=True, source=onnx_path)
    torch = require_cuda(WHAT)
    load_plugin(WHAT)
    from ._onnx import prepare_onnx

    prepared = prepare_onnx(onnx_path)
    tv_nodes = prepared.nodes
    plan = plan_build(trt.__version__, fp16=fp16)
    if plan.fp16_flag and any(n.dtype == "int8" for n in tv_nodes):
        raise TvexportError(
            f"{onnx_path} has int8 TV kernels, which only strongly typed networks keep as int8, and --fp16 builds a weakly typed one",
            hint="build without --fp16 (export the model in float16 for half-precision activations)",
        )
    logger = Logger(trt, verbose=verbose)
    builder = trt.Builder(logger)
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    if plan.strongly_typed and hasattr(creation, "STRONGLY_TYPED"):
        flags |= 1 << int(creation.STRONGLY_TYPED)
    if hasattr(creation, "PREFER_AOT_PYTHON_PLUGINS"):
        flags |= 1 << int(creation.PREFER_AOT_PYTHON_PLUGINS)
    with plugin_failures() as failures:  # the plugin's refusals in this parse and build: their cause when they fail (see _env)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(prepared.data, str(onnx_path)):  # the path: where the parser finds weights kept as external data
            errors = failures[:1] or [parser.get_error(i).desc() for i in range(parser.num_errors)] or logger.errors or ["unknown error"]
            raise TvexportError(f"TensorRT could not parse {onnx_path}: {first_line(errors[0], default='unknown error')}")
        if network.num_inputs != 1:
            raise TvexportError(f"{onnx_path} has {network.num_inputs} inputs; tvexport builds single-input (NCHW image) models")
        inp = network.get_input(0)
        profile: Profile = profile_shapes(inp.name, tuple(inp.shape), min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch)
        precision = resolve_precision(plan, fp16_requested=fp16, network_has_half=_network_has_half(trt, network))

        config = builder.create_builder_config()
        if plan.fp16_flag:
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "float32" and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)  # keep float32 convs within float32 tolerances
        if workspace_mb is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
        if profile.dynamic or any(d < 0 for d in inp.shape):
            opt_profile = builder.create_optimization_profile()
            opt_profile.set_shape(inp.name, profile.min, profile.opt, profile.max)
            config.add_optimization_profile(opt_profile)

        logger.errors.clear()  # as before a run: a build that fails without saying why must not report the parser's errors
        t0 = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        seconds = time.perf_counter() - t0
        if serialized is None:
            detail = failures[0] if failures else logger.last_error("see the TensorRT log (--verbose)")
            raise TvexportError(f"TensorRT failed to build an engine from {onnx_path}: {detail}")

    meta = prepared.metadata
    info = sidecar_contents(
        tensorrt_version=trt.__version__,
        gpu=_gpu(torch),
        plan=plan,
        precision=precision,
        profile=profile,
        inputs=[_tensor_info(trt, network.get_input(i)) for i in range(network.num_inputs)],
        outputs=[_tensor_info(trt, network.get_output(i)) for i in range(network.num_outputs)],
        source=str(onnx_path),
        source_sha256=_sha256(onnx_path),
        source_external_data=[{"path": f.relative_to(onnx_path.parent).as_posix(), "sha256": _sha256(f)} for f in prepared.external_data],
        tv_layers=[n.to_dict() for n in tv_nodes],
        plugin_layers=_count_plugin_layers(trt, network),
        workspace_mb=workspace_mb,
        build_seconds=seconds,
        tvexport_version=__version__,
        arch=meta.get("tvexport.arch"),
        atom=meta.get("tvexport.atom"),
    )
    with contextlib.ExitStack() as stack:  # both files appear together, or neither
        tmp_engine = stack.enter_context(atomic_output(out, force=force))
        tmp_side = stack.enter_context(atomic_output(side, force=True))
        tmp_engine.write_bytes(memoryview(serialized))
        tmp_side.write_text(json.dumps(info, indent=2) + "\n")
    return BuildResult(out, side, info, seconds)
