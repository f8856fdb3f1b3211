"""Baking: run each TVConv generator once, keep the constant kernels, fold BatchNorm, verify.

A baked network holds ``BakedTVConv`` layers (kernels (C, k*k, h, w) and an optional bias) in
place of every ``TVConv``; no generator weight survives. The bake is done in float64 (each
generator on a float64 copy of its layer, BatchNorm folded in float64) and only then rounded once
to the storage dtype, so its algebra is exact to float64 rounding (reported as the float64-bake
error). Verification runs the unbaked network in float64 (the truth) on seeded random inputs with
batch > 1 and checks, per TV layer (with the BatchNorm folded into it) and end to end, that the
baked model as stored is no worse than the unbaked float32 network (``accuracy.Tolerance``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ._io import atomic_output, check_output_path, output_file
from ._version import __version__
from .accuracy import KERNEL_PRECISION, Comparison, GeneratedTVConv, Reference, Tolerance, check_random_input, compare_outputs, depthwise_by_definition_, random_inputs
from .artifacts import check_output_suffix
from .checkpoint import BAKED_FORMAT, Checkpoint, damaged_metadata, output_beside, read_checkpoint, refuse_nonfinite
from .errors import MismatchError, TvexportError, about_file, refuse_oversized_input, sized_by_user
from .layers import BakedTVConv, TVConv, training_modes_kept
from .models.loading import arch_config_for, build_from_state_dict, check_state_dict
from .models.registry import ArchConfig, config_of, create_model
from .quantize import KERNEL_DTYPES, KernelDType, KernelError, cast_model_, check_fits, compress_layer, kernel_dtype_name, layer_summary
from .quantize import kernel_dtype as quantize_dtype

__all__ = [
    "BakeMismatch",
    "BakeReport",
    "BakeResult",
    "BakedCheckpoint",
    "bake_checkpoint",
    "bake_model",
    "check_bake",
    "fold_batchnorms",
    "load_baked",
    "load_checkpoint",
    "random_inputs",
    "save_baked",
]

if TYPE_CHECKING:
    from .resize import Interpolation, Resample

FORMAT_VERSION = 1
_FOLDABLE = (nn.Conv2d, nn.Linear, BakedTVConv)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BakeReport:
    """The baked model (as stored) against the float64 truth, per TV layer and end to end.

    Each row compares the baked layer (with the BatchNorm folded into it) or network with the
    unbaked one in float64, next to the unbaked float32 one's error (``baseline_*``);
    ``float64_bake`` holds, per row name, the max rel error of the bake before its cast to the
    storage dtype (the bake's own algebra: ~1e-15). ``bn_folding_cause`` is True when the check
    failed and the same bake without BatchNorm folding passes.
    """

    layers: tuple[Comparison, ...]
    network: Comparison
    float64_bake: Mapping[str, float]
    tolerance: Tolerance
    batch: int
    seed: int
    truth: str = "unbaked float64"
    baseline: str = "unbaked float32"
    bn_folding_cause: bool = False

    @property
    def rows(self) -> tuple[Comparison, ...]:
        """Every compared row: the TV layers, then the network."""
        return (*self.layers, self.network)

    @property
    def ok(self) -> bool:
        """Whether every row is within its allowance."""
        return all(c.ok for c in self.rows)

    @property
    def worst(self) -> Comparison:
        """The row closest to (or furthest beyond) its allowance."""
        return max(self.rows, key=lambda c: c.excess)

    @property
    def float64_bake_max_rel(self) -> float:
        """The largest ``float64_bake`` error over the rows (0.0 where there are none)."""
        return max(self.float64_bake.values(), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-serialisable dict, each row with its ``float64_bake_max_rel``."""
        def row(c: Comparison) -> dict[str, Any]:
            return {**c.to_dict(), "float64_bake_max_rel": self.float64_bake.get(c.name)}

        return {
            "ok": self.ok,
            "tolerance": self.tolerance.to_dict(),
            "truth": self.truth,
            "baseline": self.baseline,
            "batch": self.batch,
            "seed": self.seed,
            "float64_bake_max_rel": self.float64_bake_max_rel,
            "bn_folding_cause": self.bn_folding_cause,
            "network": row(self.network),
            "layers": [row(c) for c in self.layers],
        }


@dataclasses.dataclass
class BakeResult:
    """A baked model with what is needed to save and describe it."""

    model: nn.Module
    config: ArchConfig
    tv_layers: dict[str, dict[str, Any]]
    folded: list[tuple[str, str]]
    dtype: torch.dtype  # storage dtype of the TV kernels (float32, float16, int8)
    report: BakeReport | None
    bake_seconds: float
    verify_seconds: float = 0.0
    resize: dict[str, Any] | None = None  # re-baked for another input size: sizes, method, what was verified (resize.py)
    kernel_errors: dict[str, KernelError] = dataclasses.field(default_factory=dict)  # per TV layer: storage rounding vs the float64 bake

    @property
    def kernel_bytes(self) -> tuple[int, int]:
        """(bytes the TV layers store: kernels, int8 scales, bias; the bytes of the same layers as float32)."""
        layers = [t["kernels"] for t in self.tv_layers.values()]
        return sum(s["bytes"] for s in layers), sum(s["float32_bytes"] for s in layers)


class BakeMismatch(MismatchError):
    """Bake verification failed; carries the ``BakeResult`` (and its report) for printing."""

    def __init__(self, message: str, *, result: BakeResult, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


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
    """Fold ``bn`` into ``layer`` (arithmetic in float64, stored in the layer's dtype)."""
    assert isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d))
    assert bn.running_mean is not None and bn.running_var is not None
    var = bn.running_var.double()
    weight = bn.weight.double() if bn.weight is not None else torch.ones_like(var)  # affine=False: weight 1, bias 0
    bias = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = weight / torch.sqrt(var + bn.eps)
    shift = bias - bn.running_mean.double() * scale
    if isinstance(layer, BakedTVConv):
        if layer.weight.dtype not in (torch.float32, torch.float64):
            raise TvexportError(
                f"cannot fold a BatchNorm into {kernel_dtype_name(layer.weight.dtype)} TV kernels: they would be rounded again",
                hint="fold at bake time (tvexport bake without --no-fold-bn), where the float64 kernels are folded before rounding",
            )
        layer.weight.copy_(layer.weight.double() * scale.view(-1, 1, 1, 1))
        if layer.bias is None:  # the shift alone: one value per channel
            layer.set_kernels(layer.weight, shift.view(-1, 1, 1).to(layer.weight.dtype), bias_kind="channel")
        else:  # a TV bias map (or an earlier shift) scaled and shifted: keeps its kind
            bias = (layer.bias.double() * scale.view(-1, 1, 1) + shift.view(-1, 1, 1)).to(layer.weight.dtype)
            layer.set_kernels(layer.weight, bias, bias_kind=layer.bias_kind)
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
    Baked TV kernels stored float16 or int8 are refused (folding would round them again).
    """
    pairs = [(a_name, a, b_name, b) for a_name, a, b_name, b in _consecutive_pairs(model) if b.track_running_stats and b.running_var is not None]
    for _, a, b_name, b in pairs:
        _fold_into(a, b)
        _set_module(model, b_name, nn.Identity())
    return [(a_name, b_name) for a_name, _, b_name, _ in pairs]


def tv_layer_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (TVConv, BakedTVConv))]


def _nonfinite(model: nn.Module) -> list[str]:
    return [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def _bake_float64(model: nn.Module, reference: Reference, *, fold_bn: bool) -> tuple[nn.Module, list[tuple[str, str]]]:
    """The baked network in float64: ``reference``'s float64 generator outputs as kernels, folded."""
    baked = copy.deepcopy(reference.float64_model)
    for name in tv_layer_names(model):
        generated = baked.get_submodule(name)
        assert isinstance(generated, GeneratedTVConv)
        layer = BakedTVConv.from_tvconv(model.get_submodule(name), generated=(generated.weight, generated.bias))  # type: ignore[arg-type]
        _set_module(baked, name, layer)
    folded = fold_batchnorms(baked) if fold_bn else []
    return baked.eval(), folded


