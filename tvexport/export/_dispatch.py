"""One entry point over the exporters (``onnx``, ``aoti``), each imported only when used."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import TvexportError
from ._common import ExportResult

FORMATS: dict[str, tuple[str, str, str]] = {
    # format -> (module, function, file suffix)
    "onnx": ("tvexport.export.onnx", "export_onnx", ".onnx"),
    "aoti": ("tvexport.export.aoti", "export_aoti", ".pt2"),
}
_NAMES = {"onnx": "ONNX", "aoti": "AOTInductor"}


def _module(format: str) -> Any:
    if format not in FORMATS:
        raise TvexportError(f"unknown export format {format!r}", hint=f"choose one of {', '.join(FORMATS)}")
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


def export_model(model: nn.Module, output: Path, *, format: str = "onnx", **options: Any) -> ExportResult:
    """Export ``model`` with the exporter of ``format``; ``options`` are that exporter's keywords."""
    return exporter(format)(model, Path(output), **options)


def default_output(source: Path, format: str) -> Path:
    """``<stem>.onnx`` / ``<stem>.pt2`` beside the source (``net.baked.pt`` -> ``net.onnx``)."""
    name = Path(source).name
    for suffix in (".baked.pt", ".pth.tar", ".ckpt", ".pth", ".pt", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return Path(source).with_name(name + FORMATS[format][2])
