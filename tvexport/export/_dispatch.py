"""One entry point over the exporters (``onnx``, ``aoti``), each imported only when used."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import check_output_path, output_file, refuse_input_as_output
from ..artifacts import export_format_of, external_data_path
from ..checkpoint import CHECKPOINT_SUFFIXES, output_beside
from ..errors import TvexportError, refuse_oversized_input, sized_by_user
from ..models.registry import ArchConfig
from ..quantize import KernelDType
from ._common import ExportResult, check_export_suffix, check_validation_floors, check_weights_fit

FORMATS: dict[str, tuple[str, str, str]] = {
    # format -> (module, function, file suffix)
    "onnx": ("tvexport.export.onnx", "export_onnx", ".onnx"),
    "aoti": ("tvexport.export.aoti", "export_aoti", ".pt2"),
}
_NAMES = {"onnx": "ONNX", "aoti": "AOTInductor"}


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise TvexportError(f"unknown export format {format!r}", hint=f"choose one of {', '.join(FORMATS)}")


def _module(format: str) -> Any:
    _check_format(format)
    module_name = FORMATS[format][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            raise TvexportError(f"{_NAMES[format]} export is not part of this build") from None
        raise


def exporter(format: str) -> Callable[..., ExportResult]:
    """The ``export_<format>(model, output, **options)`` function, imported lazily."""
    return getattr(_module(format), FORMATS[format][1])


def check_options(format: str, **options: Any) -> None:
    """The exporter's own ``check_options(**options)`` where it has one: refusals before any work."""
    check = getattr(_module(format), "check_options", None)
    if check is not None:
        check(**options)


def check_runtime(format: str, **options: Any) -> None:
    """The exporter's ``check_runtime(**options)`` where it has one: the refusals that import its
    runtime (ONNX: the opset the installed onnx knows), made after the cheap ones."""
    check = getattr(_module(format), "check_runtime", None)
    if check is not None:
        check(**options)


def resolve_format(format: str | None, output: str | Path | None, *, source: str | Path | None = None, check_suffix: bool = True) -> str:
    """The export format: ``format`` if given, else the one ``output``'s suffix calls for (.pt2:
    aoti, .onnx: onnx), else onnx. An ``output`` named as another kind of file (``x.pt2`` with
    --format onnx, ``x.baked.pt``, ``x.engine``) is refused before any work (unless not ``check_suffix``:
    ``check_export_suffix`` later)."""
    given = format
    if format is None:
        format = export_format_of(output) or "onnx"
    _check_format(format)
    if check_suffix:
        check_export_suffix(output, format=format, given=given, source=source)
    return format


def export_model(model: nn.Module, output: Path, *, format: str | None = None, **options: Any) -> ExportResult:
    """Export ``model`` with the exporter of ``format`` (default: from ``output``'s suffix,
    ``resolve_format``); ``options`` are that exporter's keywords."""
    format = resolve_format(format, output)
    return exporter(format)(model, Path(output), **options)


def default_output(source: Path, format: str) -> Path:
    """``<stem>.onnx`` / ``<stem>.pt2`` beside the source (``net.baked.pt`` -> ``net.onnx``)."""
    return output_beside(source, FORMATS[format][2], strip=(".baked.pt", *CHECKPOINT_SUFFIXES))


def _reject(format: str, *, picked_by: Path | None = None, **given: bool) -> None:
    """Refuse the options (named as on the command line) that do not apply to ``format``
    (``picked_by``: the output whose suffix chose it, when no format was given)."""
    bad = [name for name, is_set in given.items() if is_set]
    if bad:
        what = f"{', '.join(bad)} {'does' if len(bad) == 1 else 'do'} not apply to --format {format}"
        if picked_by is None:
            raise TvexportError(what)
        raise TvexportError(f"{what}, which -o {picked_by} picks (no --format was given)",
                            hint=f"drop {'it' if len(bad) == 1 else 'them'}, or name the output {picked_by.with_suffix('.onnx').name} for an ONNX model")