def _stored(baked64: nn.Module, dtype: torch.dtype) -> tuple[nn.Module, dict[str, KernelError]]:
    """The deployable copy of ``baked64``: TV kernels in ``dtype`` (rounded once from float64:
    float32, float16, or int8 with per-(channel, tap) scales, ``tvexport.quantize``), every other
    weight float32; with the error the rounding introduced in each layer's kernels."""
    stored = copy.deepcopy(baked64)
    errors = {name: compress_layer(layer, dtype, name=name) for name, layer in stored.named_modules() if isinstance(layer, BakedTVConv)}
    for name, t in [*stored.named_parameters(), *stored.named_buffers()]:  # what the float32 cast would turn into Inf
        if t.dtype == torch.float64:
            check_fits(t, torch.float32, name=f"{name} (baked)")
    return cast_model_(stored, torch.float32).eval(), errors


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def verify_bake(
    reference: Reference,
    baked64: nn.Module,
    baked: nn.Module,
    *,
    folded: list[tuple[str, str]],
    tolerance: Tolerance,
    batch: int = 2,
    seed: int = 0,
) -> BakeReport:
    """Compare ``baked`` (as stored) and ``baked64`` (before the cast; its depthwise convs are
    replaced by ``DepthwiseByDefinition``, in place) with ``reference``'s float64 truth, per TV
    layer (each fed the truth's own input to it) and end to end."""
    depthwise_by_definition_(baked64)
    truth_model, float32_model = reference.truth_model, reference.float32_model
    x = random_inputs((batch, *reference.config.input_shape), seed=seed)
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out, name=n: captured.__setitem__(name, args[0]))
        for n, m in truth_model.named_modules()
        if isinstance(m, GeneratedTVConv)
    ]
    try:
        truth = reference.truth(x)
    finally:
        for h in hooks:
            h.remove()
    bn_after = dict(folded)

    def run(model: nn.Module, name: str, inp: torch.Tensor, *, with_bn: bool) -> torch.Tensor:
        out = model.get_submodule(name)(inp)
        return model.get_submodule(bn_after[name])(out) if with_bn and name in bn_after else out

    layers, exact = [], {}
    for name, inp in captured.items():
        layer_truth = run(truth_model, name, inp, with_bn=True)
        original = run(float32_model, name, inp.float(), with_bn=True)
        layers.append(compare_outputs(name, run(baked, name, inp.float(), with_bn=False), layer_truth, tolerance=tolerance, baseline=original))
        exact[name] = compare_outputs(name, run(baked64, name, inp, with_bn=False), layer_truth, tolerance=tolerance).max_rel
    network = compare_outputs("network", baked(x), truth, tolerance=tolerance, baseline=reference.float32(x))
    exact["network"] = compare_outputs("network", baked64(x.double()), truth, tolerance=tolerance).max_rel
    return BakeReport(tuple(layers), network, exact, tolerance, batch, seed, reference.truth_label, reference.baseline_label)


