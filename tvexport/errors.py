"""The one exception type for user mistakes, and exit codes the CLI maps it to."""

from __future__ import annotations

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class TvexportError(Exception):
    """A problem with the user's input or environment, reported as one line.

    ``str(err)`` is the whole message: what went wrong, which file, how to fix it.
    """

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}; {hint}")


class MismatchError(TvexportError):
    """A numerical comparison (bake verification, export validation) failed its tolerance."""

    exit_code = EXIT_MISMATCH


class MissingDependencyError(TvexportError):
    """An optional backend (onnxruntime, triton, tensorrt, CUDA) is not available."""


def missing(package: str, *, what: str, extra: str | None = None) -> MissingDependencyError:
    """Build the standard "install X" error for an optional dependency."""
    how = f"pip install 'tvexport[{extra}]'" if extra else f"pip install {package}"
    return MissingDependencyError(f"{what} needs {package}, which is not installed", hint=f"install it with: {how}")
