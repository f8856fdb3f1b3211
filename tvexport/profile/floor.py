"""Memory floors: the bytes a layer must move, and the copy bandwidth that turns them into time.

A depthwise-style layer does little arithmetic per byte, so its speed limit is memory traffic:
it must read its kernels (a TV layer: C*k*k*h*w values, one kernel per output position; a
depthwise conv: C*k*k) and its input activations, and write its output. ``floor_s`` is those
bytes divided by the copy bandwidth measured in the same run (``torch.Tensor.copy_`` of a buffer
far larger than the caches; a copy reads and writes, so it moves twice the buffer). Small layers
whose data stay in cache can beat this floor (``x_floor`` < 1); large ones cannot.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from ..quantize import cast_model_
from .harness import MeasureSettings, Timer, make_timer, measure_case
from .stats import Stats

__all__ = ["copy_bandwidth", "layer_floor_bytes"]

BANDWIDTH_SETTINGS = MeasureSettings(warmup_seconds=0.1, min_iters=10, min_seconds=0.3)


def layer_floor_bytes(
    layer: nn.Module, *, input_shape: tuple[int, ...], output_shape: tuple[int, ...], dtype: torch.dtype
) -> int:
    """Bytes ``layer`` must move once when run at ``dtype``: its stored tensors (kernels, scales,
    bias) as the backends run them (``cast_model_``: float32 tensors follow ``dtype``, float16 and
    int8 TV kernels keep their own size) + input + output at ``dtype``."""
    run = cast_model_(copy.deepcopy(layer), dtype)
    stored = sum(t.numel() * t.element_size() for t in [*run.parameters(), *run.buffers()])
    return stored + torch.finfo(dtype).bits // 8 * (math.prod(input_shape) + math.prod(output_shape))


def copy_bandwidth(
    *,
    device: str = "cpu",
    nbytes: int = 1 << 26,
    settings: MeasureSettings = BANDWIDTH_SETTINGS,
    timer: Timer | None = None,
) -> dict[str, Any]:
    """Memory bandwidth (bytes/s) of ``dst.copy_(src)`` on ``nbytes`` buffers, median of the samples."""
    src = torch.rand(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    timing = measure_case({"copy": lambda: dst.copy_(src)}, settings, timer=timer if timer is not None else make_timer(device))
    stats = Stats.of(timing.samples["copy"])
    return {"bytes_per_s": 2 * src.numel() * 4 / stats.median, "buffer_bytes": src.numel() * 4, "stats": stats.to_dict()}
