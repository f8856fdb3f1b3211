"""Accuracy at other input sizes: resize each input to the trained size, or re-bake the network for its size.

The shipped demo checkpoint (face MobileNetV2 x0.1 with TVConv, trained at 96x96 on scikit-learn's
digits; models/README.md) classifies its 360 held-out digits rendered (by models/train_demo.py:
bilinear from 8x8) at 0.75x, 1x, 1.25x, 1.5x and 2x the trained size. At each size:

* ``resize input``: each image resized to 96x96 (bilinear, antialiased), then the ordinary bake;
* ``generator`` / ``kernels`` x ``bilinear`` / ``bicubic``: the network re-baked for that size
  (``tvexport.bake(model, input_size=..., resample=..., interpolation=...)``) on the images as rendered;
* ``DWConv baseline``: the same architecture with plain depthwise convs, trained alike
  (``models/train_demo.py --atom dwconv``), run at each size as is (it has no per-position maps;
  its head averages the whole final map): what a translation-invariant network of the same
  recipe loses when the digits are drawn larger or smaller, so what re-baking cannot be blamed for;
* ``position-averaged``: the TV network's baked kernels averaged over positions (a control: how
  much of the TV network's function lies in its per-position layout).

Accuracy is the nearest class by cosine to the checkpoint's AM-Softmax class weights (as in
training), with a 95% Wilson interval; ``cos to 96`` is the mean cosine between each digit's
embedding and the same network's embedding of the same digit rendered at 96x96. For each size and
interpolation it also reports how far the generator's kernels are from the resampled ones
(relative L2 difference per TV layer).

    python benchmarks/resize_accuracy.py     # writes benchmarks/results/resize_accuracy.{md,json,png}
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import _common
import torch
import torch.nn.functional as F
from torch import nn

import tvexport
from tvexport._io import atomic_output
from tvexport.layers import BakedTVConv
from tvexport.profile.harness import torch_threads
from tvexport.profile.machine import load_average, machine_info, versions
from tvexport.profile.plot import require_matplotlib
from tvexport.resize import resize_unbaked

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
import train_demo  # noqa: E402  (the demo's data, rendering and accuracy: one definition)

SCALES = (0.75, 1.0, 1.25, 1.5, 2.0)
METHODS = [("generator", "bilinear"), ("generator", "bicubic"), ("kernels", "bilinear"), ("kernels", "bicubic")]
CONDITIONS = ["resize input", *(f"{m} {i}" for m, i in METHODS), "DWConv baseline", "position-averaged"]
CANDIDATES = CONDITIONS[:5]  # ways to run the TV network at another size


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@torch.no_grad()
def position_averaged(model: nn.Module, trained: nn.Module) -> nn.Module:
    """``model`` (baked at some size) with every TV layer's kernels and bias the position-mean of ``trained``'s."""
    for name, layer in model.named_modules():
        if isinstance(layer, BakedTVConv):
            src = trained.get_submodule(name)
            layer.weight.copy_(src.weight.mean(dim=(2, 3), keepdim=True).expand_as(layer.weight))
            if layer.bias is not None:
                layer.bias.copy_(src.bias.mean(dim=(1, 2), keepdim=True).expand_as(layer.bias))
    return model


def row(condition: str, scale: float, size: int, emb: torch.Tensor, ref_emb: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, **extra: Any) -> dict[str, Any]:
    pred = train_demo.class_cosine(emb, weight).argmax(1)
    correct, n = int((pred == labels).sum()), len(labels)
    lo, hi = wilson(correct, n)
    cos = float(F.cosine_similarity(emb, ref_emb, dim=1).mean())
    return {"condition": condition, "scale": scale, "size": size, "correct": correct, "n": n, "accuracy": correct / n,
            "ci95": [lo, hi], "cos_to_trained": cos, **extra}


def kernel_gap(generated: nn.Module, resampled: nn.Module) -> list[float]:
    """|generated - resampled| / |resampled| (L2) of each TV layer's baked kernels."""
    return [float((m.weight - resampled.get_submodule(n).weight).norm() / resampled.get_submodule(n).weight.norm())
            for n, m in generated.named_modules() if isinstance(m, BakedTVConv)]


