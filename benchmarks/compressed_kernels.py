"""Compressed baked kernels (float32 / float16 / int8 + per-(channel, tap) scales), side by side:
what each kernel dtype costs in accuracy and buys in size and AOTInductor latency.

Phases (each updates its part of results/compressed_kernels.json and re-renders the .md/.png,
so that the slow parts run as short separate invocations on a shared machine):

* ``accuracy`` (``cpu run``): every zoo network (random weights, reference TV settings) and the
  demo checkpoint, baked with each kernel dtype: network error against the unbaked float64 truth,
  embedding cosine (per sample, min and mean), baked file and ONNX file sizes (portable and
  plugin); the demo's test accuracy on its held-out digits (models/train_demo.py); and, for int8,
  the scale granularity study (one scale per tensor, channel, (channel, tap), (channel, tap, row)).
* ``package`` (``cpu run``): AOTInductor packages at batch 1 and 16 of each TV variant and of the
  DWConv baseline (float32), kept in ``--cache`` for the timing phase (compiles are slow).
* ``time`` (``cpu bench``): the packages of one network, interleaved round by round (benchmarks/
  _timing.py), 2 threads; TV/DW is the median of per-round latency ratios with its p10-p90 spread.

    python benchmarks/compressed_kernels.py --phase accuracy
    python benchmarks/compressed_kernels.py --phase package --arch face_mobilenetv2_x1_0
    python benchmarks/compressed_kernels.py --phase time --arch face_mobilenetv2_x1_0
    python benchmarks/compressed_kernels.py --render benchmarks/results/compressed_kernels.json
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import torch
from _timing import interleaved
from torch import nn

import tvexport
from tvexport.bake import random_inputs
from tvexport.layers import BakedTVConv
from tvexport.profile.machine import load_average, machine_info, versions
from tvexport.profile.stats import paired_ratio
from tvexport.quantize import compress_model, stored_bytes
from tvexport.testing import randomize_

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
import train_demo  # noqa: E402  (the demo's data, rendering and accuracy: one definition)

NAME = "compressed_kernels"
KERNEL_DTYPES = ("float32", "float16", "int8")
VARIANTS = ("tv_float32", "tv_float16", "tv_int8", "dw_float32")
BATCHES = (1, 16)
GRANULARITY = {"tensor": None, "channel": (1, 2, 3), "channel, tap": (2, 3), "channel, tap, row": (3,)}
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "tvexport-compressed-kernels"
TARGETS = {"size_ratio": 0.3, "accuracy_points": 0.5, "cosine": 0.999, "aoti_ratio": 1.2}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def random_model(arch: str, *, atom: str = "tvconv", bn: str = "calibrated") -> nn.Module:
    torch.manual_seed(0)
    return randomize_(tvexport.create_model(arch, atom=atom), seed=0, **_common.BN_STATS[bn])  # type: ignore[arg-type]


def floor_needed(report: Any) -> dict[str, float]:
    """The bake check's rows (each TV layer with its folded BatchNorm, and the network) against the
    rule without a floor (rtol 0: 2 x the float32 original with the same kernel rounding): the
    largest max rel error beyond it (the smallest rtol every row passes with), and the largest
    ratio max rel / yardstick."""
    need = max(max(0.0, c.max_rel - c.tolerance.factor * (c.baseline_max_rel or 0.0)) for c in report.rows)
    ratio = max(c.max_rel / c.baseline_max_rel if c.baseline_max_rel else math.inf for c in report.rows)
    return {"rtol_needed": need, "max_ratio": ratio, "worst_allowance_used": report.worst.excess}


# --------------------------------------------------------------------------------------------
# accuracy: errors, cosine, sizes, demo accuracy, int8 granularity
# --------------------------------------------------------------------------------------------

def _cosines(got: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    cos = torch.nn.functional.cosine_similarity(got.double().flatten(1), truth.double().flatten(1), dim=1)
    return float(cos.min()), float(cos.mean())


def file_sizes(result: Any, tmp: Path, label: str) -> dict[str, int]:
    """Bytes of the ``.baked.pt`` file and of the ONNX files (portable, plugin; onnxsim'd, as
    ``tvexport export`` writes them) of a bake."""
    from tvexport.bake import save_baked
    from tvexport.export.onnx import export_onnx

    sizes = {"baked": save_baked(result, tmp / f"{label}.baked.pt", force=True).stat().st_size}
    for op in ("portable", "plugin"):
        info = export_onnx(result.model, tmp / f"{label}_{op}.onnx", tv_op=op, validate=False, force=True).info
        sizes[f"onnx_{op}"] = int(info["file_bytes"])
    return sizes


def quantized_copy(model: nn.Module, dims: tuple[int, ...] | None) -> nn.Module:
    """``model`` (baked, float64) with its TV kernels through symmetric int8 with one scale per
    ``dims``-reduced block (None: one per tensor); for the granularity study only."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for m in out.modules():
            if isinstance(m, BakedTVConv):
                w = m.weight.double()
                peak = w.abs().amax(dim=dims, keepdim=True) if dims else w.abs().max()
                step = (peak / 127).float().double()
                step = torch.where(step > 0, step, torch.ones_like(step))
                m.weight.copy_(torch.round(w / step).clamp(-127, 127) * step)
    return out


