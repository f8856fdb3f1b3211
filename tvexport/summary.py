"""What is inside a checkpoint: format, architecture, TV layers, parameter counts, FLOPs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from .bake import model_from_baked
from .checkpoint import Checkpoint, damaged_metadata, read_checkpoint
from .errors import TvexportError
from .layers import BakedTVConv, TVConv
from .models.loading import arch_config_for, build_from_state_dict
from .quantize import stored_bytes
from .resize import describe_resize


@dataclasses.dataclass(frozen=True)
class TVLayerInfo:
    """One TV layer of a ``ModelSummary``: geometry, what baking it stores, what it costs."""

    name: str
    channels: int
    k: int
    stride: int
    h: int
    w: int
    bias: str  # "map" (C, h, w: a TV bias map, maybe with BatchNorm folded in), "channel" (C: a folded BatchNorm's shift), "none"
    kernel_numel: int  # values the baked layer stores (kernels + bias)
    flops: int  # TV op, one image: 2 * C * k*k * h * w (+ bias adds)
    generator_params: int
    generator_flops: int  # what the unbaked layer spends per call to make its kernels
    kernel_dtype: str = "float32"  # how the kernels are stored (baked files: float32, float16, int8)
    kernel_bytes: int = 0  # bytes stored: kernels (+ int8 scales) + bias; unbaked: as float32
    kernel_error: dict[str, float] | None = None  # baked files: what storing the kernels in kernel_dtype changed (max_rel, rms_rel vs the float64 bake)


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    """What ``inspect_checkpoint`` (``tvexport inspect``) found in a checkpoint or baked file."""

    path: str
    format: str
    file_bytes: int
    arch: str
    config: dict[str, Any]
    input_shape: tuple[int, int, int]
    tv_layers: tuple[TVLayerInfo, ...]
    total_params: int
    generator_params: int
    baked_params: int
    baked_dtype: str
    dropped_keys: dict[str, tuple[int, ...]]
    notes: tuple[str, ...]

    @property
    def baked_bytes(self) -> int:
        """Bytes the TV layers' baked kernels, int8 scales and biases take (an unbaked file: baked as float32)."""
        return sum(layer.kernel_bytes for layer in self.tv_layers)

    @property
    def deployable_params(self) -> int:
        """Parameters after baking: the network without generators, plus the baked kernels."""
        if self.format == "baked":
            return self.total_params  # already baked: the kernels are part of the total
        return self.total_params - self.generator_params + self.baked_params

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict, plus baked bytes, deployable parameters and TV and generator FLOPs."""
        d = dataclasses.asdict(self)
        d["baked_bytes"] = self.baked_bytes
        d["deployable_params"] = self.deployable_params
        d["tv_flops"] = sum(layer.flops for layer in self.tv_layers)
        d["generator_flops"] = sum(layer.generator_flops for layer in self.tv_layers)
        return d


def _generator_cost(layer: TVConv) -> tuple[int, int]:
    g = layer.geometry
    params = sum(p.numel() for n, p in layer.named_parameters() if n != "posi_map")
    flops = sum(
        2 * m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] * g.h * g.w
        for m in layer.modules()
        if isinstance(m, nn.Conv2d)
    )
    return params + layer.posi_map.numel(), flops


def dropped_keys_note(dropped: Mapping[str, Sequence[int]]) -> str:
    """``dropped training-only keys: head.weight 512x10, n_averaged scalar`` (a 0-d tensor is a scalar)."""
    return "dropped training-only keys: " + ", ".join(f"{k} {'x'.join(map(str, shape)) or 'scalar'}" for k, shape in dropped.items())


def _storage_error(ckpt: Checkpoint, name: str) -> dict[str, float] | None:
    """What storing TV layer ``name``'s kernels changed, as a baked file records it (None in files
    baked before compressed kernels); a record that is not a dict is damaged metadata."""
    record: Any = ckpt.meta
    where = "bake"
    for key in ("tv_layers", name, "kernels", "error"):
        record, where = record.get(key), f"{where}[{key!r}]"
        if record is None:
            return None
        if not isinstance(record, Mapping):
            raise damaged_metadata(ckpt.path, TvexportError(f"{where} is of type {type(record).__name__}, not a dict"))
    return dict(record)


def summarize_model(model: nn.Module, ckpt: Checkpoint) -> ModelSummary:
    """Describe a loaded zoo model (unbaked or baked) read from ``ckpt``."""
    from .models.registry import config_of

    cfg = config_of(model)
    layers = []
    generator_total = 0
    baked_total = 0
    baked_dtype = "float32"
    for name, m in model.named_modules():
        if isinstance(m, TVConv):
            gen_params, gen_flops = _generator_cost(m)
            g = m.geometry
            baked = g.kernel_numel + (g.channels * g.h * g.w if g.bias else 0)
            bias = "map" if g.bias else "none"
            kernels: dict[str, Any] = {"kernel_bytes": 4 * baked}
        elif isinstance(m, BakedTVConv):
            gen_params, gen_flops = 0, 0
            g = m.geometry
            baked = m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
            bias = m.bias_kind or "none"
            baked_dtype = str(ckpt.state_dict[f"{name}.weight"].dtype).removeprefix("torch.")
            kernels = {"kernel_dtype": baked_dtype, "kernel_bytes": stored_bytes(m), "kernel_error": _storage_error(ckpt, name)}
        else:
            continue
        flops = 2 * g.kernel_numel + (g.channels * g.h * g.w if g.bias else 0)
        layers.append(TVLayerInfo(name, g.channels, g.k, g.stride, g.h, g.w, bias, baked, flops, gen_params, gen_flops, **kernels))
        generator_total += gen_params
        baked_total += baked
    total = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for n, b in model.named_buffers() if n.endswith((".weight", ".bias"))
    )
    notes = []
    if ckpt.dropped:
        notes.append(dropped_keys_note(ckpt.dropped))
    if ckpt.nonfinite:
        notes.append(f"{len(ckpt.nonfinite)} tensors hold NaN/Inf: {', '.join(ckpt.nonfinite[:3])}")
    if ckpt.meta.get("resize") is not None:
        try:
            # the file's report, not its resize record, says whether anything was verified (files
            # re-baked with --no-verify before the record followed it claim a check); no "report"
            # key at all: the record is all there is
            notes.append(describe_resize(ckpt.meta["resize"], reported=ckpt.meta.get("report", True) is not None))
        except (KeyError, TypeError, ValueError) as err:
            raise damaged_metadata(ckpt.path, err) from None
    return ModelSummary(
        path=str(ckpt.path),
        format=ckpt.format,
        file_bytes=ckpt.num_bytes,
        arch=cfg.name,
        config=cfg.to_dict(),
        input_shape=cfg.input_shape,
        tv_layers=tuple(layers),
        total_params=total,
        generator_params=generator_total,
        baked_params=baked_total,
        baked_dtype=baked_dtype,
        dropped_keys=dict(ckpt.dropped),
        notes=tuple(notes),
    )


def inspect_checkpoint(path: str | Path, *, arch: str | None = None) -> ModelSummary:
    """``tvexport inspect`` as one call: read the checkpoint or baked file at ``path`` and describe
    its format, architecture (``arch`` overrides the detected one), TV layers, parameters and FLOPs."""
    ckpt = read_checkpoint(path)
    if ckpt.format == "baked":
        model = model_from_baked(ckpt, arch=arch)
    else:
        model = build_from_state_dict(arch_config_for(ckpt, arch=arch), ckpt.state_dict, source=ckpt.path)
    return summarize_model(model, ckpt)