# --------------------------------------------------------------------------------------------
# The bake
# --------------------------------------------------------------------------------------------

def _kernel_dtype(kernel_dtype: KernelDType | torch.dtype | None, dtype: torch.dtype | None) -> torch.dtype:
    """``kernel_dtype`` (or its older name ``dtype``) as a torch dtype; float32 by default."""
    if kernel_dtype is not None and dtype is not None and quantize_dtype(kernel_dtype) != quantize_dtype(dtype):
        given = kernel_dtype_name(quantize_dtype(kernel_dtype)), kernel_dtype_name(quantize_dtype(dtype))
        raise TvexportError(f"--kernel-dtype {given[0]} and --dtype {given[1]} disagree", hint="give --kernel-dtype only (--dtype is its older name)")
    return quantize_dtype(kernel_dtype if kernel_dtype is not None else dtype if dtype is not None else torch.float32)


def _resize_options(input_size: object, resample: str | None, interpolation: str | None) -> tuple[int, int] | None:
    """``input_size`` checked (``check_input_size``), before any work; ``resample`` and
    ``interpolation`` are refused without it and checked with it."""
    from .resize import check_input_size, check_resample

    if input_size is None:
        if resample is not None or interpolation is not None:
            raise TvexportError("--resample and --interpolation choose how to re-bake for another input size, and no --input-size was given",
                                hint="add --input-size HxW, or drop them")
        return None
    size = check_input_size(input_size)
    check_resample(resample, interpolation)
    return size


VERIFY_BATCH = 2  # images of the verification inputs unless --batch says otherwise