def export_checkpoint(
    source: str | Path,
    output: str | Path | None = None,
    *,
    format: str | None = None,
    arch: str | None = None,
    kernel_dtype: KernelDType | torch.dtype | None = None,
    validate: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    force: bool = False,
    batch: int = 1,
    dynamic_batch: bool = False,
    tv_op: str = "portable",
    opset: int | None = None,
    dtype: str = "float32",
    fp16_io: bool = False,
    simplify: bool = True,
    external_data: bool | None = None,
    decomposition: str | None = None,
    device: str = "cpu",
    max_batch: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """``tvexport export`` as one call: read ``source`` (a checkpoint, baked on the fly and verified
    with the same ``rtol``/``atol`` floors, or a baked file), export it as ``format`` ("onnx",
    "aoti"; default: the one ``output``'s suffix calls for, .pt2 aoti, else onnx; a suffix of
    another kind of file is refused) to ``output`` (default ``<stem>.onnx`` / ``<stem>.pt2``
    beside it), validated against
    the float64 truth of the source (``load_source``: the unbaked network of a checkpoint, a baked
    file's model with its kernels as stored). Without validation a baked file or a baseline builds
    no float64 reference, and the result's ``truth``/``baseline`` stay None (nothing was compared).

    ``arch`` overrides the detected architecture; ``validate`` (default True) and ``force`` (overwrite
    an existing ``output``) as on the command line. ``kernel_dtype`` (float32, float16, int8; default
    as stored, a checkpoint float32) is how the TV kernels are stored. ONNX options are those of
    ``export_onnx``: ``batch``, ``dynamic_batch``, ``tv_op``, ``opset`` (default 18), ``dtype``,
    ``fp16_io``, ``simplify``, ``external_data``, ``decomposition``; AOTInductor ones those of
    ``export_aoti``: ``device``, ``batch``, ``dynamic_batch``, ``max_batch`` (default 64, only with
    ``dynamic_batch``), ``progress`` (told each phase). Options of the other format or that
    contradict each other raise ``TvexportError`` (naming them as the CLI does) before any work. A failed validation raises
    ``ValidationMismatch`` and writes nothing; its ``truth``/``baseline``, as the result's, label the
    reference.
    """
    from ._common import load_source  # looked up at call time (tests stand in for it)
    from .validate import ValidationMismatch

    given, format = format, resolve_format(format, output, source=source, check_suffix=False)
    source = Path(source)
    out = refuse_input_as_output(output_file(output) if output is not None else default_output(source, format), source=source)
    check_export_suffix(output, format=format, given=given, source=source)  # a wrong name before "already exists" (--force would not fix it)
    check_output_path(out, force=force)  # after the name checks; refuse_input_as_output did "is the input file"
    if dynamic_batch and batch != 1:
        raise TvexportError(f"--batch {batch} and --dynamic-batch were both given", hint="give --batch N or --dynamic-batch, not both")
    check_validation_floors(validate, rtol=rtol, atol=atol)
    options: dict[str, Any]
    if format == "onnx":
        _reject(format, **{"--device": device != "cpu", "--max-batch": max_batch is not None})
        if fp16_io and dtype != "float16":
            raise TvexportError("--fp16-io needs --dtype float16")
        if decomposition is not None and tv_op == "plugin":
            raise TvexportError("--decomposition applies to --tv-op portable only", hint="a plugin node is one tv_dwconv op, not a decomposition")
        options = {
            "tv_op": tv_op, "opset": opset if opset is not None else 18, "batch": batch, "dynamic_batch": dynamic_batch,
            "dtype": dtype, "fp16_io": fp16_io, "simplify": simplify, "external_data": external_data, "decomposition": decomposition,
        }
        check_options(format, tv_op=tv_op, opset=options["opset"], batch=batch, dtype=dtype, decomposition=decomposition)
        if external_data:  # the weights' file, refused as <out> is (when external_data is None, only a graph over 2 GB writes one)
            check_output_path(external_data_path(out), force=force, source=source)
    else:
        _reject(format, picked_by=Path(output) if given is None and output is not None else None, **{
            "--tv-op plugin": tv_op != "portable", "--opset": opset is not None, "--dtype float16": dtype != "float32",
            "--fp16-io": fp16_io, "--no-simplify": not simplify, "--external-data": external_data is not None,
            "--decomposition": decomposition is not None,
        })
        options = {"device": device, "dynamic_batch": dynamic_batch, "batch": batch, "max_batch": max_batch}
        if progress is not None:
            options["progress"] = progress
        check_options(format, device=device, dynamic_batch=dynamic_batch, max_batch=max_batch)
    what, smaller = f"export {source} with a batch of {batch}", "choose a smaller --batch (or --dynamic-batch)"

    def input_fits(cfg: ArchConfig) -> None:  # the traced input alone past memory: refused before the bake and its verification
        if not dynamic_batch and device == "cpu":
            refuse_oversized_input((batch, *cfg.input_shape), itemsize=2 if fp16_io else 4, what=what, hint=smaller)
        check_runtime(format, **options)  # then what imports the runtime (a second: onnx), still before the bake

    # a checkpoint is baked (and verified) with the same floors, its kernels stored as kernel_dtype
    src = load_source(source, arch=arch, rtol=rtol, atol=atol, kernel_dtype=kernel_dtype, reference=validate, before_build=input_fits)
    if format == "onnx" and dtype != "float32":  # a float16 graph: weights it cannot hold are refused now, naming the file
        check_weights_fit(src.model, getattr(torch, dtype), source=src.path)
    ref = src.reference
    with sized_by_user(what, hint=smaller):
        try:
            result = export_model(src.model, out, format=format, validate=validate, rtol=rtol, atol=atol, force=force, reference=ref, **options)
        except ValidationMismatch as err:
            assert ref is not None  # only a validating export mismatches, and it has its reference
            named = ValidationMismatch(f"{source}: {err.message}", comparisons=err.comparisons, hint=err.hint)  # which file, as a bake mismatch says
            named.truth, named.baseline = ref.truth_label, ref.baseline_label
            raise named.with_traceback(err.__traceback__) from None  # --verbose shows where it failed, not only here
    if validate:  # a checkpoint has its reference without validation too (it verified the bake), but nothing was compared with it
        assert ref is not None
        result.truth, result.baseline = ref.truth_label, ref.baseline_label
    return result
