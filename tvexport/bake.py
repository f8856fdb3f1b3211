"""Baking: run each TVConv generator once, keep the constant kernels, fold BatchNorm, verify.

A baked network holds ``BakedTVConv`` layers (kernels (C, k*k, h, w) and an optional bias) in
place of every ``TVConv``; no generator weight survives. Verification compares it against the
unbaked network -- the reference forward (unfold, generator run on every call) -- per TV layer
and for the whole network, on seeded random inputs with batch > 1.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import __version__
from ._io import atomic_output
from .checkpoint import BAKED_FORMAT, Checkpoint, arch_config_for, check_state_dict, damaged_metadata, read_checkpoint
from .errors import MismatchError, TvexportError
from .layers import BakedTVConv, TVConv
from .models.registry import ArchConfig, config_of, create_model

if TYPE_CHECKING:
    from .resize import Interpolation, Resample

FORMAT_VERSION = 1
DEFAULT_RTOL = {torch.float32: 1e-5, torch.float16: 1e-3}
_FOLDABLE = (nn.Conv2d, nn.Linear, BakedTVConv)


# --------------------------------------------------------------------------------------------
# Comparison results
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ErrorStats:
    """Difference between an output and its reference. ``max_rel`` is max|d| / max|ref|."""

    name: str
    max_abs: float
    max_rel: float
    mean_abs: float

    @classmethod
    def between(cls, name: str, got: torch.Tensor, ref: torch.Tensor) -> ErrorStats:
        diff = (got.double() - ref.double()).abs()
        scale = float(ref.double().abs().max())
        max_abs = float(diff.max())
        return cls(name, max_abs, max_abs / scale if scale > 0 else max_abs, float(diff.mean()))


@dataclasses.dataclass(frozen=True)
class BakeReport:
    """Per-TV-layer and whole-network errors of a baked model against the unbaked one."""

    layers: tuple[ErrorStats, ...]
    network: ErrorStats
    rtol: float
    batch: int
    seed: int

    @property
    def ok(self) -> bool:
        return all(e.max_rel <= self.rtol for e in (*self.layers, self.network))

    @property
    def worst(self) -> ErrorStats:
        return max((*self.layers, self.network), key=lambda e: e.max_rel)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rtol": self.rtol,
            "batch": self.batch,
            "seed": self.seed,
            "network": dataclasses.asdict(self.network),
            "layers": [dataclasses.asdict(e) for e in self.layers],
        }


@dataclasses.dataclass
class BakeResult:
    """A baked model with what is needed to save and describe it."""

    model: nn.Module
    config: ArchConfig
    tv_layers: dict[str, dict[str, Any]]
    folded: list[tuple[str, str]]
    dtype: torch.dtype
    report: BakeReport | None
    bake_seconds: float
    verify_seconds: float = 0.0
    resize: dict[str, Any] | None = None  # re-baked for another input size: sizes, method, what was verified (resize.py)


# --------------------------------------------------------------------------------------------
# Transformations
# --------------------------------------------------------------------------------------------

def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _consecutive_pairs(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, nn.Module]]:
    """(name, layer, bn_name, bn) for every layer directly followed by a BatchNorm in a Sequential."""
    for seq_name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for (a_name, a), (b_name, b) in zip(children, children[1:]):
            if isinstance(a, _FOLDABLE) and isinstance(b, (nn.BatchNorm1d, nn.BatchNorm2d)):
                prefix = f"{seq_name}." if seq_name else ""
                yield prefix + a_name, a, prefix + b_name, b


@torch.no_grad()
def _fold_into(layer: nn.Module, bn: nn.Module) -> None:
    assert isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d))
    assert bn.running_mean is not None and bn.running_var is not None
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - bn.running_mean.double() * scale
    if isinstance(layer, BakedTVConv):
        layer.weight.copy_(layer.weight.double() * scale.view(-1, 1, 1, 1))
        if layer.bias is None:
            layer.bias = shift.view(-1, 1, 1).to(layer.weight.dtype)
        else:
            layer.bias = (layer.bias.double() * scale.view(-1, 1, 1) + shift.view(-1, 1, 1)).to(layer.weight.dtype)
        return
    assert isinstance(layer, (nn.Conv2d, nn.Linear))
    if isinstance(layer, nn.Conv2d) and layer.groups != 1 and layer.out_channels != scale.numel():
        raise AssertionError("unexpected grouped conv shape")
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    layer.weight.copy_(layer.weight.double() * scale.view(shape))
    bias = layer.bias.double() * scale + shift if layer.bias is not None else shift
    layer.bias = nn.Parameter(bias.to(layer.weight.dtype), requires_grad=False)


def fold_batchnorms(model: nn.Module) -> list[tuple[str, str]]:
    """Fold every eval-mode BatchNorm that directly follows a conv, linear or baked TV layer.

    The BatchNorm becomes ``nn.Identity``. Returns the (layer, batchnorm) name pairs folded.
    """
    pairs = [(a_name, a, b_name, b) for a_name, a, b_name, b in _consecutive_pairs(model) if b.track_running_stats and b.running_var is not None]
    for a_name, a, b_name, b in pairs:
        _fold_into(a, b)
        _set_module(model, b_name, nn.Identity())
    return [(a_name, b_name) for a_name, _, b_name, _ in pairs]


def tv_layer_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (TVConv, BakedTVConv))]


def _nonfinite(model: nn.Module) -> list[str]:
    return [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_floating_point() and not bool(torch.isfinite(t).all())]


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------

def random_inputs(shape: tuple[int, ...], *, seed: int = 0) -> torch.Tensor:
    """Seeded inputs in [-1, 1], the range the reference networks were trained on."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) * 2 - 1


