"""Re-baking for another input size: per-position maps resampled to the sizes a new input gives them.

A TV layer only runs at the (h, w) its maps were made for. For an input (H', W'), each layer's new
output size follows from H'xW' and the strides before it (``ArchConfig.with_input_size``; the
network is rebuilt by ``create_model`` at that size, so everything else that depends on the size,
such as the face networks' pooling head, follows too). Two ways to fill the new maps:

* ``kernels`` (default): bake at the trained size (verified as usual), then resample the baked
  kernels (C, k*k, h, w) and bias maps (C, h, w) themselves. No unbaked network exists at the new
  size, so nothing there can be checked against one: the report is the trained-size bake's.
  The kernels resampled are that bake's in float64, before rounding: float16 and int8 kernels are
  rounded once, after resampling, and the storage error recorded per layer is against the
  resampled float64 kernels (int8: at most half a step of each (channel, tap) plane, as in
  ``tvexport.quantize``). At the trained size this is exactly the ordinary bake.
* ``generator``: resample the layer's only size-bound parameters, ``posi_map`` (1, P, h, w) and
  its generator's LayerNorm affine maps (C', h, w), then bake as usual: the generator makes the
  kernels at the new size. The bake is verified against this resized unbaked network.

"Trained size" above is the size ``model`` is built at (``create_model(..., input_size=)`` may
build it at another); the result's ``resize`` record keeps both, and ``verified_at`` is None when
nothing was verified (``verify=False``).

Resampling is ``F.interpolate`` (``bilinear`` or ``bicubic``, half-pixel centres, edges clamped)
over the trailing (h, w), computed in float64 and rounded once to the tensor's dtype. At the
trained size it is the identity, so either method would reproduce the ordinary bake exactly:
``bake_model`` given the size ``model`` is built at bakes it the ordinary way (no ``resize`` record).
"""

from __future__ import annotations

import dataclasses
import numbers
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from .errors import TvexportError
from .layers import BakedTVConv, TVConv
from .models.registry import ArchConfig, config_of, create_model
from .quantize import KernelError, compress_layer, dequantize, layer_summary

if TYPE_CHECKING:  # bake imports this module lazily, from bake_model
    from .bake import BakeResult

__all__ = [
    "DEFAULT_INTERPOLATION",
    "DEFAULT_RESAMPLE",
    "INTERPOLATIONS",
    "RESAMPLE_METHODS",
    "Interpolation",
    "Resample",
    "bake_resized",
    "check_input_size",
    "check_resample",
    "describe_resize",
    "parse_input_size",
    "resample_map",
    "resize_unbaked",
]

Resample = Literal["generator", "kernels"]
Interpolation = Literal["bilinear", "bicubic"]
RESAMPLE_METHODS: tuple[str, ...] = get_args(Resample)
INTERPOLATIONS: tuple[str, ...] = get_args(Interpolation)
# The defaults are what benchmarks/results/resize_accuracy.md measured best (or equal within its
# intervals) at every size: resampled kernels, bicubic.
DEFAULT_RESAMPLE: Resample = "kernels"
DEFAULT_INTERPOLATION: Interpolation = "bicubic"


def parse_input_size(text: str) -> tuple[int, int]:
    """``96``, ``96x96`` or ``96,96`` -> (H, W); anything else is refused in one line."""
    match = re.fullmatch(r"\s*([0-9]+)\s*(?:[x,]\s*([0-9]+)\s*)?", text.lower())
    if match is None:
        raise TvexportError(f"cannot read input size {text!r}", hint="write HxW, e.g. 96x96 (or one number for a square)")
    h = int(match.group(1))
    w = int(match.group(2)) if match.group(2) is not None else h
    if min(h, w) < 1:
        raise TvexportError(f"input size {h}x{w} is too small", hint="H and W must be positive, e.g. 96x96")
    return h, w


def check_input_size(size: object) -> tuple[int, int]:
    """``size`` as (H, W) if it is a pair of positive integers (what ``parse_input_size`` gives),
    else refused in one line: the Python API's ``input_size``, which no command line parsed."""
    if (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in size)):
        return int(size[0]), int(size[1])
    raise TvexportError(f"input_size {size!r} is not (H, W), two positive integers", hint="e.g. input_size=(112, 112)")


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TvexportError(f"unknown {what} {value!r}", hint=f"choose one of {', '.join(choices)}")


