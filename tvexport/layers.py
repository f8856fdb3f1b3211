"""TVConv as the reference defines it and its baked form.

The translation-variant depthwise math they run (``tv_depthwise``, ``tv_depthwise_unfold``,
``tv_output_size``) lives in the leaf module ``tvexport._depthwise`` and is re-exported here;
``BakedTVConv`` runs the fused Triton kernel (``tvexport.kernels``) for eager CUDA inference, so
data flows one way: ``_depthwise`` <- ``kernels`` <- ``layers``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Literal, TypeVar

import torch
from torch import nn

from ._depthwise import tv_depthwise, tv_depthwise_unfold, tv_output_size

__all__ = [
    "BakedTVConv",
    "TVConv",
    "TVGeometry",
    "training_modes_kept",
    "tv_depthwise",
    "tv_depthwise_unfold",
    "tv_output_size",
]

BiasKind = Literal["map", "channel"]


@contextlib.contextmanager
def training_modes_kept(module: nn.Module) -> Iterator[None]:
    """Inside, ``module`` may be switched (e.g. to eval mode); afterwards each of its modules has
    the training mode it had before, whatever happens."""
    modes = [(m, m.training) for m in module.modules()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@dataclasses.dataclass(frozen=True, kw_only=True)
class TVGeometry:
    """Shape facts of one TV layer; ``h``, ``w`` are its OUTPUT size. Keyword-only, as the
    project's options: ``TVGeometry(channels=..., k=..., stride=..., h=..., w=..., bias=...)``."""

    channels: int
    k: int
    stride: int
    h: int
    w: int
    bias: bool

    @property
    def kernel_numel(self) -> int:
        """Kernel values of the layer: channels x k x k at each of its h x w output positions."""
        return self.channels * self.k * self.k * self.h * self.w

    def macs(self, *, batch: int = 1) -> int:
        """Multiply-accumulates of the TV op for one call."""
        return batch * self.kernel_numel


class _GeneratorBlock(nn.Sequential):
    """conv3x3 (no bias) -> LayerNorm over (C, h, w) -> ReLU, as in the reference."""

    def __init__(self, in_chans: int, out_chans: int, h: int, w: int) -> None:
        super().__init__(
            nn.Conv2d(in_chans, out_chans, 3, 1, 1, bias=False),
            nn.LayerNorm([out_chans, h, w]),
            nn.ReLU(inplace=True),
        )


def _generator(in_chans: int, inter_chans: int, out_chans: int, inter_layers: int, h: int, w: int) -> nn.Sequential:
    blocks: list[nn.Module] = [_GeneratorBlock(in_chans, inter_chans, h, w)]
    blocks += [_GeneratorBlock(inter_chans, inter_chans, h, w) for _ in range(inter_layers)]
    blocks.append(nn.Conv2d(inter_chans, out_chans, 3, 1, 1, bias=False))
    return nn.Sequential(*blocks)