@torch.no_grad()
def verify_bake(
    unbaked: nn.Module,
    baked: nn.Module,
    *,
    folded: list[tuple[str, str]],
    rtol: float,
    batch: int = 2,
    seed: int = 0,
) -> BakeReport:
    """Compare ``baked`` with ``unbaked`` per TV layer (same captured inputs) and end to end."""
    cfg = config_of(unbaked)
    x = random_inputs((batch, *cfg.input_shape), seed=seed)
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out, name=n: captured.__setitem__(name, args[0]))
        for n, m in unbaked.named_modules()
        if isinstance(m, TVConv)
    ]
    try:
        ref = unbaked(x)
    finally:
        for h in hooks:
            h.remove()
    got = baked(x)
    bn_after = dict(folded)
    layers = []
    for name, inp in captured.items():
        tv_ref = unbaked.get_submodule(name)(inp)
        if name in bn_after:
            tv_ref = unbaked.get_submodule(bn_after[name])(tv_ref)
        layers.append(ErrorStats.between(name, baked.get_submodule(name)(inp), tv_ref))
    return BakeReport(tuple(layers), ErrorStats.between("network", got, ref), rtol, batch, seed)


# --------------------------------------------------------------------------------------------
# The bake
# --------------------------------------------------------------------------------------------

def bake_model(
    model: nn.Module,
    *,
    fold_bn: bool = True,
    dtype: torch.dtype = torch.float32,
    verify: bool = True,
    rtol: float | None = None,
    batch: int = 2,
    seed: int = 0,
    allow_nonfinite: bool = False,
    input_size: tuple[int, int] | None = None,
    resample: Resample | None = None,
    interpolation: Interpolation | None = None,
) -> BakeResult:
    """Bake a zoo model (from ``load_checkpoint`` or ``create_model``); ``model`` is not modified.

    ``dtype`` is the storage type of the baked kernels (float32 or float16); computation stays
    float32. With ``verify`` the result carries a ``BakeReport``; check ``report.ok``.
    ``input_size`` (H, W) re-bakes for another input size, ``resample`` ``"kernels"`` (default) or
    ``"generator"``, ``interpolation`` ``"bicubic"`` (default) or ``"bilinear"``: see
    ``tvexport.resize``.
    """
    if input_size is not None:
        from .resize import bake_resized

        options = dict(fold_bn=fold_bn, dtype=dtype, verify=verify, rtol=rtol, batch=batch, seed=seed, allow_nonfinite=allow_nonfinite)
        return bake_resized(model, input_size, resample=resample, interpolation=interpolation, bake=functools.partial(bake_model, **options))
    if resample is not None or interpolation is not None:
        raise TvexportError("resample and interpolation choose how to re-bake for another input size, which needs an input size", hint="add --input-size HxW")
    if dtype not in DEFAULT_RTOL:
        raise TvexportError(f"baked kernels can be stored as float32 or float16, not {dtype}")
    cfg = config_of(model)
    model = model.eval()
    bad = _nonfinite(model)
    if bad and not allow_nonfinite:
        raise TvexportError(
            f"{len(bad)} weight tensor{'s' * (len(bad) > 1)} hold{'s' * (len(bad) == 1)} NaN/Inf ({', '.join(bad[:3])})",
            hint="the checkpoint is damaged or diverged; pass --allow-nonfinite to bake anyway",
        )
    start = time.perf_counter()
    baked = copy.deepcopy(model)
    tv_layers: dict[str, dict[str, Any]] = {}
    for name in tv_layer_names(baked):
        layer = BakedTVConv.from_tvconv(baked.get_submodule(name))  # type: ignore[arg-type]
        _set_module(baked, name, layer)
    folded = fold_batchnorms(baked) if fold_bn else []
    for name in tv_layer_names(baked):
        layer = baked.get_submodule(name)
        assert isinstance(layer, BakedTVConv)
        if dtype != torch.float32:
            _to_storage_dtype(layer, name, dtype)
        g = layer.geometry
        tv_layers[name] = {"channels": g.channels, "k": g.k, "stride": g.stride, "h": g.h, "w": g.w, "bias": layer.bias_kind}
    baked.tvexport_config = cfg  # type: ignore[assignment]
    baked.eval()
    bake_seconds = time.perf_counter() - start

    report = None
    verify_seconds = 0.0
    if verify:
        t0 = time.perf_counter()
        report = verify_bake(model, baked, folded=folded, rtol=rtol if rtol is not None else DEFAULT_RTOL[dtype], batch=batch, seed=seed)
        verify_seconds = time.perf_counter() - t0
    return BakeResult(baked, cfg, tv_layers, folded, dtype, report, bake_seconds, verify_seconds)


