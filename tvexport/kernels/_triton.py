"""The fused TV-depthwise Triton kernel, its launcher for torch tensors and its ahead-of-time build.

Only this package imports triton. Importing this module decorates the kernel, so set
``TRITON_INTERPRET=1`` before importing it to run the kernel on CPU tensors.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any

import torch
import triton
import triton.language as tl

from ..layers import _check_input
from ._config import (
    CONSTEXPRS,
    POINTER_INPUTS,
    POINTER_OUTPUTS,
    SCALAR_ARGS,
    LaunchConfig,
    bias_mode,
    constexprs,
    launch_config,
    scalar_args,
)

_INT32_MAX = 2**31 - 1


@triton.jit
def tv_dwconv_kernel(
    x_ptr, w_ptr, b_ptr,  # inputs: x (N, C, H, W), weight (C, K*K, OH, OW), bias (see BIAS_MODE)
    N, C, H, W, OH, OW, BATCH_PER,  # int32 scalars
    out_ptr,  # output (N, C, OH, OW)
    K: tl.constexpr, STRIDE: tl.constexpr, PAD: tl.constexpr, BIAS_MODE: tl.constexpr,
    BLOCK: tl.constexpr, BATCH_TILE: tl.constexpr,
):
    """out[n, c, i, j] = sum_t W[c, t, i, j] * xpad[n, c, i*S + t//K, j*S + t%K] (+ bias)."""
    ohw = OH * OW
    positions = C * ohw
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # flattened (c, i, j) of one sample
    pmask = offs < positions
    c = offs // ohw
    rem = offs - c * ohw
    i = rem // OW
    j = rem - i * OW
    w_base = c * (K * K * ohw) + rem  # W[c, t, i, j] = w_base + t * ohw
    x_base = c * (H * W)
    iy0 = i * STRIDE - PAD
    ix0 = j * STRIDE - PAD
    if BIAS_MODE == 1:
        bias = tl.load(b_ptr + offs, mask=pmask, other=0.0).to(tl.float32)
    elif BIAS_MODE == 2:
        bias = tl.load(b_ptr + c, mask=pmask, other=0.0).to(tl.float32)

    n_start = tl.program_id(1) * BATCH_PER
    n_end = tl.minimum(n_start + BATCH_PER, N)
    lanes = tl.arange(0, BATCH_TILE)
    for n0 in range(n_start, n_end, BATCH_TILE):
        n = n0 + lanes
        nmask = n < n_end
        x_n = n.to(tl.int64) * C * H * W  # 64-bit sample offsets: large batches cannot overflow
        acc = tl.zeros([BATCH_TILE, BLOCK], dtype=tl.float32)
        for ky in tl.static_range(K):
            iy = iy0 + ky
            row_ok = pmask & (iy >= 0) & (iy < H)
            for kx in tl.static_range(K):
                ix = ix0 + kx
                ok = row_ok & (ix >= 0) & (ix < W)
                # One load of this tap's kernel values serves all BATCH_TILE samples.
                wv = tl.load(w_ptr + (w_base + (ky * K + kx) * ohw), mask=pmask, other=0.0).to(tl.float32)
                xo = x_base + iy * W + ix
                xv = tl.load(x_ptr + (x_n[:, None] + xo[None, :]), mask=nmask[:, None] & ok[None, :], other=0.0)
                acc += xv.to(tl.float32) * wv[None, :]
        if BIAS_MODE != 0:
            acc += bias[None, :]
        o_n = n.to(tl.int64) * positions
        tl.store(out_ptr + (o_n[:, None] + offs[None, :]), acc.to(out_ptr.dtype.element_ty),
                 mask=nmask[:, None] & pmask[None, :])


_DTYPES = {torch.float32: "fp32", torch.float16: "fp16"}


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
    config: LaunchConfig | None = None,
) -> torch.Tensor:
    """Run the fused kernel on ``x`` (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``).

    float32 or float16 (all operands one dtype), accumulation in float32. ``bias`` is None, a
    (C, OH, OW) map or a per-channel (C, 1, 1) / (C,) vector.
    """
    k = _check_input(x, weight, stride)
    if x.dtype not in _DTYPES:
        raise TypeError(f"the TV kernel supports float32 and float16, got {x.dtype}")
    if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError(f"x, weight and bias must share one dtype, got {x.dtype}, {weight.dtype}, {None if bias is None else bias.dtype}")
    n, c, h, w = x.shape
    _, _, oh, ow = weight.shape
    mode = bias_mode(tuple(bias.shape) if bias is not None else None, c, oh, ow)
    if c * h * w > _INT32_MAX or c * k * k * oh * ow > _INT32_MAX:
        raise ValueError("one sample or the kernel tensor exceeds 2**31 elements")
    out = torch.empty((n, c, oh, ow), dtype=x.dtype, device=x.device)
    if n == 0:
        return out
    x = x.contiguous()
    weight = weight.contiguous()
    b = bias.contiguous() if bias is not None else weight  # never read when mode == BIAS_NONE
    positions = c * oh * ow
    if config is None:
        sm = _sm_count(x.device)
        config = launch_config(positions, n, sm_count=sm) if sm else launch_config(positions, n)
    grid = config.grid(positions, n)
    args = (x, weight, b, *scalar_args(n, c, h, w, oh, ow, config), out)
    meta = constexprs(k=k, stride=stride, bias=mode, config=config)
    if x.device.type == "cuda":
        with torch.cuda.device(x.device):
            tv_dwconv_kernel[grid](*args, **meta, num_warps=config.num_warps)
    else:
        tv_dwconv_kernel[grid](*args, **meta, num_warps=config.num_warps)
    return out


