"""Compiled PyTorch: ``torch.compile`` (Inductor) and AOTInductor ``.pt2`` packages.

Both fuse each TV layer's shift-and-accumulate into one loop; the DWConv baseline is compiled
the same way, so the comparison stays fair. Compilation happens in ``prepare`` (not timed) and
takes tens of seconds per network and batch size on a small CPU.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
from torch import nn

from ...bake import random_inputs
from ...compile import check_inductor_cxx
from ...errors import TvexportError
from ...models.registry import config_of
from ...quantize import cast_model_
from . import Form, RunOnce
from .torch_eager import torch_device_reason


def _inductor_reason(device: str, *, what: str, cxx_on_every_device: bool = False) -> str | None:
    """Why Inductor (``what``, as the refusal names it) cannot run on ``device`` here, or None: CPU
    code needs the C++ compiler it calls (``inductor_cxx``: another one on PATH does not help), and
    so does an AOTInductor package on any device (its C++ wrapper, as ``export --format aoti``
    checks)."""
    if reason := torch_device_reason(device):
        return reason
    if device == "cpu" or cxx_on_every_device:
        try:
            check_inductor_cxx(what=what)
        except TvexportError as err:
            return str(err)
    return None


class TorchCompile:
    """``tvexport.compile_model``: torch.compile with freezing, static shapes per batch."""

    name = "torch-compile"
    form: Form = "baked"
    per_layer = False

    def available(self, *, device: str) -> str | None:
        return _inductor_reason(device, what="torch.compile (Inductor) on the CPU")

    def prepare(self, model: nn.Module, *, batch: int, threads: int, device: str, dtype: torch.dtype) -> RunOnce:
        from ...compile import compile_model

        torch.set_num_threads(threads)
        # a copy: the model is shared with the other backends (float16/int8 TV kernels stay as stored)
        compiled = compile_model(cast_model_(copy.deepcopy(model), dtype, device=device), dynamic=False)
        x = random_inputs((batch, *config_of(model).input_shape), seed=0).to(device=device, dtype=dtype)
        compiled(x)  # compile now, outside the timed region
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return lambda: compiled(x)


class Aoti:
    """``tvexport export --format aoti``: an AOTInductor package at a fixed batch, loaded in-process."""

    name = "aoti"
    form: Form = "baked"
    per_layer = False

    def available(self, *, device: str) -> str | None:
        return _inductor_reason(device, what="AOTInductor", cxx_on_every_device=True)

    def prepare(self, model: nn.Module, *, batch: int, threads: int, device: str, dtype: torch.dtype) -> RunOnce:
        from ...export.aoti import AotiRunner, export_aoti

        if dtype != torch.float32:
            raise torch_dtype_error(dtype)
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as tmp:
            package = Path(tmp) / "model.pt2"
            export_aoti(model, package, device="cuda" if device.startswith("cuda") else "cpu", batch=batch, validate=False)
            compiled = AotiRunner(package).compiled
        x = random_inputs((batch, *config_of(model).input_shape), seed=0).to(device)

        def run() -> object:
            with torch.inference_mode():
                return compiled(x)

        return run


def torch_dtype_error(dtype: torch.dtype) -> Exception:
    return TvexportError(f"the aoti backend exports float32 packages, not {str(dtype).removeprefix('torch.')}", hint="drop --dtype or choose another backend")