class TVConv(nn.Module):
    """Translation-variant depthwise conv with a generator, state-dict compatible with the reference.

    ``h``, ``w`` are the layer's OUTPUT size. Argument names follow the reference so that
    checkpoints load with ``strict=True``.
    """

    def __init__(
        self,
        channels: int,
        TVConv_k: int = 3,
        stride: int = 1,
        TVConv_posi_chans: int = 4,
        TVConv_inter_chans: int = 64,
        TVConv_inter_layers: int = 3,
        TVConv_Bias: bool = False,
        h: int = 3,
        w: int = 3,
        **kwargs: object,
    ) -> None:
        super().__init__()
        if TVConv_k % 2 != 1:
            raise ValueError(f"TVConv_k must be odd, got {TVConv_k}")
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.register_buffer("TVConv_k", torch.as_tensor(TVConv_k))
        self.register_buffer("TVConv_k_square", torch.as_tensor(TVConv_k**2))
        self.register_buffer("stride", torch.as_tensor(stride))
        self.register_buffer("channels", torch.as_tensor(channels))
        self.register_buffer("h", torch.as_tensor(h))
        self.register_buffer("w", torch.as_tensor(w))
        self.posi_map = nn.Parameter(torch.ones(1, TVConv_posi_chans, h, w))
        self.weight_layers = _generator(
            TVConv_posi_chans, TVConv_inter_chans, channels * TVConv_k**2, TVConv_inter_layers, h, w
        )
        self.bias_layers = (
            _generator(TVConv_posi_chans, TVConv_inter_chans, channels, TVConv_inter_layers, h, w)
            if TVConv_Bias
            else None
        )
        self.unfold = nn.Unfold(TVConv_k, 1, (TVConv_k - 1) // 2, stride)
        # Python copies of the geometry: cheap to read and safe under tracing.
        self._geometry = TVGeometry(channels=channels, k=TVConv_k, stride=stride, h=h, w=w, bias=bool(TVConv_Bias))

    @property
    def geometry(self) -> TVGeometry:
        """The layer's shape facts (``h``, ``w``: its output size)."""
        return self._geometry

    def generate(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the generator: kernels (C, k*k, h, w) and the bias map (C, h, w) or None."""
        g = self._geometry
        weight = self.weight_layers(self.posi_map).view(g.channels, g.k * g.k, g.h, g.w)
        bias = self.bias_layers(self.posi_map).view(g.channels, g.h, g.w) if self.bias_layers is not None else None
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Generate this call's per-position kernels (and bias), then convolve ``x`` depthwise with them."""
        weight, bias = self.generate()
        return tv_depthwise_unfold(x, weight, bias, stride=self._geometry.stride)

    def extra_repr(self) -> str:
        """``channels=..., k=..., stride=..., h=..., w=..., bias=...`` for ``repr()``."""
        g = self._geometry
        return f"channels={g.channels}, k={g.k}, stride={g.stride}, h={g.h}, w={g.w}, bias={g.bias}"


_MaybeTensor = TypeVar("_MaybeTensor", torch.Tensor, None)


def _cast(t: _MaybeTensor, dtype: torch.dtype) -> _MaybeTensor:
    return t.to(dtype) if t is not None and t.dtype != dtype else t


class BakedTVConv(nn.Module):
    """A TVConv whose generator has been run once: constant kernels (+ bias) only.

    ``bias`` is ``None``, ``"map"`` (C, h, w: the TV bias map, maybe with BN folded in) or
    ``"channel"`` (C, 1, 1: a folded BatchNorm's shift without a TV bias map). The kind is state
    of the layer (``bias_kind``), not read off shapes: at h = w = 1 both are (C, 1, 1).

    ``dtype`` is how the kernels are stored: float32, float16, or int8 with a float32 ``scale``
    (C, k*k, 1, 1) (``w = weight * scale``, see ``tvexport.quantize``; the bias is then float32).
    Computation is float32 whatever the storage: kernels are converted one tap at a time.
    Only ``channels`` is positional: ``BakedTVConv(C, k=3, stride=1, h=..., w=...)``.
    """

    weight: torch.Tensor
    bias: torch.Tensor | None
    scale: torch.Tensor | None

    def __init__(
        self,
        channels: int,
        *,
        k: int,
        stride: int,
        h: int,
        w: int,
        bias: BiasKind | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.k = k
        self.stride = stride
        self.register_buffer("weight", torch.zeros(channels, k * k, h, w, dtype=dtype, device=device))
        bias_shape = {"map": (channels, h, w), "channel": (channels, 1, 1), None: None}[bias]
        bias_dtype = torch.float32 if dtype == torch.int8 else dtype
        self.register_buffer(
            "bias", torch.zeros(bias_shape, dtype=bias_dtype, device=device) if bias_shape is not None else None
        )
        quantized = dtype == torch.int8
        self.register_buffer("scale", torch.ones(channels, k * k, 1, 1, device=device) if quantized else None)
        self._bias_kind: BiasKind | None = bias

    @property
    def geometry(self) -> TVGeometry:
        """The layer's shape facts, read off its stored kernels (``h``, ``w``: its output size)."""
        c, kk, h, w = self.weight.shape
        return TVGeometry(channels=c, k=self.k, stride=self.stride, h=h, w=w, bias=self.bias is not None)

    def _bias_shape(self, kind: BiasKind) -> tuple[int, int, int]:
        c, _, h, w = self.weight.shape
        return (c, h, w) if kind == "map" else (c, 1, 1)

    @property
    def bias_kind(self) -> BiasKind | None:
        """``"map"``, ``"channel"`` or None (no bias), as set by the constructor or ``set_kernels``."""
        if self.bias is None:
            return None
        kind = self._bias_kind
        if kind is None or tuple(self.bias.shape) != self._bias_shape(kind):
            # A bias assigned directly (``layer.bias = t``) carries no kind: its shape says, which
            # is unambiguous unless h = w = 1 (then both kinds are (C, 1, 1) and act the same).
            kind = "channel" if self.bias.shape[-2:] == (1, 1) and self.weight.shape[-2:] != (1, 1) else "map"
        return kind

    def set_kernels(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        scale: torch.Tensor | None = None,
        bias_kind: BiasKind | None = None,
    ) -> None:
        """Replace the stored kernels (e.g. by compressed ones); ``scale`` iff ``weight`` is int8.

        ``bias_kind`` says what ``bias`` is (default: the layer's current kind, or ``"map"`` /
        ``"channel"`` by shape for a layer that had none); its shape must fit it.
        """
        from ._depthwise import check_scale

        check_scale(weight, scale)
        if tuple(weight.shape) != tuple(self.weight.shape):
            raise ValueError(f"kernels of shape {tuple(weight.shape)} do not fit a layer of {tuple(self.weight.shape)}")
        kind: BiasKind | None = None
        if bias is not None:
            kind = bias_kind
            if kind is None:  # the layer's kind now (a directly assigned bias: by its shape) where the new bias fits it
                current = self.bias_kind
                fits = current is not None and tuple(bias.shape) == self._bias_shape(current)
                kind = current if fits else "channel" if tuple(bias.shape[-2:]) == (1, 1) and tuple(weight.shape[-2:]) != (1, 1) else "map"
            if tuple(bias.shape) != self._bias_shape(kind):
                raise ValueError(f"a {kind} bias of shape {tuple(bias.shape)} does not fit a layer of {tuple(weight.shape)}")
        elif bias_kind is not None:
            raise ValueError(f"bias_kind {bias_kind!r} given without a bias")
        self.weight = weight
        self.bias = bias
        self._bias_kind = kind
        self.scale = None if scale is None else scale.reshape(weight.shape[0], weight.shape[1], 1, 1)

    @classmethod
    @torch.no_grad()
    def from_tvconv(cls, layer: TVConv, *, generated: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> BakedTVConv:
        """Run ``layer``'s generator once (eval mode) and keep its output (copied, in its dtype).

        ``generated`` is that output when it was already computed (the bake runs each generator
        in float64 and passes the result here).
        """
        if generated is not None:
            weight, bias = generated
        else:
            with training_modes_kept(layer):
                layer.eval()
                weight, bias = layer.generate()
        g = layer.geometry
        baked = cls(g.channels, k=g.k, stride=g.stride, h=g.h, w=g.w, bias="map" if bias is not None else None,
                    dtype=weight.dtype, device=weight.device)
        baked.weight.copy_(weight)
        if bias is not None:
            assert baked.bias is not None
            baked.bias.copy_(bias)
        return baked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` depthwise with the stored kernels (eager CUDA inference: the fused Triton kernel; else the plain form)."""
        weight, bias, scale = self.weight, self.bias, self.scale
        # Half-precision activations accumulate in float32 (as the Triton kernel does): k*k
        # rounded partial sums would cost several float16 ulps.
        compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        if scale is not None:  # float32 scales (also in a model cast with .to()); float64 ones for a float64 run
            scale = _cast(scale, torch.float64 if compute == torch.float64 else torch.float32)
        if x.is_cuda and not torch.compiler.is_compiling() and not (x.requires_grad and torch.is_grad_enabled()):
            # Eager CUDA inference: the fused Triton kernel (tvexport.kernels; float32 accumulation,
            # kernels read in their stored dtype, int8 dequantized in registers). Under
            # torch.compile/export the plain form below is traced instead, so compilers can fuse it
            # and artefacts need no custom op; it also serves autograd, which the kernel does not
            # implement.
            from .kernels import triton_available, tv_dwconv

            if triton_available():
                stored = (torch.float32, torch.float16, torch.int8)  # read as stored; other dtypes as before, cast to x's
                w = weight if weight.dtype in stored else _cast(weight, x.dtype)
                b = bias if bias is None or bias.dtype in stored[:2] else _cast(bias, x.dtype)
                return tv_dwconv(x, w, b, self.stride, scale)
        # Compressed kernels (int8, float16 under float32 compute) are converted tap by tap inside
        # tv_depthwise: never a float32 copy of all kernels per call.
        if weight.dtype != torch.int8 and not (weight.dtype == torch.float16 and compute == torch.float32):
            weight = _cast(weight, compute)
        out = tv_depthwise(_cast(x, compute), weight, _cast(bias, compute), stride=self.stride, scale=scale)
        return _cast(out, x.dtype)

    def extra_repr(self) -> str:
        """``channels=..., k=..., stride=..., h=..., w=..., bias=...`` (and the kernels' dtype where not float32) for ``repr()``."""
        c, _, h, w = self.weight.shape
        stored = "" if self.weight.dtype == torch.float32 else f", kernels={str(self.weight.dtype).removeprefix('torch.')}"
        return f"channels={c}, k={self.k}, stride={self.stride}, h={h}, w={w}, bias={self.bias_kind}{stored}"