def measure(checkpoint: Path, dwconv: Path | None, scales: list[float]) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """(trained size, one row per size and condition, generator-vs-resampled kernel gaps)."""
    _, images, _, labels_np = train_demo.digits_split()
    labels = torch.as_tensor(labels_np)
    weight = train_demo.head_weight(checkpoint)
    model = tvexport.load_checkpoint(checkpoint)
    trained_size = model.tvexport_config.input_size[0]
    plain = tvexport.bake(model)
    assert plain.report is not None and plain.report.ok
    ref_emb = train_demo.embed(plain.model, train_demo.to_input(images, trained_size))
    if dwconv is not None:
        dw, dw_weight = tvexport.load_checkpoint(dwconv), train_demo.head_weight(dwconv)
        dw_ref = train_demo.embed(dw, train_demo.to_input(images, trained_size))
    rows, gaps = [], []
    for scale in scales:
        size = round(trained_size * scale)
        x = train_demo.to_input(images, size)
        print(f"  {size}x{size}", file=sys.stderr, flush=True)
        resized = F.interpolate(x, size=(trained_size, trained_size), mode="bilinear", antialias=True, align_corners=False)
        rows.append(row("resize input", scale, size, train_demo.embed(plain.model, resized), ref_emb, weight, labels))
        baked = {}
        for method, interpolation in METHODS:
            t0 = time.perf_counter()
            result = tvexport.bake(model, input_size=(size, size), resample=method, interpolation=interpolation)  # type: ignore[arg-type]
            seconds = time.perf_counter() - t0
            report = result.report
            assert report is not None and report.ok, report
            rows.append(row(f"{method} {interpolation}", scale, size, train_demo.embed(result.model, x), ref_emb, weight, labels,
                            bake_seconds=seconds, verified_at=result.resize["verified_at"] if result.resize else None,
                            max_rel_error=report.worst.max_rel))
            baked[method, interpolation] = result.model
        for interpolation in ("bilinear", "bicubic"):
            gap = kernel_gap(baked["generator", interpolation], baked["kernels", interpolation])
            gaps.append({"scale": scale, "size": size, "interpolation": interpolation, "mean": sum(gap) / len(gap), "max": max(gap), "layers": gap})
        if dwconv is not None:
            rows.append(row("DWConv baseline", scale, size, train_demo.embed(resize_unbaked(dw, (size, size)), x), dw_ref, dw_weight, labels))
        control = position_averaged(baked["kernels", "bilinear"], plain.model)
        rows.append(row("position-averaged", scale, size, train_demo.embed(control, x), ref_emb, weight, labels))
    return trained_size, rows, gaps


