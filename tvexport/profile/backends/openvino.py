"""OpenVINO (CPU plugin): tvexport's ONNX graphs, portable and fused.

``openvino`` runs the portable graph (standard ops, as ``tvexport export`` writes it);
``openvino-fused`` runs the plugin graph (``--tv-op plugin``), whose ``tv_dwconv`` nodes execute
the tvexport extension (built into the cache on first use). A DWConv baseline has no TV layers,
so both give it the same graph. Inference precision is float32 (``INFERENCE_PRECISION_HINT``
f32): the CPU plugin would otherwise pick bfloat16 on CPUs that have it. ``prepare`` reads the
precision back from the compiled model into ``inference_precision``, which bench records per case.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
from torch import nn

from ...bake import random_inputs
from ...models.registry import config_of
from . import Form, RunOnce


class OpenVino:
    """The portable ONNX graph at a fixed batch, simplified, on OpenVINO's CPU plugin."""

    name = "openvino"
    form: Form = "baked"
    per_layer = False
    tv_op = "portable"
    precision = "f32"
    inference_precision: str | None = None  # read back from the last compiled model

    def available(self, *, device: str) -> str | None:
        missing = [m for m in ("onnx", "onnxsim", "openvino") if importlib.util.find_spec(m) is None]
        if missing:
            return f"needs {', '.join(missing)} (pip install 'tvexport[onnx,openvino]')"
        if device != "cpu":
            return "tvexport runs OpenVINO on its CPU plugin only (the only one that runs extension ops)"
        return None

    def prepare(self, model: nn.Module, *, batch: int, threads: int, device: str, dtype: torch.dtype) -> RunOnce:
        from ...export.onnx import onnx_graph, simplify_graph
        from ...openvino import OpenVinoRunner

        cfg = config_of(model)
        graph = simplify_graph(onnx_graph(model, tv_op=self.tv_op, batch=batch, dtype="float16" if dtype == torch.float16 else "float32"))
        runner = OpenVinoRunner(graph, what=f"{cfg.name} ({self.tv_op} ONNX)", threads=threads, precision=self.precision)
        self.inference_precision = runner.inference_precision
        x = np.ascontiguousarray(random_inputs((batch, *cfg.input_shape), seed=0).numpy(), dtype=runner.input_dtype)
        request = runner.request
        request.set_input_tensor(0, runner.input_tensor(x))
        return request.infer


class OpenVinoFused(OpenVino):
    """The plugin ONNX graph: each TV layer one fused ``tv_dwconv`` op of the tvexport extension."""

    name = "openvino-fused"
    tv_op = "plugin"

    def available(self, *, device: str) -> str | None:
        if reason := super().available(device=device):
            return reason
        from ...openvino import missing_build_tool

        return missing_build_tool()  # the build's own lookup: cmake beside the interpreter, $CXX
