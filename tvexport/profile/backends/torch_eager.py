"""PyTorch eager backends: the reference's unbaked TVConv (generator on every call) and the baked network."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...bake import random_inputs
from ...models.registry import config_of
from ...quantize import cast_model_
from . import Form, RunOnce


def torch_device_reason(device: str) -> str | None:
    """Why torch cannot run on ``device`` here, or None."""
    if device == "cpu":
        return None
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return "CUDA is not available to torch (torch.cuda.is_available() is False)"
        return None
    return f"unknown device {device!r}"


class _TorchEager:
    name: str
    form: Form
    per_layer = True

    def available(self, *, device: str) -> str | None:
        return torch_device_reason(device)

    def prepare(self, model: nn.Module, *, batch: int, threads: int, device: str, dtype: torch.dtype) -> RunOnce:
        shape = (batch, *config_of(model).input_shape)
        return self.prepare_layer(model, input_shape=shape, threads=threads, device=device, dtype=dtype)

    def prepare_layer(
        self, layer: nn.Module, *, input_shape: tuple[int, ...], threads: int, device: str, dtype: torch.dtype
    ) -> RunOnce:
        """Run ``layer`` (a whole network or one of its modules) on seeded inputs of ``input_shape``."""
        torch.set_num_threads(threads)
        module = cast_model_(copy.deepcopy(layer), dtype, device=device).eval()  # float16/int8 TV kernels run as stored
        for p in module.parameters():
            p.requires_grad_(False)
        x = random_inputs(tuple(input_shape), seed=0).to(device=device, dtype=dtype)
        if device.startswith("cuda"):
            torch.cuda.synchronize()  # weights and inputs are in place before anything is timed

        def run() -> torch.Tensor:
            with torch.inference_mode():
                return module(x)

        return run


class TorchUnbaked(_TorchEager):
    """The network as trained: every TVConv runs its generator on each call (reference behaviour)."""

    name = "torch-unbaked"
    form: Form = "unbaked"


class TorchBaked(_TorchEager):
    """The baked network (``bake_model``: constant kernels, BatchNorm folded) in eager PyTorch."""

    name = "torch-baked"
    form: Form = "baked"


class TritonOp(TorchBaked):
    """The baked network on CUDA, its TV layers on the fused Triton kernel (``tvexport.kernels``).

    ``torch-baked`` on a CUDA device runs the same kernel; this name makes the choice explicit
    and is unavailable (instead of silently falling back) without triton.
    """

    name = "triton"

    def available(self, *, device: str) -> str | None:
        from ...kernels import triton_available

        if not device.startswith("cuda"):
            return "the Triton op runs on CUDA devices (--device cuda)"
        if not triton_available():
            return "needs triton (pip install 'tvexport[triton]')"
        return torch_device_reason(device)
