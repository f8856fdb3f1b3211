"""The translation-variant depthwise math: output size, input checks (the ONNX node's bounds too) and
the two torch forms.

A leaf module (torch and the standard library only): ``tvexport.layers`` builds its modules on it and ``tvexport.kernels``
checks inputs with it, so neither imports the other's internals. For input ``x`` (N, C, H, W),
kernels ``weight`` (C, k*k, h, w), stride ``s`` and padding ``k // 2``::

    out[n, c, i, j] = sum_{ky, kx} weight[c, ky*k + kx, i, j] * xpad[n, c, i*s + ky, j*s + kx]
                      (+ bias[c, i, j])

Tap order ``ky*k + kx`` is the order of ``F.unfold``, which is also the channel order of the
reference generator's last conv (``c*k*k + ky*k + kx``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def tv_output_size(size: int, k: int, stride: int) -> int:
    """Output length of a TV layer along one axis (padding ``k // 2``)."""
    return (size + 2 * (k // 2) - k) // stride + 1


def _check_input(x: torch.Tensor, weight: torch.Tensor, stride: int) -> int:
    if x.dim() != 4:
        raise ValueError(f"TV depthwise expects NCHW input, got shape {tuple(x.shape)}")
    c, kk, h, w = weight.shape
    k = int(round(kk**0.5))
    if k * k != kk or k % 2 == 0:
        raise ValueError(f"TV kernels must hold k*k taps for odd k, got {kk}")
    if x.shape[1] != c:
        raise ValueError(f"TV layer has {c} channels, input has {x.shape[1]}")
    oh, ow = tv_output_size(x.shape[2], k, stride), tv_output_size(x.shape[3], k, stride)
    if (oh, ow) != (h, w):
        raise ValueError(
            f"TV layer was trained for output {h}x{w} (stride {stride}); input {x.shape[2]}x{x.shape[3]} "
            f"gives {oh}x{ow}: TVConv only runs at its trained input size (re-bake for another: tvexport bake --input-size)"
        )
    return k


def bias_is_map(shape: Sequence[int], channels: int, h: int, w: int) -> bool:
    """True for a (C, h, w) bias map, False for a per-channel (C, 1, 1) bias; ValueError otherwise.

    Leading 1s broadcast away ((1, C, h, w) is a map) in the torch forms and the Triton kernel;
    the ONNX node's bias is rank 3 on every path (``check_node_bias``). A 1-D bias is refused on
    every path (the torch forms, the Triton kernel, the TensorRT plugin and the ONNX node's
    references): torch would add a (C,) vector along W where a kernel reads it per channel, so a
    per-channel bias is always written (C, 1, 1).
    """
    dims = [int(d) for d in shape]
    while len(dims) > 3 and dims[0] == 1:
        dims.pop(0)
    if dims == [channels, h, w]:
        return True
    if dims == [channels, 1, 1]:
        return False
    hint = "; a per-channel bias is (C, 1, 1), not (C,)" if len(dims) == 1 else ""
    raise ValueError(f"TV bias of shape {tuple(shape)} fits neither ({channels}, {h}, {w}) nor ({channels}, 1, 1){hint}")


# The identity of the fused TV node, defined once for every runtime: the ONNX op type and domain of the
# plugin graph (tvexport.export._onnx_tv) are the TensorRT plugin's name and namespace (tvexport.trt._spec),
# which TensorRT's ONNX parser looks the plugin up by, together with plugin_version.
PLUGIN_NAME = "tv_dwconv"
PLUGIN_NAMESPACE = "tvexport"
PLUGIN_VERSION = "1"
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"  # the qualified name: the torch op's and the TensorRT plugin's
PLUGIN_NAME_I8 = f"{PLUGIN_NAME}_i8"  # the int8-kernel form: (x, weight, bias, scale); plugins have fixed inputs
PLUGIN_ID_I8 = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME_I8}"

# The largest k a ``tv_dwconv`` node takes: ``kMaxK`` of the OpenVINO op (tvexport/openvino/ext/tv_dwconv.cpp),
# which names this constant too; TVConv layers use 3..7.
MAX_NODE_K = 63


def check_node_attrs(k: int, stride: int, padding: int, *, node: str = "tv_dwconv") -> None:
    """The bounds of a ``tv_dwconv`` node's INT attributes, those of the OpenVINO op
    (``check_attributes`` in tvexport/openvino/ext/tv_dwconv.cpp), for the TensorRT preparation and
    plugin and the numpy reference alike: k odd in 1..63, stride >= 1, padding 0..k-1. ValueError
    ``"{node}: ..."`` names the attribute."""
    if k < 1 or k % 2 == 0:
        raise ValueError(f"{node}: k must be a positive odd number, got {k}")
    if k > MAX_NODE_K:
        raise ValueError(f"{node}: k must be at most {MAX_NODE_K}, got {k}")
    if stride < 1:
        raise ValueError(f"{node}: stride must be >= 1, got {stride}")
    if not 0 <= padding < k:
        raise ValueError(f"{node}: padding must be between 0 and k-1 = {k - 1} for k={k}, got {padding}")


# The attributes a ``tv_dwconv`` node may have: its INT k, stride and padding, the STRING plugin_namespace
# and plugin_version TensorRT's ONNX parser finds the plugin by, and the INT aot its parser reads as the
# plugin creation request (tvexport.trt._onnx). Any other attribute would be dropped by every runtime
# (OpenVINO's conversion reads attributes by name, TensorRT's parser passes the plugin's fields only)
# and the node computed as if it were absent, so every tvexport path refuses it (``check_node_attr_names``;
# the OpenVINO extension's conversion cannot list attributes: C++ programs check the file with
# tvexport/openvino/ext/node_attrs.hpp, whose list and message equal these, as examples/openvino_runner does).
NODE_ATTRS = ("k", "stride", "padding", "plugin_namespace", "plugin_version", "aot")


def check_node_attr_names(names: Sequence[str], *, node: str = "tv_dwconv") -> None:
    """Refuse attributes a ``tv_dwconv`` node does not take (``NODE_ATTRS``): ValueError
    ``"{node}: ..."`` naming them and the ones it takes."""
    unknown = sorted(set(names) - set(NODE_ATTRS))
    if unknown:
        listed = ", ".join(repr(a) for a in unknown)
        raise ValueError(f"{node}: unknown attribute{'s' if len(unknown) > 1 else ''} {listed}; "
                         f"tv_dwconv takes {', '.join(NODE_ATTRS[:-1])} (and TensorRT's {NODE_ATTRS[-1]}) only")


def check_node_bias(shape: Sequence[int], channels: int, h: int, w: int, *, node: str = "tv_dwconv") -> None:
    """The bias input of a ``tv_dwconv`` node: exactly (C, h, w) or (C, 1, 1), as the OpenVINO op
    takes it (rank 3), for the TensorRT preparation and the numpy reference alike; the torch forms
    also take leading 1s (``bias_is_map``). ValueError ``"{node}: ..."`` otherwise."""
    dims = tuple(int(d) for d in shape)
    if dims not in ((channels, h, w), (channels, 1, 1)):
        hint = "; a per-channel bias is (C, 1, 1), not (C,)" if len(dims) == 1 else ""
        raise ValueError(f"{node}: bias must be (C, h, w) = {(channels, h, w)} or (C, 1, 1), got {dims}{hint}")


def _bias_3d(bias: torch.Tensor | None, channels: int, h: int, w: int) -> torch.Tensor | None:
    """``bias`` checked (``bias_is_map``) with its leading 1s dropped: (C, h, w) or (C, 1, 1)."""
    if bias is None:
        return None
    bias_is_map(bias.shape, channels, h, w)
    return bias.reshape(bias.shape[-3:])


def _is_eager(x: torch.Tensor) -> bool:
    """True when ``x`` is a real tensor run op by op (not traced by dynamo, export, jit or fx)."""
    return type(x) is torch.Tensor and not torch.compiler.is_compiling() and not torch.jit.is_tracing()


def _taps(x: torch.Tensor, k: int, stride: int, h: int, w: int) -> list[torch.Tensor]:
    """The k*k shifted views ``xpad[:, :, ky + s*i, kx + s*j]`` in tap order ``ky*k + kx``."""
    p = k // 2
    xp = F.pad(x, (p, p, p, p))
    span_h, span_w = stride * (h - 1) + 1, stride * (w - 1) + 1
    return [xp[:, :, ky : ky + span_h : stride, kx : kx + span_w : stride] for ky in range(k) for kx in range(k)]


def check_scale(weight: torch.Tensor, scale: torch.Tensor | None, *, scale_dtypes: tuple[torch.dtype, ...] = (torch.float32,)) -> None:
    """int8 kernels come with a float32 ``scale`` (C, k*k, 1, 1) (``w = weight * scale``), others without.

    ``scale_dtypes`` widens what the torch forms accept (float64 scales for a float64 reference run).
    """
    if weight.dtype == torch.int8:
        c, kk = weight.shape[:2]
        if scale is None or scale.dtype not in scale_dtypes or tuple(scale.shape) not in ((c, kk, 1, 1), (c, kk)):
            got = "none" if scale is None else f"{scale.dtype} {tuple(scale.shape)}"
            raise ValueError(f"int8 TV kernels need a float32 scale of shape ({c}, {kk}, 1, 1), got {got}")
    elif weight.dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise ValueError(f"TV kernels must be float32, float16 or int8 (with a scale), got {weight.dtype}")
    elif scale is not None:
        raise ValueError(f"a scale only goes with int8 kernels, not {weight.dtype}")


def tv_depthwise(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int = 1,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Translation-variant depthwise conv as shift-and-accumulate over the k*k taps.

    This form never materialises the unfolded (N, C, k*k, h, w) tensor; compilers
    (torch.compile, AOTInductor) fuse it into a single loop. ``bias`` is a full (C, h, w) map or
    a per-channel (C, 1, 1) bias (``bias_is_map``: a 1-D bias is refused).

    Eager calls accumulate in place into one output buffer. Traced CPU calls (torch.compile,
    torch.export) read each tap's kernel through an (h, w, C) copy, which constant folding makes
    free for frozen weights: Inductor runs CPU networks channels-last, and this layout gives its
    loop contiguous vector loads along C instead of strided gathers.

    Compressed kernels are converted one (C, h, w) tap at a time, never as a whole float copy:
    float16 ``weight`` is read as is (the products are in ``x``'s dtype), int8 ``weight`` takes a
    float32 ``scale`` (C, k*k, 1, 1) (float64 for a float64 run) and each tap is dequantized
    (``weight[:, t] * scale[:, t]``) where it is used. Traced, the dequantization stays an op of
    the loop: Inductor's freezing folds the layout copy of the int8 tap into an int8 constant and
    keeps ``dequantize_per_channel`` in the fused loop (``_dequantize_traced``).
    """
    k = _check_input(x, weight, stride)
    check_scale(weight, scale, scale_dtypes=(torch.float32, torch.float64))
    h, w = weight.shape[-2:]
    bias = _bias_3d(bias, weight.shape[0], h, w)
    taps = _taps(x, k, stride, h, w)
    scales = None if scale is None else scale.reshape(scale.shape[0], -1)

    if _is_eager(x):

        def tap(t: int) -> torch.Tensor:
            return weight[:, t] if scales is None else weight[:, t].to(scales.dtype) * scales[:, t, None, None]

        out = torch.mul(taps[0], tap(0))
        for t in range(1, k * k):
            out.addcmul_(taps[t], tap(t))
        return out.add_(bias) if bias is not None else out
    channels_last = x.device.type == "cpu"
    kernels = []
    for t in range(k * k):
        # (h, w, C) per tap on CPU, viewed as (C, h, w): separate constants after folding (slices
        # of one permuted tensor would each drag the whole storage into a package)
        plane = weight[:, t].permute(1, 2, 0).contiguous().permute(2, 0, 1) if channels_last else weight[:, t]
        kernels.append(plane if scales is None else _dequantize_traced(plane, scales[:, t].contiguous()))  # one (C,) constant per tap
    if channels_last and bias is not None and bias.shape[-2:] != (1, 1):
        bias = bias.permute(1, 2, 0).contiguous().permute(2, 0, 1)  # (C, h, w) view, C fastest
    # One expression, bias first: Inductor emits a single loop, and with the bias (and a
    # following activation) in the same loop the output is written once.
    out = taps[0] * kernels[0] if bias is None else bias + taps[0] * kernels[0]
    for t in range(1, k * k):
        out = out + taps[t] * kernels[t]
    return out


def _dequantize_traced(plane: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """int8 (C, h, w) tap times its per-channel ``scale`` (C,), as traced for compilers.

    ``quantized_decomposed.dequantize_per_channel`` is the op Inductor's constant folding leaves
    in the graph (a plain ``to(float32) * scale`` of two constants would be folded into a float32
    copy of the kernels) and lowers to a pointwise expression that fuses into the TV loop.
    Inductor inlines 1-D constants of <= 8 values as literal select trees, which splits a narrow
    layer's fused loop into one buffer per tap; so a channels-last tap of <= 8 channels is
    dequantized as (h, w*C) rows with its scales repeated along w (a few hundred floats).
    """
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers quantized_decomposed)

    if scale.dtype != torch.float32:  # a float64 reference run: exact products, no special op
        return plane.to(scale.dtype) * scale[:, None, None]
    c, h, w = plane.shape
    rows = c <= 8 and plane.permute(1, 2, 0).is_contiguous() and w > 1
    if rows:
        plane, scale = plane.permute(1, 2, 0).reshape(h, w * c), scale.repeat(w)
    zero = torch.zeros(scale.shape, dtype=torch.int32, device=scale.device)
    out = torch.ops.quantized_decomposed.dequantize_per_channel(plane, scale, zero, 1 if rows else 0, -128, 127, torch.int8)
    return out.reshape(h, w, c).permute(2, 0, 1) if rows else out


def tv_depthwise_unfold(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *, stride: int = 1
) -> torch.Tensor:
    """The reference's formulation: ``F.unfold`` then multiply and sum over taps (``bias`` as in
    ``tv_depthwise``)."""
    k = _check_input(x, weight, stride)
    c, kk, h, w = weight.shape
    bias = _bias_3d(bias, c, h, w)
    cols = F.unfold(x, k, dilation=1, padding=k // 2, stride=stride).view(x.shape[0], c, kk, h, w)
    out = (cols * weight.unsqueeze(0)).sum(dim=2)
    if bias is not None:
        out = out + bias
    return out
