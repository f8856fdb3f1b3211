"""AOTInductor export: baked model -> ``.pt2`` package (compiled C++/OpenMP kernels + weights).

The package runs without Python: load it with ``torch::inductor::AOTIModelPackageLoader`` in C++
(see ``examples/aoti_runner``) or with ``torch._inductor.aoti_load_package`` (``load_runner``).
Inductor fuses the TV op (sum over taps of ``W_t * shift_t(x)``) into one loop; the unfolded
(N, C, k*k, h, w) tensor that ONNX decompositions materialise never exists.

A JSON sidecar ``<output>.json`` records how the package was built (torch version, device,
shapes, batch range, compile time, size) and how it validated.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import atomic_output, check_exported_file, check_output_path
from .._version import __version__
from ..accuracy import Reference, Tolerance, random_inputs
from ..artifacts import AOTI_SIDECAR_FORMAT as SIDECAR_FORMAT
from ..artifacts import check_package_archive, sidecar_path
from ..compile import check_inductor_cxx
from ..errors import TvexportError, first_line
from ..models.registry import config_of
from ..quantize import KernelDType, cast_model_, stored_kernel_dtype
from ._common import Comparison, ExportResult, Runner, check_export_suffix, check_validation_floors, with_kernel_dtype

__all__ = ["SIDECAR_FORMAT", "AotiRunner", "check_options", "default_inductor_configs", "export_aoti", "load_runner", "read_sidecar", "sidecar_path"]

SIDECAR_VERSION = 1
REEXPORT = "export it again with this torch version: tvexport export CHECKPOINT --format aoti"
_DEVICES = ("cpu", "cuda")
DEFAULT_MAX_BATCH = 64  # the largest batch of a dynamic-batch package unless --max-batch says otherwise


def default_inductor_configs(device: str) -> dict[str, Any]:
    """Inductor options used for packages.

    ``freezing`` lets Inductor treat weights as constants (constant folding, prepacked oneDNN
    conv weights); ``cpp.dynamic_threads`` makes the CPU kernels use the OpenMP thread count of
    the process that runs the package (``OMP_NUM_THREADS``) instead of the compiling machine's.
    """
    configs: dict[str, Any] = {"freezing": True}
    if device == "cpu":
        configs["cpp.dynamic_threads"] = True
    return configs


def _cpu_isa() -> str:
    """The vector ISA the CPU kernels are compiled for (Inductor builds with -march=native)."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    return str(pick_vec_isa()) or "scalar"


def _check_device(device: str) -> torch.device:
    if device not in _DEVICES:
        raise TvexportError(f"unknown device {device!r}", hint=f"choose one of {', '.join(_DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise TvexportError("--device cuda was asked for, but torch sees no CUDA device",
                            hint="export with --device cpu, or run on a machine with a CUDA GPU and a CUDA build of torch")
    return torch.device(device)


def check_options(*, device: str = "cpu", dynamic_batch: bool = False, max_batch: int | None = None) -> None:
    """Refuse what cannot work (unknown or absent device, no C++ compiler, a largest batch for a
    package without a dynamic batch) before any work."""
    if max_batch is not None and not dynamic_batch:
        raise TvexportError("--max-batch needs --dynamic-batch", hint="a package without --dynamic-batch runs at --batch only")
    _check_device(device)
    check_inductor_cxx(what="AOTInductor")


def _validation_batches(batch: int, dynamic_batch: bool, max_batch: int) -> list[int]:
    if not dynamic_batch:
        return [batch]
    # the example batch, the smallest and the largest allowed batch (capped: the point is to
    # exercise the symbolic batch dimension, not to spend minutes on batch 64)
    return sorted({1, batch, min(max_batch, max(batch, 2) + 1)})


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def _export_program(model: nn.Module, example: torch.Tensor, *, dynamic_batch: bool, max_batch: int) -> torch.export.ExportedProgram:
    dynamic_shapes = None
    if dynamic_batch:
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=max_batch)},)
    with torch.no_grad(), _quiet():
        try:
            return torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes, strict=False)
        except Exception as err:  # noqa: BLE001 - torch.export raises many types; report one line
            first = first_line(err, limit=300)
            raise TvexportError(f"torch.export failed: {first}", hint="run with --verbose for the traceback") from err


