"""TensorRT: an engine built from the plugin-form ONNX graph (``tv_dwconv`` as the Triton plugin).

Needs tensorrt, triton and a CUDA GPU; without them ``available`` says what is missing.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import torch
from torch import nn

from ...bake import random_inputs
from ...models.registry import config_of
from . import Form, RunOnce


class TensorRT:
    name = "tensorrt"
    form: Form = "baked"
    per_layer = False

    def available(self, *, device: str) -> str | None:
        missing = [m for m in ("tensorrt", "triton", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            return f"needs {', '.join(missing)} (pip install 'tvexport[trt,onnx]')"
        if not device.startswith("cuda") or not torch.cuda.is_available():
            return "needs a CUDA GPU (--device cuda)"
        return None

    def prepare(self, model: nn.Module, *, batch: int, threads: int, device: str, dtype: torch.dtype) -> RunOnce:
        from ...export.onnx import export_onnx
        from ...trt.build import build_engine
        from ...trt.runner import TensorRTRunner

        half = dtype == torch.float16
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = Path(tmp) / "model.onnx"
            export_onnx(model, onnx_path, tv_op="plugin", batch=batch, dtype="float16" if half else "float32", validate=False)
            engine = build_engine(onnx_path, Path(tmp) / "model.engine", min_batch=batch, opt_batch=batch, max_batch=batch)
            runner = TensorRTRunner(engine.engine)
        context, name = runner.context, runner.inputs[0]
        x = random_inputs((batch, *config_of(model).input_shape), seed=0).to(device)
        x = x.to(torch.float16 if runner.tensor_dtype(name) == torch.float16 else torch.float32).contiguous()
        context.set_input_shape(name, tuple(x.shape))
        context.set_tensor_address(name, x.data_ptr())
        buffers = [x]
        for out in runner.outputs:
            t = torch.empty(tuple(context.get_tensor_shape(out)), dtype=x.dtype, device=device)
            context.set_tensor_address(out, t.data_ptr())
            buffers.append(t)
        torch.cuda.synchronize()

        def run() -> object:
            # Enqueue on the stream the harness times (see the package docstring).
            context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
            return buffers

        return run
