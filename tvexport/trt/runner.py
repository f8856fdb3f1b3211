"""Run a TensorRT engine built by ``tvexport build`` as a ``Runner`` (NCHW float32 in, output out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .._io import check_input_file
from ..errors import TvexportError
from ._env import Logger, require_cuda, require_tensorrt
from ._spec import sidecar_path

WHAT = "the tensorrt backend"


def _torch_dtype(trt: Any, torch: Any, dtype: Any) -> Any:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int64: torch.int64, trt.bool: torch.bool}
    if dtype not in table:
        raise TvexportError(f"engine tensor type {dtype} is not supported by tvexport's runner")
    return table[dtype]


class TensorRTRunner:
    """A deserialized engine with one execution context; call it with a numpy batch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._trt = trt = require_tensorrt(WHAT)
        check_input_file(self.path, what="a TensorRT engine", dir_hint="give the .engine file inside it",
                         empty_hint="the build or copy did not finish; build it again", missing_hint="build one with: tvexport build MODEL.onnx -o MODEL.engine")
        self._torch = torch = require_cuda(WHAT)  # after the file check, as in build: a missing engine is not "needs a CUDA GPU"
        try:  # AOT plugins need no Python at run time; registering does no harm if triton is there
            from . import plugin  # noqa: F401
        except ImportError:
            pass
        self._logger = Logger(trt)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            detail = self._logger.last_error("not a TensorRT engine")
            raise TvexportError(
                f"{self.path} cannot be loaded by TensorRT {trt.__version__}: {detail}",
                hint="engines only load with the TensorRT version and GPU that built them; rebuild it here",
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(self.inputs) != 1 or not self.outputs:
            raise TvexportError(f"{self.path} has inputs {self.inputs} and outputs {self.outputs}; expected one image input")
        # read once: a deserialized engine's shapes do not change, and every check below (validate's,
        # then each call's) asks for them
        self.input_shape: tuple[int, ...] = tuple(self.engine.get_tensor_shape(self.inputs[0]))
        if self.input_shape[0] >= 0:
            self._batch_range = self.input_shape[0], self.input_shape[0]
        else:
            lo, _, hi = self.engine.get_tensor_profile_shape(self.inputs[0], 0)
            self._batch_range = int(lo[0]), int(hi[0])
        self.sidecar = self._read_sidecar()
        self._stream = torch.cuda.Stream()

    def _read_sidecar(self) -> dict[str, Any] | None:
        side = sidecar_path(self.path)
        try:
            return json.loads(side.read_text()) if side.is_file() else None
        except (OSError, ValueError):
            return None

    def batch_range(self) -> tuple[int, int]:
        """The smallest and largest batch the engine takes (its input's fixed batch, or its profile's)."""
        return self._batch_range

    @property
    def batch(self) -> int | None:
        """The engine's only batch size, or None when its profile allows several."""
        lo, hi = self.batch_range()
        return lo if lo == hi else None

    def tensor_dtype(self, name: str) -> Any:
        """The torch dtype of the engine's I/O tensor ``name`` (float16 inputs take float16 images)."""
        return _torch_dtype(self._trt, self._torch, self.engine.get_tensor_dtype(name))

    def check_input(self, x: np.ndarray) -> None:
        """Refuse an input whose shape or batch the engine cannot take (before any GPU work)."""
        want = self.input_shape
        if x.ndim != len(want) or any(w >= 0 and w != d for w, d in zip(want[1:], x.shape[1:])):
            raise TvexportError(f"input of shape {tuple(x.shape)} does not fit engine {self.path} input {want}")
        lo, hi = self.batch_range()
        if not lo <= x.shape[0] <= hi:
            rows = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise TvexportError(
                f"batch {x.shape[0]} is outside the engine's profile [{lo}, {hi}]",
                hint=f"give {rows} rows, or build the engine again from a --dynamic-batch export with --min-batch/--max-batch",
            )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self.check_input(x)
        return self._execute(x)

    def _execute(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        name = self.inputs[0]
        stream = self._stream
        with torch.cuda.stream(stream):
            xt = torch.from_numpy(np.ascontiguousarray(x)).to("cuda", non_blocking=False)
            xt = xt.to(self.tensor_dtype(name)).contiguous()
            self.context.set_input_shape(name, tuple(xt.shape))
            self.context.set_tensor_address(name, xt.data_ptr())
            outs = {}
            for out_name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(out_name))
                t = torch.empty(shape, dtype=self.tensor_dtype(out_name), device="cuda")
                self.context.set_tensor_address(out_name, t.data_ptr())
                outs[out_name] = t
            self._logger.errors.clear()  # a failure that logs nothing must not report an earlier error
            if not self.context.execute_async_v3(stream.cuda_stream):
                detail = self._logger.last_error("")
                raise TvexportError(f"TensorRT failed to run {self.path}{': ' + detail if detail else ''}")  # its log is printed only with --verbose
        stream.synchronize()
        first = outs[self.outputs[0]]
        return first.float().cpu().numpy() if first.is_floating_point() else first.cpu().numpy()


def load_runner(path: Path) -> TensorRTRunner:
    """The ``tensorrt`` backend of ``tvexport.export.BACKENDS``."""
    return TensorRTRunner(Path(path))
