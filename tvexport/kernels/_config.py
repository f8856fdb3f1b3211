"""Launch geometry of the fused TV-depthwise kernel: pure Python, no triton, testable anywhere.

A program owns one channel ``c``, one tile of ``block`` consecutive positions of that channel's
OH*OW output plane, and one tile of ``batch_tile`` samples. It loads each of its k*k kernel vectors
once (contiguous, so 128-bit vector loads), applies it to all ``batch_tile`` samples held in
registers, and writes contiguous output rows. Programs are numbered batch tile fastest, so the
programs that read the same kernel tile run side by side and all but the first find it in L2.

The layer geometry (C, H, W, OH, OW, k, stride) is compile-time constant: a TV layer only runs at
its trained size, so each layer gets its own specialisation with exact divisibility facts, and the
only run-time scalar is the batch ``N``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from .._depthwise import bias_is_map

BiasMode = Literal[0, 1, 2]
BIAS_NONE: BiasMode = 0
BIAS_MAP: BiasMode = 1  # bias (C, OH, OW): one value per output position
BIAS_CHANNEL: BiasMode = 2  # bias (C, 1, 1): one value per channel

MAX_TILE = 4096  # fp32 accumulators per program (batch_tile * block)
BLOCKS = (1024, 512, 256, 128, 64, 32)
MAX_BATCH_TILE = 8
WAVES = 4  # programs per SM to aim for: enough loads in flight to saturate DRAM
DEFAULT_SM_COUNT = 132  # H100 SXM; only used when the device cannot be asked
KERNEL_NAME_MAX = 15  # TensorRT 10.9-10.13 keep the kernel name only in a std::string's inline buffer (see trt/plugin.py)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


@dataclasses.dataclass(frozen=True, kw_only=True)
class LaunchConfig:
    """Tile sizes of one launch (compile-time constants of the kernel); keyword-only, a record with no subject."""

    block: int  # output positions of one channel plane per program (power of two)
    batch_tile: int  # samples per program, a [batch_tile, block] register tile (power of two)
    num_warps: int

    def __post_init__(self) -> None:
        for name in ("block", "batch_tile"):
            v = getattr(self, name)
            if v < 1 or v & (v - 1):
                raise ValueError(f"{name} must be a power of two, got {v}")
        if self.num_warps not in (1, 2, 4, 8, 16):
            raise ValueError(f"num_warps must be a power of two <= 16, got {self.num_warps}")

    def tiles(self, plane: int) -> int:
        """Tiles of one channel's OH*OW plane."""
        return cdiv(plane, self.block)

    def grid(self, channels: int, plane: int, batch: int) -> tuple[int]:
        """Programs: (channel, plane tile, batch tile), batch tile fastest."""
        return (channels * self.tiles(plane) * max(1, cdiv(batch, self.batch_tile)),)

    def weight_reads(self, batch: int) -> int:
        """Programs that read each kernel value (adjacent in launch order: one DRAM read, the rest L2)."""
        return max(1, cdiv(batch, self.batch_tile))