def _verification_inputs(verify: bool, *, rtol: float | None, atol: float | None, batch: int | None, seed: int | None) -> tuple[int, int]:
    """The (batch, seed) of the verification inputs (default 2, 0); options of the verification
    given without it, a batch below 1 and a seed beyond 64 bits are refused."""
    if not verify:
        if rtol is not None or atol is not None:
            raise TvexportError("--rtol/--atol do not apply with --no-verify", hint="drop one of them")
        for name, value, what in (("--batch", batch, "sizes"), ("seed", seed, "seeds")):
            if value is not None:
                raise TvexportError(f"{name} {what} the verification inputs; it does not apply with --no-verify (verify=False)", hint="drop one of them")
    check_random_input(batch=batch, seed=seed)
    return (VERIFY_BATCH if batch is None else batch), (0 if seed is None else seed)


def bake_model(
    model: nn.Module,
    *,
    fold_bn: bool = True,
    kernel_dtype: KernelDType | torch.dtype | None = None,
    dtype: torch.dtype | None = None,
    verify: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    batch: int | None = None,
    seed: int | None = None,
    allow_nonfinite: bool = False,
    reference: Reference | None = None,
    input_size: tuple[int, int] | None = None,
    resample: Resample | None = None,
    interpolation: Interpolation | None = None,
) -> BakeResult:
    """Bake a zoo model (from ``load_checkpoint`` or ``create_model``); ``model`` is not modified
    (it runs in eval mode, and each module's training mode is restored afterwards). A model that
    is already baked (``load_checkpoint`` of a ``.baked.pt``) is refused: bake its original checkpoint.

    ``kernel_dtype`` is the storage type of the baked kernels: float32 (default), float16, or int8
    with one float32 scale per (channel, tap) (``tvexport.quantize``); ``dtype`` is its older
    name. The bake is done in float64 and rounded once to it; computation stays float32. With
    ``verify`` the result carries a ``BakeReport`` (``Tolerance`` with floors ``rtol``/``atol``,
    default by kernel dtype) on ``batch`` (default 2) random inputs seeded with ``seed`` (default 0);
    check ``report.ok`` or call ``check_bake``. Without ``verify``, these four are refused.
    ``reference`` (``Reference(model)``) may be passed to share its float64 run with a later check.
    ``input_size`` (H, W) re-bakes for another input size (the size ``model`` is built at: the
    ordinary bake), ``resample`` ``"kernels"`` (default) or ``"generator"``, ``interpolation``
    ``"bicubic"`` (default) or ``"bilinear"``: see ``tvexport.resize``. ``fold_bn`` (default True) folds each eval-mode BatchNorm that directly
    follows a conv, linear or TV layer into it (``fold_batchnorms``); ``allow_nonfinite`` bakes weights holding NaN/Inf instead of refusing them.
    """
    if isinstance(model, nn.Module) and any(isinstance(m, BakedTVConv) for m in model.modules()):
        raise TvexportError("the model is already baked (its TV layers hold constant kernels): there is nothing to bake",
                            hint="export or save it as it is, or bake the original checkpoint (with --input-size for another input size)")
    # the model is the caller's, not ours to switch; anything else: config_of refuses it
    with training_modes_kept(model) if isinstance(model, nn.Module) else contextlib.nullcontext():
        inputs = _verification_inputs(verify, rtol=rtol, atol=atol, batch=batch, seed=seed)
        input_size = _resize_options(input_size, resample, interpolation)
        if input_size is not None and input_size == config_of(model).input_size:  # resampling to its own size is the identity: the ordinary bake, verified as usual
            input_size = resample = interpolation = None
        if input_size is not None:
            from .resize import bake_resized

            if reference is not None:
                raise TvexportError("a reference of the trained-size network cannot check a re-bake for another input size", hint="pass no reference with input_size")
            options = dict(fold_bn=fold_bn, kernel_dtype=kernel_dtype, dtype=dtype, verify=verify, rtol=rtol, atol=atol, batch=batch, seed=seed, allow_nonfinite=allow_nonfinite)
            return bake_resized(model, input_size, resample=resample, interpolation=interpolation, bake=functools.partial(bake_model, **options))
        batch, seed = inputs
        dtype = _kernel_dtype(kernel_dtype, dtype)
        tolerance = Tolerance.default(KERNEL_PRECISION[dtype], rtol=rtol, atol=atol)
        cfg = config_of(model)
        model = model.eval()
        bad = _nonfinite(model)
        if bad and not allow_nonfinite:
            raise TvexportError(
                f"{len(bad)} weight tensor{'s' * (len(bad) > 1)} hold{'s' * (len(bad) == 1)} NaN/Inf ({', '.join(bad[:3])})",
                hint="the checkpoint is damaged or diverged; pass --allow-nonfinite to bake anyway",
            )
        if reference is not None and (reference.model is not model or reference.kernels != dtype):
            raise TvexportError("the reference was built for another model or kernel dtype", hint="pass Reference(model, kernels=dtype), or none")
        start = time.perf_counter()
        reference = reference or Reference(model, kernels=dtype)
        baked64, folded = _bake_float64(model, reference, fold_bn=fold_bn)
        bad = _nonfinite(baked64)  # from finite weights, e.g. a BatchNorm with a negative running_var
        if bad and not allow_nonfinite:
            raise TvexportError(
                f"baking made NaN/Inf in {len(bad)} tensor{'s' * (len(bad) > 1)} ({', '.join(bad[:3])}) from finite weights",
                hint="the checkpoint is damaged (e.g. a negative BatchNorm running_var); pass --allow-nonfinite to bake anyway",
            )
        baked, kernel_errors = _stored(baked64, dtype)
        tv_layers: dict[str, dict[str, Any]] = {}
        for name in tv_layer_names(baked):
            layer = baked.get_submodule(name)
            assert isinstance(layer, BakedTVConv)
            g = layer.geometry
            tv_layers[name] = {"channels": g.channels, "k": g.k, "stride": g.stride, "h": g.h, "w": g.w, "bias": layer.bias_kind,
                               "kernels": {**layer_summary(layer), "error": kernel_errors[name].to_dict()}}
        baked.tvexport_config = cfg  # type: ignore[assignment]
        bake_seconds = time.perf_counter() - start

        report = None
        verify_seconds = 0.0
        if verify:
            t0 = time.perf_counter()
            report = verify_bake(reference, baked64, baked, folded=folded, tolerance=tolerance, batch=batch, seed=seed)
            if not report.ok and folded:  # is BatchNorm folding the cause? the same bake, unfolded
                unfolded64, _ = _bake_float64(model, reference, fold_bn=False)
                alt = verify_bake(reference, unfolded64, _stored(unfolded64, dtype)[0], folded=[], tolerance=tolerance, batch=batch, seed=seed)
                report = dataclasses.replace(report, bn_folding_cause=alt.ok)
            verify_seconds = time.perf_counter() - t0
        return BakeResult(baked, cfg, tv_layers, folded, dtype, report, bake_seconds, verify_seconds, kernel_errors=kernel_errors)


