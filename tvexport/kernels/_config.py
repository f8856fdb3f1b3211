"""Launch geometry of the fused TV-depthwise kernel: pure Python, no triton, testable anywhere.

The kernel flattens the output positions of one sample, ``p = (c * OH + i) * OW + j``, into
tiles of ``block`` positions; a program owns one tile and loops over a range of samples,
``batch_tile`` at a time, so the k*k kernel values of its tile are read from DRAM once and
re-read from cache for the other samples of its range. The batch range is split across
programs (grid axis 1) only when the tiles alone are too few to keep the GPU's memory
system busy.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

BiasMode = Literal[0, 1, 2]
BIAS_NONE: BiasMode = 0
BIAS_MAP: BiasMode = 1  # bias (C, OH, OW): one value per output position
BIAS_CHANNEL: BiasMode = 2  # bias (C, 1, 1) or (C,): one value per channel

MAX_TILE = 4096  # fp32 accumulators per program (batch_tile * block)
BLOCKS = (1024, 512, 256, 128, 64)
MAX_BATCH_TILE = 16
WAVES = 4  # programs per SM to aim for: enough loads in flight to saturate DRAM
DEFAULT_SM_COUNT = 132  # H100 SXM; only used when the device cannot be asked
AOT_BATCH_TILE = 2  # TensorRT engines have a dynamic batch: fixed, small batch tiles
AOT_BATCH_PER_PROGRAM = 8


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


@dataclasses.dataclass(frozen=True)
class LaunchConfig:
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


def launch_config(positions: int, batch: int, *, sm_count: int = DEFAULT_SM_COUNT) -> LaunchConfig:
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
    return LaunchConfig(block=block, batch_tile=bt, batch_per_program=per, num_warps=_warps(block * bt))


def aot_launch_config(positions: int, *, sm_count: int = DEFAULT_SM_COUNT) -> LaunchConfig:
    """Tile sizes for an engine whose batch is only known at run time."""
    if positions < 1:
        raise ValueError(f"positions must be positive, got {positions}")
    bt = AOT_BATCH_TILE
    block = _pick_block(positions, bt, WAVES * sm_count)
    return LaunchConfig(block=block, batch_tile=bt, batch_per_program=AOT_BATCH_PER_PROGRAM, num_warps=_warps(block * bt))


def bias_mode(bias_shape: tuple[int, ...] | None, channels: int, oh: int, ow: int) -> BiasMode:
    """How the kernel reads ``bias``: a (C, OH, OW) map, or one value per channel ((C, 1, 1) or (C,))."""
    if bias_shape is None:
        return BIAS_NONE
    dims = [int(d) for d in bias_shape]
    while len(dims) > 3 and dims[0] == 1:  # (1, C, OH, OW) broadcasts like (C, OH, OW)
        dims.pop(0)
    if dims == [channels, oh, ow]:
        return BIAS_MAP
    if dims in ([channels], [channels, 1, 1]):
        return BIAS_CHANNEL
    raise ValueError(f"bias of shape {tuple(bias_shape)} fits neither ({channels}, {oh}, {ow}) nor ({channels}, 1, 1)")


# Order of the kernel's runtime arguments: input pointers, int32 scalars, output pointer. TensorRT's
# ahead-of-time plugins pass exactly (inputs..., extra int32 args..., outputs...), so the launcher
# and the plugin share this order.
POINTER_INPUTS = ("x_ptr", "w_ptr", "b_ptr")
SCALAR_ARGS = ("N", "C", "H", "W", "OH", "OW", "BATCH_PER")
POINTER_OUTPUTS = ("out_ptr",)
CONSTEXPRS = ("K", "STRIDE", "PAD", "BIAS_MODE", "BLOCK", "BATCH_TILE")


def scalar_args(n, c, h, w, oh, ow, config: LaunchConfig) -> tuple:  # type: ignore[no-untyped-def]
    """The int32 kernel arguments in ``SCALAR_ARGS`` order (ints, or TensorRT shape expressions)."""
    return (n, c, h, w, oh, ow, config.batch_per_program)


def constexprs(*, k: int, stride: int, bias: BiasMode, config: LaunchConfig) -> dict[str, int]:
    return {"K": k, "STRIDE": stride, "PAD": k // 2, "BIAS_MODE": bias, "BLOCK": config.block, "BATCH_TILE": config.batch_tile}
