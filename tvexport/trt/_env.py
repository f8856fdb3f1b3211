"""Import TensorRT / check for a CUDA GPU, turning absence into one clear line."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ..errors import CallbackFailures, MissingDependencyError, TvexportError, first_line, missing
from ._spec import check_tensorrt


# What tvexport's plugin callbacks raised during a parse and build, oldest first, one line each.
# TensorRT catches an exception a Python plugin callback raises and writes it to std::cerr, never to
# the ILogger (python/src/infer/pyPlugin.cpp: PLUGIN_API_CATCH, "Exception thrown from ..."), so its
# log holds only what followed; build_engine collects them (``plugin_failures``: one list per build,
# kept by the thread that runs it, see ``CallbackFailures``) and reports the first instead. A callback
# failure TensorRT recovers from (if it skips a failed tactic) is still reported should the build
# fail later for another reason.
_PLUGIN_FAILURES = CallbackFailures()
plugin_failures = _PLUGIN_FAILURES.collecting  # with plugin_failures() as failures: parse and build
record_plugin_failure = _PLUGIN_FAILURES.record  # the plugin's callbacks: the first line of what they raised


def require_tensorrt(what: str) -> ModuleType:
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingDependencyError(
            f"{what} needs TensorRT and an NVIDIA GPU with CUDA; tensorrt is not installed",
            hint="on a machine with an NVIDIA GPU, CUDA drivers and a CUDA build of torch: pip install 'tvexport[trt]'",
        ) from None
    check_tensorrt(trt.__version__, has_aot=hasattr(trt, "QuickPluginCreationRequest"))
    return trt


def require_cuda(what: str) -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        raise missing("torch", what=what) from None
    if not torch.cuda.is_available():
        raise TvexportError(f"{what} needs a CUDA GPU, and none is available", hint="run it on a machine with an NVIDIA GPU and a CUDA build of torch")
    return torch


def load_plugin(what: str) -> None:
    """Register the tv_dwconv plugin (compiles its kernel with triton at build time)."""
    from ..kernels import triton_available

    if not triton_available():
        raise missing("triton", what=what, extra="triton")
    from . import plugin  # noqa: F401


class Logger:
    """A TensorRT logger that keeps errors for the one-line message and prints nothing else
    unless ``verbose``."""

    def __new__(cls, trt: ModuleType, verbose: bool = False) -> Any:
        class _Logger(trt.ILogger):  # type: ignore[name-defined, misc]
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: list[str] = []

            def log(self, severity: Any, msg: str) -> None:
                if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                    self.errors.append(msg)
                if verbose:  # errors reach the user in the one-line message that carries them
                    import sys

                    print(f"[TensorRT] {msg}", file=sys.stderr)

            def last_error(self, default: str) -> str:
                """The first line of the last non-blank error logged, or ``default`` when there is none."""
                return next((line for msg in reversed(self.errors) if (line := first_line(msg))), default)

        return _Logger()