def check_bake(result: BakeResult, *, source: str | Path | None = None) -> None:
    """Raise ``BakeMismatch`` if verification failed (naming ``source`` when given)."""
    report = result.report
    if report is None or report.ok:
        return
    w = report.worst
    where = f"{source}: " if source is not None else ""
    if report.bn_folding_cause:
        hint = "BatchNorm folding causes it (the same bake without folding passes): bake with tvexport bake --no-fold-bn"
    else:
        hint = "this points to a damaged checkpoint or a bake bug; if this precision is expected, raise the floor with --rtol"
    raise BakeMismatch(f"{where}baked model differs from the unbaked one: {w.name} {w.verdict()}", result=result, hint=hint)
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


def check_baked_output(path: str | Path, *, source: Path | None = None) -> None:
    """Refuse a baked file's output named as another kind of file (``x.onnx``, ``x.pt2``, ``x.engine``)."""
    check_output_suffix(path, writes="baked", by="tvexport bake", source=source)


def _not_a_bake_result(result: object) -> str:
    """What save_baked says where it is given something other than a BakeResult, and what to pass."""
    if isinstance(result, BakedCheckpoint):
        fix = "bake_checkpoint has saved it already; to save it again pass its .result"
    elif isinstance(result, nn.Module):
        fix = "bake the model first: save_baked(bake_model(model), path)"
    else:
        fix = "pass what bake_model returns"
    return f"save_baked takes a BakeResult, not {type(result).__name__}; {fix}"


