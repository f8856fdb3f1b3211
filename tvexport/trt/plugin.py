"""TensorRT plugins for the ``tv_dwconv`` ONNX node (``tvexport::tv_dwconv``, version 1).

Importing this module registers two plugins with TensorRT's Python plugin API (``tensorrt.plugin``,
TensorRT >= 10.9): a shape descriptor, the supported type/format combinations with one custom
tactic per candidate tile size, and an ahead-of-time implementation that compiles the fused Triton
kernel to PTX and hands it to TensorRT with its launch parameters. The engine therefore carries
the kernel and runs without Python (e.g. under ``trtexec``).

* ``tvexport::tv_dwconv``: x (N, C, H, W) float32|float16, weight (C, k*k, OH, OW) float32|float16,
  bias (C, OH, OW) or (C, 1, 1) float32|float16; output (N, C, OH, OW) in x's dtype.
* ``tvexport::tv_dwconv_i8``: the same with an int8 weight and a float32 ``scale`` (C, k*k, 1, 1)
  after the bias (``w = weight * scale``, dequantized in the kernel's registers).

Python plugins have a fixed input count, so ``tvexport.trt._onnx.prepare_onnx`` gives bias-less
nodes a zero bias and renames int8 nodes to ``tv_dwconv_i8`` before parsing. Supported versions
and why: see ``tvexport.trt._spec``.

Kernel name: TensorRT 10.9-10.13 return the kernel name to the builder as ``c_str()`` of a
std::string that dies when ``getKernel`` returns (``python/src/infer/pyPlugin.cpp``; 10.14 keeps it
in a member). The name is ``tv_dw_kernel``, 12 characters: libstdc++ stores strings of up to 15
characters inside the std::string object, so the bytes stay in ``getKernel``'s dead frame instead of
a freed heap block (whose first 16 bytes the allocator overwrites at once). That is how NVIDIA's
own AOT sample (``circ_pad_kernel``, 15 characters) runs on those releases; it is still a read of a
dead frame, so TensorRT >= 10.14 is the recommended minimum and ``compile_tv_kernel`` refuses names
over 15 characters.
"""

# No ``from __future__ import annotations``: tensorrt.plugin inspects these annotations at runtime,
# and its validation is written for the typing-module forms (Tuple, List, Union) used below.
# ruff: noqa: UP006, UP007, UP035

import contextlib
import functools
from typing import Iterator, List, NamedTuple, Tuple, Union

import numpy as np
import numpy.typing as npt
import tensorrt as trt
import tensorrt.plugin as trtp

from .._depthwise import PLUGIN_ID, PLUGIN_ID_I8
from ..errors import first_line
from ..kernels._config import DEFAULT_SM_COUNT, aot_configs, bias_mode, check_index_range, scalar_args
from ._env import record_plugin_failure
from ._onnx import REEXPORT
from ._spec import ACTIVATION_TYPES, FLOAT_TYPES, INT8_TYPES, infer_output_dims, parse_attrs

_DTYPES = {trt.float32: "fp32", trt.float16: "fp16", trt.int8: "int8"}
# How to build a model with a TV layer too large for the fused kernel's 32-bit offsets (at any batch)
LAYER_TOO_LARGE_FIX = "export the model with --tv-op portable, whose standard ONNX ops TensorRT builds without tvexport's plugin"

# The INT attributes k, stride, padding are declared as int32 arrays, not ``int``: the ONNX parser
# hands them over as 1-element INT32 fields, and tensorrt.plugin (10.9 to at least 11.1; the 11.4
# wheel has the fix) turns a field into an ``int`` with ``int(field.data)``, which NumPy >= 2.4
# refuses for 1-element arrays (TypeError), while its array path (``field.data.astype(int32)``)
# works with every NumPy.
Int = npt.NDArray[np.int32]


@contextlib.contextmanager
def _kept() -> Iterator[None]:
    """Keep the first line of what a callback raises for ``tvexport build``'s one-line error:
    TensorRT prints a plugin callback's exception to stderr only (see ``_env.plugin_failures``)."""
    try:
        yield
    except Exception as err:
        record_plugin_failure(first_line(err))
        raise


@contextlib.contextmanager
def _refusing_the_node() -> Iterator[None]:
    """A ValueError here refuses a node TensorRT is building, and reaches the user as the line of
    ``tvexport build``'s error (through ``_kept``): it carries the fix the preparation (``_onnx``)
    gives for the same nodes."""
    try:
        yield
    except ValueError as err:
        raise ValueError(f"{err}; {REEXPORT}") from None


def _attrs(k: Int, stride: Int, padding: Int):  # type: ignore[no-untyped-def]
    def first(v: Int) -> int:
        return int(np.asarray(v).reshape(-1)[0])

    return parse_attrs(first(k), stride=first(stride), padding=first(padding))


def _dims(desc: trtp.TensorDesc) -> Tuple[Union[int, None], ...]:
    """Known dims of a tensor descriptor as ints, None where symbolic or fake (output-type pass)."""
    out: List[Union[int, None]] = []
    for e in desc.shape_expr:
        known = not e.is_fake and e.is_constant
        out.append(int(e.constant_value()) if known else None)
    return tuple(out)