def check_resample(resample: str | None, interpolation: str | None) -> None:
    """Refuse an unknown resample method or interpolation (None: the default) in one line."""
    _check_choice("resample method", DEFAULT_RESAMPLE if resample is None else resample, RESAMPLE_METHODS)
    _check_choice("interpolation", DEFAULT_INTERPOLATION if interpolation is None else interpolation, INTERPOLATIONS)


@torch.no_grad()
def resample_map(t: torch.Tensor, size: tuple[int, int], *, interpolation: Interpolation = DEFAULT_INTERPOLATION) -> torch.Tensor:
    """``t`` (..., h, w) resampled to (..., *size): each leading index is one plane, computed in float64."""
    _check_choice("interpolation", interpolation, INTERPOLATIONS)
    planes = t.detach().to(torch.float64).reshape(1, -1, *t.shape[-2:])
    out = F.interpolate(planes, size=tuple(size), mode=interpolation, align_corners=False)
    return out.reshape(*t.shape[:-2], *size).to(t.dtype)


def _tv_layers(model: nn.Module, kind: type[nn.Module]) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, kind)}


def _rebuilt(cfg: ArchConfig, model: nn.Module) -> nn.Module:
    """``cfg``'s network on the meta device (shapes only), checked to be ``model``'s architecture."""
    with torch.device("meta"):
        template = create_model(cfg)
    if type(template) is not type(model):
        raise TvexportError(
            f"only zoo networks can be re-baked for another input size; this is a {type(model).__name__}, not a {cfg.name}",
            hint="build it with tvexport.create_model or load_checkpoint",
        )
    return template


@torch.no_grad()
def resize_unbaked(model: nn.Module, input_size: tuple[int, int], *, interpolation: Interpolation = DEFAULT_INTERPOLATION) -> nn.Module:
    """The unbaked network rebuilt for input ``input_size`` (H, W): a new module, ``model`` untouched.

    Each TVConv gets the output size its stride chain gives at that input (its ``h``/``w``
    buffers and generator LayerNorm shapes follow); its ``posi_map`` and LayerNorm affine maps
    are resampled to it; every other tensor is copied.
    """
    cfg = config_of(model)
    resized = _rebuilt(cfg.with_input_size(input_size), model)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, layer in _tv_layers(resized, TVConv).items():
        old = model.get_submodule(name)
        assert isinstance(layer, TVConv) and isinstance(old, TVConv)
        g = layer.geometry
        size = (g.h, g.w)
        state[f"{name}.posi_map"] = resample_map(old.posi_map, size, interpolation=interpolation)
        state[f"{name}.h"], state[f"{name}.w"] = torch.tensor(g.h), torch.tensor(g.w)
        for sub, norm in old.named_modules():
            if isinstance(norm, nn.LayerNorm):
                for p in ("weight", "bias"):
                    if getattr(norm, p) is not None:
                        state[f"{name}.{sub}.{p}"] = resample_map(getattr(norm, p), size, interpolation=interpolation)
    resized.load_state_dict(state, strict=True, assign=True)
    return resized.eval()


def _float64_bake(model: nn.Module, *, folded: list[tuple[str, str]]) -> nn.Module:
    """``model`` baked in float64 (before any rounding to a storage dtype), with the BatchNorms
    folded that the trained-size bake folded (``folded``: whether it folded is what it folded)."""
    from .accuracy import Reference
    from .bake import _bake_float64

    baked64, again = _bake_float64(model, Reference(model), fold_bn=bool(folded))
    assert [tuple(p) for p in again] == [tuple(p) for p in folded], (again, folded)
    return baked64


@torch.no_grad()
def _resample_kernels(source: nn.Module, target: nn.Module, *, interpolation: Interpolation) -> dict[str, KernelError]:
    """Replace ``target``'s baked kernels (and bias maps) by ``source``'s, resampled to ``target``'s
    sizes and rounded once to ``target``'s storage dtype; returns, per layer, the error of that
    rounding against the resampled kernels. ``source`` should hold float kernels (the float64
    bake); compressed ones are resampled from what they mean (dequantized), so rounded twice."""
    errors: dict[str, KernelError] = {}
    for name, dst in _tv_layers(target, BakedTVConv).items():
        src = source.get_submodule(name)
        assert isinstance(dst, BakedTVConv) and isinstance(src, BakedTVConv) and src.bias_kind == dst.bias_kind, (name, src.bias_kind, dst.bias_kind)
        size, dtype = tuple(dst.weight.shape[-2:]), dst.weight.dtype
        exact = resample_map(dequantize(src.weight, src.scale, dtype=torch.float64), size, interpolation=interpolation)  # type: ignore[arg-type]
        bias = src.bias.double() if src.bias is not None else None
        if bias is not None and src.bias_kind == "map":
            bias = resample_map(bias, size, interpolation=interpolation)  # type: ignore[arg-type]
        dst.set_kernels(exact, bias, bias_kind=src.bias_kind)
        errors[name] = compress_layer(dst, dtype, name=name)  # rounded once, as a bake stores them
    return errors