def save_baked(result: BakeResult, path: str | Path, *, force: bool = False, source: Path | None = None) -> Path:
    """Write ``result`` to ``path`` atomically (temporary file in the same directory, then rename).

    An existing ``path`` is refused unless ``force``, and so is a ``path`` named as another kind
    of file (``.onnx``, ``.pt2``, an engine); ``source``, the checkpoint baked, is recorded by name
    in the file's metadata.
    """
    path = Path(path)
    check_baked_output(path, source=source)
    if not isinstance(result, BakeResult):
        raise TypeError(_not_a_bake_result(result))
    payload = baked_payload(result, source=source)
    with atomic_output(path, force=force) as tmp:
        torch.save(payload, tmp)
    return path


def model_from_baked(ckpt: Checkpoint, *, dtype: torch.dtype = torch.float32, arch: str | None = None) -> nn.Module:
    """Rebuild the baked network stored in ``ckpt`` (a checkpoint of format ``baked``); an ``arch``
    the caller was given must be the one the file records."""
    payload = ckpt.payload
    assert payload is not None
    if payload.get("format_version") != FORMAT_VERSION:
        raise TvexportError(f"{ckpt.path}: baked format version {payload.get('format_version')} is not supported by tvexport {__version__}",
                            hint="re-bake it from the original checkpoint")
    cfg = arch_config_for(ckpt, arch=arch)
    try:
        tv_layers = payload["bake"]["tv_layers"]
        folded = payload["bake"]["folded"]
        storage = KERNEL_DTYPES[payload["bake"]["dtype"]]
        with torch.device("meta"):
            model = create_model(cfg)
            for name, g in tv_layers.items():
                bias = g["bias"]
                if bias == "map" and int(g["h"]) == int(g["w"]) == 1 and not model.get_submodule(name).geometry.bias:
                    # Files baked before the bias kind was layer state recorded a folded BatchNorm
                    # shift in a 1x1 layer as "map" (read off shapes, ambiguous there). Without a
                    # TV bias map in the architecture, a bias can only be that shift.
                    bias = "channel"
                _set_module(model, name, BakedTVConv(int(g["channels"]), k=int(g["k"]), stride=int(g["stride"]), h=int(g["h"]), w=int(g["w"]), bias=bias, dtype=storage))
            for layer_name, bn_name in folded:
                _set_module(model, bn_name, nn.Identity())
                layer = model.get_submodule(layer_name)
                if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.bias is None:
                    layer.bias = nn.Parameter(torch.empty(layer.weight.shape[0]), requires_grad=False)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as err:
        raise damaged_metadata(ckpt.path, err) from None
    check_state_dict(model, ckpt.state_dict, source=ckpt.path, arch_name=f"baked {cfg.name}")
    model.load_state_dict(ckpt.state_dict, strict=True, assign=True)
    cast_model_(model, dtype)  # float16/int8 kernels stay as stored
    model.tvexport_config = cfg  # type: ignore[assignment]
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def load_baked(path: str | Path, *, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Load a ``.baked.pt`` file as an eval-mode module computing in ``dtype``; TV kernels stay as
    stored (float16, or int8 with their scales: converted tap by tap in ``forward``)."""
    ckpt = read_checkpoint(path)
    if ckpt.format != "baked":
        raise TvexportError(f"{ckpt.path} is a {ckpt.format} checkpoint, not a baked file", hint=f"bake it first: tvexport bake {ckpt.path}")
    return model_from_baked(ckpt, dtype=dtype)


def default_output(source: Path) -> Path:
    """``<stem>.baked.pt`` beside the input (``model.pth.tar`` -> ``model.baked.pt``)."""
    return output_beside(source, ".baked.pt")


# --------------------------------------------------------------------------------------------
# From files: load anything, bake a checkpoint
# --------------------------------------------------------------------------------------------

def load_checkpoint(path: str | Path, *, arch: str | None = None) -> nn.Module:
    """Load the checkpoint at ``path`` (any supported format) as an eval-mode ``nn.Module``; baked
    files load baked. ``arch`` overrides the detected architecture (a baked file's must match it)."""
    ckpt = read_checkpoint(path)
    if ckpt.format == "baked":
        return model_from_baked(ckpt, arch=arch)
    return build_from_state_dict(arch_config_for(ckpt, arch=arch), ckpt.state_dict, source=ckpt.path)


@dataclasses.dataclass
class BakedCheckpoint:
    """What ``bake_checkpoint`` did: the bake and its report, the file written, sizes, timing."""

    source: Path
    output: Path
    result: BakeResult
    dropped: dict[str, tuple[int, ...]]  # training-only keys of the checkpoint (e.g. head.weight)
    source_bytes: int
    output_bytes: int
    seconds: float


def bake_checkpoint(
    source: str | Path,
    output: str | Path | None = None,
    *,
    arch: str | None = None,
    kernel_dtype: KernelDType | torch.dtype | None = None,
    dtype: torch.dtype | None = None,
    fold_bn: bool = True,
    verify: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    batch: int | None = None,
    seed: int | None = None,
    allow_nonfinite: bool = False,
    input_size: tuple[int, int] | None = None,
    resample: Resample | None = None,
    interpolation: Interpolation | None = None,
    force: bool = False,
) -> BakedCheckpoint:
    """``tvexport bake`` as one call: read ``source``, bake, verify, write ``<stem>.baked.pt``
    beside it (or ``output``; an existing file only with ``force``).

    ``arch`` overrides the architecture detected from the checkpoint. ``kernel_dtype`` (float32,
    float16, int8; ``dtype`` is its older name), ``fold_bn``, ``allow_nonfinite``, ``input_size``,
    ``resample`` and ``interpolation`` are as in ``tvexport.bake`` (``bake_model``); the floors
    ``rtol``/``atol`` (default by kernel dtype) and ``batch`` rows of verification input (default 2)
    seeded with ``seed`` (default 0) are refused without ``verify``. Raises
    ``BakeMismatch`` (carrying the result and its report; nothing is written) when the baked model
    fails verification, ``TvexportError`` on bad input before any work.
    """
    start = time.perf_counter()
    # The option checks of bake_model (and bake_resized's check_resample), run here once more only
    # to refuse bad options before the checkpoint is read: each is cheap, and the public functions
    # keep their own checks rather than take a flag saying they were done.
    _verification_inputs(verify, rtol=rtol, atol=atol, batch=batch, seed=seed)
    kernels = _kernel_dtype(kernel_dtype, dtype)
    Tolerance.default(KERNEL_PRECISION[kernels], rtol=rtol, atol=atol)
    input_size = _resize_options(input_size, resample, interpolation)
    source = Path(source)
    out = output_file(output) if output is not None else default_output(source)
    check_baked_output(out, source=source)
    ckpt = read_checkpoint(source)
    if ckpt.format == "baked":
        if input_size is not None:  # a re-bake for another size starts from the generators, which a baked file no longer holds
            raise TvexportError(f"{source} is already baked: its TV generators are gone, so it cannot be re-baked for another input size",
                                hint="re-bake the original checkpoint with --input-size")
        raise TvexportError(f"{source} is already baked", hint=f"export it directly: tvexport export {source}")
    check_output_path(out, force=force, source=source)
    if not allow_nonfinite:
        refuse_nonfinite(ckpt, hint="the checkpoint is damaged or diverged; pass --allow-nonfinite to bake anyway")
    cfg = arch_config_for(ckpt, arch=arch)
    if cfg.atom != "tvconv":
        raise TvexportError(f"{source} is a {cfg.name} {cfg.atom} baseline without TVConv layers; there is nothing to bake",
                            hint=f"export it as it is (tvexport export {source}), or compare it with a TV network: tvexport bench TV_CHECKPOINT --baseline {source}")
    hw = input_size or cfg.input_size
    verify_batch = VERIFY_BATCH if batch is None else batch
    what, smaller = f"bake {source} at input size {'x'.join(map(str, hw))} with a verification batch of {verify_batch}", "choose a smaller --input-size or --batch"
    if verify:  # its float32 verification input alone past memory: refused before the network is built, baked and verified
        refuse_oversized_input((verify_batch, cfg.input_shape[0], *hw), itemsize=4, what=what, hint=smaller)
    model = build_from_state_dict(cfg, ckpt.state_dict, source=ckpt.path)
    with sized_by_user(what, hint=smaller):
        with about_file(source):  # e.g. float16 overflow: say which file
            result = bake_model(model, fold_bn=fold_bn, kernel_dtype=kernels, verify=verify, rtol=rtol, atol=atol, batch=batch, seed=seed,
                                allow_nonfinite=allow_nonfinite, input_size=input_size, resample=resample, interpolation=interpolation)
    check_bake(result, source=source)
    save_baked(result, out, force=force, source=source)
    return BakedCheckpoint(source, out, result, dict(ckpt.dropped), source.stat().st_size, out.stat().st_size, time.perf_counter() - start)
