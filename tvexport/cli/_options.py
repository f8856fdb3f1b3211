"""Options shared by several commands, defined once (Polygraphy-style argument groups)."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import torch
import typer

from ..accuracy import check_random_input


class DType(str, Enum):
    float32 = "float32"
    float16 = "float16"

    @property
    def torch(self) -> torch.dtype:
        return getattr(torch, self.value)


class KernelDType(str, Enum):  # tvexport.quantize.KERNEL_DTYPES
    float32 = "float32"
    float16 = "float16"
    int8 = "int8"


class ResampleMethod(str, Enum):  # tvexport.resize.RESAMPLE_METHODS
    generator = "generator"
    kernels = "kernels"


class InterpolationMode(str, Enum):  # tvexport.resize.INTERPOLATIONS
    bilinear = "bilinear"
    bicubic = "bicubic"


Source = Annotated[Path, typer.Argument(metavar="CHECKPOINT", readable=False, help="A checkpoint (.ckpt, .pth.tar, state dict) or a .baked.pt file.", show_default=False)]
Output = Annotated[str | None, typer.Option("--output", "-o", metavar="FILE", help="Output file.", show_default=False)]  # a str: Path would drop a trailing slash (and the metavar would be <str>)
Arch = Annotated[str | None, typer.Option("--arch", help="Architecture name; detected from the checkpoint when omitted.", show_default=False)]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output file.")]
DTypeOpt = Annotated[DType, typer.Option("--dtype", help="Storage / compute precision.", case_sensitive=False)]
KernelDTypeOpt = Annotated[KernelDType | None, typer.Option(
    "--kernel-dtype", case_sensitive=False, show_default=False,
    help="How TV kernels are stored: float32, float16, or int8 with a float32 scale per (channel, tap); computed in float32 "
         "(bake: default float32; export: default as stored, a checkpoint float32).",
)]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
AllowNonfinite = Annotated[bool, typer.Option("--allow-nonfinite", help="Accept checkpoints whose weights hold NaN/Inf.")]
InputSize = Annotated[str | None, typer.Option(
    "--input-size", metavar="HxW", show_default=False,
    help="Input size to re-bake every TV layer for (--resample, --interpolation); default: the trained size.",
)]


def seed_in_range(value: int | None) -> int | None:
    """Option callback of --seed: a signed 64-bit integer (what torch's generators take), refused before any work."""
    check_random_input(seed=value)
    return value


def tolerance(value: float | None) -> float | None:
    """Option callback of --rtol/--atol: a finite number >= 0, refused before any work."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"{value:g} is not a tolerance; give a finite number >= 0")
    return value


Rtol = Annotated[float | None, typer.Option(
    "--rtol", show_default=False, callback=tolerance,
    help="Floor of the acceptance rule, relative to max|float64 truth|: pass iff error vs float64 <= 2 x the float32 original's error + atol + rtol x max|truth| "
         "(default 1e-5; float16 kernels 5e-3; int8 kernels 1e-3; float16 export or TensorRT engine 1e-2; validate --backend openvino-bf16 4e-2).",
)]
Atol = Annotated[float | None, typer.Option("--atol", help="Absolute floor of the acceptance rule (default 0).", show_default=False, callback=tolerance)]