def _to_storage_dtype(layer: BakedTVConv, name: str, dtype: torch.dtype) -> None:
    limit = torch.finfo(dtype).max
    for tensor_name in ("weight", "bias"):
        t = getattr(layer, tensor_name)
        if t is None:
            continue
        peak = float(t.abs().max())
        if peak > limit:
            raise TvexportError(
                f"baked {tensor_name} of {name} overflows {str(dtype).removeprefix('torch.')} (max |value| {peak:.3g} > {limit:.3g})",
                hint="bake with --dtype float32",
            )
        setattr(layer, tensor_name, t.to(dtype))


def check_report(report: BakeReport | None, *, source: str | Path | None = None) -> None:
    """Raise ``MismatchError`` if verification failed (naming ``source`` when given)."""
    if report is not None and not report.ok:
        w = report.worst
        where = f"{source}: " if source is not None else ""
        raise MismatchError(
            f"{where}baked model differs from the unbaked one: {w.name} max rel error {w.max_rel:.3g} > {report.rtol:g}",
            hint="if the checkpoint is sound and this precision is expected, loosen the tolerance (tvexport bake --rtol)",
        )


# --------------------------------------------------------------------------------------------
# The baked file
# --------------------------------------------------------------------------------------------

def baked_payload(result: BakeResult, *, source: Path | None = None) -> dict[str, Any]:
    """The self-describing dict stored in a ``.baked.pt`` file (plain types and tensors only)."""
    return {
        "format": BAKED_FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": result.config.to_dict(),
        "state_dict": {k: v.detach().contiguous() for k, v in result.model.state_dict().items()},
        "bake": {
            "tv_layers": result.tv_layers,
            "folded": [list(p) for p in result.folded],
            "dtype": str(result.dtype).removeprefix("torch."),
            "report": result.report.to_dict() if result.report is not None else None,
            "bake_seconds": result.bake_seconds,
            "verify_seconds": result.verify_seconds,
            "resize": result.resize,
            "source": source.name if source is not None else None,
            "tvexport_version": __version__,
            "torch_version": str(torch.__version__),
        },
    }


def save_baked(result: BakeResult, path: str | Path, *, force: bool = False, source: Path | None = None) -> Path:
    """Write ``result`` atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    payload = baked_payload(result, source=source)
    with atomic_output(path, force=force) as tmp:
        torch.save(payload, tmp)
    return path


def model_from_baked(ckpt: Checkpoint, *, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Rebuild the baked network stored in ``ckpt`` (a checkpoint of format ``baked``)."""
    payload = ckpt.payload
    assert payload is not None
    if payload.get("format_version") != FORMAT_VERSION:
        raise TvexportError(f"{ckpt.path}: baked format version {payload.get('format_version')} is not supported by tvexport {__version__}", hint="re-bake it from the original checkpoint")
    cfg = arch_config_for(ckpt)
    try:
        tv_layers = payload["bake"]["tv_layers"]
        folded = payload["bake"]["folded"]
        storage = {"float32": torch.float32, "float16": torch.float16}[payload["bake"]["dtype"]]
        with torch.device("meta"):
            model = create_model(cfg)
            for name, g in tv_layers.items():
                _set_module(model, name, BakedTVConv(int(g["channels"]), int(g["k"]), int(g["stride"]), int(g["h"]), int(g["w"]), bias=g["bias"], dtype=storage))
            for layer_name, bn_name in folded:
                _set_module(model, bn_name, nn.Identity())
                layer = model.get_submodule(layer_name)
                if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.bias is None:
                    layer.bias = nn.Parameter(torch.empty(layer.weight.shape[0]), requires_grad=False)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as err:
        raise damaged_metadata(ckpt.path, err) from None
    check_state_dict(model, ckpt.state_dict, source=ckpt.path, arch_name=f"baked {cfg.name}")
    model.load_state_dict(ckpt.state_dict, strict=True, assign=True)
    model.to(dtype)
    model.tvexport_config = cfg  # type: ignore[assignment]
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def load_baked(path: str | Path, *, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Load a ``.baked.pt`` file as an eval-mode module; kernels stored as float16 are cast to ``dtype``."""
    ckpt = read_checkpoint(path)
    if ckpt.format != "baked":
        raise TvexportError(f"{ckpt.path} is a {ckpt.format} checkpoint, not a baked file", hint=f"bake it first: tvexport bake {ckpt.path}")
    return model_from_baked(ckpt, dtype=dtype)


def default_output(source: Path) -> Path:
    """``<stem>.baked.pt`` beside the input (``model.pth.tar`` -> ``model.baked.pt``)."""
    name = source.name
    for suffix in (".pth.tar", ".ckpt", ".pth", ".pt", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return source.with_name(f"{name}.baked.pt")
