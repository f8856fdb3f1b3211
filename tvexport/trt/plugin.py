"""TensorRT plugin for the ``tv_dwconv`` ONNX node (``tvexport::tv_dwconv``, version 1).

Importing this module registers the plugin with TensorRT's Python plugin API: a shape
descriptor, the supported type/format combinations, and an ahead-of-time implementation that
compiles the fused Triton kernel to PTX and hands it to TensorRT with its launch parameters.
The engine therefore carries the kernel and runs without Python (e.g. under ``trtexec``).

Inputs: x (N, C, H, W), weight (C, k*k, OH, OW), bias (C, OH, OW) or (C, 1, 1), all one dtype
(float32 or float16); INT attributes k, stride, padding. Nodes without a bias get a zero one
from ``tvexport.trt._onnx.prepare_onnx`` before parsing (plugins have a fixed input count).
"""

# No ``from __future__ import annotations``: tensorrt.plugin inspects these annotations at runtime,
# and its validation is written for the typing-module forms (Tuple, List, Union) used below.
# ruff: noqa: UP006, UP007, UP035

from typing import List, Tuple, Union

import tensorrt as trt
import tensorrt.plugin as trtp

from ..kernels._config import aot_launch_config, bias_mode, cdiv, scalar_args
from ._spec import PLUGIN_ID, infer_output_dims, parse_attrs

_TRT_DTYPES = {trt.float32: "fp32", trt.float16: "fp16"}


def _dims(desc: trtp.TensorDesc) -> tuple[int | None, ...]:
    """Known dims of a tensor descriptor as ints, None where symbolic or not yet available."""
    out: list[int | None] = []
    for e in desc.shape_expr:
        try:
            known = not getattr(e, "is_fake", False) and e.is_constant
        except RuntimeError:  # placeholder expressions (output-type queries) have no value
            known = False
        out.append(int(e.constant_value()) if known else None)
    return tuple(out)


def _constant(dims: tuple[int | None, ...], what: str) -> tuple[int, ...]:
    known = tuple(d for d in dims if d is not None)
    if len(known) != len(dims):
        raise ValueError(f"tv_dwconv {what} must have a constant shape (baked kernels), got {dims}")
    return known


@trtp.register(PLUGIN_ID)
def tv_dwconv_desc(
    x: trtp.TensorDesc, weight: trtp.TensorDesc, bias: trtp.TensorDesc, k: int, stride: int, padding: int
) -> trtp.TensorDesc:
    attrs = parse_attrs(k, stride, padding)
    infer_output_dims(_dims(x), _dims(weight), _dims(bias), attrs)  # raises ValueError on a bad node
    se, we = x.shape_expr, weight.shape_expr
    return trtp.from_shape_expr((se[0], we[0], we[2], we[3]), dtype=x.dtype)


@trtp.autotune(PLUGIN_ID)
def tv_dwconv_autotune(
    x: trtp.TensorDesc, weight: trtp.TensorDesc, bias: trtp.TensorDesc, outputs: Tuple[trtp.TensorDesc]
) -> List[trtp.AutoTuneCombination]:
    # All four tensors float32, or all float16; dense NCHW.
    return [trtp.AutoTuneCombination("FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16", "LINEAR")]


def _sm_count() -> int:
    """SMs of the GPU the engine is built on (TensorRT builds for the current device)."""
    import torch

    from ..kernels._config import DEFAULT_SM_COUNT

    if not torch.cuda.is_available():
        return DEFAULT_SM_COUNT
    return torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count


@trtp.aot_impl(PLUGIN_ID)
def tv_dwconv_aot_impl(
    x: trtp.TensorDesc,
    weight: trtp.TensorDesc,
    bias: trtp.TensorDesc,
    k: int,
    stride: int,
    padding: int,
    outputs: Tuple[trtp.TensorDesc],
    tactic: int,
) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymIntExprs]:
    from ..kernels._triton import compile_tv_kernel, driver_ptx_version

    attrs = parse_attrs(k, stride, padding)
    xd, wd, bd = _dims(x), _dims(weight), _dims(bias)
    infer_output_dims(xd, wd, bd, attrs)
    w_shape, b_shape = _constant(wd, "weight"), _constant(bd, "bias")
    dtypes = {_TRT_DTYPES.get(t.dtype) for t in (x, weight, bias, outputs[0])}
    dtype = dtypes.pop() if len(dtypes) == 1 else None
    if dtype is None:
        raise ValueError(f"tv_dwconv runs float32 or float16 with one dtype for all tensors, got {[str(t.dtype) for t in (x, weight, bias, outputs[0])]}")
    c, _, oh, ow = w_shape
    positions = c * oh * ow
    config = aot_launch_config(positions, sm_count=_sm_count())
    kernel = compile_tv_kernel(
        dtype=dtype, k=attrs.k, stride=attrs.stride, bias=bias_mode(b_shape, c, oh, ow), config=config,
        ptx_version=driver_ptx_version(),
    )
    n = x.shape_expr[0]
    launch = trtp.KernelLaunchParams()
    launch.grid_x = cdiv(positions, config.block)
    launch.grid_y = trtp.cdiv(n, config.batch_per_program)
    launch.block_x = kernel.block_threads
    launch.shared_mem = kernel.shared_mem
    scalars = scalar_args(n, c, x.shape_expr[2], x.shape_expr[3], oh, ow, config)
    extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(v) for v in scalars])
    return kernel.name, kernel.ptx, launch, extra
