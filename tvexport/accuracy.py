"""How every numerical check measures: against a float64 truth, no worse than float32 torch.

Bake verification, ``export`` and ``validate`` all ask one question: does the candidate (the baked
model, an exported artefact) compute the same function as the network it came from? Two float32
computations of the same function differ by rounding, in an amount that depends on summation
order and on the network's conditioning (a BatchNorm that subtracts a large mean from nearly
constant features turns 1e-7 rounding into 1e-5 output noise). So the yardstick is a
``Reference``: the original network computed in float64 (the truth) and in float32 (what torch
itself achieves). ``Tolerance`` is the one acceptance rule::

    max|candidate - truth| <= factor * max|float32 original - truth| + atol + rtol * max|truth|

and ``Comparison`` is its outcome for one output, as data the CLI prints (Polygraphy style).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .errors import TvexportError
from .layers import BakedTVConv, TVConv, training_modes_kept, tv_depthwise_unfold
from .models.registry import config_of
from .quantize import bias_dtype, compress_kernels, compress_layer, dequantize

__all__ = [
    "DEFAULT_RTOL",
    "Comparison",
    "DepthwiseByDefinition",
    "GeneratedTVConv",
    "Precision",
    "Reference",
    "Tolerance",
    "check_random_input",
    "compare_outputs",
    "depthwise_by_definition_",
    "random_inputs",
]

Precision = Literal["float32", "float16_kernels", "int8_kernels", "float16", "bfloat16"]
# The precision of a network computing in float32 with TV kernels stored as the key dtype.
KERNEL_PRECISION: dict[torch.dtype, Precision] = {torch.float32: "float32", torch.float16: "float16_kernels", torch.int8: "int8_kernels"}

# The floor (``rtol``) of the rule by the precision of the candidate, from measurements on every
# zoo network at reference size with three kinds of BatchNorm statistics
# (benchmarks/results/bake_report*.md):
# * float32: float32 weights and arithmetic. The float32 original is 1.7e-7..3.5e-5 away from
#   float64 at the output; correctly baked models are 1.6e-7..4.3e-5 away, at most 1.24x the
#   original's error, and never above 0.54 of the allowance. 1e-5 of max|truth| is where float32
#   noise of a well-conditioned network ends; real bugs (tap order, stride-2 offsets, a dropped
#   bias, a wrong BatchNorm fold) land orders of magnitude above it.
# * float16_kernels: TV kernels stored as float16 (unit roundoff 2**-11 = 4.9e-4), float32
#   arithmetic (``bake --kernel-dtype float16``), measured against the float32 original with its kernels
#   rounded to float16 (``Reference(kernels=torch.float16)``): baked 5e-5..1.0e-2, yardstick
#   1e-5..1.0e-2, ratio up to 6.3 where the yardstick is tiny; a floor of 5e-3 (10 roundoffs) keeps
#   every network within 0.7 of its allowance.
# * int8_kernels: TV kernels stored as int8 with one float32 scale per (channel, tap)
#   (``--kernel-dtype int8``), float32 arithmetic, against the float32 original with its generator
#   outputs quantized the same way (``Reference(kernels=torch.int8)``; folding BatchNorm scales a
#   plane and its scale alike, so both hold the same codes): on every zoo network with three kinds
#   of BatchNorm statistics each row is within 1.007x of its yardstick (no floor needed), and the
#   yardstick is never small (int8 steps are 1/127 of a plane's peak: 2.5e-4..2.8e-1 at the
#   output). A floor of 1e-3 (a quarter of the largest per-value error, half a step, 1/254) keeps
#   the rule meaningful where quantization happens to cancel, far below what bugs cost (a wrong
#   tap order: 4e-2 on a one-layer network). benchmarks/results/compressed_kernels.md.
# * float16: float16 weights and activations (``export --dtype float16``).
# * bfloat16: a backend computing in bfloat16 (``validate --backend openvino-bf16``): 4e-2,
#   float16's floor (1e-2, about 10 eps of float16, 2**-10) times 4, which is about 5 eps of
#   bfloat16 (2**-7, 7.8e-3). The demo network measures 5.4e-3 on OpenVINO's bfloat16 path, 7x
#   below; float32's 1e-5 always failed it.
DEFAULT_RTOL: dict[str, float] = {"float32": 1e-5, "float16_kernels": 5e-3, "int8_kernels": 1e-3, "float16": 1e-2, "bfloat16": 4e-2}
DEFAULT_FACTOR = 2.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tolerance:
    """The acceptance rule of bake verification, export and validate (one rule, one meaning).

    Errors are measured against the float64 truth. A candidate passes when::

        max|candidate - truth| <= factor * max|float32 original - truth| + atol + rtol * max|truth|

    that is, when it is no worse than the network computed by torch in float32, up to ``factor``,
    plus a floor: ``rtol`` relative to the output's scale (what the candidate's own storage
    precision may add; it also keeps the rule meaningful where float32 happens to be exact) and an
    absolute ``atol``. ``--rtol`` / ``--atol`` of ``bake``, ``export`` and ``validate`` set these.
    """

    rtol: float
    atol: float = 0.0
    factor: float = DEFAULT_FACTOR

    def __post_init__(self) -> None:
        for name in ("rtol", "atol", "factor"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise TvexportError(f"{name} must be a finite number >= 0, got {value!r}", hint=f"e.g. --{name} 1e-5" if name != "factor" else None)

    @classmethod
    def default(cls, precision: Precision = "float32", *, rtol: float | None = None, atol: float | None = None) -> Tolerance:
        """The rule for a candidate of ``precision``; ``rtol``/``atol`` override its floors."""
        if precision not in DEFAULT_RTOL:
            raise TvexportError(f"unknown precision {precision!r}", hint=f"choose one of {', '.join(DEFAULT_RTOL)}")
        return cls(rtol=DEFAULT_RTOL[precision] if rtol is None else rtol, atol=0.0 if atol is None else atol)

    def allowed(self, *, baseline: float, scale: float) -> float:
        """The largest max-abs error that passes, given the float32 original's (``baseline``)
        and max|truth| (``scale``)."""
        return self.factor * baseline + self.atol + self.rtol * scale

    def describe(self) -> str:
        """``2 x float32 + 1e-05 rel`` (the rule in a table title)."""
        text = f"{self.factor:g} x float32 + {self.rtol:g} rel"
        return text + (f" + {self.atol:g} abs" if self.atol else "")

    def to_dict(self) -> dict[str, float]:
        """The fields as a dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One output checked against the float64 truth (Polygraphy-style statistics).

    ``max_abs``/``max_rel``/``p99_abs``/``cosine`` describe the candidate (``p99_abs``: the 99th
    percentile of |candidate - truth|, linear interpolation as in ``tvexport.profile``); ``baseline_*`` the
    float32 original on the same input (None where there is none: then only the floor applies).
    Relative errors are norm-wise, max|d| / max|truth| (``ref_max``): robust where values are
    near zero.
    """

    name: str
    max_abs: float
    max_rel: float
    p99_abs: float
    cosine: float
    ref_max: float
    baseline_max_abs: float | None
    baseline_max_rel: float | None
    tolerance: Tolerance

    @property
    def rtol(self) -> float:
        """The tolerance's relative term."""
        return self.tolerance.rtol

    @property
    def atol(self) -> float:
        """The tolerance's absolute term."""
        return self.tolerance.atol

    @property
    def allowed(self) -> float:
        """The largest max-abs error that passes."""
        return self.tolerance.allowed(baseline=self.baseline_max_abs or 0.0, scale=self.ref_max)

    @property
    def allowed_rel(self) -> float:
        """``allowed`` relative to max|truth| (``ref_max``; ``allowed`` itself where that is 0)."""
        return self.allowed / self.ref_max if self.ref_max > 0 else self.allowed

    @property
    def ok(self) -> bool:
        """Within the allowance; a non-finite error or allowance never passes (nothing was measured)."""
        return math.isfinite(self.max_abs) and math.isfinite(self.allowed) and self.max_abs <= self.allowed

    @property
    def excess(self) -> float:
        """max_abs / allowed: above 1 fails; ranks failures."""
        return self.max_abs / self.allowed if self.allowed > 0 else (math.inf if self.max_abs > 0 else 0.0)

    def verdict(self) -> str:
        """``max rel 3.1e-05 vs float64 (float32 original 1.2e-05, allowed 3.4e-05)``."""
        base = f"float32 original {self.baseline_max_rel:.3g}, " if self.baseline_max_rel is not None else ""
        return f"max rel {self.max_rel:.3g} vs float64 ({base}allowed {self.allowed_rel:.3g})"

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict, with ``allowed``, ``allowed_rel`` and ``ok``."""
        d = dataclasses.asdict(self)
        d.update(tolerance=self.tolerance.to_dict(), allowed=self.allowed, allowed_rel=self.allowed_rel, ok=self.ok)
        return d


def _as_float64(t: np.ndarray | torch.Tensor) -> torch.Tensor:
    return (t if isinstance(t, torch.Tensor) else torch.from_numpy(np.asarray(t))).detach().cpu().double().flatten()


def compare_outputs(
    name: str,
    got: np.ndarray | torch.Tensor,
    truth: np.ndarray | torch.Tensor,
    *,
    tolerance: Tolerance,
    baseline: np.ndarray | torch.Tensor | None = None,
) -> Comparison:
    """Compare ``got`` (and the float32 original ``baseline``) with ``truth`` under ``tolerance``;
    outputs without values (an input of no rows) are refused: a comparison of nothing never passes.
    So is a ``baseline`` holding NaN/Inf where ``truth`` is finite: float32 cannot compute the
    network there (its activations overflow), so no float32 yardstick, nor candidate, means anything."""
    g, r = _as_float64(got), _as_float64(truth)
    if g.shape != r.shape:
        raise TvexportError(f"{name}: output has {g.numel()} values, reference has {r.numel()}", hint="input or output shapes differ between the artefact and the model")
    if g.numel() == 0:
        raise TvexportError(f"{name}: the output holds no values, so nothing can be compared", hint="give an input of at least one row")
    scale = float(r.abs().max())
    diff = (g - r).abs()
    max_abs = float(diff.max())
    if not bool(torch.isfinite(g).all()):
        max_abs = math.inf
    base_abs = base_rel = None
    if baseline is not None:
        b = _as_float64(baseline)
        if not bool(torch.isfinite(b).all()) and bool(torch.isfinite(r).all()):
            raise TvexportError(
                f"{name}: the float32 network computes Inf/NaN on the verification input, where its float64 truth is finite "
                f"(max |value| {scale:.3g}): float32 activations overflow, so no float32 result can be verified",
                hint="check the checkpoint: weights this large point to a damaged or diverged training run",
            )
        base_abs = float((b - r).abs().max()) if b.numel() else 0.0
        base_rel = base_abs / scale if scale > 0 else base_abs
    return Comparison(
        name=name,
        max_abs=max_abs,
        max_rel=max_abs / scale if scale > 0 else max_abs,
        p99_abs=float(np.percentile(diff.numpy(), 99)),  # linear interpolation, as tvexport.profile.stats.percentile
        cosine=float(torch.nn.functional.cosine_similarity(g, r, dim=0)),
        ref_max=scale,
        baseline_max_abs=base_abs,
        baseline_max_rel=base_rel,
        tolerance=tolerance,
    )


def check_random_input(*, batch: int | None = None, seed: int | None = None) -> None:
    """Refuse, before any work, a ``batch`` (rows of the random input) below 1 and a ``seed`` that
    is not a signed 64-bit integer (what torch's generators take), named as the CLI names them."""
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1):
        raise TvexportError(f"--batch {batch!r} is not a number of input rows", hint="give an integer >= 1, e.g. --batch 2")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TvexportError(f"--seed {seed!r} is not an integer", hint="give an integer from -2**63 to 2**63 - 1, e.g. --seed 0")
    if seed is not None and not -(2**63) <= seed < 2**63:
        raise TvexportError(f"--seed {seed!r} is out of range", hint="give an integer from -2**63 to 2**63 - 1, e.g. --seed 0")


