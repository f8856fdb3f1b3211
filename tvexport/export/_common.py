"""Pieces every exporter and backend shares: what to export from, how to compare, how to run."""

from __future__ import annotations

import copy
import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from ..accuracy import Comparison, Reference, compare_outputs
from ..artifacts import MAKE_KIND, OutputKind, check_output_suffix, suffix_kind
from ..bake import BakeResult, bake_model, check_bake, model_from_baked
from ..checkpoint import read_checkpoint, refuse_nonfinite
from ..errors import TvexportError, about_file
from ..layers import BakedTVConv
from ..models.loading import arch_config_for, build_from_state_dict
from ..models.registry import ArchConfig, config_of
from ..quantize import KernelDType, check_fits, compress_model, kernel_dtype_name
from ..quantize import kernel_dtype as quantize_dtype

__all__ = [
    "BACKENDS", "Comparison", "ExportResult", "ExportSource", "Runner", "check_export_suffix", "check_validation_floors", "check_weights_fit",
    "compare_outputs", "load_runner", "load_source", "with_kernel_dtype",
]

NONFINITE_BAKED_HINT = (
    "it was baked with --allow-nonfinite, so nothing can be checked against it; validate against a finite bake, or "
    "export with --no-validate to write the artefact unchecked (NaN/Inf kernels stay non-finite in every --kernel-dtype)"
)

Runner = Callable[[np.ndarray], np.ndarray]
"""A loaded artefact: NCHW float32 input -> output array."""

_MaybeReference = TypeVar("_MaybeReference", Reference, None)

# backend name -> "module:function" returning a Runner for an artefact path. Imported lazily so
# that ``import tvexport`` never pulls onnxruntime, torch._inductor or tensorrt.
BACKENDS: dict[str, str] = {
    "onnxruntime": "tvexport.export.onnx:load_runner",
    "aoti": "tvexport.export.aoti:load_runner",
    "tensorrt": "tvexport.trt.runner:load_runner",
    "openvino": "tvexport.openvino.runtime:load_runner",
    "openvino-bf16": "tvexport.openvino.runtime:load_runner_bf16",
}


# for an output suffix of another kind, how to make that kind instead (check_output_suffix's hint): the
# other export format is a flag of `tvexport export`; a baked source needs no bake (check_export_suffix)
_OTHER_KINDS: dict[OutputKind, str] = {
    **MAKE_KIND,
    "onnx": "drop --format aoti for an ONNX model",
    "aoti": "use --format aoti for an AOTInductor package (a .pt2 output picks it when --format is not given)",
}


def check_export_suffix(output: str | Path | None, *, format: str, given: str | None, source: str | Path | None = None) -> None:
    """Refuse an ``output`` named as another kind of file than ``format`` writes (``given``: the
    --format the caller gave, None when it was inferred)."""
    if output is not None:
        by = "tvexport export" if given is None else f"tvexport export --format {given}"
        how = _OTHER_KINDS
        found = suffix_kind(source) if source is not None else None
        if found is not None and found[1] == "baked":  # `tvexport bake` refuses a baked file: there is nothing to bake
            how = {**how, "baked": "copy {source}: it is already a baked file"}
        check_output_suffix(output, writes="aoti" if format == "aoti" else "onnx", by=by, how=how, source=source)  # type: ignore[arg-type]


@dataclasses.dataclass
class ExportResult:
    """What an exporter wrote and how it validated; ``truth``/``baseline`` are the labels of the
    ``Reference`` it is checked against (``export_checkpoint`` sets them)."""

    path: Path
    format: str  # "onnx" | "aoti"
    arch: str
    comparisons: list[Comparison]
    seconds: float
    extra_files: list[Path] = dataclasses.field(default_factory=list)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    truth: str | None = None  # e.g. "unbaked float64"
    baseline: str | None = None  # e.g. "unbaked float32 (int8 kernels)"

    @property
    def ok(self) -> bool:
        """Whether every comparison is within its allowance."""
        return all(c.ok for c in self.comparisons)


@dataclasses.dataclass
class ExportSource:
    """What ``export`` and ``validate`` work from.

    ``model`` is what gets exported: a baked file as stored, a checkpoint baked on the fly (its
    verification in ``bake``), or a DWConv/dense baseline as is. ``reference`` is what artefacts
    are checked against (``accuracy.Reference``): the unbaked network for a checkpoint, the baked
    model with its kernels as stored for a baked file; None where ``load_source`` was told no
    artefact will be validated and no bake needs it.
    """

    path: Path
    model: nn.Module
    reference: Reference | None
    bake: BakeResult | None = None

    @property
    def config(self) -> ArchConfig:
        """The architecture configuration of the model to export."""
        return config_of(self.model)


