"""tvexport: take trained TVConv networks to deployment.

Public API (everything else is internal)::

    tvexport.bake_checkpoint("model.ckpt")                    # `tvexport bake`: -> model.baked.pt, verified
    tvexport.export_checkpoint("model.ckpt")                  # `tvexport export`: -> model.onnx (or format="aoti"), validated
    tvexport.validate_artifact("model.onnx", "model.ckpt")    # `tvexport validate`: -> ValidationReport (check .ok)
    tvexport.inspect_checkpoint("model.baked.pt")             # `tvexport inspect`: -> ModelSummary (TV layers, parameters, FLOPs)
    model = tvexport.load_checkpoint("model.ckpt")          # any checkpoint (baked too) -> nn.Module
    result = tvexport.bake(model)                             # generators -> constant kernels, verified
    small = tvexport.bake(model, kernel_dtype="int8")         # kernels stored int8 + per-(channel, tap) scales
    tvexport.save_baked(result, "model.baked.pt")
    baked = tvexport.load_baked("model.baked.pt")
    fast = tvexport.compile_model(baked)                      # torch.compile (Inductor), fused TV loops

The deployment builds live in the subpackages of their optional runtimes (``import tvexport``
imports neither openvino nor TensorRT)::

    tvexport.openvino.build_extension()                       # `tvexport extension build openvino`: -> ExtensionBuild (.path), cached
    tvexport.trt.build.build_engine("model_plugin.onnx")      # `tvexport build`: -> BuildResult (.engine, .sidecar); TensorRT + CUDA
"""

from __future__ import annotations

from ._version import __version__
from .accuracy import Comparison, Reference, Tolerance
from .bake import (
    BakedCheckpoint,
    BakeMismatch,
    BakeReport,
    BakeResult,
    bake_checkpoint,
    check_bake,
    fold_batchnorms,
    load_baked,
    load_checkpoint,
    save_baked,
)
from .bake import bake_model as bake
from .checkpoint import Checkpoint, read_checkpoint
from .compile import CompiledModel, compile_model
from .errors import MismatchError, MissingDependencyError, TvexportError
from .export import ExportResult, ValidationMismatch, ValidationReport, export_checkpoint, validate_artifact  # onnx, onnxruntime, Inductor imported only when used
from .layers import BakedTVConv, TVConv, TVGeometry, tv_depthwise, tv_depthwise_unfold
from .models import ArchConfig, TVSettings, create_model, list_models
from .summary import ModelSummary, inspect_checkpoint

__all__ = [
    "ArchConfig",
    "BakeMismatch",
    "BakeReport",
    "BakeResult",
    "BakedCheckpoint",
    "BakedTVConv",
    "Checkpoint",
    "Comparison",
    "CompiledModel",
    "ExportResult",
    "MismatchError",
    "MissingDependencyError",
    "ModelSummary",
    "Reference",
    "TVConv",
    "TVGeometry",
    "TVSettings",
    "Tolerance",
    "TvexportError",
    "ValidationMismatch",
    "ValidationReport",
    "__version__",
    "bake",
    "bake_checkpoint",
    "check_bake",
    "compile_model",
    "create_model",
    "export_checkpoint",
    "fold_batchnorms",
    "inspect_checkpoint",
    "list_models",
    "load_baked",
    "load_checkpoint",
    "read_checkpoint",
    "save_baked",
    "tv_depthwise",
    "tv_depthwise_unfold",
    "validate_artifact",
]