def random_inputs(shape: tuple[int, ...], *, seed: int = 0) -> torch.Tensor:
    """Seeded float32 inputs in [-1, 1], the range the reference networks were trained on."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) * 2 - 1


# --------------------------------------------------------------------------------------------
# The reference: float64 truth and float32 original
# --------------------------------------------------------------------------------------------

class GeneratedTVConv(nn.Module):
    """A TVConv whose generator output is held: ``TVConv.forward`` with ``generate()`` hoisted.

    The generator depends only on ``posi_map``, never on the input, so running it once and reusing
    its kernels computes exactly what the layer computes on every call (same unfold form).
    """

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, layer: TVConv, dtype: torch.dtype) -> None:
        super().__init__()
        gen = layer if _float_dtype(layer) == dtype else copy.deepcopy(layer).to(dtype)
        with training_modes_kept(gen), torch.no_grad():
            gen.eval()
            weight, bias = gen.generate()
        self.stride = layer.geometry.stride
        self.register_buffer("weight", weight.detach())
        self.register_buffer("bias", bias.detach() if bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` depthwise with the kernels generated once (``tv_depthwise_unfold``)."""
        return tv_depthwise_unfold(x, self.weight, self.bias, stride=self.stride)


class DepthwiseByDefinition(nn.Module):
    """A depthwise ``nn.Conv2d`` computed by its definition: a sum over the k*k taps of shifted
    (strided, dilated) input views times per-channel weights.

    torch runs float64 depthwise convolutions one channel at a time (``thnn_conv2d``): 5-6x the
    whole network's float32 time. The same sum written out costs a few elementwise passes.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.stride, self.dilation, self.padding = conv.stride, conv.dilation, conv.padding
        self.register_buffer("weight", conv.weight.detach().clone())  # (C, 1, kh, kw)
        self.register_buffer("bias", conv.bias.detach().clone() if conv.bias is not None else None)

    @staticmethod
    def applies_to(m: nn.Module) -> bool:
        """Whether ``m`` is a depthwise ``nn.Conv2d`` this class can compute (groups = in = out channels > 1,
        padding_mode 'zeros' with numeric padding, not 'same'/'valid')."""
        return (isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels
                and m.padding_mode == "zeros" and isinstance(m.padding, tuple))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution of ``x``: the k*k taps' shifted input views times their per-channel weights, summed,
        plus the bias."""
        (sh, sw), (dh, dw), (ph, pw) = self.stride, self.dilation, self.padding
        c, _, kh, kw = self.weight.shape
        xp = torch.nn.functional.pad(x, (pw, pw, ph, ph))
        oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
        ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
        out = x.new_zeros((x.shape[0], c, oh, ow))
        for ky in range(kh):
            for kx in range(kw):
                tap = xp[:, :, ky * dh : ky * dh + sh * (oh - 1) + 1 : sh, kx * dw : kx * dw + sw * (ow - 1) + 1 : sw]
                out.addcmul_(tap, self.weight[:, 0, ky, kx].view(1, c, 1, 1))
        return out if self.bias is None else out + self.bias.view(1, c, 1, 1)


