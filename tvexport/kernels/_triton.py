"""The fused TV-depthwise Triton kernel, its launcher for torch tensors and its ahead-of-time build.

Only this package imports triton. Importing this module decorates the kernel, so set
``TRITON_INTERPRET=1`` before importing it to run the kernel on CPU tensors.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import inspect
from typing import Any

import torch
import triton
import triton.language as tl

from .._depthwise import _check_input, check_scale
from ._config import (
    DEFAULT_SM_COUNT,
    KERNEL_NAME_MAX,
    POINTER_INPUTS,
    POINTER_OUTPUTS,
    SCALAR_ARGS,
    LaunchConfig,
    bias_mode,
    check_index_range,
    constexprs,
    launch_config,
    scalar_args,
)
from ._op import TRITON_ACTIVATIONS, TRITON_KERNELS
from ._ptx import strip_unused_params

@triton.jit
def tv_dw_kernel(  # the name stays within KERNEL_NAME_MAX characters (TensorRT 10.9-10.13, see trt/plugin.py)
    x_ptr, w_ptr, b_ptr, s_ptr,  # x (N, C, H, W); weight (C, K*K, OH, OW) float or int8; bias (BIAS_MODE); int8 scales (C, K*K) or None
    N,  # int32: the batch
    out_ptr,  # (N, C, OH, OW), x's dtype
    C: tl.constexpr, H: tl.constexpr, W: tl.constexpr, OH: tl.constexpr, OW: tl.constexpr,
    K: tl.constexpr, STRIDE: tl.constexpr, BIAS_MODE: tl.constexpr, BLOCK: tl.constexpr, BATCH_TILE: tl.constexpr,
):
    """out[n, c, i, j] = sum_t W[c, t, i, j] * xpad[n, c, i*S + t//K, j*S + t%K] (+ bias), float32 sums."""
    PAD: tl.constexpr = K // 2
    OHW: tl.constexpr = OH * OW
    TILES: tl.constexpr = (OHW + BLOCK - 1) // BLOCK
    pid = tl.program_id(0)
    groups = tl.cdiv(N, BATCH_TILE)
    g = pid % groups  # batch tile fastest: programs sharing a kernel tile run side by side
    tile = pid // groups
    c = tile // TILES
    # Everything per position is a [1, BLOCK] row and per sample a [BATCH_TILE, 1] column, so
    # kernel rows broadcast over the batch tile within one register layout (no shuffles).
    p = (tile % TILES) * BLOCK + tl.arange(0, BLOCK)  # positions i*OW + j of channel c's plane
    p = tl.max_contiguous(tl.multiple_of(p, BLOCK), BLOCK)[None, :]
    pmask = p < OHW
    i = p // OW
    j = p % OW
    n = (g * BATCH_TILE + tl.arange(0, BATCH_TILE))[:, None]
    nmask = n < N
    x_rows = n.to(tl.int64) * (C * H * W) + c * (H * W)  # 64-bit sample offsets: large batches cannot overflow
    w_row = w_ptr + c * (K * K * OHW) + p
    acc = tl.zeros([BATCH_TILE, BLOCK], dtype=tl.float32)
    for ky in tl.static_range(K):
        iy = i * STRIDE + (ky - PAD)
        row_ok = pmask & (iy >= 0) & (iy < H)
        for kx in tl.static_range(K):
            ix = j * STRIDE + (kx - PAD)
            ok = row_ok & (ix >= 0) & (ix < W)
            # Each kernel row is read once per program and serves all BATCH_TILE samples;
            # int8 kernels are dequantized here, in registers, by their (channel, tap) scale.
            wv = tl.load(w_row + (ky * K + kx) * OHW, mask=pmask, other=0).to(tl.float32)
            if s_ptr is not None:
                wv = wv * tl.load(s_ptr + c * (K * K) + (ky * K + kx))
            xv = tl.load(x_ptr + (x_rows + (iy * W + ix)), mask=nmask & ok, other=0.0)
            acc += xv.to(tl.float32) * wv
    if BIAS_MODE == 1:
        acc += tl.load(b_ptr + c * OHW + p, mask=pmask, other=0.0).to(tl.float32)
    elif BIAS_MODE == 2:
        acc += tl.load(b_ptr + c).to(tl.float32)
    o_rows = n.to(tl.int64) * (C * OHW) + c * OHW
    tl.store(out_ptr + (o_rows + p), acc.to(out_ptr.dtype.element_ty), mask=nmask & pmask)


@functools.lru_cache(maxsize=16)
def _cuda_sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _sm_count(device: torch.device) -> int | None:
    if device.type == "cuda":
        return _cuda_sm_count(device.index if device.index is not None else torch.cuda.current_device())
    return None


def tv_dwconv_triton(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int,
    scale: torch.Tensor | None = None,
    config: LaunchConfig | None = None,
) -> torch.Tensor:
    """Run the fused kernel on ``x`` (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``).

    ``x`` float32 or float16; ``weight`` float32, float16 or int8 with a float32 ``scale``
    (C, k*k, 1, 1), read in its own dtype and dequantized in registers; ``bias`` None, a
    (C, OH, OW) map or a per-channel (C, 1, 1) vector of either float dtype (not (C,)). Sums are
    float32; the output has ``x``'s dtype.
    """
    k = _check_input(x, weight, stride)
    check_scale(weight, scale)
    if x.dtype not in TRITON_ACTIVATIONS:
        raise TypeError(f"the TV kernel takes float32 or float16 activations, got {x.dtype}")
    if weight.dtype not in TRITON_KERNELS or (bias is not None and bias.dtype not in TRITON_ACTIVATIONS):
        raise TypeError(f"the TV kernel takes float32/float16/int8 kernels and a float bias, got {weight.dtype}, {None if bias is None else bias.dtype}")
    n, c, h, w = x.shape
    _, _, oh, ow = weight.shape
    mode = bias_mode(tuple(bias.shape) if bias is not None else None, channels=c, oh=oh, ow=ow)
    if config is None:
        sm = _sm_count(x.device)
        config = launch_config(c, plane=oh * ow, batch=max(n, 1), sm_count=sm or DEFAULT_SM_COUNT, x_bytes=x.element_size())
    check_index_range(geometry=(c, h, w, oh, ow), k=k, batch=n, config=config, batch_fix="run it in smaller batches",
                      layer_fix="run it on fewer channels at a time and concatenate the outputs (a depthwise layer's channels are independent)")
    out = torch.empty((n, c, oh, ow), dtype=x.dtype, device=x.device)
    if n == 0:
        return out
    args = (x.contiguous(), weight.contiguous(), None if bias is None else bias.contiguous(),
            None if scale is None else scale.contiguous(), *scalar_args(n), out)
    meta = constexprs(geometry=(c, h, w, oh, ow), k=k, stride=stride, bias=mode, config=config)
    grid = config.grid(c, oh * ow, n)
    if x.device.type == "cuda":
        with torch.cuda.device(x.device):
            tv_dw_kernel[grid](*args, **meta, num_warps=config.num_warps)
    else:
        tv_dw_kernel[grid](*args, **meta, num_warps=config.num_warps)
    return out


# --------------------------------------------------------------------------- ahead of time (TensorRT)


@dataclasses.dataclass(frozen=True)
class AotKernel:
    """A compiled kernel as TensorRT's ahead-of-time plugins take it."""

    name: str
    ptx: str
    num_warps: int
    shared_mem: int
    config: LaunchConfig
    arch: str
    dropped_params: tuple[str, ...] = ()  # triton's hidden scratch pointers, removed from the .entry

    @property
    def block_threads(self) -> int:
        return self.num_warps * 32


_TRITON_DTYPES = {"fp32": "fp32", "fp16": "fp16", "int8": "i8"}


def aot_signature(*, x: str, weight: str, bias: str) -> dict[str, str]:
    """Triton signature of the kernel in parameter order; dtypes 'fp32', 'fp16' (and 'int8' for
    the weight, which adds the float32 scale pointer)."""
    if x not in ("fp32", "fp16") or bias not in ("fp32", "fp16") or weight not in _TRITON_DTYPES:
        raise ValueError(f"unsupported dtypes x={x!r}, weight={weight!r}, bias={bias!r}")
    kinds = {"x_ptr": f"*{x}", "w_ptr": f"*{_TRITON_DTYPES[weight]}", "b_ptr": f"*{bias}",
             "s_ptr": "*fp32" if weight == "int8" else "constexpr"}
    sig = {name: kinds[name] for name in POINTER_INPUTS}
    sig.update({name: "i32" for name in SCALAR_ARGS})
    sig.update({name: f"*{x}" for name in POINTER_OUTPUTS})
    sig.update({name: "constexpr" for name in inspect.signature(tv_dw_kernel.fn).parameters if name not in sig})
    return sig


def gpu_target(arch: int) -> Any:
    """triton's compile target for CUDA compute capability ``arch`` (e.g. 90): compiles without a GPU."""
    from triton.backends.compiler import GPUTarget

    return GPUTarget("cuda", arch, 32)


def compile_tv_kernel(
    *,
    x: str,
    weight: str,
    bias: str,
    geometry: tuple[int, int, int, int, int],
    k: int,
    stride: int,
    bias_mode: int,
    config: LaunchConfig,
    target: Any = None,
    ptx_version: int | None = None,
) -> AotKernel:
    """Compile the kernel to PTX for ``target`` (a ``triton.backends.compiler.GPUTarget``; default:
    the current GPU), with exactly the parameters TensorRT passes. Needs no GPU when ``target``
    is given. ``ptx_version`` (e.g. 85 for PTX ISA 8.5) caps the ISA so that an older driver can
    JIT the PTX; default: the ISA of triton's ptxas."""
    sig = aot_signature(x=x, weight=weight, bias=bias)
    consts: dict[str, Any] = constexprs(geometry=geometry, k=k, stride=stride, bias=bias_mode, config=config)  # type: ignore[arg-type]
    if weight != "int8":
        consts["s_ptr"] = None
    # TensorRT's buffers are at least 256-byte aligned: tell triton the pointers are 16-byte
    # aligned (as its JIT does after checking), or no load can become a vector load.
    names = list(inspect.signature(tv_dw_kernel.fn).parameters)
    aligned = [names.index(n) for n in (*POINTER_INPUTS, *POINTER_OUTPUTS) if sig[n] != "constexpr"]
    if "constexprs" in inspect.signature(triton.compiler.ASTSource).parameters:
        attrs: Any = {(i,): [["tt.divisibility", 16]] for i in aligned}
        src = triton.compiler.ASTSource(fn=tv_dw_kernel, signature=sig, constexprs=consts, attrs=attrs)
    else:  # triton 3.2: ``constants`` by name, alignment as an AttrsDescriptor
        from triton.backends.compiler import AttrsDescriptor

        attrs = AttrsDescriptor.from_dict({"arg_properties": {"tt.divisibility": aligned}, "cls": AttrsDescriptor.__name__})
        src = triton.compiler.ASTSource(fn=tv_dw_kernel, signature=sig, constants=consts, attrs=attrs)
    options: dict[str, Any] = {"num_warps": config.num_warps, "enable_fp_fusion": True}
    if ptx_version is not None:
        options["ptx_version"] = ptx_version
    compiled = triton.compile(src, target=target, options=options)
    md = compiled.metadata
    for field in ("global_scratch_size", "profile_scratch_size"):
        if getattr(md, field, 0):
            raise RuntimeError(f"the compiled TV kernel needs a {field.replace('_size', '')} buffer, which TensorRT cannot pass")
    if len(md.name) > KERNEL_NAME_MAX:
        raise RuntimeError(f"kernel name {md.name!r} is longer than {KERNEL_NAME_MAX} characters (see tvexport/trt/plugin.py)")
    n_inputs = sum(1 for name in POINTER_INPUTS if sig[name] != "constexpr")
    ptx, dropped = strip_unused_params(compiled.asm["ptx"], keep=n_inputs + len(SCALAR_ARGS) + len(POINTER_OUTPUTS))
    target_used = getattr(md, "target", None)
    arch = f"{getattr(target_used, 'backend', 'cuda')}:{getattr(target_used, 'arch', '?')}"
    return AotKernel(name=md.name, ptx=ptx, num_warps=md.num_warps, shared_mem=md.shared, config=config, arch=arch, dropped_params=dropped)


# --------------------------------------------------------------------------- PTX ISA for the driver


def triton_ptx_version(arch: int) -> int:
    """The PTX ISA triton emits for ``arch`` by default (that of its bundled ptxas).

    Uses triton's own ``get_ptx_version_from_options``: ``(options)`` in triton 3.2, ``(options,
    arch)`` from 3.3 on (the ptxas behind it moved from ``_path_to_binary`` to ``get_ptxas(arch)``
    tuples, then to knobs; this function is the one entry point all of 3.2-3.9 share).
    """
    from triton.backends.nvidia import compiler as nv

    fn = nv.get_ptx_version_from_options
    opts = nv.CUDAOptions()  # ptx_version None: triton's default
    return int(fn(opts) if len(inspect.signature(fn).parameters) == 1 else fn(opts, arch))


def ptx_version_for_driver(driver: tuple[int, int] | None, arch: int) -> int | None:
    """The newest PTX ISA both a CUDA driver of version ``driver`` (major, minor) and triton's
    ptxas accept; None without a driver (nothing to cap)."""
    if driver is None:
        return None
    from triton.backends.nvidia import compiler as nv

    default = triton_ptx_version(arch)
    try:
        driver_isa = nv.ptx_get_version(f"{driver[0]}.{driver[1]}")
    except RuntimeError:  # a driver newer than this triton knows: it takes triton's ISA
        return default
    return min(driver_isa, default)


def driver_cuda_version() -> tuple[int, int] | None:
    """The CUDA version of the installed driver (``cuDriverGetVersion``), or None without one."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int()
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return version.value // 1000, (version.value % 1000) // 10


def driver_ptx_version(arch: int = 90) -> int | None:
    """The PTX ISA for an ahead-of-time kernel on this machine: TensorRT hands the PTX to the
    driver's JIT, which refuses an ISA newer than the driver, while triton emits its ptxas's ISA."""
    return ptx_version_for_driver(driver_cuda_version(), arch)
