"""Bake figures for the reference-size networks: sizes, bake and verify time, errors vs float64.

Builds each network with the reference's TVConv settings (posi 4, inter 64 x 3, k 3) and random
weights (random posi_map and LayerNorm, calibrated BatchNorm), saves it in the reference's
checkpoint format (Lightning .ckpt, DeepLabV3+ as checkpoint_best.pth.tar), loads it back, and
bakes it (median of ``--repeats`` bakes: generator run in float64 + BN folding + cast, and
verification separately). Reports, against the unbaked network in float64: the float64 bake's own
error, the unbaked float32 network's error, and the baked model's error for float32 and float16
kernels (the float16 yardstick: the float32 network with float16-rounded kernels), end to end and
per TV layer. Results accumulate per architecture in ``<out>/<name>.json`` (run one architecture
at a time on a busy machine); ``<name>.md`` is rendered from all of them. The JSON may also hold,
added by hand, ``before`` (arch -> bake and verify seconds of an earlier version, measured the
same way) and ``notes`` (lines rendered at the end).

    python benchmarks/bake_report.py --arch face_mobilenetv2_x1_0
    python benchmarks/bake_report.py --arch face_mobilenetv2_x1_0 --bn measured --name bake_report_bn_measured
    python benchmarks/bake_report.py --render benchmarks/results/bake_report.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

import tvexport
from _common import BN_STATS, RESULTS, command_line
from tvexport.bake import bake_model, save_baked
from tvexport.profile.machine import load_average, machine_info, versions
from tvexport.summary import inspect_checkpoint
from tvexport.testing import lightning_checkpoint, randomize_, save_lightning, save_pth_tar


def _errors(report: Any) -> dict[str, Any]:
    row = lambda c: {"max_rel": c.max_rel, "baseline_max_rel": c.baseline_max_rel, "allowed_rel": c.allowed_rel, "ok": c.ok}  # noqa: E731
    return {
        "ok": report.ok,
        "tolerance": report.tolerance.to_dict(),
        "float64_bake_max_rel": report.float64_bake_max_rel,
        "network": row(report.network),
        "layers": {c.name: {**row(c), "float64_bake_max_rel": report.float64_bake[c.name]} for c in report.layers},
    }


def measure(name: str, *, repeats: int, tmp: Path, bn: str) -> dict[str, Any]:
    torch.manual_seed(0)
    model = randomize_(tvexport.create_model(name), seed=0, **BN_STATS[bn])
    seg = "deeplab" in name
    src = tmp / ("checkpoint_best.pth.tar" if seg else f"{name}.ckpt")
    if seg:
        save_pth_tar(model, src, data_parallel=True)
    else:
        save_lightning(lightning_checkpoint(model, num_classes=10575), src)
    summary = inspect_checkpoint(src)
    loaded = tvexport.load_checkpoint(src)
    runs = [bake_model(loaded) for _ in range(repeats)]
    half = bake_model(loaded, dtype=torch.float16)
    out32 = save_baked(runs[-1], tmp / "b32.pt", force=True)
    out16 = save_baked(half, tmp / "b16.pt", force=True)
    return {
        "arch": name,
        "checkpoint": summary.format,
        "checkpoint_bytes": src.stat().st_size,
        "baked_bytes": {"float32": out32.stat().st_size, "float16": out16.stat().st_size},
        "tv_layers": [{"name": t.name, "channels": t.channels, "k": t.k, "stride": t.stride, "h": t.h, "w": t.w,
                       "kernel_numel": t.kernel_numel, "flops": t.flops, "generator_flops": t.generator_flops} for t in summary.tv_layers],
        "total_params": summary.total_params,
        "generator_params": summary.generator_params,
        "baked_params": summary.baked_params,
        "bake_seconds": [r.bake_seconds for r in runs],
        "verify_seconds": [r.verify_seconds for r in runs],
        "float32": _errors(runs[-1].report),
        "float16": _errors(half.report),
        "threads": torch.get_num_threads(),
        "load_average": load_average(),
    }


def _e(x: float | None) -> str:
    return "-" if x is None else f"{x:.2g}"


def _before(before: dict[str, Any], arch: str, key: str) -> str:
    return f" ({before[arch][key]:.2f})" if arch in before else ""


def render(result: dict[str, Any], out: Path, name: str) -> None:
    nets = list(result["networks"].values())
    m, v = result["machine"], result["versions"]
    lines = [
        "# Bake report: sizes, time and errors against the float64 truth",
        "",
        f"- machine: {m['cpu']} ({m['logical_cores']} logical cores), {m['os']}; python {v['python']}, torch {v['torch']}, tvexport {v['tvexport']}",
        f"- command: `{result['command']}` (one run per architecture, results merged); threads {nets[0]['threads'] if nets else '-'}; "
        "1-min load average at each architecture's end: " + ", ".join(f"{n['arch']} {n['load_average'][0]:.1f}" for n in nets if n.get("load_average")),
        "- networks: reference TV settings (generator 4 -> 64 x 3), random weights (random posi_map and LayerNorm; BatchNorm statistics: "
        f"{result.get('bn', 'calibrated')}), saved in the reference checkpoint layout and loaded back",
        "- bake s: generator run in float64, BatchNorm folded in float64, cast (median of the repeats); verify s: the float64 truth, "
        "the float32 original and the baked model, per TV layer and end to end (batch 2)",
        "- errors: max|out - truth| / max|truth| end to end, truth = the unbaked network in float64. *float64 bake*: the baked model "
        "before the cast to the storage dtype; *float32 original*: the unbaked network in float32; *float16 yardstick*: the float32 "
        "original with its kernels rounded to float16. *worst layer/allowed*: the TV layer closest to its allowance, its error / the allowance.",
        "",
        "| network | checkpoint | MB | TV layers | params (generator) | baked values | baked MB fp32 / fp16 | bake s | verify s "
        "| float64 bake | float32 original | baked fp32 | worst layer/allowed fp32 | float16 yardstick | baked fp16 | worst layer/allowed fp16 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    before = result.get("before", {})
    if before:
        lines[-2] = lines[-2].replace("| bake s | verify s ", "| bake s (before) | verify s (before) ")
    for n in nets:
        f32, f16 = n["float32"], n["float16"]

        def worst(e: dict[str, Any]) -> str:
            w = max(e["layers"].values(), key=lambda r: r["max_rel"] / r["allowed_rel"])
            return f"{w['max_rel'] / w['allowed_rel']:.2f}"

        lines.append(
            f"| {n['arch']} | {n['checkpoint']} | {n['checkpoint_bytes'] / 1e6:.1f} | {len(n['tv_layers'])} "
            f"| {n['total_params'] / 1e6:.2f}M ({n['generator_params'] / 1e6:.2f}M) | {n['baked_params'] / 1e6:.2f}M "
            f"| {n['baked_bytes']['float32'] / 1e6:.1f} / {n['baked_bytes']['float16'] / 1e6:.1f} "
            f"| {statistics.median(n['bake_seconds']):.2f}{_before(before, n['arch'], 'bake_seconds')} "
            f"| {statistics.median(n['verify_seconds']):.2f}{_before(before, n['arch'], 'verify_seconds')} "
            f"| {_e(f32['float64_bake_max_rel'])} | {_e(f32['network']['baseline_max_rel'])} | {_e(f32['network']['max_rel'])} | {worst(f32)} "
            f"| {_e(f16['network']['baseline_max_rel'])} | {_e(f16['network']['max_rel'])} | {worst(f16)} |"
        )
    if result.get("notes"):
        lines += ["", *(f"- {note}" for note in result["notes"])]
    for n in nets:
        lines += ["", f"## {n['arch']}", "",
                  "| layer | C | k | stride | h x w | baked values | MFLOPs | generator MFLOPs | float64 bake | float32 original | baked fp32 | baked fp16 |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for t in n["tv_layers"]:
            a, b = n["float32"]["layers"][t["name"]], n["float16"]["layers"][t["name"]]
            lines.append(f"| {t['name']} | {t['channels']} | {t['k']} | {t['stride']} | {t['h']}x{t['w']} | {t['kernel_numel']:,} | {t['flops'] / 1e6:.2f} "
                         f"| {t['generator_flops'] / 1e6:.1f} | {_e(a['float64_bake_max_rel'])} | {_e(a['baseline_max_rel'])} | {_e(a['max_rel'])} | {_e(b['max_rel'])} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", help="repeatable; default: every zoo network")
    parser.add_argument("--repeats", type=int, default=3, help="float32 bakes per network (median time reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="bake_report")
    parser.add_argument("--bn", choices=list(BN_STATS), default="calibrated", help="BatchNorm statistics of the random networks")
    parser.add_argument("--render", type=Path, metavar="JSON", help="only re-render the Markdown from a JSON this script wrote")
    args = parser.parse_args()
    path = args.out / f"{args.name}.json"
    if args.render:
        render(json.loads(args.render.read_text()), args.out, args.name)
        return
    torch.set_num_threads(args.threads)
    result = json.loads(path.read_text()) if path.exists() else {"networks": {}}
    bn = f" --bn {args.bn}" if args.bn != "calibrated" else ""
    result.update(command=f"python benchmarks/bake_report.py --arch NAME{bn} --name {args.name}", machine=machine_info(), versions=versions(), bn=args.bn)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.arch or tvexport.list_models():
            result["networks"][name] = measure(name, repeats=args.repeats, tmp=Path(tmp), bn=args.bn)
            n = result["networks"][name]
            print(f"{name}: bake {statistics.median(n['bake_seconds']):.2f} s, verify {statistics.median(n['verify_seconds']):.2f} s, "
                  f"float64 bake {_e(n['float32']['float64_bake_max_rel'])}, float32 original {_e(n['float32']['network']['baseline_max_rel'])}, "
                  f"baked {_e(n['float32']['network']['max_rel'])} (fp16 {_e(n['float16']['network']['max_rel'])})", flush=True)
            render(result, args.out, args.name)  # after each network: a long run leaves its results behind
    print(f"wrote {args.out / (args.name + '.md')} ({command_line()})")


if __name__ == "__main__":
    main()