def accuracy_network(arch: str, *, batch: int, tmp: Path) -> dict[str, Any]:
    from tvexport.accuracy import Reference

    model = random_model(arch)
    reference = Reference(model)
    x = random_inputs((batch, *model.tvexport_config.input_shape), seed=1)
    truth = reference.truth(x)
    rows: dict[str, Any] = {}
    for dtype in KERNEL_DTYPES:
        t0 = time.perf_counter()
        result = tvexport.bake(model, kernel_dtype=getattr(torch, dtype))
        report = result.report
        assert report is not None
        with torch.no_grad():
            got = result.model(x)
        cmin, cmean = _cosines(got, truth)
        layers = [m for m in result.model.modules() if isinstance(m, BakedTVConv)]
        rows[dtype] = {
            "ok": report.ok,
            "floor": floor_needed(report),
            "max_rel": float((got.double() - truth).abs().max() / truth.abs().max()),
            "cosine_min": cmin,
            "cosine_mean": cmean,
            "bake_report": report.to_dict()["network"],
            "kernel_bytes": sum(stored_bytes(m) for m in layers),
            "sizes": file_sizes(result, tmp, f"{arch}_{dtype}"),
            "seconds": time.perf_counter() - t0,
        }
        log(f"  {arch} {dtype}: max rel {rows[dtype]['max_rel']:.2e}, cosine min {cmin:.6f}, sizes {rows[dtype]['sizes']}")
        if dtype == "float32":
            base = result.model.double()  # the float32 bake, for the granularity study
    bn_variants = {}
    for bn in ("random", "measured"):  # the floor of the int8 rule, on badly conditioned networks too
        other = random_model(arch, bn=bn)
        bn_variants[bn] = {dtype: floor_needed(tvexport.bake(other, kernel_dtype=dtype).report) for dtype in ("float16", "int8")}
        log(f"  {arch} BN {bn}: {bn_variants[bn]}")
    study = {}
    for label, dims in GRANULARITY.items():
        with torch.no_grad():
            got = quantized_copy(base, dims)(x.double())
        cmin, cmean = _cosines(got, truth)
        study[label] = {"max_rel": float((got - truth).abs().max() / truth.abs().max()), "cosine_min": cmin, "cosine_mean": cmean}
    return {"arch": arch, "batch": batch, "kernels": rows, "granularity": study, "bn_variants": bn_variants}


def accuracy_demo(*, tmp: Path) -> dict[str, Any]:
    from tvexport.accuracy import Reference

    checkpoint = train_demo.CHECKPOINT
    _, images, _, labels = train_demo.digits_split()
    x = train_demo.to_input(images)
    weight = train_demo.head_weight(checkpoint)
    model = tvexport.load_checkpoint(checkpoint)
    truth = Reference(model).truth(x)
    rows = {}
    for dtype in KERNEL_DTYPES:
        result = tvexport.bake(model, kernel_dtype=getattr(torch, dtype))
        assert result.report is not None
        emb = train_demo.embed(result.model, x)
        cmin, cmean = _cosines(emb, truth)
        accuracy = train_demo.accuracy(emb, weight, torch.as_tensor(labels))
        rows[dtype] = {
            "ok": result.report.ok, "accuracy": accuracy, "correct": round(accuracy * len(labels)), "n": len(labels),
            "max_rel": float((emb.double() - truth).abs().max() / truth.abs().max()), "cosine_min": cmin, "cosine_mean": cmean,
            "sizes": file_sizes(result, tmp, f"demo_{dtype}"),
        }
        log(f"  demo {dtype}: accuracy {accuracy:.4f}, cosine min {cmin:.6f}")
    truth_accuracy = train_demo.accuracy(truth.float(), weight, torch.as_tensor(labels))
    return {"checkpoint": checkpoint.name, "truth_accuracy": truth_accuracy, "kernels": rows}


