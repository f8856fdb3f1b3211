"""Pieces every exporter and backend shares: what to export from, how to compare, how to run."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..accuracy import Comparison, Reference, compare_outputs
from ..bake import BakeResult, bake_model, check_bake, model_from_baked
from ..checkpoint import arch_config_for, build_from_state_dict, read_checkpoint, refuse_nonfinite
from ..errors import TvexportError
from ..models.registry import ArchConfig, config_of

__all__ = ["BACKENDS", "Comparison", "ExportResult", "ExportSource", "Runner", "compare_outputs", "load_runner", "load_source"]

Runner = Callable[[np.ndarray], np.ndarray]
"""A loaded artefact: NCHW float32 input -> output array."""

# backend name -> "module:function" returning a Runner for an artefact path. Imported lazily so
# that ``import tvexport`` never pulls onnxruntime, torch._inductor or tensorrt.
BACKENDS: dict[str, str] = {
    "onnxruntime": "tvexport.export.onnx:load_runner",
    "aoti": "tvexport.export.aoti:load_runner",
    "tensorrt": "tvexport.trt.runner:load_runner",
    "openvino": "tvexport.openvino.runtime:load_runner",
    "openvino-bf16": "tvexport.openvino.runtime:load_runner_bf16",
}


@dataclasses.dataclass
class ExportResult:
    """What an exporter wrote and how it validated."""

    path: Path
    format: str  # "onnx" | "aoti"
    arch: str
    comparisons: list[Comparison]
    seconds: float
    extra_files: list[Path] = dataclasses.field(default_factory=list)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons)


@dataclasses.dataclass
class ExportSource:
    """What ``export`` and ``validate`` work from.

    ``model`` is what gets exported: a baked file as stored, a checkpoint baked on the fly (its
    verification in ``bake``), or a DWConv/dense baseline as is. ``reference`` is what artefacts
    are checked against (``accuracy.Reference``): the unbaked network for a checkpoint, the baked
    model with its kernels as stored for a baked file.
    """

    path: Path
    model: nn.Module
    reference: Reference
    bake: BakeResult | None = None

    @property
    def config(self) -> ArchConfig:
        return config_of(self.model)


def load_source(source: str | Path, *, arch: str | None = None, rtol: float | None = None, atol: float | None = None, verify_bake: bool = True) -> ExportSource:
    """Read ``source`` for export: a baked file as is, a checkpoint baked on the fly and verified
    with the same tolerance floors (``rtol``, ``atol``) its artefact will be validated with."""
    ckpt = read_checkpoint(source)
    if ckpt.format == "baked":
        model = model_from_baked(ckpt)
        return ExportSource(ckpt.path, model, Reference(model))
    refuse_nonfinite(ckpt)
    cfg: ArchConfig = arch_config_for(ckpt, arch)
    model = build_from_state_dict(cfg, ckpt.state_dict, source=ckpt.path)
    reference = Reference(model)
    if cfg.atom != "tvconv":
        return ExportSource(ckpt.path, model, reference)  # a DWConv / dense baseline: exported as is, for fair comparisons
    result = bake_model(model, verify=verify_bake, rtol=rtol, atol=atol, reference=reference)
    check_bake(result, source=ckpt.path)
    return ExportSource(ckpt.path, result.model, reference, result)


def load_runner(backend: str, path: str | Path) -> Runner:
    """Load ``path`` with ``backend`` (see ``BACKENDS``)."""
    if backend not in BACKENDS:
        raise TvexportError(f"unknown backend {backend!r}", hint=f"choose one of {', '.join(BACKENDS)}")
    module_name, func = BACKENDS[backend].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("tvexport"):
            raise TvexportError(f"backend {backend!r} is not part of this tvexport build") from None
        raise
    loader: Callable[[Path], Runner] = getattr(module, func)
    return loader(Path(path))

