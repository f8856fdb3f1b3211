"""Compressed storage of baked TV kernels: float16, or int8 with one float32 scale per (channel, tap).

The shared contract (README "Compressed kernels: `--kernel-dtype`"; kernels/, trt/, export/ and the OpenVINO
extension honour it): a baked layer's ``weight`` (C, k*k, h, w) is float32, float16 or int8; int8
is symmetric (zero point 0) with ``scale`` float32 (C, k*k, 1, 1)::

    w_real = float(weight) * scale

and every consumer accumulates in float32, dequantizing inside its inner loop.

Why one scale per (channel, tap): a TV kernel plane ``weight[c, t]`` (h, w) is one generator output
channel, and planes differ in magnitude by orders (measured on every zoo network and the demo
checkpoint, benchmarks/results/compressed_kernels.md); a scale per channel only lets the largest
tap set the step for all k*k, a scale per tensor is worse still. Per (channel, tap) the error of
every value is at most half a step of its own plane (``max|w[c, t]| / 254``); finer scales (per
position) would cost as many float32 scales as there are int8 values.

Everything here is torch only and works on any ``BakedTVConv`` (``tvexport.layers``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import torch
from torch import nn

from .errors import TvexportError
from .layers import BakedTVConv

__all__ = [
    "INT8_MAX",
    "KERNEL_DTYPES",
    "KernelDType",
    "KernelError",
    "cast_model_",
    "compress_kernels",
    "compress_layer",
    "compress_model",
    "dequantize",
    "kernel_dtype",
    "kernel_dtype_name",
    "quantize_int8",
    "stored_bytes",
    "stored_kernel_dtype",
]

KernelDType = Literal["float32", "float16", "int8"]
KERNEL_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "int8": torch.int8}
INT8_MAX = 127  # symmetric: -127..127 (-128 unused, so that negating a kernel negates its codes)


def kernel_dtype(value: str | torch.dtype) -> torch.dtype:
    """``"int8"`` / ``torch.int8`` -> ``torch.int8``; anything else is refused in one line."""
    if isinstance(value, torch.dtype):
        if value in KERNEL_DTYPES.values():
            return value
        value = str(value).removeprefix("torch.")
    if value not in KERNEL_DTYPES:
        raise TvexportError(f"baked kernels can be stored as {', '.join(KERNEL_DTYPES)}, not {value!r}", hint="choose --kernel-dtype float32, float16 or int8")
    return KERNEL_DTYPES[value]


def kernel_dtype_name(dtype: torch.dtype) -> KernelDType:
    """``torch.int8`` -> ``"int8"``."""
    name = str(dtype).removeprefix("torch.")
    if name not in KERNEL_DTYPES:
        raise TvexportError(f"{name} is not a kernel storage dtype", hint=f"choose one of {', '.join(KERNEL_DTYPES)}")
    return name  # type: ignore[return-value]


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one scale per (channel, tap): ``(q (C, k*k, h, w) int8, scale (C, k*k, 1, 1) float32)``.

    ``scale = max|w[c, t]| / 127`` (rounded to float32 first, so that ``q * scale`` is what every
    runtime computes); ``q = round(w / scale)``. An all-zero plane gets scale 1 and codes 0. A
    plane holding NaN/Inf (weights baked with ``allow_nonfinite``) gets scale NaN and codes 0: int8
    codes cannot hold them, so the whole plane reads NaN, non-finite as the kernels it stands for.
    """
    if weight.dim() != 4 or not weight.is_floating_point():
        raise ValueError(f"expected float kernels (C, k*k, h, w), got {weight.dtype} {tuple(weight.shape)}")
    w = weight.detach().double()
    nonfinite = ~torch.isfinite(w).all(dim=(2, 3), keepdim=True)
    scale = (w.abs().amax(dim=(2, 3), keepdim=True) / INT8_MAX).float()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    scale = torch.where(nonfinite, torch.full_like(scale, math.nan), scale)
    q = torch.where(nonfinite, 0.0, torch.round(w / scale.double())).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def dequantize(weight: torch.Tensor, scale: torch.Tensor | None = None, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Stored kernels as ``dtype`` values (for references and exporters; runtimes dequantize per tap).

    int8 ``weight * scale`` is exact in float64 (8 x 24 significant bits) and rounded once otherwise.
    """
    if weight.dtype == torch.int8:
        if scale is None:
            raise ValueError("int8 kernels need their scale")
        return (weight.double() * scale.double()).to(dtype)
    if scale is not None:
        raise ValueError(f"a scale only goes with int8 kernels, not {weight.dtype}")
    return weight.to(dtype)


@dataclasses.dataclass(frozen=True)
class KernelError:
    """What storing one layer's kernels in fewer bits changed, against its float64 kernels.

    ``max_rel`` is max|stored - exact| / max|exact| (norm-wise, as everywhere in tvexport);
    ``rms_rel`` the root-mean-square error over the root-mean-square value.
    """

    max_abs: float
    max_rel: float
    rms_rel: float

    @classmethod
    def between(cls, stored: torch.Tensor, exact: torch.Tensor) -> KernelError:
        """The error of kernels ``stored`` against their ``exact`` values (computed in float64)."""
        s, e = stored.double(), exact.double()
        diff = (s - e).abs()
        peak, rms = float(e.abs().max()) if e.numel() else 0.0, float(e.square().mean().sqrt()) if e.numel() else 0.0
        max_abs = float(diff.max()) if diff.numel() else 0.0
        rms_abs = float(diff.square().mean().sqrt()) if diff.numel() else 0.0
        return cls(max_abs, max_abs / peak if peak > 0 else max_abs, rms_abs / rms if rms > 0 else rms_abs)

    def to_dict(self) -> dict[str, float]:
        """The fields as a dict."""
        return dataclasses.asdict(self)


def compress_kernels(weight: torch.Tensor, dtype: KernelDType | torch.dtype, *, name: str = "kernels") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Float kernels (any float dtype, e.g. a float64 bake) rounded once to storage ``dtype``:
    ``(stored, scale)``, ``scale`` None unless int8. Finite values that would round to Inf
    (a float64 bake's beyond float32's, whatever ``dtype``, or beyond float16's) are refused.

    NaN/Inf (only in weights baked with ``allow_nonfinite``) stay non-finite: float16 keeps them
    as they are, int8 reads their planes as NaN (``quantize_int8``).
    """
    dtype = kernel_dtype(dtype)
    check_fits(weight, torch.float32, name=name)  # every storage runs in float32 (int8: its scales, what it dequantizes to)
    if dtype == torch.int8:
        return quantize_int8(weight)
    if dtype == torch.float16:
        check_fits(weight, dtype, name=name)
    return weight.detach().to(dtype), None


# how to fix kernels (or their bias) too large for their storage dtype
_FITS_HINT = {
    torch.float16: "store the kernels as float32 (--kernel-dtype float32)",
    torch.float32: "no float32 network can hold them: check the checkpoint (damaged or diverged?)",
}


def check_fits(t: torch.Tensor, dtype: torch.dtype, *, name: str, hint: str | None = None) -> None:
    """Refuse finite values of ``t`` that round to Inf in ``dtype``, naming ``name`` (``hint``:
    how to fix; default: what fixes kernels stored as ``dtype``). Values just above ``finfo(dtype).max`` that round down to it fit (65519 in
    float16). NaN/Inf are not an overflow: they stay what they are (only weights baked with
    ``allow_nonfinite`` hold them), and ``max |value|`` is that of the finite values."""
    if not t.is_floating_point() or not t.numel() or torch.finfo(t.dtype).max <= torch.finfo(dtype).max:
        return  # nothing to round, or every finite value fits
    t = t.detach()
    finite = torch.isfinite(t)
    if bool((finite & torch.isinf(t.to(dtype))).any()):
        peak, limit = float(t.abs()[finite].max()), torch.finfo(dtype).max
        label = kernel_dtype_name(dtype) if dtype in KERNEL_DTYPES.values() else str(dtype).removeprefix("torch.")
        raise TvexportError(f"{name} overflows {label} (max |value| {peak:.6g} > {limit:.6g})", hint=hint or _FITS_HINT.get(dtype))


def bias_dtype(kernels: torch.dtype) -> torch.dtype:
    """The dtype a layer's bias is stored in next to ``kernels``: float16 with float16 kernels, else float32."""
    return torch.float16 if kernels == torch.float16 else torch.float32


@torch.no_grad()
def compress_layer(layer: BakedTVConv, dtype: KernelDType | torch.dtype, *, name: str = "TV layer") -> KernelError:
    """Store ``layer``'s kernels (and bias) in ``dtype``, in place; returns the kernel error introduced.

    The layer's float kernels (float32 or a float64 bake) are rounded once; the bias follows
    ``bias_dtype``. Kernels already stored compressed (float16, int8) raise ``ValueError``:
    compressing them would round them a second time.
    """
    dtype = kernel_dtype(dtype)
    _refuse_compressed(layer, dtype, name=name)
    exact = layer.weight
    stored, scale = compress_kernels(exact, dtype, name=f"baked weight of {name}")
    error = KernelError.between(dequantize(stored, scale, dtype=torch.float64), exact)
    bias = layer.bias
    if bias is not None:
        target = bias_dtype(dtype)
        check_fits(bias, target, name=f"baked bias of {name}")
        bias = bias.detach().to(target)
    layer.set_kernels(stored, bias, scale=scale)
    return error


def _refuse_compressed(layer: BakedTVConv, dtype: torch.dtype, *, name: str) -> None:
    stored = layer.weight.dtype
    if stored not in (torch.float32, torch.float64):
        raise ValueError(
            f"{name} already stores {str(stored).removeprefix('torch.')} kernels; only float32/float64 kernels are compressed "
            f"(to {kernel_dtype_name(dtype)}): compress the float32 kernels of the bake instead"
        )


def compress_model(model: nn.Module, dtype: KernelDType | torch.dtype) -> dict[str, KernelError]:
    """``compress_layer`` on every ``BakedTVConv`` of ``model`` (in place); errors by layer name.

    Every layer must hold float kernels (float32, or a float64 bake): a model whose kernels are
    already stored compressed (float16, int8) raises ``ValueError`` before any layer is changed
    (it would round them twice; bake again with the wanted ``kernel_dtype`` instead).
    """
    dtype = kernel_dtype(dtype)
    layers = {name: m for name, m in model.named_modules() if isinstance(m, BakedTVConv)}
    for name, m in layers.items():
        _refuse_compressed(m, dtype, name=name)
    return {name: compress_layer(m, dtype, name=name) for name, m in layers.items()}


def stored_bytes(layer: BakedTVConv) -> int:
    """Bytes the layer stores: kernels, their scales and the bias."""
    return sum(t.numel() * t.element_size() for t in (layer.weight, layer.scale, layer.bias) if t is not None)


def layer_summary(layer: BakedTVConv) -> dict[str, Any]:
    """``{"dtype": ..., "bytes": ..., "float32_bytes": ...}`` of one baked layer."""
    float32 = (layer.weight.numel() + (layer.bias.numel() if layer.bias is not None else 0)) * 4
    return {"dtype": kernel_dtype_name(layer.weight.dtype), "bytes": stored_bytes(layer), "float32_bytes": float32}


def cast_model_(model: nn.Module, dtype: torch.dtype, *, device: torch.device | str | None = None) -> nn.Module:
    """``model.to(device, dtype)`` that leaves compressed TV kernels as stored (in place; returns ``model``).

    float16 and int8 kernels (with their scales and bias) keep their dtype, so that a float32
    network runs with float16/int8 kernels converted tap by tap; float32 kernels follow ``dtype``.
    """
    stored = {m: (m.weight, m.bias, m.scale) for m in model.modules() if isinstance(m, BakedTVConv) and m.weight.dtype in (torch.float16, torch.int8)}
    model.to(device=device, dtype=dtype)
    for m, (weight, bias, scale) in stored.items():
        m.weight = weight.to(device=device)
        m.bias = bias.to(device=device) if bias is not None else None
        m.scale = scale.to(device=device) if scale is not None else None
    return model


def stored_kernel_dtype(model: nn.Module, *, dtype: str = "float32") -> str | None:
    """How a graph of ``model`` at precision ``dtype`` stores its TV kernels (None: no TV layers)."""
    stored = {kernel_dtype_name(m.weight.dtype) for m in model.modules() if isinstance(m, BakedTVConv)}
    if not stored:
        return None
    if len(stored) > 1:
        return "mixed"
    (name,) = stored
    return dtype if name == "float32" else name  # float32 kernels follow the graph's precision