# --------------------------------------------------------------------------------------------
# package / time: AOTInductor
# --------------------------------------------------------------------------------------------

def package_path(cache: Path, arch: str, variant: str, batch: int) -> Path:
    return cache / arch / f"{variant}_b{batch}.pt2"


def build_packages(arch: str, cache: Path, batches: tuple[int, ...]) -> dict[str, Any]:
    from tvexport.export.aoti import export_aoti

    tv = tvexport.bake(random_model(arch), verify=False).model
    nets = {"dw_float32": tvexport.bake(random_model(arch, atom="dwconv"), verify=False).model}  # BatchNorm folded, as deployed
    for dtype in KERNEL_DTYPES:
        nets[f"tv_{dtype}"] = tv if dtype == "float32" else compress_model_copy(tv, dtype)
    info: dict[str, Any] = {}
    for variant in VARIANTS:
        for batch in batches:
            path = package_path(cache, arch, variant, batch)
            path.parent.mkdir(parents=True, exist_ok=True)
            result = export_aoti(nets[variant], path, batch=batch, force=True)
            keep = ("compile_seconds", "package_bytes", "constant_bytes", "kernel_dtype", "cpu_isa")
            info[f"{variant}_b{batch}"] = {k: result.info.get(k) for k in keep} | {"validation_max_rel": max(c.max_rel for c in result.comparisons)}
            log(f"  {arch} {variant} batch {batch}: {result.info['package_bytes'] / 1e6:.1f} MB, compile {result.info['compile_seconds']:.0f} s")
    return info


def compress_model_copy(model: nn.Module, dtype: str) -> nn.Module:
    """A copy of a float32 baked model with kernels stored as ``dtype`` (``export --kernel-dtype`` on a float32 baked file)."""
    out = copy.deepcopy(model)
    compress_model(out, getattr(torch, dtype))
    return out


def time_packages(arch: str, cache: Path, batches: tuple[int, ...], *, threads: int, rounds: int) -> dict[str, Any]:
    from tvexport.export.aoti import AotiRunner

    torch.set_num_threads(threads)
    out: dict[str, Any] = {"threads": threads}
    shape = tvexport.create_model(arch).tvexport_config.input_shape
    for batch in batches:
        runners = {v: AotiRunner(package_path(cache, arch, v, batch)).compiled for v in VARIANTS}
        x = torch.rand(batch, *shape) * 2 - 1
        with torch.inference_mode():
            timings = interleaved({v: (lambda r=r: r(x)) for v, r in runners.items()}, rounds=rounds)
        dw = timings["dw_float32"].samples_us
        row: dict[str, Any] = {v: timings[v].to_dict() for v in VARIANTS}
        for v in VARIANTS[:3]:
            ratio = paired_ratio(timings[v].samples_us, dw, names=(v, "dw_float32")).to_dict()
            row[f"{v}/dw"] = ratio | {"of_min": timings[v].min / timings["dw_float32"].min}
        out[f"b{batch}"] = row
        log(f"  {arch} batch {batch}: " + ", ".join(f"{v} {row[v]['p50_us'] / 1e3:.2f} ms" for v in VARIANTS)
            + " | TV/DW " + ", ".join(f"{v[3:]} {row[f'{v}/dw']['median']:.2f}" for v in VARIANTS[:3]))
        del runners
    return out


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------