def _per_thread(x_bytes: int) -> int:
    """Consecutive positions per thread for 16-byte activation rows (4 fp32, 8 fp16)."""
    return max(1, 16 // x_bytes)


def _warps(block: int, x_bytes: int) -> int:
    """Warps such that each thread owns 16 bytes of every activation row: 128-bit loads and
    stores, and kernel rows in the same register layout (no shuffles through shared memory)."""
    return max(1, min(8, block // (32 * _per_thread(x_bytes))))


def _blocks(plane: int, batch_tile: int, x_bytes: int) -> list[int]:
    """Blocks that fit the register tile and the plane; at least one warp of 16-byte rows unless
    the whole plane is smaller, as narrower rows mean narrower vector loads."""
    cap = max(BLOCKS[-1], next_pow2(plane))
    floor = min(32 * _per_thread(x_bytes), cap)
    return [b for b in BLOCKS if b * batch_tile <= MAX_TILE and floor <= b <= cap] or [floor]


def batch_tile_for(batch: int) -> int:
    """Samples per program: 1 for batch-1 latency, else the batch up to ``MAX_BATCH_TILE``."""
    return min(next_pow2(max(1, batch)), MAX_BATCH_TILE)


def launch_config(channels: int, *, plane: int, batch: int, sm_count: int = DEFAULT_SM_COUNT, x_bytes: int = 4) -> LaunchConfig:
    """Tile sizes for ``channels`` planes of ``plane = OH * OW`` outputs, a known ``batch`` and
    activations of ``x_bytes`` bytes (4 float32, 2 float16):
    the largest block that still gives ``WAVES`` programs per SM, then smaller batch tiles if the
    layer is too small for that."""
    if channels < 1 or plane < 1 or batch < 1 or sm_count < 1:
        raise ValueError(f"channels, plane, batch and sm_count must be positive, got {channels}, {plane}, {batch}, {sm_count}")
    want = WAVES * sm_count
    bt = batch_tile_for(batch)

    def programs(block: int, tile: int) -> int:
        return channels * cdiv(plane, block) * cdiv(batch, tile)

    allowed = _blocks(plane, bt, x_bytes)
    block = next((b for b in allowed if programs(b, bt) >= want), allowed[-1])
    while bt > 1 and programs(block, bt) < want:
        bt //= 2
    return LaunchConfig(block=block, batch_tile=bt, num_warps=_warps(block, x_bytes))


def aot_configs(
    channels: int, *, plane: int, opt_batch: int, sm_count: int = DEFAULT_SM_COUNT, x_bytes: int = 4
) -> tuple[LaunchConfig, ...]:
    """Candidate tile sizes for a TensorRT engine, one custom tactic each (TensorRT times them and
    keeps the fastest per layer): the heuristic choice for the profile's opt batch, then half and
    twice its block. The batch tile follows the opt batch (1 for a batch-1 latency profile)."""
    best = launch_config(channels, plane=plane, batch=opt_batch, sm_count=sm_count, x_bytes=x_bytes)
    out = [best]
    for block in (best.block // 2, best.block * 2):
        if block in _blocks(plane, best.batch_tile, x_bytes):
            out.append(LaunchConfig(block=block, batch_tile=best.batch_tile, num_warps=_warps(block, x_bytes)))
    return tuple(out)


def bias_mode(bias_shape: tuple[int, ...] | None, *, channels: int, oh: int, ow: int) -> BiasMode:
    """How the kernel reads ``bias``: a (C, OH, OW) map, or one value per channel (C, 1, 1); a
    1-D (C,) bias is refused, as on every path of the op (``tvexport._depthwise.bias_is_map``)."""
    if bias_shape is None:
        return BIAS_NONE
    return BIAS_MAP if bias_is_map(bias_shape, channels, oh, ow) else BIAS_CHANNEL


# The kernel's run-time parameters in order: input pointers, int32 scalars, output pointer.
# TensorRT's ahead-of-time plugins pass exactly (inputs..., extra int32 args..., outputs...), so
# the launcher and the plugin share this order; ``s_ptr`` (the int8 scales) exists only in the
# quantized form and is a compile-time None otherwise.
POINTER_INPUTS = ("x_ptr", "w_ptr", "b_ptr", "s_ptr")
SCALAR_ARGS = ("N",)
POINTER_OUTPUTS = ("out_ptr",)


def scalar_args(n):  # type: ignore[no-untyped-def]
    """The int32 kernel arguments in ``SCALAR_ARGS`` order (an int, or a TensorRT shape expression)."""
    return (n,)


INT32_MAX = 2**31 - 1


def check_index_range(*, geometry: tuple[int, int, int, int, int], k: int, batch: int, config: LaunchConfig, batch_fix: str, layer_fix: str) -> None:
    """Refuse a launch whose index arithmetic would leave int32 (ValueError, one line).

    The kernel computes a channel's offset within a sample (``c * H * W``), within the kernel
    tensor (``c * k*k * OH * OW``) and the sample index (``N``, the program id) in 32 bits; only the
    per-sample offset ``n * C*H*W`` is 64-bit. ``batch`` is the largest batch that will be launched
    (a TensorRT profile's max); the grid is also capped by CUDA at 2**31 - 1 blocks along x.
    ``batch_fix`` ends the refusals a smaller batch fixes, ``layer_fix`` those of a layer too large
    at any batch.
    """
    c, h, w, oh, ow = geometry
    for what, size in (("one sample of its input (C*H*W)", c * h * w), ("its kernel tensor (C*k*k*OH*OW)", c * k * k * oh * ow)):
        if size > INT32_MAX:
            raise ValueError(f"TV layer {geometry} (C, H, W, OH, OW) is too large for the fused kernel: {what} has {size} elements, over 2**31 - 1; {layer_fix}")
    if batch + config.batch_tile - 1 > INT32_MAX:
        raise ValueError(f"batch {batch} is too large for the fused kernel, which takes the batch as a 32-bit integer; {batch_fix}")
    programs = config.grid(c, oh * ow, batch)[0]
    if programs > INT32_MAX:
        raise ValueError(f"batch {batch} needs {programs} programs for TV layer {geometry} (C, H, W, OH, OW), over CUDA's 2**31 - 1 blocks per launch; {batch_fix}")


def constexprs(*, geometry: tuple[int, int, int, int, int], k: int, stride: int, bias: BiasMode, config: LaunchConfig) -> dict[str, int]:
    """Compile-time constants of one launch; ``geometry`` is (C, H, W, OH, OW)."""
    c, h, w, oh, ow = geometry
    return {"C": c, "H": h, "W": w, "OH": oh, "OW": ow, "K": k, "STRIDE": stride, "BIAS_MODE": bias,
            "BLOCK": config.block, "BATCH_TILE": config.batch_tile}
