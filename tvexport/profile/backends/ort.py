"""ONNX Runtime (CPU): the portable ONNX graph of the network, as ``tvexport export`` writes it."""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
from torch import nn

from ...bake import random_inputs
from ...models.registry import config_of
from . import Form, RunOnce


class OnnxRuntime:
    """``tvexport export --tv-op portable`` at a fixed batch, simplified, on onnxruntime's CPU provider."""

    name = "onnxruntime"
    form: Form = "baked"
    per_layer = False

    def available(self, *, device: str) -> str | None:
        missing = [m for m in ("onnx", "onnxruntime", "onnxsim") if importlib.util.find_spec(m) is None]
        if missing:
            return f"needs {', '.join(missing)} (pip install 'tvexport[onnx]')"
        if device != "cpu":
            return "tvexport runs onnxruntime on its CPU provider only"
        return None

    def prepare(self, model: nn.Module, *, batch: int, threads: int, device: str, dtype: torch.dtype) -> RunOnce:
        from ...export.onnx import OrtRunner, onnx_graph, simplify_graph

        graph = simplify_graph(onnx_graph(model, batch=batch, dtype="float16" if dtype == torch.float16 else "float32"))
        # cases interleave sessions (TV, DW): spinning threads of one would slow the other's runs
        runner = OrtRunner(graph, what=f"{config_of(model).name} (portable ONNX)", threads=threads, spin=False)
        feed = {runner.input_name: np.ascontiguousarray(random_inputs((batch, *config_of(model).input_shape), seed=0).numpy(), dtype=runner.input_dtype)}
        session = runner.session

        def run() -> object:
            return session.run(None, feed)

        return run