def _rounded(weight: torch.Tensor, bias: torch.Tensor | None, kernels: torch.dtype, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Kernels (and bias) as a layer storing ``kernels`` would hold them, as ``dtype`` values
    (int8: quantized per (channel, tap) as ``tvexport.quantize`` does)."""
    stored, scale = compress_kernels(weight, kernels)
    return dequantize(stored, scale, dtype=dtype), bias.to(bias_dtype(kernels)).to(dtype) if bias is not None else None


def _float_dtype(module: nn.Module) -> torch.dtype | None:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), None)


def _generated(model: nn.Module, dtype: torch.dtype) -> dict[int, Any]:
    """A ``copy.deepcopy`` memo that replaces each TVConv of ``model`` by its ``GeneratedTVConv``
    (run in ``dtype`` on a ``dtype`` copy of the layer)."""
    return {id(m): GeneratedTVConv(m, dtype) for m in model.modules() if isinstance(m, TVConv)}


def depthwise_by_definition_(model: nn.Module) -> nn.Module:
    """Replace ``model``'s depthwise convs by ``DepthwiseByDefinition`` (in place): the same
    function, 5x faster in float64. For evaluation only: the result is not for export."""
    for name, m in list(model.named_modules()):
        if DepthwiseByDefinition.applies_to(m):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, DepthwiseByDefinition(m))  # type: ignore[arg-type]
    return model


def _copy_in(model: nn.Module, dtype: torch.dtype, memo: dict[int, Any], *, by_definition: bool = False) -> nn.Module:
    """``model`` in ``dtype`` with the TVConvs replaced as ``memo`` says (generator weights are
    never copied whole); with ``by_definition``, depthwise convs as ``DepthwiseByDefinition``."""
    out = copy.deepcopy(model, dict(memo)).to(dtype)
    if by_definition:
        depthwise_by_definition_(out)
    for p in out.parameters():
        p.requires_grad_(False)
    return out.eval()


class Reference:
    """The network a candidate must match: its float64 truth and its float32 original.

    ``truth(x)`` runs ``model`` in float64; ``float32(x)`` runs it in float32, as torch would.
    TVConv generators run once per precision (float64 on a float64 copy of each layer) and their
    kernels are reused: the generator output does not depend on the input (``GeneratedTVConv``).
    ``float64_model`` is the network in float64 with torch's own layers (what the bake folds);
    ``truth_model`` the same function with depthwise convs by definition (``DepthwiseByDefinition``,
    5x faster in float64); both share the float64 generator outputs.
    ``model`` is unbaked (for checkpoints) or baked (for baked files: the truth then holds its
    kernels as stored, e.g. float16 values, exactly).

    ``kernels`` is the dtype the candidate stores TV kernels in: for float16 (int8) the float32
    original holds its generator outputs (a baked model its float32 kernels) rounded to float16
    (quantized per (channel, tap) as ``tvexport.quantize`` does) too, so that the yardstick of a
    compressed bake is what the unbaked network achieves with the same kernel precision (the
    analogue of the float32 rule), and the allowance follows the network's conditioning in every case.
    ``model`` is not modified: the copies run in eval mode, its training modes stay as they are.
    Both are of ``model`` as it was when the reference was made (changes to it afterwards do not count).
    """

    def __init__(self, model: nn.Module, *, kernels: torch.dtype = torch.float32) -> None:
        self.model = model
        self.kernels = kernels
        self.config = config_of(model)
        self.kind = "unbaked" if any(isinstance(m, TVConv) for m in model.modules()) else (
            "baked" if any(isinstance(m, BakedTVConv) for m in model.modules()) else self.config.atom
        )
        generated = _generated(model, torch.float64)
        self.float64_model = _copy_in(model, torch.float64, generated)
        self.truth_model = _copy_in(model, torch.float64, generated, by_definition=True)
        # The float32 original with float32 kernels, made now so that weights the caller changes
        # afterwards do not make it another network than the truth (the caller's model is not copied whole).
        self._float32_base = _copy_in(model, torch.float32, _generated(model, torch.float32))
        self._float32_model: nn.Module | None = None

    @property
    def float32_model(self) -> nn.Module:
        """The float32 original, with generators hoisted (of the model as constructed; for float16
        or int8 kernels, made on first use from the float32 one with its kernels rounded)."""
        if self._float32_model is None:
            model = self._float32_base
            if self.kernels != torch.float32:  # the kernels as the candidate stores them
                model = copy.deepcopy(model)
                for name, m in model.named_modules():
                    if isinstance(m, GeneratedTVConv):
                        m.weight, m.bias = _rounded(m.weight, m.bias, self.kernels, torch.float32)
                    elif isinstance(m, BakedTVConv) and m.weight.dtype == torch.float32:
                        compress_layer(m, self.kernels, name=name)
            self._float32_model = model
        return self._float32_model

    def with_kernels(self, kernels: torch.dtype) -> Reference:
        """This reference for a candidate storing its TV kernels as ``kernels``: the same float64
        truth (shared, not rebuilt), a float32 original with its kernels rounded that way."""
        if kernels == self.kernels:
            return self
        other = copy.copy(self)
        other.kernels, other._float32_model = kernels, None
        return other

    def precision(self, *, dtype: str = "float32") -> Precision:
        """The ``Tolerance.default`` precision of a candidate computing in ``dtype`` with the kernels
        this reference was built for."""
        if dtype == "float16":
            return "float16"
        return KERNEL_PRECISION.get(self.kernels, "float32")

    @property
    def truth_label(self) -> str:
        """What the truth is, for reports: ``'<kind> float64'``."""
        return f"{self.kind} float64"

    @property
    def baseline_label(self) -> str:
        """What the float32 original is, for reports (with its kernels' dtype where not float32)."""
        kernels = str(self.kernels).removeprefix("torch.")
        return f"{self.kind} float32" + (f" ({kernels} kernels)" if self.kernels != torch.float32 else "")

    @torch.no_grad()
    def truth(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The float64 truth's output for ``x`` (no autograd)."""
        return self.truth_model(torch.as_tensor(x).double())

    @torch.no_grad()
    def float32(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The float32 original's output for ``x`` (no autograd)."""
        return self.float32_model(torch.as_tensor(x).float())

    def compare(self, outputs: dict[str, Any], x: torch.Tensor | np.ndarray, *, tolerance: Tolerance) -> list[Comparison]:
        """One ``Comparison`` per candidate output (label -> output for input ``x``)."""
        truth, base = self.truth(x), self.float32(x)
        return [compare_outputs(label, got, truth, tolerance=tolerance, baseline=base) for label, got in outputs.items()]
