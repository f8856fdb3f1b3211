"""Bake figures for the reference-size networks: inspect, sizes, bake time.

Builds each network with the reference's TVConv settings (posi 4, inter 64 x 3, k 3) and random
weights (random posi_map, calibrated BatchNorm), saves it in the reference's checkpoint format,
then times ``tvexport bake`` (generator run + BN folding, and verification separately) and
compares file sizes. Writes Markdown to stdout (and to ``--out``).

    python benchmarks/bake_report.py --out benchmarks/results/bake_report.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import tvexport
from tvexport.bake import bake_model, save_baked
from tvexport.summary import inspect_checkpoint
from tvexport.testing import lightning_checkpoint, randomize_, save_lightning, save_pth_tar

ARCHS = ("face_mobilenetv2_x1_0", "face_mobilenetv2_x0_1", "face_shufflenetv2_x1_0", "deeplabv3plus_mobilenetv2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", help="repeatable; default: all")
    parser.add_argument("--repeats", type=int, default=3, help="bakes per network (median reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = [
        f"# Bake report ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, tvexport {tvexport.__version__})",
        "",
        "| network | checkpoint | MB | TV layers | params (generator) | baked values | baked MB fp32 / fp16 | size ratio fp32 | bake s | verify s | max rel error (fp32 / fp16) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    inspect_lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.arch or ARCHS:
            model = randomize_(tvexport.create_model(name))
            seg = "deeplab" in name
            src = Path(tmp) / ("checkpoint_best.pth.tar" if seg else f"{name}.ckpt")
            if seg:
                save_pth_tar(model, src, data_parallel=True)
            else:
                save_lightning(lightning_checkpoint(model, num_classes=10575), src)
            summary = inspect_checkpoint(src)
            loaded = tvexport.load_checkpoint(src)
            bakes, verifies = [], []
            result = None
            for _ in range(args.repeats):
                result = bake_model(loaded)
                bakes.append(result.bake_seconds)
                verifies.append(result.verify_seconds)
            assert result is not None and result.report is not None
            half = bake_model(loaded, dtype=torch.float16)
            assert half.report is not None
            out32 = save_baked(result, Path(tmp) / "b32.pt", force=True)
            out16 = save_baked(half, Path(tmp) / "b16.pt", force=True)
            mb = lambda p: p.stat().st_size / 1e6  # noqa: E731
            lines.append(
                f"| {name} | {summary.format} | {mb(src):.1f} | {len(summary.tv_layers)} | {summary.total_params / 1e6:.2f}M ({summary.generator_params / 1e6:.2f}M) "
                f"| {summary.baked_params / 1e6:.2f}M | {mb(out32):.1f} / {mb(out16):.1f} | {mb(src) / mb(out32):.2f}x "
                f"| {statistics.median(bakes):.2f} | {statistics.median(verifies):.2f} | {result.report.worst.max_rel:.1e} / {half.report.worst.max_rel:.1e} |"
            )
            inspect_lines += [f"## {name}", "", "| layer | C | k | stride | h x w | baked values | MFLOPs | generator MFLOPs |", "|---|---|---|---|---|---|---|---|"]
            inspect_lines += [
                f"| {t.name} | {t.channels} | {t.k} | {t.stride} | {t.h}x{t.w} | {t.kernel_numel:,} | {t.flops / 1e6:.2f} | {t.generator_flops / 1e6:.1f} |"
                for t in summary.tv_layers
            ]
            inspect_lines.append("")
            print(lines[-1], flush=True)
    text = "\n".join(lines + [""] + inspect_lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