def _constant(dims: Tuple[Union[int, None], ...], what: str) -> Tuple[int, ...]:
    known = tuple(d for d in dims if d is not None)
    if len(known) != len(dims):
        raise ValueError(f"tv_dwconv {what} must have a constant shape (baked kernels), got {dims}")
    return known


def _out_desc(x: trtp.TensorDesc, weight: trtp.TensorDesc, bias: trtp.TensorDesc, k: Int, stride: Int, padding: Int) -> trtp.TensorDesc:
    with _refusing_the_node():
        infer_output_dims(_dims(x), _dims(weight), _dims(bias), _attrs(k, stride, padding))
    se, we = x.shape_expr, weight.shape_expr
    # The output takes x's type: in strongly typed networks x's ONNX dtype; in TensorRT 10's weakly
    # typed --fp16 build TensorRT reports every input as FLOAT here and picks the precision among
    # the combinations below, in all of which the output has x's type.
    return trtp.from_shape_expr((se[0], we[0], we[2], we[3]), dtype=x.dtype)


@trtp.register(PLUGIN_ID)
def tv_dwconv_desc(x: trtp.TensorDesc, weight: trtp.TensorDesc, bias: trtp.TensorDesc, k: Int, stride: Int, padding: Int) -> trtp.TensorDesc:
    with _kept():
        return _out_desc(x, weight, bias, k, stride, padding)


@trtp.register(PLUGIN_ID_I8)
def tv_dwconv_i8_desc(
    x: trtp.TensorDesc, weight: trtp.TensorDesc, bias: trtp.TensorDesc, scale: trtp.TensorDesc, k: Int, stride: Int, padding: Int
) -> trtp.TensorDesc:
    with _kept():
        return _out_desc(x, weight, bias, k, stride, padding)


def _sm_count() -> int:
    """SMs of the GPU the engine is built on (TensorRT builds for the current device)."""
    import torch

    if not torch.cuda.is_available():
        return DEFAULT_SM_COUNT
    return torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count