def export_aoti(
    model: nn.Module,
    output: str | Path,
    *,
    device: str = "cpu",
    dynamic_batch: bool = False,
    batch: int = 1,
    max_batch: int | None = None,
    force: bool = False,
    validate: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    reference: Reference | None = None,
    kernel_dtype: KernelDType | torch.dtype | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a baked model (or a DWConv/dense baseline) to an AOTInductor ``.pt2`` package.

    ``batch`` is the batch the package is built for (``dynamic_batch=False``) or the example
    batch of the export; with ``dynamic_batch`` the package accepts any batch in
    ``[1, max_batch]`` (default 64; refused without ``dynamic_batch``). With ``validate`` the
    package is loaded and checked on seeded inputs against ``reference`` (default
    ``Reference(model)``): no worse than torch float32 vs the float64 truth, by ``Tolerance`` with
    floors ``rtol``/``atol`` (defaults by kernel dtype; refused without ``validate``); a mismatch
    raises ``ValidationMismatch`` and writes nothing. ``progress`` is told each phase as it starts
    (export, compile and package, validate, write): compiling takes a minute. ``kernel_dtype``
    (float32, float16, int8; default as stored) stores float32 TV kernels compressed
    (``with_kernel_dtype``); Inductor keeps them compressed and dequantizes in the fused loop. An
    ``output`` named as another kind of file (``x.onnx``, ``x.baked.pt``, ``x.engine``) is refused
    before any work.
    """
    report = progress if progress is not None else (lambda phase: None)
    start = time.perf_counter()
    check_export_suffix(output, format="aoti", given="aoti")  # as export() refuses it, before "already exists"
    output = check_output_path(Path(output), force=force)
    side = check_output_path(sidecar_path(output), force=force)
    check_validation_floors(validate, rtol=rtol, atol=atol)
    check_options(device=device, dynamic_batch=dynamic_batch, max_batch=max_batch)
    max_batch = DEFAULT_MAX_BATCH if max_batch is None else max_batch
    if batch < 1 or max_batch < 1:
        raise TvexportError(f"batch sizes must be >= 1 (batch {batch}, max batch {max_batch})")
    if dynamic_batch and batch > max_batch:
        raise TvexportError(f"batch {batch} is larger than --max-batch {max_batch}", hint="raise --max-batch or lower --batch")
    dev = torch.device(device)
    cfg = config_of(model)
    if validate and reference is None:
        reference = Reference(model)  # of the model as given (its training modes untouched): with_kernel_dtype makes it one for compressed kernels
    if kernel_dtype is not None:
        model, reference = with_kernel_dtype(model, kernel_dtype, reference=reference)
    tolerance = Tolerance.default(reference.precision() if reference is not None else "float32", rtol=rtol, atol=atol)

    model = cast_model_(copy.deepcopy(model), torch.float32, device=dev).eval()  # compressed TV kernels stay compressed
    for p in model.parameters():
        p.requires_grad_(False)
    # Export at batch >= 2 when the batch is dynamic: torch.export specialises a dimension of size 1.
    example_batch = max(batch, 2) if dynamic_batch and max_batch >= 2 else batch
    example = random_inputs((example_batch, *cfg.input_shape), seed=0).to(dev)

    report("exporting the graph (torch.export)")
    t0 = time.perf_counter()
    program = _export_program(model, example, dynamic_batch=dynamic_batch and max_batch >= 2, max_batch=max_batch)
    export_seconds = time.perf_counter() - t0

    inductor_configs = default_inductor_configs(device)
    # Both files are staged and renamed as the blocks exit, innermost first: the package, then
    # its sidecar. An interruption between the two leaves the new package with the old sidecar
    # or none, never a new sidecar describing an old package; a failure before leaves both as they were.
    with (atomic_output(side, force=force) as side_tmp, atomic_output(output, force=force) as tmp,
          tempfile.TemporaryDirectory(prefix=".aoti-", dir=output.parent) as work):
        package = Path(work) / "model.pt2"  # AOTInductor insists on the .pt2 suffix
        report("compiling C++ kernels and packaging (AOTInductor)")
        t0 = time.perf_counter()
        with torch.no_grad(), _quiet():
            try:
                torch._inductor.aoti_compile_and_package(program, package_path=str(package), inductor_configs=dict(inductor_configs))
            except Exception as err:  # noqa: BLE001 - C++ compiler and Inductor errors: report one line
                first = first_line(err, limit=300)
                raise TvexportError(f"AOTInductor compilation failed: {first}", hint="run with --verbose for the traceback") from err
        compile_seconds = time.perf_counter() - t0

        comparisons: list[Comparison] = []
        with torch.no_grad():
            output_shape = list(model(example).shape)
        if validate:
            assert reference is not None
            batches = _validation_batches(example_batch, dynamic_batch and max_batch >= 2, max_batch)
            report(f"validating the package against torch (batch {', '.join(map(str, batches))})")
            loaded = _load_package(package, device)
            for b in batches:
                x = random_inputs((b, *cfg.input_shape), seed=b)
                with torch.no_grad():
                    got = loaded(x.to(dev))
                comparisons += reference.compare({f"{cfg.name} batch {b}": got.detach().cpu()}, x, tolerance=tolerance)
            del loaded
            from .validate import check_comparisons

            check_comparisons(comparisons, prefix="AOTInductor package: ", suffix="; nothing was written")
        report(f"writing {output.name}")
        os.replace(package, tmp)
        package_bytes = tmp.stat().st_size

        info: dict[str, Any] = {
            "format": SIDECAR_FORMAT,
            "format_version": SIDECAR_VERSION,
            "package": output.name,
            "arch": cfg.name,
            "atom": cfg.atom,
            "device": device,
            "dtype": "float32",
            "kernel_dtype": stored_kernel_dtype(model),
            "constant_bytes": package_constant_bytes(tmp),
            "input_shape": [example_batch, *cfg.input_shape],
            "output_shape": output_shape,
            "dynamic_batch": {"min": 1, "max": max_batch} if dynamic_batch and max_batch >= 2 else None,
            "batch": None if dynamic_batch and max_batch >= 2 else example_batch,
            "export_seconds": round(export_seconds, 3),
            "compile_seconds": round(compile_seconds, 3),
            "package_bytes": package_bytes,
            "compile_threads": torch.get_num_threads(),
            "cpu_isa": _cpu_isa() if device == "cpu" else None,
            "inductor_configs": inductor_configs,
            "torch_version": str(torch.__version__),
            "tvexport_version": __version__,
            "validation": [c.to_dict() for c in comparisons],
        }
        side_tmp.write_text(json.dumps(info, indent=2) + "\n")
    return ExportResult(
        path=output,
        format="aoti",
        arch=cfg.name,
        comparisons=comparisons,
        seconds=time.perf_counter() - start,
        extra_files=[side],
        info=info,
    )


_CONSTANT_INFO = re.compile(r"constants_info_\[(\d+)\]\.(dtype|data_size) = ([^;]+);")


def package_constant_bytes(package: str | Path) -> dict[str, int] | None:
    """Bytes of the constants (weights) an AOTInductor package stores, by dtype, as its generated
    wrapper declares them (None if the package's layout is not the one this torch writes)."""
    sizes: dict[str, int] = {}
    try:
        with zipfile.ZipFile(package) as z:
            wrapper = next((n for n in z.namelist() if n.endswith(".wrapper.cpp")), None)
            if wrapper is None:
                return None
            entries: dict[str, dict[str, str]] = {}
            for index, field, value in _CONSTANT_INFO.findall(z.read(wrapper).decode(errors="replace")):
                entries.setdefault(index, {})[field] = value.strip()
    except (OSError, zipfile.BadZipFile):
        return None
    for entry in entries.values():
        dtype = entry.get("dtype", "").removeprefix("cached_torch_dtype_")
        if dtype and entry.get("data_size", "").isdigit():
            sizes[dtype] = sizes.get(dtype, 0) + int(entry["data_size"])
    return sizes or None


def read_sidecar(package: str | Path) -> dict[str, Any] | None:
    """The JSON written beside ``package`` by ``export_aoti``, or None if there is none; refused when
    it lacks what the runner needs or records another size than the package's (``package_bytes``)."""
    side = sidecar_path(Path(package))
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as err:
        raise TvexportError(f"{side}: cannot read the package description ({err})", hint="re-export the package or delete the .json file") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise TvexportError(f"{side} is not a tvexport AOTInductor description", hint="re-export the package or delete the .json file")
    problem = _sidecar_problem(data)
    if problem:
        raise TvexportError(f"{side} is not a usable tvexport AOTInductor description: {problem}", hint="re-export the package or delete the .json file")
    package = Path(package)
    recorded, size = data.get("package_bytes"), package.stat().st_size if package.is_file() else None
    if recorded is not None and size is not None and recorded != size:  # e.g. an export interrupted between its two renames
        if size < recorded:  # or a package cut short: say so where its archive shows it
            check_package_archive(package)
        raise TvexportError(
            f"{side} describes another package than {package}: it records {recorded} bytes, {package.name} has {size}",
            hint="re-export the package (tvexport export CHECKPOINT --format aoti) so that both files come from one export",
        )
    return data


def _count(value: Any, *, least: int = 1) -> bool:
    """Whether ``value`` is a whole number (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _sidecar_problem(data: dict[str, Any]) -> str:
    """What is wrong with the fields the runner relies on ("" if nothing)."""
    if "input_shape" not in data:
        return "it has no 'input_shape'"
    shape = data["input_shape"]
    if not (isinstance(shape, list) and len(shape) >= 2 and all(_count(d) for d in shape)):
        return f"'input_shape' {json.dumps(shape)[:60]} is not a list of positive integers"
    rng = data.get("dynamic_batch")
    if rng is not None and not (isinstance(rng, dict) and _count(rng.get("min")) and _count(rng.get("max")) and rng["min"] <= rng["max"]):
        return f"'dynamic_batch' {json.dumps(rng)[:60]} is neither null nor {{\"min\": N, \"max\": M}} with 1 <= N <= M"
    size = data.get("package_bytes")
    if size is not None and not _count(size, least=0):
        return f"'package_bytes' {json.dumps(size)[:60]} is not a whole number of bytes"
    if data.get("device", "cpu") not in _DEVICES:
        return f"'device' {json.dumps(data['device'])[:60]} is not one of {', '.join(_DEVICES)}"
    return ""


@contextlib.contextmanager
def _loader_logs_muted() -> Iterator[None]:
    """torch's package loaders log ``W...`` lines (file name checks, "outdated pt2 file") before
    raising on a file that is not a package; the error tvexport raises says it in one line."""
    loggers = [logging.getLogger(name) for name in ("torch.export.pt2_archive._package", "torch._inductor.package.package")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _load_package(path: Path, device: str) -> Any:
    check_package_archive(path)
    with _quiet(), _loader_logs_muted():
        try:
            return torch._inductor.aoti_load_package(str(path))
        except Exception as err:  # noqa: BLE001 - the loader raises RuntimeError with C++ text
            first = first_line(err, limit=200)
            raise TvexportError(f"{path} could not be loaded as an AOTInductor package ({first})", hint=REEXPORT) from None


class AotiRunner:
    """A loaded ``.pt2`` package as a Runner: NCHW float32 numpy in -> numpy out.

    ``compiled`` is the loaded package itself (torch tensors in and out, no checks), for
    benchmarks that want no numpy conversion in the timed call; ``info`` is the sidecar or None.
    """

    def __init__(self, path: Path) -> None:
        self.path = check_exported_file(path, what="an AOTInductor package", dir_hint="give the .pt2 file inside it")
        self.info = read_sidecar(self.path)
        self.device = str(self.info.get("device", "cpu")) if self.info else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise TvexportError(f"{self.path} was compiled for CUDA, and torch sees no CUDA device", hint="run it on a CUDA machine or export with --device cpu")
        self.compiled = _load_package(self.path, self.device)

    @property
    def batch(self) -> int | None:
        """The fixed batch size, or None when the package takes a dynamic batch (or is undescribed)."""
        if self.info is None or self.info.get("dynamic_batch"):
            return None
        return int(self.info["input_shape"][0])

    def _check(self, x: np.ndarray) -> None:
        if self.info is None:
            return
        want = self.info["input_shape"]
        rng = self.info.get("dynamic_batch")
        if x.ndim != len(want) or list(x.shape[1:]) != list(want[1:]):
            raise TvexportError(f"{self.path} takes input (N, {', '.join(map(str, want[1:]))}), got {tuple(x.shape)}")
        lo, hi = (rng["min"], rng["max"]) if rng else (want[0], want[0])
        if not lo <= x.shape[0] <= hi:
            allowed = f"batch {lo}..{hi}" if rng else f"batch {lo} only (exported without --dynamic-batch)"
            hint = (f"validate with --batch {lo} to {hi}, or export it again with --dynamic-batch --max-batch {x.shape[0]}" if rng and x.shape[0] > hi
                    else f"validate with --batch {lo} to {hi}" if rng else f"validate with --batch {lo}, or export it again with --dynamic-batch")
            raise TvexportError(f"{self.path} accepts {allowed}, got batch {x.shape[0]}", hint=hint)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        self._check(x)
        t = torch.from_numpy(x)
        if self.device != "cpu":
            t = t.to(self.device)
        missing = f"its sidecar {sidecar_path(self.path)} is missing, so the batch it was exported for is unknown"
        try:
            # without a sidecar the package's own check is the only one; its C++ runtime also prints it
            with torch.no_grad(), (_package_checks_inputs() if self.info is None else contextlib.nullcontext()):
                out = self.compiled(t)
        except RuntimeError as err:
            first = first_line(err, limit=200)
            hint = (missing + "; validate with --batch N, N the batch it was exported for, or export it again (which writes the sidecar)" if self.info is None
                    else REEXPORT)
            raise TvexportError(f"{self.path} cannot run input {tuple(x.shape)}: {first}", hint=hint) from None
        if isinstance(out, (list, tuple)):
            out = out[0]
        if out.shape[0] != x.shape[0]:  # a package that did not check its input (AOTI_RUNTIME_CHECK_INPUTS=0 at its first call)
            raise TvexportError(f"{self.path} ran batch {out.shape[0]} for an input of batch {x.shape[0]}",
                                hint=(missing + "; give " if self.info is None else "give ") + f"{out.shape[0]} rows, or export it again")
        return out.detach().cpu().numpy()


# AOTInductor checks an input's shape against the exported one only when this is set; without it a
# wrong batch reads past the input. Only for a package without its sidecar, whose check in Python
# says more: the package's check also refuses batch 1 of a dynamic-batch package (torch.export
# records the batch as 2 or more). The package reads it at its first call, not at load: the wrapper
# torch generates (torch/_inductor/codegen/cpp_wrapper_cpu.py, _check_aoti_runtime_check_inputs_env)
# keeps getenv's answer in a function-local static, initialised by the first run_impl. Setting it
# around loading would do nothing, so it is set around every call (whichever is the first); later
# calls would not need it, but they need fd 2 silenced anyway (below), and so keep one code path.
CHECK_INPUTS_ENV = "AOTI_RUNTIME_CHECK_INPUTS"


@contextlib.contextmanager
def _package_checks_inputs() -> Iterator[None]:
    """``AOTI_RUNTIME_CHECK_INPUTS=1`` and file descriptor 2 on /dev/null for the duration: the C++
    runtime prints every refused call's message to stderr beside its exception (``std::cerr`` in
    torch/_inductor/codegen/aoti_runtime/interface.cpp), which the one-line error already says.
    Process-wide: anything else written to fd 2 during the call is lost too."""
    import sys

    before = os.environ.get(CHECK_INPUTS_ENV)
    os.environ[CHECK_INPUTS_ENV] = "1"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if before is None:
            del os.environ[CHECK_INPUTS_ENV]
        else:
            os.environ[CHECK_INPUTS_ENV] = before


def load_runner(path: str | Path) -> Runner:
    """Load a ``.pt2`` package for ``tvexport validate --backend aoti`` / ``bench``."""
    return AotiRunner(Path(path))
