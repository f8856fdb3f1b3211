"""Export stage: baked model -> deployable artefact (ONNX graph, AOTInductor package), and
validation of an artefact against the float64 truth of the checkpoint or baked file it came from."""

from ._common import BACKENDS, Comparison, ExportResult, ExportSource, compare_outputs, load_runner, load_source
from ._dispatch import export_checkpoint, export_model, resolve_format
from .validate import ValidationMismatch, ValidationReport, validate_artifact

__all__ = [
    "BACKENDS", "Comparison", "ExportResult", "ExportSource", "ValidationMismatch", "ValidationReport", "compare_outputs", "export_checkpoint",
    "export_model", "load_runner", "load_source", "resolve_format", "validate_artifact",
]