def load_source(
    source: str | Path,
    *,
    arch: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    kernel_dtype: KernelDType | torch.dtype | None = None,
    reference: bool = True,
    before_build: Callable[[ArchConfig], None] | None = None,
) -> ExportSource:
    """Read ``source`` for export: a baked file as is, a checkpoint baked on the fly and verified
    with the same tolerance floors (``rtol``, ``atol``) its artefact will be validated with.

    ``kernel_dtype`` (float32, float16, int8; default: as stored, float32 for a checkpoint) is how
    the TV kernels are stored: a checkpoint is baked straight to it, a baked file's float32 kernels
    are compressed (``with_kernel_dtype``). A baked file holding NaN/Inf (``--allow-nonfinite``)
    is refused unless ``reference=False``: its outputs are non-finite, so nothing could pass.
    ``reference=False`` (an export without validation):
    a baked file or a baseline gets no ``Reference`` (a float64 copy of the network) and
    ``ExportSource.reference`` is None; a TV checkpoint keeps its own, which verifies the bake.
    ``before_build`` is called with the file's architecture before a checkpoint's network is built
    and baked, before a baked file's reference is made (``export_checkpoint`` refuses there a batch
    whose input cannot fit in memory).
    """
    ckpt = read_checkpoint(source)
    if ckpt.format == "baked":
        if reference:  # kept as stored (NaN/Inf stay non-finite in any kernel dtype), but nothing can be checked against them
            refuse_nonfinite(ckpt, hint=NONFINITE_BAKED_HINT)
        model = model_from_baked(ckpt, arch=arch)
        if before_build is not None:
            before_build(config_of(model))
        return ExportSource(ckpt.path, *with_kernel_dtype(model, kernel_dtype, reference=Reference(model) if reference else None, source=ckpt.path))
    refuse_nonfinite(ckpt)
    cfg: ArchConfig = arch_config_for(ckpt, arch=arch)
    if before_build is not None:
        before_build(cfg)
    model = build_from_state_dict(cfg, ckpt.state_dict, source=ckpt.path)
    kernels = quantize_dtype(kernel_dtype if kernel_dtype is not None else torch.float32)
    if cfg.atom != "tvconv":
        if kernels != torch.float32:
            raise TvexportError(f"{ckpt.path} is a {cfg.name} {cfg.atom} baseline without TV layers; --kernel-dtype stores TV kernels", hint="drop --kernel-dtype")
        return ExportSource(ckpt.path, model, Reference(model) if reference else None)  # a DWConv / dense baseline: exported as is, for fair comparisons
    unbaked = Reference(model, kernels=kernels)  # built even without validation: the bake is verified against it
    with about_file(ckpt.path):  # e.g. float16 overflow: say which file
        result = bake_model(model, kernel_dtype=kernels, rtol=rtol, atol=atol, reference=unbaked)
    check_bake(result, source=ckpt.path)
    return ExportSource(ckpt.path, result.model, unbaked, result)


def with_kernel_dtype(
    model: nn.Module,
    kernel_dtype: KernelDType | torch.dtype | None,
    *,
    reference: _MaybeReference,
    source: str | Path | None = None,
) -> tuple[nn.Module, _MaybeReference]:
    """``model`` with its TV kernels stored as ``kernel_dtype`` (None: as stored), and the
    ``Reference`` to check an artefact of it against: ``reference`` (of ``model``) made for those
    kernels, or None if None was given (an export without validation builds no reference).

    float32 kernels are compressed in a copy (rounded once; the reference's float32 original holds
    its kernels rounded the same way, its truth keeps them exact). Kernels stored compressed are
    never converted again: that would round twice (or inflate the artefact for nothing).
    """
    stored = {m.weight.dtype for m in model.modules() if isinstance(m, BakedTVConv)}
    target = quantize_dtype(kernel_dtype) if kernel_dtype is not None and stored else None
    if target is None or stored == {target}:
        return model, reference
    if stored != {torch.float32}:
        where = f"{source}: " if source is not None else ""
        have = ", ".join(sorted(kernel_dtype_name(d) for d in stored))
        raise TvexportError(
            f"{where}TV kernels are stored as {have}; converting them to {kernel_dtype_name(target)} would round stored values again",
            hint=f"export with --kernel-dtype {have} (or none), or bake the checkpoint again with --kernel-dtype {kernel_dtype_name(target)}",
        )
    compressed = copy.deepcopy(model)
    with about_file(source):  # e.g. float16 overflow: say which file
        compress_model(compressed, target)
    return compressed, None if reference is None else reference.with_kernels(target)


def check_validation_floors(validate: bool, *, rtol: float | None, atol: float | None) -> None:
    """Refuse tolerance floors for an export that validates nothing: they would be ignored."""
    if not validate and (rtol is not None or atol is not None):
        raise TvexportError("--rtol/--atol do not apply with --no-validate", hint="drop one of them")


def check_weights_fit(model: nn.Module, dtype: torch.dtype, *, source: str | Path | None = None) -> None:
    """Refuse finite weights of ``model`` that would become Inf cast to ``dtype`` (a float16 graph),
    naming ``source`` (the file read) if given, before any export work. As for ``--kernel-dtype
    float16`` (``quantize.check_fits``), NaN/Inf are not an overflow: they stay what they are.
    int8 kernels, their float32 scales and tensors already stored as ``dtype`` are kept as stored."""
    with about_file(source):
        for key, t in model.state_dict().items():
            if key.endswith(".scale") or t.dtype == dtype or not t.is_floating_point():
                continue
            check_fits(t, dtype, name=f"weight {key}", hint="export with --dtype float32")


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

