"""Validation of a deployable artefact against the torch model it came from (Polygraphy style).

The same check ``tvexport export`` runs after writing, as its own step: load the artefact with a
backend (``BACKENDS``: onnxruntime, aoti, tensorrt), run it on an input, and compare it with the
float64 truth of the source (the unbaked network for a checkpoint, the baked model with its
kernels as stored for a baked file) next to torch float32's own error (``accuracy.Tolerance``);
max abs / max rel / p99 abs / cosine per output.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..accuracy import Reference, Tolerance, random_inputs
from ..errors import MismatchError, TvexportError
from ._common import Comparison, load_runner, load_source


class ValidationMismatch(MismatchError):
    """A validation failed its tolerance; carries every comparison made (for the report)."""

    def __init__(self, message: str, *, comparisons: list[Comparison], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.comparisons = comparisons


def check_comparisons(comparisons: list[Comparison], *, prefix: str = "", suffix: str = "") -> None:
    """Raise ``ValidationMismatch`` naming the worst failing comparison, if any failed."""
    bad = [c for c in comparisons if not c.ok]
    if bad:
        worst = max(bad, key=lambda c: c.excess)
        raise ValidationMismatch(
            f"{prefix}{worst.name} differs from the torch model: {worst.verdict()}{suffix}",
            comparisons=comparisons,
            hint="if this precision is expected, raise the floor with --rtol/--atol",
        )


@dataclasses.dataclass
class ValidationReport:
    """The outcome of ``validate_artifact``."""

    artifact: Path
    backend: str
    source: Path
    arch: str
    input_shape: tuple[int, ...]
    input_source: str  # "random (seed N)" or the .npy path
    comparisons: list[Comparison]
    seconds: float
    truth: str = "unbaked float64"  # what the artefact was compared with
    baseline: str = "unbaked float32"  # the torch float32 run whose error sets the allowance

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "artifact": str(self.artifact),
            "backend": self.backend,
            "source": str(self.source),
            "arch": self.arch,
            "input_shape": list(self.input_shape),
            "input": self.input_source,
            "truth": self.truth,
            "baseline": self.baseline,
            "seconds": self.seconds,
            "comparisons": [c.to_dict() for c in self.comparisons],
        }


def artifact_dtype(path: Path) -> str:
    """The precision an artefact was exported at (ONNX metadata; float32 when unknown)."""
    if Path(path).suffix != ".onnx":
        return "float32"
    try:
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001 - unreadable files are reported by the runner
        return "float32"
    dtype = meta.get("tvexport.dtype", "float32")
    return dtype if dtype in ("float32", "float16") else "float32"


def load_input(path: Path, *, expected: tuple[int, ...], arch: str) -> np.ndarray:
    """Read an NCHW input from ``.npy`` and check it against the model's (3, H, W)."""
    path = Path(path)
    if not path.is_file():
        raise TvexportError(f"{path}: no such file", hint="give a .npy array of shape (N, 3, H, W)")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise TvexportError(f"{path} is not a .npy array ({err})", hint="save the input with numpy.save") from None
    if x.dtype.kind != "f":
        raise TvexportError(f"{path}: input dtype is {x.dtype}, expected floating point", hint="save it as float32")
    if x.ndim == len(expected):
        x = x[None]
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != tuple(expected):
        raise TvexportError(
            f"{path}: input has shape {tuple(x.shape)}, but {arch} expects (N, {', '.join(map(str, expected))})",
            hint="TVConv networks only run at their trained input size",
        )
    return np.ascontiguousarray(x, dtype=np.float32)


def validate_artifact(
    artifact: str | Path,
    against: str | Path,
    *,
    backend: str = "onnxruntime",
    input_path: str | Path | None = None,
    batch: int | None = None,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    arch: str | None = None,
) -> ValidationReport:
    """Check ``artifact`` (run with ``backend``) against the float64 truth of ``against``.

    ``against`` is the checkpoint (baked on the fly, verified with the same floors) or baked file
    the artefact came from. Input: ``input_path`` (.npy, (N, 3, H, W) or (3, H, W)) or seeded
    random values with ``batch`` rows (default: the artefact's fixed batch, else 2). The rule is
    ``Tolerance`` of the artefact's precision, floors ``rtol``/``atol``. Does not raise on
    mismatch: check ``.ok``.
    """
    start = time.perf_counter()
    artifact, against = Path(artifact), Path(against)
    if not artifact.exists():
        raise TvexportError(f"{artifact}: no such file", hint="check the path")
    tolerance = Tolerance.default(artifact_dtype(artifact), rtol=rtol, atol=atol)
    source = load_source(against, arch=arch, rtol=rtol, atol=atol)
    cfg = source.config
    runner = load_runner(backend, artifact)
    fixed_batch = getattr(runner, "batch", None)
    if input_path is not None:
        x = load_input(Path(input_path), expected=cfg.input_shape, arch=cfg.name)
        input_source = str(input_path)
    else:
        n = batch or fixed_batch or 2
        x = random_inputs((n, *cfg.input_shape), seed=seed).numpy()
        input_source = f"random (seed {seed})"
    if fixed_batch is not None and x.shape[0] != fixed_batch:
        raise TvexportError(
            f"{artifact.name} was exported for batch {fixed_batch}, the input has {x.shape[0]}",
            hint=f"give {fixed_batch} input rows, or export with --dynamic-batch",
        )
    check = getattr(runner, "check_input", None)
    if check is not None:
        check(x)
    reference: Reference = source.reference
    comparisons = reference.compare({backend: runner(x)}, x, tolerance=tolerance)
    return ValidationReport(artifact, backend, against, cfg.name, tuple(x.shape), input_source, comparisons, time.perf_counter() - start,
                            reference.truth_label, reference.baseline_label)