def bake_resized(
    model: nn.Module,
    input_size: tuple[int, int],
    *,
    resample: Resample | None = None,
    interpolation: Interpolation | None = None,
    bake: Callable[..., BakeResult],
) -> BakeResult:
    """Bake ``model`` for input ``input_size`` (see the module docstring); ``bake`` is ``bake_model``
    with the caller's options bound. The result's ``resize`` records sizes, method and what was verified."""
    check_resample(resample, interpolation)
    resample = DEFAULT_RESAMPLE if resample is None else resample
    interpolation = DEFAULT_INTERPOLATION if interpolation is None else interpolation
    cfg = config_of(model)
    target_cfg = cfg.with_input_size(input_size)
    size = target_cfg.input_size
    source = cfg.input_size  # the size ``model`` is built at: its maps are what gets resampled (the trained size unless built otherwise)
    start = time.perf_counter()
    if resample == "generator":
        result = bake(resize_unbaked(model, size, interpolation=interpolation))
        verified_at, reference = size, "the unbaked network with posi_map and generator LayerNorm maps resampled to the input size"
    else:
        trained = bake(model)
        exact = _float64_bake(model, folded=trained.folded)  # what the trained bake rounded: resampled, then rounded once
        # The resized unbaked network baked unverified gives the structure at the new size (TV
        # geometry, folded BatchNorms, size-dependent heads); its kernels are then replaced. The
        # caller's verification options are the trained-size bake's: not given to this one.
        result = bake(resize_unbaked(model, size, interpolation=interpolation), verify=False, rtol=None, atol=None, batch=None, seed=None)
        errors = _resample_kernels(exact, result.model, interpolation=interpolation)
        for name, layer in result.tv_layers.items():  # storage errors: against the resampled float kernels
            layer["kernels"] = {**layer_summary(result.model.get_submodule(name)), "error": errors[name].to_dict()}  # type: ignore[arg-type]
        result = dataclasses.replace(result, report=trained.report, verify_seconds=trained.verify_seconds, kernel_errors=errors)
        verified_at = source
        reference = f"none at the input size (kernels resampled after baking); the report checks the {_hw(source)} bake they come from"
    if result.report is None:
        verified_at, reference = None, "not verified (--no-verify)"
    resize: dict[str, Any] = {
        "trained_input_size": list(cfg.trained_input_size),
        "source_input_size": list(source),
        "input_size": list(size),
        "resample": resample,
        "interpolation": interpolation,
        "verified_at": list(verified_at) if verified_at is not None else None,
        "reference": reference,
    }
    bake_seconds = time.perf_counter() - start - result.verify_seconds
    return dataclasses.replace(result, resize=resize, bake_seconds=bake_seconds)


def _hw(size: Any) -> str:
    return "x".join(str(int(n)) for n in size)


def describe_resize(resize: Mapping[str, Any], *, reported: bool = True) -> str:
    """One line for a ``resize`` record (``BakeResult.resize``, a baked file's ``bake.resize``).

    ``reported=False``: the file holds no verification report, so nothing was verified whatever
    the record says (files written before ``verified_at`` followed ``--no-verify`` claim a check).
    """
    size, trained = _hw(resize["input_size"]), _hw(resize["trained_input_size"])
    source = _hw(resize.get("source_input_size") or resize["trained_input_size"])  # records before it: the trained size
    verified = reported and resize.get("verified_at") is not None
    if resize["resample"] == "generator":
        how = f"posi_map and generator LayerNorm maps resampled ({resize['interpolation']}), kernels generated at {size}; "
        how += "verified against that unbaked network" if verified else "not verified (--no-verify)"
    else:
        how = f"baked kernels resampled ({resize['interpolation']}); no unbaked network exists at {size} to verify against: "
        how += f"verification covers the {source} bake they come from" if verified else f"not verified, nor was the {source} bake they come from (--no-verify)"
    origin = f"from {source} (trained {trained})" if source != trained else f"(trained {trained})"
    return f"re-baked for input {size} {origin}: {how}"