def gap_table(gaps: list[dict[str, Any]]) -> str:
    lines = ["| size | bilinear: mean / max over TV layers | bicubic: mean / max |", "|---|---|---|"]
    for size in dict.fromkeys(g["size"] for g in gaps):
        cells = [f"{g['mean']:.3f} / {g['max']:.3f}" for i in ("bilinear", "bicubic") for g in gaps if g["size"] == size and g["interpolation"] == i]
        lines.append(f"| {size}x{size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]], key: str) -> str:
    scales = list(dict.fromkeys(r["scale"] for r in rows))
    sizes = {r["scale"]: r["size"] for r in rows}
    head = "| " + " | ".join(["condition", *(f"{s:g}x ({sizes[s]})" for s in scales)]) + " |"
    lines = [head, "|---" * (len(scales) + 1) + "|"]
    for cond in CONDITIONS:
        cells = []
        for s in scales:
            r = next((r for r in rows if r["condition"] == cond and r["scale"] == s), None)
            if r is None:
                cells.append("")
            elif key == "accuracy":
                best = max(x["accuracy"] for x in rows if x["scale"] == s and x["condition"] in CANDIDATES)
                text = f"{100 * r['accuracy']:.1f} [{100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f}]"
                cells.append(f"**{text}**" if r["accuracy"] == best and cond in CANDIDATES else text)
            else:
                cells.append(f"{r['cos_to_trained']:.3f}")
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = require_matplotlib()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"resize input": ("black", "-", "o"), "DWConv baseline": ("tab:green", "-.", "^"), "position-averaged": ("grey", ":", "x")}
    colours = {"generator": "tab:blue", "kernels": "tab:orange"}
    for cond in CONDITIONS:
        pts = sorted((r["scale"], r) for r in rows if r["condition"] == cond)
        if not pts:
            continue
        method = cond.split()[0]
        colour, ls, marker = styles[cond] if cond in styles else (colours[method], "-" if cond.endswith("bilinear") else "--", "s")
        xs = [s for s, _ in pts]
        acc = [100 * r["accuracy"] for _, r in pts]
        err = [[100 * (r["accuracy"] - r["ci95"][0]) for _, r in pts], [100 * (r["ci95"][1] - r["accuracy"]) for _, r in pts]]
        axes[0].errorbar(xs, acc, yerr=err, color=colour, ls=ls, marker=marker, capsize=2, label=cond)
        axes[1].plot(xs, [r["cos_to_trained"] for _, r in pts], color=colour, ls=ls, marker=marker, label=cond)
    axes[0].set_ylabel("test accuracy, % (95% Wilson interval)")
    axes[1].set_ylabel("mean cosine to the 96x96 embedding")
    for ax in axes:
        ax.set_xlabel("input size / trained size")
        ax.axvline(1.0, color="black", lw=0.6, alpha=0.4)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    with atomic_output(path, force=True) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def render(result: dict[str, Any], out: Path, name: str) -> None:
    machine, v, rows = result["machine"], result["versions"], result["rows"]
    load = f"load average {'/'.join(map(str, machine['load_average'] or []))} -> {'/'.join(map(str, machine['load_average_end'] or []))}"
    md = "\n".join([
        "# Accuracy at other input sizes: resize the input, or re-bake the network",
        "",
        (f"Machine: {machine['cpu']} ({machine['logical_cores']} cores), {machine['os']}; python {v['python']}, torch {v['torch']}, "
         f"tvexport {v['tvexport']}; {result['threads']} threads, float32; {load}."),
        "",
        (f"Command: `{result['command']}` ({result['elapsed_s'] / 60:.1f} min). Network: `{result['checkpoint']}` (trained at "
         f"{result['trained_size']}x{result['trained_size']}); DWConv baseline: `{result['dwconv']}`; data: its {rows[0]['n']} held-out digits rendered at each size by "
         "`models/train_demo.py` (bilinear from 8x8). Conditions: see the docstring of `benchmarks/resize_accuracy.py`. Every "
         "generator re-bake passed the bake gate against the resampled unbaked network at its size; kernels re-bakes are "
         "verified at the trained size only (no unbaked reference exists at another size)."),
        "",
        "## Test accuracy, % [95% Wilson interval] (best way to run the TV network per size in bold)",
        "",
        table(rows, "accuracy"),
        "",
        "## Mean cosine between each digit's embedding and the same network's 96x96 embedding of the same digit",
        "",
        table(rows, "cos"),
        "",
        "## Generator-made vs resampled kernels: relative L2 difference |generator - kernels| / |kernels| per TV layer",
        "",
        gap_table(result["kernel_gaps"]),
        "",
    ])
    _common.write_results(out, name, md, result)
    plot(rows, out / f"{name}.png", f"demo face MobileNetV2 x0.1 (TVConv) on digits at other sizes, {machine['cpu']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=train_demo.CHECKPOINT, help="a demo checkpoint (train_demo.py layout, with head.weight)")
    p.add_argument("--dwconv", default=str(train_demo.DWCONV_CHECKPOINT), help="its DWConv baseline trained alike ('' to skip)")
    p.add_argument("--scale", type=float, action="append", help=f"input size / trained size (repeatable); default {', '.join(map(str, SCALES))}")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (accuracy does not depend on it)")
    p.add_argument("--out", type=Path, default=_common.RESULTS, help="directory for the .md, .png and .json")
    p.add_argument("--name", default="resize_accuracy", help="file stem of the outputs")
    p.add_argument("--render", type=Path, metavar="JSON", help="only re-render the outputs from a JSON this script wrote")
    args = p.parse_args()
    dwconv = Path(args.dwconv) if args.dwconv else None
    if (previous := _common.rerender(args, args.name, render)) is not None:
        print(table(previous["rows"], "accuracy"))
        return 0
    require_matplotlib()
    machine = machine_info()
    t0 = time.perf_counter()
    with torch_threads(args.threads) as threads:
        trained_size, rows, gaps = measure(args.checkpoint, dwconv, args.scale or list(SCALES))
    machine["load_average_end"] = load_average()
    result = {
        "schema": "tvexport.bench.resize_accuracy", "schema_version": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": _common.command_line(), "elapsed_s": time.perf_counter() - t0, "machine": machine, "versions": versions(),
        "threads": threads, "checkpoint": os.path.relpath(args.checkpoint), "dwconv": os.path.relpath(dwconv) if dwconv else None,
        "trained_size": trained_size, "rows": rows, "kernel_gaps": gaps,
    }
    render(result, args.out, args.name)
    print(table(rows, "accuracy"))
    print(f"wrote {args.out / args.name}.md/.json/.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