def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def render(result: dict[str, Any], out: Path, name: str) -> None:
    lines = [
        "# Compressed baked kernels: float32 / float16 / int8 (per-(channel, tap) scales)",
        "",
        "Each table comes from one phase of `benchmarks/compressed_kernels.py`; its command, machine and load are listed under",
        "Runs. int8 is symmetric with one float32 scale per (channel, tap); float16 is a plain cast. Errors are",
        "max|out - truth| / max|truth| against the unbaked network in float64; cosine is per sample (min and mean).",
        f"Targets (issue 14): int8 files <= {TARGETS['size_ratio']}x float32, demo accuracy within {TARGETS['accuracy_points']} points,",
        f"cosine >= {TARGETS['cosine']} on random-weight zoo networks, AOTInductor TV/DW at batch 1 <= {TARGETS['aoti_ratio']}x with compressed kernels.",
        "",
    ]
    demo = result.get("demo")
    if demo:
        lines += ["## Demo checkpoint: test accuracy on its 360 held-out digits", "",
                  f"{demo['checkpoint']}; the unbaked network in float64 scores {demo['truth_accuracy']:.4f}.", "",
                  "| kernels | accuracy | vs float32 (points) | cosine min | cosine mean | max rel | baked file | ONNX portable | ONNX plugin |",
                  "|---|---|---|---|---|---|---|---|---|"]
        base = demo["kernels"]["float32"]
        for dtype, r in demo["kernels"].items():
            lines.append(f"| {dtype} | {r['accuracy']:.4f} ({r['correct']}/{r['n']}) | {100 * (r['accuracy'] - base['accuracy']):+.2f} | {r['cosine_min']:.6f} | {r['cosine_mean']:.6f} | "
                         f"{r['max_rel']:.2e} | " + " | ".join(_size_cell(r, base, key) for key in ("baked", "onnx_portable", "onnx_plugin")) + " |")
        lines.append("")
    acc = result.get("accuracy", {})
    if acc:
        lines += ["## Zoo networks (random weights): error, cosine and file sizes", "",
                  "| network | kernels | max rel | cosine min | cosine mean | bake check | kernel bytes | baked file | ONNX portable | ONNX plugin |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for arch, a in acc.items():
            base = a["kernels"]["float32"]
            for dtype, r in a["kernels"].items():
                lines.append(f"| {arch} | {dtype} | {r['max_rel']:.2e} | {r['cosine_min']:.6f} | {r['cosine_mean']:.6f} | {'ok' if r['ok'] else 'FAIL'} | "
                             f"{r['kernel_bytes'] / 1e6:.2f} MB ({r['kernel_bytes'] / base['kernel_bytes']:.3f}x) | "
                             + " | ".join(_size_cell(r, base, key) for key in ("baked", "onnx_portable", "onnx_plugin")) + " |")
        lines += ["", "### The floor of the acceptance rule for compressed kernels", "",
                  "Bake check rows (each TV layer with its folded BatchNorm, and the network) against 2 x the float32 original with its",
                  "kernels rounded the same way (rtol 0): the smallest rtol with which every row passes, the largest ratio to that yardstick, and",
                  "the share of the allowance used with the default floor. BatchNorm statistics: calibrated (table above), random, measured.", "",
                  "| network | BN | float16: rtol needed / max ratio / allowance used | int8: rtol needed / max ratio / allowance used |",
                  "|---|---|---|---|"]
        for arch, a in acc.items():
            variants = {"calibrated": {d: a["kernels"][d]["floor"] for d in ("float16", "int8")}, **a.get("bn_variants", {})}
            for bn, v in variants.items():
                lines.append(f"| {arch} | {bn} | " + " | ".join(f"{v[d]['rtol_needed']:.2g} / {v[d]['max_ratio']:.3g} / {v[d]['worst_allowance_used']:.2f}" for d in ("float16", "int8")) + " |")
        lines += ["", "### int8 scale granularity (same networks and inputs)", "",
                  "| network | " + " | ".join(f"{g}: cosine min / max rel" for g in GRANULARITY) + " |",
                  "|---|" + "---|" * len(GRANULARITY)]
        for arch, a in acc.items():
            lines.append(f"| {arch} | " + " | ".join(f"{a['granularity'][g]['cosine_min']:.6f} / {a['granularity'][g]['max_rel']:.2e}" for g in GRANULARITY) + " |")
        lines.append("")
    timing = result.get("timing", {})
    if timing:
        lines += ["## AOTInductor packages: latency, TV (float32 / float16 / int8 kernels) vs DWConv (float32)", "",
                  "Static-batch packages (`export --format aoti --batch N`), loaded in one process and run round-robin; "
                  "latency is the median over rounds, TV/DW the median of per-round ratios [p10-p90].", "",
                  "| network | batch | TV fp32 ms | TV fp16 ms | TV int8 ms | DW ms | TV/DW fp32 | TV/DW fp16 | TV/DW int8 | package MB fp32 / fp16 / int8 / DW |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        packages = result.get("packages", {})
        for arch, t in timing.items():
            for batch in BATCHES:
                row = t.get(f"b{batch}")
                if not row:
                    continue
                pk = packages.get(arch, {})
                sizes = " / ".join(_fmt((pk.get(f"{v}_b{batch}") or {}).get("package_bytes", float("nan")) / 1e6, ".1f") for v in VARIANTS)
                lines.append(f"| {arch} | {batch} | " + " | ".join(_fmt(row[v]["p50_us"] / 1e3) for v in VARIANTS) + " | "
                             + " | ".join(f"{row[f'{v}/dw']['median']:.2f} [{row[f'{v}/dw']['p10']:.2f}-{row[f'{v}/dw']['p90']:.2f}]" for v in VARIANTS[:3])
                             + f" | {sizes} |")
        lines.append("")
    lines += ["## Runs", ""]
    for run in result.get("runs", []):
        lines.append(f"* {run['date']} `{run['command']}` ({run['phase']}, {run['seconds']:.0f} s): {run['machine']}; load average {run['load_before']} -> {run['load_after']}")
    lines.append("")
    _common.write_results(out, name, "\n".join(lines), result)
    plot(result, out / f"{name}.png")


def _size_cell(r: dict[str, Any], base: dict[str, Any], key: str) -> str:
    return f"{r['sizes'][key] / 1e6:.2f} MB ({r['sizes'][key] / base['sizes'][key]:.3f}x)"


def plot(result: dict[str, Any], path: Path) -> None:
    from tvexport.profile.plot import require_matplotlib

    plt = require_matplotlib()
    acc, timing = result.get("accuracy", {}), result.get("timing", {})
    if not acc and not timing:
        return
    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    ax = axes[0]
    archs = list(acc)
    width = 0.25
    for i, (dtype, key) in enumerate((("float16", "onnx_portable"), ("int8", "onnx_portable"), ("int8", "baked"))):
        vals = [acc[a]["kernels"][dtype]["sizes"][key] / acc[a]["kernels"]["float32"]["sizes"][key] for a in archs]
        bars = ax.bar([j + (i - 1) * width for j in range(len(archs))], vals, width, label=f"{dtype} {key.replace('_', ' ')}")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(TARGETS["size_ratio"], color="k", ls="--", lw=0.8, label=f"target {TARGETS['size_ratio']}x (int8)")
    ax.set_xticks(range(len(archs)), [a.replace("face_", "").replace("_mobilenetv2", "") for a in archs], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("file size / float32 file size")
    ax.set_title("File size by kernel dtype")
    ax.legend(fontsize=8)
    ax = axes[1]
    tarchs = [a for a in timing if "b1" in timing[a]]
    for i, v in enumerate(VARIANTS[:3]):
        vals = [timing[a]["b1"][f"{v}/dw"]["median"] for a in tarchs]
        bars = ax.bar([j + (i - 1) * width for j in range(len(tarchs))], vals, width, label=f"TV {v[3:]} kernels")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.axhline(TARGETS["aoti_ratio"], color="k", ls="--", lw=0.8, label=f"target {TARGETS['aoti_ratio']}x")
    ax.set_xticks(range(len(tarchs)), [a.replace("face_", "") for a in tarchs], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("TV / DW latency (AOTInductor, batch 1, median of per-round ratios)")
    ax.set_title(f"AOTInductor batch 1, {next(iter(timing.values()), {}).get('threads', 2)} threads")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0], render=True)
    p.add_argument("--phase", choices=["accuracy", "package", "time"], help="what to run (see the module docstring)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the package phase leaves packages for the time phase")
    p.add_argument("--batch", type=int, action="append", help="AOTInductor batch sizes (default 1 and 16)")
    p.add_argument("--rounds", type=int, default=20, help="clean interleaved rounds per batch (time phase)")
    p.add_argument("--no-demo", action="store_true", help="accuracy phase: skip the demo checkpoint")
    args = p.parse_args()
    name = args.name or NAME
    if _common.rerender(args, name, render) is not None:
        return
    if args.phase is None:
        p.error("give --phase (accuracy, package, time) or --render JSON")
    archs = args.arch or (tvexport.list_models() if args.phase == "accuracy" else _common.ARCHS)
    batches = tuple(args.batch or BATCHES)
    path = args.out / f"{name}.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    start, load_before = time.perf_counter(), load_average()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            log(f"{args.phase}: {arch}")
            if args.phase == "accuracy":
                result.setdefault("accuracy", {})[arch] = accuracy_network(arch, batch=4, tmp=Path(tmp))
            elif args.phase == "package":
                result.setdefault("packages", {})[arch] = build_packages(arch, args.cache, batches)
            else:
                result.setdefault("timing", {})[arch] = time_packages(arch, args.cache, batches, threads=args.threads, rounds=2 if args.quick else args.rounds)
        if args.phase == "accuracy" and not args.no_demo:
            result["demo"] = accuracy_demo(tmp=Path(tmp))
    info = machine_info()
    result.setdefault("runs", []).append({
        "phase": args.phase, "command": _common.command_line(), "archs": archs, "seconds": time.perf_counter() - start,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{info.get('cpu', '?')} ({info.get('logical_cores', '?')} logical cores), {args.threads} threads, torch {versions().get('torch')}",
        "load_before": load_before, "load_after": load_average(),
    })
    render(result, args.out, name)


if __name__ == "__main__":
    main()
