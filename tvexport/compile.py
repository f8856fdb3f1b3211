"""torch.compile for baked models: Inductor fuses each TV layer into one loop over its output.

    fast = tvexport.compile_model(tvexport.load_baked("model.baked.pt"))
    y = fast(x)            # first call compiles (seconds to a minute), later calls are fast

The first call compiles for the input's shape; ``dynamic=True`` compiles one kernel set for any
batch size. Weights are frozen into the compiled code (``freezing``): changing the wrapped
module's tensors after the first call has no effect -- compile again instead.
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
from typing import Any, Literal

import torch
from torch import nn

from .errors import TvexportError
from .models.registry import ArchConfig

__all__ = ["COMPILE_MODES", "CompiledModel", "compile_model"]

CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
_RECOMPILE_LIMIT = 64
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _inductor_search() -> tuple[tuple[str, ...], bool]:
    """The compiler names Inductor tries for CPU code, in order, and whether they came from $CXX.

    Its config's ``cpp.cxx`` (a name, or a sequence in which ``None`` stands for a g++ it may
    install) where something imported the config already (a caller may have set it), else the
    default that config reads ($CXX, else g++; clang++ on macOS), without importing Inductor
    (~2 s: a refusal must not wait for it)."""
    config = sys.modules.get("torch._inductor.config")
    if config is not None:
        cxx = config.cpp.cxx
        names = (cxx,) if isinstance(cxx, str) else tuple(c for c in cxx if c is not None)
        return names, False
    env = os.environ.get("CXX")
    return (env if env is not None else ("clang++" if sys.platform == "darwin" else "g++"),), env is not None


def inductor_cxx() -> str:
    """The C++ compiler Inductor calls for CPU code (torch.compile, AOTInductor): the first name of
    its search that is on PATH, else the last one it would try ('' for an empty $CXX)."""
    names, _ = _inductor_search()
    return next((n for n in names if n and shutil.which(n)), names[-1] if names else "")


def check_inductor_cxx(*, what: str = "torch.compile (Inductor) on the CPU") -> None:
    """Raise a one-line ``TvexportError`` naming ``what`` where Inductor would find no C++ compiler
    (it would fail only after a long compile: InvalidCxxCompiler, or an uncaught error for an empty
    $CXX). With TORCH_INDUCTOR_INSTALL_GXX set on Linux, Inductor installs g++ itself: no refusal."""
    names, from_env = _inductor_search()
    if any(n and shutil.which(n) for n in names) or (os.environ.get("TORCH_INDUCTOR_INSTALL_GXX") and sys.platform == "linux"):
        return
    cxx = names[-1] if names else ""
    if not cxx:  # from $CXX, read now or by Inductor's config when it was imported
        raise TvexportError(f"{what} needs a C++ compiler, and the CXX environment variable is set but empty",
                            hint="unset CXX (Inductor then calls g++) or set it to a C++ compiler")
    if from_env:
        raise TvexportError(f"{what} needs a C++ compiler, and CXX={cxx!r} names no program on PATH",
                            hint="point CXX at a C++ compiler (one program, no arguments: Inductor runs it as one name) or unset it")
    raise TvexportError(f"{what} needs a C++ compiler, and {cxx!r} was not found",
                        hint="install g++ (e.g. apt-get install g++) or point the CXX environment variable at one")


class CompiledModel(nn.Module):
    """A torch.compile'd inference copy of a model; calls run without autograd.

    ``original`` is the eager module (a private copy, with ``requires_grad`` off), ``compiled``
    the ``torch.compile`` wrapper around it; ``tvexport_config`` is carried over. Only
    ``original`` is a submodule: the wrapper holds the same module, and registering it too would
    list every tensor twice (``state_dict``, ``named_modules``).
    """

    def __init__(self, original: nn.Module, compiled: Any, options: dict[str, Any]) -> None:
        from torch._dynamo import config as dynamo_config
        from torch._inductor import config as inductor_config

        super().__init__()
        self.original = original
        object.__setattr__(self, "_compiled", compiled)  # not a submodule (see the class docstring)
        self.options = options  # Inductor config, patched in around every call (see forward)
        # Compilation happens inside a call (the first one, and recompiles), and Dynamo reads
        # settings such as `freezing` while it traces, so the options are patched in around
        # every call; torch.compile(options=...) would not reach Dynamo. Dynamo also keys its
        # cache on the forward's code object, shared by every instance of a model class, and
        # frozen weights make each instance one more entry: allow many compiled models.
        # The patch objects are built once (re-entering one costs microseconds).
        limit = max(dynamo_config.recompile_limit, _RECOMPILE_LIMIT)
        self._patches = (inductor_config.patch(options), dynamo_config.patch(recompile_limit=limit))
        cfg = getattr(original, "tvexport_config", None)
        if isinstance(cfg, ArchConfig):
            self.tvexport_config = cfg

    @property
    def compiled(self) -> Any:
        """The ``torch.compile`` wrapper around ``original``."""
        return self._compiled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``compiled(x)`` without autograd, under this model's Inductor options (a new input shape compiles first)."""
        with torch.no_grad(), self._patches[0], self._patches[1]:
            return self._compiled(x)


def compile_model(
    model: nn.Module,
    *,
    dynamic: bool | None = None,
    mode: CompileMode | None = None,
    freezing: bool = True,
    fullgraph: bool = True,
    options: dict[str, Any] | None = None,
) -> CompiledModel:
    """A torch.compile'd (Inductor) copy of ``model`` for inference; ``model`` is not modified.

    ``dynamic``: None (torch's default: recompile once with a symbolic batch if the batch
    changes), True (symbolic shapes from the first call) or False (one compile per shape).
    ``mode``: a torch.compile mode (``max-autotune`` benchmarks alternative kernels at compile
    time). ``freezing`` inlines the weights as constants, so that conv weights are prepacked
    and the TV kernels' re-layout is folded away at compile time. ``fullgraph`` (default True)
    makes a graph break an error instead of a silent fallback to eager. ``options`` are extra
    Inductor options (e.g. ``{"cpp.simdlen": 512}``).

    A model with tensors on the CPU (or none) needs the C++ compiler Inductor calls (``$CXX``,
    default g++): without it this raises ``TvexportError`` at once, before importing Inductor.
    """
    if mode is not None and mode not in COMPILE_MODES:
        raise TvexportError(f"unknown torch.compile mode {mode!r}", hint=f"choose one of {', '.join(COMPILE_MODES)}")
    devices = {t.device.type for t in (*model.parameters(), *model.buffers())}
    if not devices or "cpu" in devices:  # CUDA code is Triton's; CPU code is compiled C++
        check_inductor_cxx()
    original = copy.deepcopy(model).eval()
    for p in original.parameters():
        p.requires_grad_(False)
    inductor_options: dict[str, Any] = {"freezing": freezing}
    inductor_options.update(options or {})
    kwargs: dict[str, Any] = {"dynamic": dynamic, "fullgraph": fullgraph}
    from torch._inductor import config as inductor_config
    from torch._inductor import list_mode_options

    if mode is not None and mode != "default":
        inductor_options = {**list_mode_options(mode, dynamic), **inductor_options}  # a mode is a set of options
    known = inductor_config.get_config_copy()
    unknown = sorted(k for k in inductor_options if k not in known)
    if unknown:
        raise TvexportError(f"unknown Inductor option{'s' * (len(unknown) > 1)} {', '.join(unknown)}", hint="see torch/_inductor/config.py for the names")
    compiled = torch.compile(original, **kwargs)
    return CompiledModel(original, compiled, inductor_options)
