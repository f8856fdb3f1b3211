"""Pieces every exporter and backend shares: what to export from, how to compare, how to run."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..bake import bake_model, check_report, model_from_baked
from ..checkpoint import arch_config_for, build_from_state_dict, read_checkpoint, refuse_nonfinite
from ..errors import TvexportError
from ..models.registry import ArchConfig, config_of

# Default (rtol, atol) of validation by precision. Pass iff max|got - ref| <= atol + rtol * max|ref|.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {"float32": (1e-5, 0.0), "float16": (1e-2, 0.0)}

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


@dataclasses.dataclass(frozen=True)
class Comparison:
    """How far an output is from its reference (Polygraphy-style statistics).

    ``max_rel`` is max|d| / max|ref| (norm-wise: robust to reference values near zero).
    """

    name: str
    max_abs: float
    max_rel: float
    p99_abs: float
    cosine: float
    ref_max: float  # max|ref|, the scale of max_rel
    rtol: float
    atol: float

    @property
    def ok(self) -> bool:
        return self.max_abs <= self.atol + self.rtol * self.ref_max

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ok"] = self.ok
        return d


def compare_outputs(name: str, got: np.ndarray | torch.Tensor, ref: np.ndarray | torch.Tensor, *, rtol: float, atol: float = 0.0) -> Comparison:
    g = torch.as_tensor(np.asarray(got) if not isinstance(got, torch.Tensor) else got).double().flatten()
    r = torch.as_tensor(np.asarray(ref) if not isinstance(ref, torch.Tensor) else ref).double().flatten()
    if g.shape != r.shape:
        raise TvexportError(f"{name}: output has {g.numel()} values, reference has {r.numel()}", hint="input or output shapes differ between the artefact and the model")
    diff = (g - r).abs()
    scale = float(r.abs().max()) if r.numel() else 0.0
    max_abs = float(diff.max()) if diff.numel() else 0.0
    nonfinite = not bool(torch.isfinite(g).all())
    if nonfinite:
        max_abs = float("inf")
    cos = float(torch.nn.functional.cosine_similarity(g, r, dim=0)) if g.numel() else 1.0
    return Comparison(
        name=name,
        max_abs=max_abs,
        max_rel=max_abs / scale if scale > 0 else max_abs,
        p99_abs=float(torch.quantile(diff.float()[: 1 << 24], 0.99)) if diff.numel() else 0.0,
        cosine=cos,
        ref_max=scale,
        rtol=rtol,
        atol=atol,
    )


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


def load_source(source: str | Path, *, arch: str | None = None, verify_bake: bool = True) -> nn.Module:
    """The baked torch model to export: a baked file as is, a checkpoint baked on the fly."""
    ckpt = read_checkpoint(source)
    if ckpt.format == "baked":
        return model_from_baked(ckpt)
    refuse_nonfinite(ckpt)
    cfg: ArchConfig = arch_config_for(ckpt, arch)
    model = build_from_state_dict(cfg, ckpt.state_dict, source=ckpt.path)
    if cfg.atom != "tvconv":
        return model  # a DWConv / dense baseline: exported as is, for fair comparisons
    result = bake_model(model, verify=verify_bake)
    check_report(result.report, source=ckpt.path)
    return result.model


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


def model_input_shape(model: nn.Module, batch: int) -> tuple[int, ...]:
    return (batch, *config_of(model).input_shape)
