"""Validation of a deployable artefact against the torch model it came from (Polygraphy style).

The same check ``tvexport export`` runs after writing, as its own step: load the artefact with a
backend (``BACKENDS``: onnxruntime, aoti, tensorrt, openvino, openvino-bf16), run it on an input,
and compare it with the float64 truth of the source (the unbaked network for a checkpoint, the
baked model with its kernels as stored for a baked file) next to torch float32's own error
(``accuracy.Tolerance``); max abs / max rel / p99 abs / cosine per output.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._io import check_exported_file, check_input_file, refuse_stdin
from ..accuracy import DEFAULT_RTOL, Precision, Tolerance, check_random_input, random_inputs
from ..artifacts import BACKEND_KINDS, Artifact, identify
from ..checkpoint import describe_file, is_torchscript_file, read_checkpoint
from ..errors import MismatchError, TvexportError
from ..models.loading import arch_config_for
from ..models.registry import ArchConfig
from ._common import BACKENDS, Comparison, load_runner, load_source


class ValidationMismatch(MismatchError):
    """A validation failed its tolerance; carries every comparison made (for the report) and, where
    the caller knows them (``export_checkpoint``), the labels of the reference compared against."""

    def __init__(self, message: str, *, comparisons: list[Comparison], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.comparisons = comparisons
        self.truth: str | None = None
        self.baseline: str | None = None


# A max relative error above this (a tenth of the output's peak) is no rounding effect: the coarsest
# floor tvexport uses (bfloat16's, 4e-2) is 2.5x below it and the float32 one 1e4x; a
# network with other weights (a different checkpoint of the same architecture) lands at the
# output's own scale (1.18 measured). Where it is exceeded, the hint asks about --against first.
GROSS_MAX_REL = 0.1


def check_comparisons(comparisons: list[Comparison], *, prefix: str = "", suffix: str = "", against: str | None = None) -> None:
    """Raise ``ValidationMismatch`` naming the worst failing comparison, if any failed; ``against``
    (the reference's file name) is questioned first where the error exceeds ``GROSS_MAX_REL``."""
    bad = [c for c in comparisons if not c.ok]
    if bad:
        worst = max(bad, key=lambda c: c.excess)
        hint = "if this precision is expected, raise the floor with --rtol/--atol"
        if against is not None and worst.max_rel > GROSS_MAX_REL:
            hint = f"is {against} the file it was exported from? An error over {GROSS_MAX_REL:.0%} of the output's peak is not rounding; {hint}"
        raise ValidationMismatch(f"{prefix}{worst.name} differs from the torch model: {worst.verdict()}{suffix}", comparisons=comparisons, hint=hint)


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
    precision: str = "float32"  # whose default floor the rule uses: a Tolerance.default precision, or "bfloat16" (openvino-bf16)

    @property
    def ok(self) -> bool:
        """Whether every comparison is within its allowance."""
        return all(c.ok for c in self.comparisons)

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-serialisable dict, one entry per comparison."""
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
            "precision": self.precision,
            "seconds": self.seconds,
            "comparisons": [c.to_dict() for c in self.comparisons],
        }


def artifact_precision(path: Path, *, found: Artifact | None = None, graph: Any = None) -> tuple[str, str | None]:
    """(precision the artefact computes in, how it stores TV kernels where that differs: "int8",
    "float16" or None) from its ONNX metadata (``graph``: the ``ModelProto`` already read, without
    weights) or JSON sidecar; float32 and None when unknown."""
    if found is not None and found.sidecar is not None:
        sidecar = found.sidecar
        if found.kind == "tensorrt":
            kernels = {str(t.get("dtype")) for t in sidecar.get("tv_layers", []) if isinstance(t, dict)}
            # built from a float16 ONNX ("float16"), or from a float32 one with --fp16 ("mixed-fp16", TensorRT 10)
            dtype = "float16" if sidecar.get("precision") in ("float16", "mixed-fp16") else "float32"
        else:  # AOTInductor: float32 activations
            kernels, dtype = {str(sidecar.get("kernel_dtype"))}, "float32"
        kernel = kernels.pop() if len(kernels) == 1 else None
        return dtype, kernel if kernel in ("int8", "float16") and kernel != dtype else None
    if Path(path).suffix != ".onnx":
        return "float32", None
    graph = graph if graph is not None else _onnx_graph(path)
    if graph is None:  # unreadable files are reported by the runner
        return "float32", None
    meta = {p.key: p.value for p in graph.metadata_props}
    dtype = meta.get("tvexport.dtype", "float32")
    dtype = dtype if dtype in ("float32", "float16") else "float32"
    kernel = meta.get("tvexport.kernel_dtype")
    return dtype, kernel if kernel in ("int8", "float16") and kernel != dtype else None


def _onnx_graph(path: Path) -> Any:
    """The ONNX graph of ``path`` without its weights, or None where onnx is missing or the file
    unreadable (the runner, or ``recorded_network``, reports those)."""
    try:
        from .onnx import load_onnx_graph

        return load_onnx_graph(path)
    except (ImportError, TvexportError):
        return None


# The floor of a backend computing in bfloat16 (``openvino-bf16``; accuracy.DEFAULT_RTOL says why 4e-2)
BFLOAT16_RTOL = DEFAULT_RTOL["bfloat16"]
# Backends whose arithmetic is coarser than the artefact's own precision says: the precision they are judged by
_BACKEND_PRECISION: dict[str, Precision] = {"openvino-bf16": "bfloat16"}

_CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt", ".tar")
# What a file's name says it is where ``identify`` finds no such thing in it (an .engine is always taken as a TensorRT engine)
_NAMED_KINDS = {".onnx": ("ONNX model", "tvexport export CHECKPOINT"), ".pt2": ("AOTInductor package", "tvexport export CHECKPOINT --format aoti")}


def resolve_backend(artifact: Path, found: Artifact | None, backend: str | None) -> str:
    """The backend that runs ``artifact`` (``found = identify(artifact)``): ``backend`` when given
    (refused when the file is plainly another kind of artefact), else the one its content calls for."""
    if found is not None and found.describes is not None:
        raise TvexportError(f"{found.describe()}, not the model itself", hint=f"validate {found.describes} instead")
    if found is None and is_torchscript_file(Path(artifact)):  # no backend runs one, whatever --backend says
        raise TvexportError(
            f"{artifact} is a TorchScript model (torch.jit.save), not an exported model: validate runs an ONNX model, "
            "an AOTInductor package (.pt2) or a TensorRT engine with its sidecar",
            hint="export the checkpoint it was made from (tvexport export CKPT) and validate the result",
        )
    if backend is None:
        if found is not None:
            return found.backend
        if Path(artifact).suffix.lower() in _CHECKPOINT_SUFFIXES:
            with Path(artifact).open("rb") as f:  # named as a checkpoint; is it a torch file (a zip archive or a pickle)?
                head = f.read(2)
            if not head.startswith((b"PK", b"\x80")):
                other = describe_file(Path(artifact))
                raise TvexportError(f"{artifact} is neither an exported model nor a checkpoint ({f'it looks like {other}' if other else 'not a torch file'})",
                                    hint="give the .onnx, .pt2 or TensorRT engine that tvexport export or build wrote")
            raise TvexportError(f"{artifact} looks like a checkpoint, not an exported model", hint=f"export it first (tvexport export {artifact}) and validate the result")
        named = _NAMED_KINDS.get(Path(artifact).suffix.lower())
        if named is not None:  # its name says what it should be, so --backend would not help: it is not one
            kind, command = named
            with Path(artifact).open("rb") as f:
                head = f.read(2)
            # identify() let a zip archive through by its first bytes (describe_file names a JSON or text file)
            other = "a zip archive" if head == b"PK" else describe_file(Path(artifact))
            raise TvexportError(f"{artifact} is not a readable {kind}" + (f" (it looks like {other})" if other else ""), hint=f"export it again with {command}")
        raise TvexportError(
            f"cannot tell which runtime runs {artifact}: it is not an ONNX model, an AOTInductor package or a TensorRT engine with its sidecar",
            hint=f"pass --backend ({', '.join(BACKENDS)})",
        )
    runs = BACKEND_KINDS.get(backend)
    if found is not None and runs is not None and runs != found.kind:
        raise TvexportError(f"{found.describe()}, which --backend {backend} does not run",
                            hint=f"use --backend {found.backend}, or leave --backend out: it is inferred from the file")
    return backend


def recorded_network(found: Artifact, *, graph: Any = None) -> tuple[str | None, str | None, tuple[int, int] | None]:
    """(architecture, atom, (H, W)) an artefact records: its ONNX metadata and NCHW graph input
    (``graph``: the ``ModelProto`` already read, else read once, without its external weights), else
    its JSON sidecar; None where not recorded (or not readable: the runner reports unreadable files)."""
    shape: Any = None
    if found.kind == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:  # no onnx: the runner says what to install
            return None, None, None
        from .onnx import _metadata, load_onnx_graph

        proto = graph if graph is not None else load_onnx_graph(found.path)
        meta = _metadata(proto)
        arch, atom = meta.get("tvexport.arch"), meta.get("tvexport.atom")
        if proto.graph.input:
            shape = [d.dim_value if d.HasField("dim_value") else None for d in proto.graph.input[0].type.tensor_type.shape.dim]
    else:
        arch, atom = found.arch, found.atom
        if found.sidecar is not None:
            shape = found.sidecar.get("input_shape")  # AOTInductor
            inputs = found.sidecar.get("inputs")
            if shape is None and isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):
                shape = inputs[0].get("shape")  # TensorRT
    if not isinstance(shape, list) or len(shape) != 4 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape[2:]):
        return arch, atom, None
    return arch, atom, (int(shape[2]), int(shape[3]))


def check_same_network(found: Artifact | None, cfg: ArchConfig, against: Path, *, graph: Any = None) -> None:
    """Refuse, by name, an artefact that records another architecture (or atom) than ``cfg``, or
    another input size (a network re-baked with ``tvexport bake --input-size``, or its source);
    ``graph`` as ``recorded_network``'s."""
    arch, atom, size = recorded_network(found, graph=graph) if found is not None else (None, None, None)
    if found is None or arch is None:
        return
    atom = atom or cfg.atom
    if (arch, atom) != (cfg.name, cfg.atom):
        raise TvexportError(
            f"{found.path} was exported from a {arch} ({atom}) network, but {against} is a {cfg.name} ({cfg.atom})",
            hint="validate it against the checkpoint or baked file it was exported from",
        )
    if size is not None and size != cfg.input_size:
        hw, want = "x".join(map(str, size)), "x".join(map(str, cfg.input_size))
        hint = (
            f"validate it against the re-baked ({hw}) file it was exported from"
            if size != cfg.trained_input_size
            else f"validate it against the checkpoint or baked file it was exported from (at {hw})"
        )
        raise TvexportError(f"{found.path} was exported for input {hw}, but {against} is the {cfg.name} network at {want}", hint=hint)


_NPY_HINT = "give a .npy array of shape (N, 3, H, W)"
_NPY_CHECKS = {"what": "a .npy array", "dir_hint": _NPY_HINT, "missing_hint": _NPY_HINT, "empty_hint": "save it again with numpy.save"}


def load_input(path: Path, *, expected: tuple[int, ...], arch: str) -> np.ndarray:
    """Read an NCHW input from ``.npy`` and check it against the model's (3, H, W)."""
    path = check_input_file(path, **_NPY_CHECKS)
    with path.open("rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        what = "a .npz archive" if magic.startswith(b"PK") else describe_file(path)
        raise TvexportError(f"{path} is not a .npy array" + (f" (it looks like {what})" if what else ""), hint="save one array with numpy.save")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as err:  # numpy's text suggests allow_pickle=True, which tvexport never uses
        what = "holds Python objects, not numbers" if "pickle" in str(err) else "is damaged"
        raise TvexportError(f"{path} {what}", hint="save a float32 array with numpy.save") from None
    except OSError as err:
        raise TvexportError(f"{path} could not be read ({err.strerror or err})", hint="check the file") from None
    if x.dtype.kind != "f":
        raise TvexportError(f"{path}: input dtype is {x.dtype}, expected floating point", hint="save it as float32")
    saved = tuple(x.shape)
    if x.ndim == len(expected):
        x = x[None]
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != tuple(expected):
        want = f"(N, {', '.join(map(str, expected))})"
        one = len(saved) == len(expected)  # one image, (H, W, C)
        nhwc = f"channels-last ({'' if one else 'N, '}H, W, {expected[0]})"
        transpose = f"x.transpose({'2, 0, 1' if one else '0, 3, 1, 2'})"
        channels_last = x.ndim == len(expected) + 1 and x.shape[-1] == expected[0] and x.shape[1] != expected[0]  # (N, H, W, C), as PIL/OpenCV images come
        channels_first = x.ndim == len(expected) + 1 and x.shape[1] == expected[0]
        if channels_last and tuple(x.shape[1:-1]) == tuple(expected[1:]):
            hint = f"it is {nhwc}; save it as {want}: numpy.save(path, {transpose})"
        elif (channels_last or channels_first) and len(expected) == 3:  # of another H x W
            size, baked = "x".join(map(str, x.shape[1:-1] if channels_last else x.shape[2:])), "x".join(map(str, expected[1:]))
            # one fix for both layouts: a TVConv export runs only at the size it was baked for, so
            # another size is a new bake of the checkpoint and a new export of that, validated against it
            fix = (f"resize it to {baked} (a TVConv network runs only at the input size it was baked for), or re-bake the "
                   f"original checkpoint for {size} (tvexport bake --input-size {size}), export that again and validate the new export against it")
            hint = f"it is {nhwc} and {size}, not {baked}: transpose it ({transpose}) and {fix}" if channels_last else f"it is {size}, not {baked}: {fix}"
        else:
            hint = f"save an array of shape {want}"
        raise TvexportError(f"{path}: input has shape {saved}, but {arch} expects {want}", hint=hint)
    if x.shape[0] == 0:  # nothing would be compared: never a pass
        raise TvexportError(f"{path}: input holds no rows (shape {tuple(x.shape)})", hint=f"save at least one ({', '.join(map(str, expected))}) image")
    with np.errstate(over="ignore"):
        x32 = np.ascontiguousarray(x, dtype=np.float32)
    for values, what in ((x, "NaN/Inf value{s}"), (x32, "value{s} beyond float32's range")):
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        if bad:  # every comparison would fail, whatever the tolerance
            raise TvexportError(f"{path}: input holds {bad} {what.format(s='s' * (bad > 1))}", hint="give finite input values")
    return x32


def validate_artifact(
    artifact: str | Path,
    against: str | Path,
    *,
    backend: str | None = None,
    input_path: str | Path | None = None,
    batch: int | None = None,
    seed: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    arch: str | None = None,
) -> ValidationReport:
    """Check ``artifact`` (run with ``backend``, by default the one its content calls for) against
    the float64 truth of ``against``; an artefact recording another architecture is refused before
    anything runs.

    ``against`` is the checkpoint (baked on the fly, verified with the same floors) or baked file
    the artefact came from. Input: ``input_path`` (.npy, (N, 3, H, W) or (3, H, W)) or random
    values (``seed``, default 0) with ``batch`` rows (default: the artefact's fixed batch, else 2).
    The rule is ``Tolerance`` of the artefact's precision (``BFLOAT16_RTOL`` for openvino-bf16),
    floors ``rtol``/``atol``; ``.precision`` says which. Does not raise on mismatch: check ``.ok``.
    """
    start = time.perf_counter()
    for what, path in (("MODEL", artifact), ("--against", against), ("--input", input_path)):
        refuse_stdin(path, what=what)
    artifact, against = Path(artifact), Path(against)
    if input_path is not None and batch is not None:
        raise TvexportError("--batch sizes the random input; with --input the file gives the batch", hint="drop --batch")
    if input_path is not None and seed is not None:
        raise TvexportError("--seed seeds the random input; with --input it does not apply", hint="drop --seed")
    check_random_input(batch=batch, seed=seed)
    # said before the file's name is used to guess what it is (a directory or empty file named .ckpt is no checkpoint)
    check_exported_file(artifact, what="an exported model", dir_hint="give the .onnx, .pt2 or engine file inside it")
    if input_path is not None:  # before the checkpoint is read and the model compiled
        check_input_file(input_path, **_NPY_CHECKS)
    found = identify(artifact)
    # an ONNX graph is read once, for its precision and network (None: unreadable, reported by recorded_network)
    graph = _onnx_graph(artifact) if found is not None and found.kind == "onnx" and artifact.suffix == ".onnx" else None
    dtype, kernel_dtype = artifact_precision(artifact, found=found, graph=graph)
    Tolerance.default(dtype, rtol=rtol, atol=atol)  # a bad --rtol/--atol is refused before any work
    backend = resolve_backend(artifact, found, backend)
    cfg = arch_config_for(read_checkpoint(against), arch=arch)
    check_same_network(found, cfg, against, graph=graph)
    runner = load_runner(backend, artifact)
    fixed_batch = getattr(runner, "batch", None)
    if input_path is not None:
        x = load_input(Path(input_path), expected=cfg.input_shape, arch=cfg.name)
        input_source = str(input_path)
    else:
        n = batch if batch is not None else fixed_batch or 2
        seed = 0 if seed is None else seed
        x = random_inputs((n, *cfg.input_shape), seed=seed).numpy()
        input_source = f"random (seed {seed})"
    if fixed_batch is not None and x.shape[0] != fixed_batch:
        raise TvexportError(
            f"{artifact.name} takes batch {fixed_batch} only, the input has {x.shape[0]}",
            hint=f"validate with --batch {fixed_batch} (or an --input of {fixed_batch} rows), or export with --dynamic-batch",
        )
    batch_range = getattr(runner, "batch_range", None)  # a TensorRT engine's profile: advise --batch here, not in the runner
    if batch_range is not None:
        lo, hi = batch_range()
        if not lo <= x.shape[0] <= hi:
            raise TvexportError(
                f"{artifact.name} takes batch {lo} to {hi}, the input has {x.shape[0]}",
                hint=f"validate with --batch {lo} (or an --input of {lo} to {hi} rows), or build the engine again with --min-batch/--max-batch",
            )
    check = getattr(runner, "check_input", None)
    if check is not None:
        check(x)
    # bakes a checkpoint (kernels stored as the artefact stores them): only once the inputs are known to fit
    source = load_source(against, arch=arch, rtol=rtol, atol=atol, kernel_dtype=kernel_dtype)
    reference = source.reference
    assert reference is not None  # load_source builds one unless told otherwise
    precision = _BACKEND_PRECISION.get(backend) or reference.precision(dtype=dtype)
    tolerance = Tolerance.default(precision, rtol=rtol, atol=atol)
    comparisons = reference.compare({backend: runner(x)}, x, tolerance=tolerance)
    return ValidationReport(artifact, backend, against, cfg.name, tuple(x.shape), input_source, comparisons, time.perf_counter() - start,
                            reference.truth_label, reference.baseline_label, precision)