@dataclasses.dataclass(frozen=True)
class AotKernel:
    """A compiled kernel as TensorRT's ahead-of-time plugins take it."""

    name: str
    ptx: str
    num_warps: int
    shared_mem: int
    config: LaunchConfig
    arch: str

    @property
    def block_threads(self) -> int:
        return self.num_warps * 32


def aot_signature(dtype: str) -> dict[str, str]:
    """Triton signature of the kernel for ``dtype`` ('fp32' or 'fp16'), in parameter order."""
    if dtype not in ("fp32", "fp16"):
        raise ValueError(f"dtype must be 'fp32' or 'fp16', got {dtype!r}")
    sig = {name: f"*{dtype}" for name in POINTER_INPUTS}
    sig.update({name: "i32" for name in SCALAR_ARGS})
    sig.update({name: f"*{dtype}" for name in POINTER_OUTPUTS})
    sig.update({name: "constexpr" for name in CONSTEXPRS})
    return sig


def compile_tv_kernel(
    *,
    dtype: str,
    k: int,
    stride: int,
    bias: int,
    config: LaunchConfig,
    target: Any = None,
    ptx_version: int | None = None,
) -> AotKernel:
    """Compile the kernel to PTX for ``target`` (a ``triton.backends.compiler.GPUTarget``; default:
    the current GPU). Needs no GPU when ``target`` is given. ``ptx_version`` (e.g. 85 for PTX ISA
    8.5) caps the ISA so that an older driver can JIT the PTX; default: the newest triton knows."""
    sig = aot_signature(dtype)
    consts = constexprs(k=k, stride=stride, bias=bias, config=config)  # type: ignore[arg-type]
    params = inspect.signature(triton.compiler.ASTSource).parameters
    kw = {"constexprs": consts} if "constexprs" in params else {"constants": consts}
    src = triton.compiler.ASTSource(fn=tv_dwconv_kernel, signature=sig, **kw)
    options: dict[str, Any] = {"num_warps": config.num_warps, "enable_fp_fusion": True}
    if ptx_version is not None:
        options["ptx_version"] = ptx_version
    compiled = triton.compile(src, target=target, options=options)
    md = compiled.metadata
    # TensorRT passes only (inputs, int32 args, outputs); newer Triton appends scratch-buffer
    # parameters, which are harmless as long as the kernel never uses them.
    for field in ("global_scratch_size", "profile_scratch_size"):
        if getattr(md, field, 0):
            raise RuntimeError(f"the compiled TV kernel needs a {field.replace('_size', '')} buffer, which TensorRT cannot pass")
    target_used = getattr(md, "target", None)
    arch = f"{getattr(target_used, 'backend', 'cuda')}:{getattr(target_used, 'arch', '?')}"
    return AotKernel(name=md.name, ptx=compiled.asm["ptx"], num_warps=md.num_warps, shared_mem=md.shared, config=config, arch=arch)


def driver_ptx_version(arch: int = 90) -> int | None:
    """The newest PTX ISA both the installed CUDA driver and triton's ptxas accept, or None.

    TensorRT hands the PTX of an ahead-of-time plugin to the driver's JIT, which refuses an ISA
    newer than the driver; triton otherwise emits the newest ISA of its bundled ptxas.
    """
    import ctypes

    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int()
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
        from triton.backends.nvidia import compiler as nv

        driver_isa = nv.ptx_get_version(f"{version.value // 1000}.{(version.value % 1000) // 10}")
        ptxas_isa = nv.ptx_get_version(nv.get_ptxas(arch).version)
    except Exception:  # noqa: BLE001 - no driver, or a triton without these internals: use its default
        return None
    return min(driver_isa, ptxas_isa)