def _build_arch() -> Union[int, None]:
    """Compute capability of the build GPU as an int (90 for sm_90), None to let triton ask."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


def _configs(x: trtp.TensorDesc, weight: trtp.TensorDesc, x_bytes: Union[int, None] = None):  # type: ignore[no-untyped-def]
    """Candidate tile sizes (one per custom tactic) for the profile's opt batch, for activations of
    ``x_bytes`` bytes (default: x's type)."""
    shape = x.shape
    opt_batch = int(shape.opt[0]) if shape.is_dynamic else int(shape[0])
    c, _, oh, ow = (int(d) for d in weight.shape)
    if x_bytes is None:
        x_bytes = 2 if x.dtype == trt.float16 else 4
    return aot_configs(c, plane=oh * ow, opt_batch=max(1, opt_batch), sm_count=_sm_count(), x_bytes=x_bytes)


def _max_batch(x: trtp.TensorDesc) -> int:
    """The largest batch the engine will launch with: the profile's max (or the fixed batch)."""
    shape = x.shape
    return int(shape.max[0]) if shape.is_dynamic else int(shape[0])


def _combinations(types: str, x: trtp.TensorDesc, weight: trtp.TensorDesc) -> List[trtp.AutoTuneCombination]:
    """One combination per activation type, with that type's tactics: x's type in autotune is the
    network's (FLOAT in a weakly typed --fp16 build), not the type of each combination."""
    return [trtp.AutoTuneCombination(types.format(x=name), "LINEAR", list(range(1, len(_configs(x, weight, x_bytes)) + 1)))
            for name, x_bytes in ACTIVATION_TYPES.items()]


@trtp.autotune(PLUGIN_ID)
def tv_dwconv_autotune(x: trtp.TensorDesc, weight: trtp.TensorDesc, bias: trtp.TensorDesc, outputs: Tuple[trtp.TensorDesc]) -> List[trtp.AutoTuneCombination]:
    with _kept():
        return _combinations(FLOAT_TYPES, x, weight)


@trtp.autotune(PLUGIN_ID_I8)
def tv_dwconv_i8_autotune(
    x: trtp.TensorDesc, weight: trtp.TensorDesc, bias: trtp.TensorDesc, scale: trtp.TensorDesc, outputs: Tuple[trtp.TensorDesc]
) -> List[trtp.AutoTuneCombination]:
    with _kept():
        return _combinations(INT8_TYPES, x, weight)


@functools.lru_cache(maxsize=256)
def _compile(x: str, weight: str, bias: str, geometry: Tuple[int, ...], k: int, stride: int, mode: int, config, arch):  # type: ignore[no-untyped-def]
    """Layers of one geometry, dtype combination and tactic share one compiled kernel."""
    from ..kernels._triton import compile_tv_kernel, driver_ptx_version, gpu_target

    target = None if arch is None else gpu_target(arch)
    return compile_tv_kernel(x=x, weight=weight, bias=bias, geometry=geometry, k=k, stride=stride, bias_mode=mode, config=config,
                             target=target, ptx_version=driver_ptx_version(arch or 90))


class _Node(NamedTuple):
    """A node that passed the checks, in the terms the kernel compile takes."""

    dtypes: Tuple[str, str, str]  # x, weight, bias: 'fp32', 'fp16' or 'int8'
    geometry: Tuple[int, int, int, int, int]  # C, H, W, OH, OW
    k: int
    stride: int
    bias_mode: int


def _checked(tensors: Tuple[trtp.TensorDesc, ...], out: trtp.TensorDesc, k: Int, stride: Int, padding: Int) -> _Node:
    """The checks of one node (attributes, shapes, types). Its ValueErrors are the refusals
    ``_refusing_the_node`` adds the fix to; the kernel compile runs after it, outside that."""
    x, weight, bias = tensors[:3]
    attrs = _attrs(k, stride, padding)
    xd, wd, bd = _dims(x), _dims(weight), _dims(bias)
    infer_output_dims(xd, wd, bd, attrs)
    w_shape, b_shape = _constant(wd, "weight"), _constant(bd, "bias")
    names = [_DTYPES.get(t.dtype) for t in (*tensors, out)]
    if names[0] not in ("fp32", "fp16") or names[-1] != names[0]:
        raise ValueError(f"tv_dwconv runs float32 or float16 activations with an output of the same type, got {names}")
    c, _, oh, ow = w_shape
    _, h, w = _constant(xd[1:], "input C, H, W")  # only the batch is dynamic
    return _Node((names[0], names[1], names[2]), (c, h, w, oh, ow), attrs.k, attrs.stride, bias_mode(b_shape, channels=c, oh=oh, ow=ow))


def _aot(tensors: Tuple[trtp.TensorDesc, ...], node: _Node, tactic: int):  # type: ignore[no-untyped-def]
    """Compile the checked ``node``'s kernel for ``tactic`` and its launch parameters. A ValueError
    from here (tile sizes, triton) is no fault of the node, so it goes out without the fix."""
    x, weight = tensors[:2]
    configs = _configs(x, weight)
    config = configs[min(max(tactic, 1), len(configs)) - 1]  # tactic 0: TensorRT's default, the heuristic choice
    # The kernel's channel offsets, N and the program id are 32-bit (kernels/_config.py); the
    # launcher checks each launch, an engine is checked here once for the profile's largest batch.
    check_index_range(geometry=node.geometry, k=node.k, batch=_max_batch(x), config=config,
                      batch_fix="build the engine with a smaller --max-batch", layer_fix=LAYER_TOO_LARGE_FIX)
    kernel = _compile(*node.dtypes, node.geometry, node.k, node.stride, node.bias_mode, config, _build_arch())
    c, _, _, oh, ow = node.geometry
    n = x.shape_expr[0]
    launch = trtp.KernelLaunchParams()
    launch.grid_x = trtp.cdiv(n, config.batch_tile) * (c * config.tiles(oh * ow))  # batch tile fastest (see kernels/_config.py)
    launch.block_x = kernel.block_threads
    launch.shared_mem = kernel.shared_mem
    extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(v) for v in scalar_args(n)])
    return kernel.name, kernel.ptx, launch, extra


@trtp.aot_impl(PLUGIN_ID)
def tv_dwconv_aot_impl(
    x: trtp.TensorDesc,
    weight: trtp.TensorDesc,
    bias: trtp.TensorDesc,
    k: Int,
    stride: Int,
    padding: Int,
    outputs: Tuple[trtp.TensorDesc],
    tactic: int,
) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymIntExprs]:
    with _kept():
        with _refusing_the_node():
            if _DTYPES.get(weight.dtype) not in ("fp32", "fp16"):
                raise ValueError(f"tvexport::tv_dwconv takes float32 or float16 kernels, got {weight.dtype} (int8 kernels use tv_dwconv_i8)")
            node = _checked((x, weight, bias), outputs[0], k, stride, padding)
        return _aot((x, weight, bias), node, tactic)


@trtp.aot_impl(PLUGIN_ID_I8)
def tv_dwconv_i8_aot_impl(
    x: trtp.TensorDesc,
    weight: trtp.TensorDesc,
    bias: trtp.TensorDesc,
    scale: trtp.TensorDesc,
    k: Int,
    stride: Int,
    padding: Int,
    outputs: Tuple[trtp.TensorDesc],
    tactic: int,
) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymIntExprs]:
    with _kept():
        with _refusing_the_node():
            if _DTYPES.get(weight.dtype) != "int8" or scale.dtype != trt.float32:
                raise ValueError(f"tvexport::tv_dwconv_i8 takes int8 kernels and float32 scales, got {weight.dtype}, {scale.dtype}")
            node = _checked((x, weight, bias, scale), outputs[0], k, stride, padding)
        return _aot((x, weight, bias, scale), node, tactic)
