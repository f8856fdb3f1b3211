"""Backend adapters: one small class per runtime, each in its own module.

A backend turns a network into a zero-argument "run once" closure on pre-allocated inputs; the
harness times that closure. To add a runtime, write ``tvexport/profile/backends/<module>.py``
with a class implementing :class:`Backend` and list it in ``REGISTRY``::

    class OrtBackend:
        name = "onnxruntime"
        form = "baked"            # the network the harness hands to prepare()
        per_layer = False         # True if prepare_layer() is implemented

        def available(self, *, device: str) -> str | None:
            ...                   # None if usable, else a one-line reason

        def prepare(self, model, *, batch, threads, device, dtype):
            ...                   # export/compile/build once, allocate inputs, set `threads`
            return lambda: session.run(...)

Rules: ``available`` must be cheap and must not raise (import the runtime inside it, or use
``importlib.util.find_spec``); ``prepare`` may take long (export, engine build) and is not
timed; the closure must do one complete inference, synchronous on CPU, and on CUDA enqueue its
work on ``torch.cuda.current_stream()`` (the timer records events around it on that stream);
``prepare`` must honour ``threads`` (intra-op thread count) and say nothing on stdout.
A backend whose runtime may compute in another precision than the model's (OpenVINO picks
bfloat16 on some CPUs) sets ``inference_precision`` (e.g. ``"f32"``) in ``prepare``, read back
from the runtime: bench records it in the case and shows it beside the backend's name.
Runtimes are imported only inside the adapter module, never at package import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import nn

from ...errors import TvexportError

__all__ = ["REGISTRY", "Backend", "Form", "LayerBackend", "RunOnce", "get_backend", "select_backends"]

Form = Literal["unbaked", "baked"]
RunOnce = Callable[[], object]


@runtime_checkable
class Backend(Protocol):
    """One runtime the harness can time (see the module docstring)."""

    name: str
    form: Form
    per_layer: bool

    def available(self, *, device: str) -> str | None:
        """``None`` if this backend can run on ``device`` here, else the one-line reason."""
        ...

    def prepare(self, model: nn.Module, *, batch: int, threads: int, device: str, dtype: torch.dtype) -> RunOnce:
        """Get ``model`` ready for ``batch`` inputs; return a closure running one inference."""
        ...


@runtime_checkable
class LayerBackend(Backend, Protocol):
    """A backend that can also time one module on its own (``per_layer = True``)."""

    def prepare_layer(
        self, layer: nn.Module, *, input_shape: tuple[int, ...], threads: int, device: str, dtype: torch.dtype
    ) -> RunOnce:
        """Like ``prepare`` for a single module fed inputs of ``input_shape``."""
        ...


# name -> "module:Class", module relative to this package.
REGISTRY: dict[str, str] = {
    "torch-unbaked": "torch_eager:TorchUnbaked",
    "torch-baked": "torch_eager:TorchBaked",
    "onnxruntime": "ort:OnnxRuntime",
    "torch-compile": "compiled:TorchCompile",
    "aoti": "compiled:Aoti",
    "triton": "torch_eager:TritonOp",
    "tensorrt": "tensorrt:TensorRT",
    "openvino": "openvino:OpenVino",
    "openvino-fused": "openvino:OpenVinoFused",
}


def get_backend(name: str) -> Backend:
    """Instantiate the adapter registered as ``name``."""
    if name not in REGISTRY:
        raise TvexportError(f"unknown backend {name!r}", hint=f"choose from {', '.join(REGISTRY)}")
    module_name, cls_name = REGISTRY[name].split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    backend = getattr(module, cls_name)()
    assert backend.name == name, (backend.name, name)
    return backend


def select_backends(requested: Sequence[str] | None, *, device: str) -> tuple[list[Backend], list[tuple[str, str]]]:
    """The backends to run and the (name, reason) of those skipped.

    With ``requested`` every name must exist and be available (else ``TvexportError``); without,
    every registered backend that is available on ``device`` runs and the others are skipped.
    """
    names = list(dict.fromkeys(requested)) if requested else list(REGISTRY)
    chosen: list[Backend] = []
    skipped: list[tuple[str, str]] = []
    for name in names:
        backend = get_backend(name)
        reason = backend.available(device=device)
        if reason is None:
            chosen.append(backend)
        elif requested:
            raise TvexportError(f"backend {name} is not available on {device}: {reason}")
        else:
            skipped.append((name, reason))
    return chosen, skipped
