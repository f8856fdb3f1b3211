"""The TV kernel as it was before issue 16 (flattened (c, i, j) lanes, scalar loads), kept only so
that ``kernel_bandwidth.py --variants legacy`` can time it side by side with the current kernel
on the same GPU. Not part of the package; float32/float16 with one dtype for all operands.
"""

from __future__ import annotations

import dataclasses

import torch
import triton
import triton.language as tl

from tvexport.kernels._config import bias_mode, cdiv, next_pow2

MAX_TILE = 4096  # fp32 accumulators per program (batch_tile * block)
BLOCKS = (1024, 512, 256, 128, 64)
MAX_BATCH_TILE = 16
WAVES = 4  # programs per SM to aim for: enough loads in flight to saturate DRAM
DEFAULT_SM_COUNT = 132


@dataclasses.dataclass(frozen=True)
class LegacyConfig:
    """Tile sizes of one launch (all compile-time constants but ``batch_per_program``)."""

    block: int  # output positions per program (power of two)
    batch_tile: int  # samples accumulated together, a [batch_tile, block] register tile
    batch_per_program: int  # samples one program handles, a multiple of batch_tile
    num_warps: int

    def __post_init__(self) -> None:
        for name in ("block", "batch_tile"):
            v = getattr(self, name)
            if v < 1 or v & (v - 1):
                raise ValueError(f"{name} must be a power of two, got {v}")
        if self.batch_per_program < self.batch_tile or self.batch_per_program % self.batch_tile:
            raise ValueError(f"batch_per_program ({self.batch_per_program}) must be a multiple of batch_tile ({self.batch_tile})")
        if self.num_warps not in (1, 2, 4, 8, 16):
            raise ValueError(f"num_warps must be a power of two <= 16, got {self.num_warps}")

    def grid(self, positions: int, batch: int) -> tuple[int, int]:
        """Programs along (output tiles, batch ranges)."""
        return (cdiv(positions, self.block), max(1, cdiv(batch, self.batch_per_program)))

    def weight_reads(self, batch: int) -> int:
        """How many programs read each kernel value (1 = once per output tile across the batch)."""
        return max(1, cdiv(batch, self.batch_per_program))


def _warps(tile: int) -> int:
    return max(1, min(8, tile // 256))


def _pick_block(positions: int, batch_tile: int, want_programs: int) -> int:
    cap = max(BLOCKS[-1], next_pow2(positions))
    allowed = [b for b in BLOCKS if b * batch_tile <= MAX_TILE and b <= cap] or [BLOCKS[-1]]
    for b in allowed:  # largest tile that still gives enough programs
        if cdiv(positions, b) >= want_programs:
            return b
    return allowed[-1]


def legacy_launch_config(positions: int, batch: int, *, sm_count: int = DEFAULT_SM_COUNT) -> LegacyConfig:
    """Tile sizes for ``positions = C * OH * OW`` outputs per sample and a known ``batch``."""
    if positions < 1 or batch < 1 or sm_count < 1:
        raise ValueError(f"positions, batch and sm_count must be positive, got {positions}, {batch}, {sm_count}")
    want = WAVES * sm_count
    bt = min(next_pow2(batch), MAX_BATCH_TILE)
    block = _pick_block(positions, bt, want)
    tiles = cdiv(positions, block)
    chunks = cdiv(batch, bt)
    groups = min(chunks, max(1, cdiv(want, tiles)))  # split the batch only if the tiles are too few
    per = bt * cdiv(chunks, groups)
    return LegacyConfig(block=block, batch_tile=bt, batch_per_program=per, num_warps=_warps(block * bt))



@triton.jit
def tv_dwconv_legacy_kernel(
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




def tv_dwconv_legacy(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, stride: int, config: LegacyConfig) -> torch.Tensor:
    """The old launcher: x, weight and bias of one dtype, CUDA tensors."""
    n, c, h, w = x.shape
    _, kk, oh, ow = weight.shape
    k = round(kk**0.5)
    out = torch.empty((n, c, oh, ow), dtype=x.dtype, device=x.device)
    mode = bias_mode(tuple(bias.shape) if bias is not None else None, channels=c, oh=oh, ow=ow)
    positions = c * oh * ow
    tv_dwconv_legacy_kernel[config.grid(positions, n)](
        x, weight, bias if bias is not None else weight, n, c, h, w, oh, ow, config.batch_per_program, out,
        K=k, STRIDE=stride, PAD=k // 2, BIAS_MODE=mode, BLOCK=config.block, BATCH_TILE=config.batch_tile,
        num_warps=config.num_warps,
    )
    return out
