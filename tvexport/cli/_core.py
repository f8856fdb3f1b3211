"""``tvexport inspect`` and ``tvexport bake``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ..bake import BakeMismatch, BakeReport, bake_checkpoint
from ..quantize import kernel_dtype_name
from ..resize import describe_resize, parse_input_size
from ..summary import ModelSummary, dropped_keys_note, inspect_checkpoint
from . import app
from ._console import comparison_table, console, err_console
from ._options import AllowNonfinite, Arch, Atol, DType, Force, InputSize, InterpolationMode, Json, KernelDTypeOpt, Output, ResampleMethod, Rtol, Source


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _print_summary(s: ModelSummary) -> None:
    console.print(f"[bold]{s.path}[/bold]  format [cyan]{s.format}[/cyan], {_mb(s.file_bytes)}")
    tv = s.config["tv"]
    atom = s.config["atom"]
    console.print(
        f"arch [cyan]{s.arch}[/cyan] ({atom}), input {s.input_shape[0]}x{s.input_shape[1]}x{s.input_shape[2]}"
        + (f", TVConv k={tv['k']} posi={tv['posi_chans']} inter={tv['inter_chans']}x{tv['inter_layers']} bias={tv['bias']}" if atom == "tvconv" else "")
    )
    for note in s.notes:
        console.print(f"note: {note}")
    if s.tv_layers:
        table = Table(title=f"{len(s.tv_layers)} TV layers", show_lines=False)
        baked = s.format == "baked"  # kernels as stored, and what storing them changed (vs the float64 bake)
        columns = ["C", "k", "stride", "h x w", "bias", "baked values"]
        columns += ["kernels", "bytes", "storage max rel", "MFLOPs"] if baked else ["bytes (float32)", "MFLOPs", "generator MFLOPs"]
        table.add_column("layer", no_wrap=True)
        for col in columns:
            table.add_column(col, justify="right")
        for t in s.tv_layers:
            err = t.kernel_error or {}
            cells = [t.kernel_dtype, f"{t.kernel_bytes:,}", f"{err['max_rel']:.2g}" if "max_rel" in err else "-", f"{t.flops / 1e6:.2f}"] if baked else [
                f"{t.kernel_bytes:,}", f"{t.flops / 1e6:.2f}", f"{t.generator_flops / 1e6:.1f}"]
            table.add_row(t.name, str(t.channels), str(t.k), str(t.stride), f"{t.h}x{t.w}", t.bias, f"{t.kernel_numel:,}", *cells)
        console.print(table)
    console.print(
        f"parameters: total {s.total_params:,}, generator {s.generator_params:,}, baked kernels {s.baked_params:,} "
        f"({_mb(s.baked_bytes)} as {s.baked_dtype}); deployable {s.deployable_params:,}"
    )


@app.command("inspect")
def inspect_cmd(source: Source, arch: Arch = None, as_json: Json = False) -> None:
    """Show format, architecture, TV layers, parameter counts and FLOPs of a checkpoint."""
    summary = inspect_checkpoint(source, arch=arch)
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_summary(summary)


def _print_report(report: BakeReport) -> None:
    title = (f"baked vs {report.truth} (batch {report.batch}, seed {report.seed}; pass: {report.tolerance.describe()}); "
             f"float64 bake {report.float64_bake_max_rel:.2g}")
    console.print(comparison_table(report.rows, title, baseline=report.baseline, float64_bake=report.float64_bake))


@app.command("bake")
def bake_cmd(
    source: Source,
    output: Output = None,
    arch: Arch = None,
    kernel_dtype: KernelDTypeOpt = None,
    dtype: Annotated[DType | None, typer.Option("--dtype", hidden=True, case_sensitive=False, help="Older name of --kernel-dtype.")] = None,
    no_fold_bn: Annotated[bool, typer.Option("--no-fold-bn", help="Keep BatchNorm layers instead of folding them (export keeps them too).")] = False,
    force: Force = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Compare the baked model with the unbaked one in float64.")] = True,
    rtol: Rtol = None,
    atol: Atol = None,
    batch: Annotated[int | None, typer.Option("--batch", min=1, help="Batch size of the verification inputs (default 2).", show_default=False)] = None,
    allow_nonfinite: AllowNonfinite = False,
    input_size: InputSize = None,
    resample: Annotated[ResampleMethod | None, typer.Option(
        "--resample", case_sensitive=False, show_default=False,
        help="With --input-size: resample the baked kernels (kernels, the default), or resample posi_map and generator LayerNorm maps, "
             "then generate (generator).",
    )] = None,
    interpolation: Annotated[InterpolationMode | None, typer.Option(
        "--interpolation", case_sensitive=False, show_default=False, help="With --input-size: bicubic (default) or bilinear.",
    )] = None,
    as_json: Json = False,
) -> None:
    """Replace every TVConv generator by its constant kernels, fold BatchNorm, verify, save.

    Writes <stem>.baked.pt beside the input unless -o is given; an -o suffix of another kind of
    artefact (.onnx, .pt2, .engine) is refused. --input-size HxW re-bakes every TV layer for
    another input size.
    """
    size = parse_input_size(input_size) if input_size is not None else None
    try:
        with err_console.status(f"baking {source.name}..."):
            done = bake_checkpoint(source, output, arch=arch, kernel_dtype=kernel_dtype.value if kernel_dtype else None,
                                   dtype=dtype.torch if dtype else None, fold_bn=not no_fold_bn, verify=verify, rtol=rtol, atol=atol,
                                   batch=batch, allow_nonfinite=allow_nonfinite, input_size=size,
                                   resample=resample.value if resample else None,
                                   interpolation=interpolation.value if interpolation else None, force=force)
    except BakeMismatch as err:  # nothing was written: show the report, then the error line
        report = err.result.report
        assert report is not None
        if as_json:
            kernels = kernel_dtype_name(err.result.dtype)
            typer.echo(json.dumps({"source": str(source), "output": None, "arch": err.result.config.name, "dtype": kernels, "kernel_dtype": kernels, "ok": False,
                                   "report": report.to_dict()}, indent=2))
        else:
            _print_report(report)
        raise
    result = done.result
    kernels = kernel_dtype_name(result.dtype)
    dropped = {k: list(v) for k, v in done.dropped.items()}
    stored, float32 = result.kernel_bytes
    worst = max(result.kernel_errors.items(), key=lambda item: item[1].max_rel, default=None)
    if as_json:
        typer.echo(json.dumps({
            "source": str(source), "output": str(done.output), "arch": result.config.name, "dtype": kernels, "kernel_dtype": kernels,
            "kernel_bytes": stored, "kernel_float32_bytes": float32,
            "kernel_errors": {name: e.to_dict() for name, e in result.kernel_errors.items()},
            "source_bytes": done.source_bytes, "output_bytes": done.output_bytes, "bake_seconds": result.bake_seconds,
            "verify_seconds": result.verify_seconds, "folded_batchnorms": len(result.folded),
            "tv_layers": len(result.tv_layers), "dropped_keys": dropped, "report": result.report.to_dict() if result.report else None,
            "input_size": list(result.config.input_size), "resize": result.resize,
        }, indent=2))
        return
    if dropped:
        console.print("note: " + dropped_keys_note(dropped), highlight=False)
    if result.resize is not None:
        console.print("note: " + describe_resize(result.resize), highlight=False)
    if result.report is not None:
        _print_report(result.report)
    if worst is not None:
        versus = "the resampled float64 bake" if result.resize is not None and result.resize["resample"] == "kernels" else "the float64 bake"
        console.print(f"TV kernels {kernels}: {_mb(stored)} ({stored / max(float32, 1):.2f}x float32); storage error vs {versus}: "
                      f"max rel {worst[1].max_rel:.2g} (worst layer {worst[0]}), rms rel up to {max(e.rms_rel for e in result.kernel_errors.values()):.2g}", highlight=False)
    ratio = done.source_bytes / max(done.output_bytes, 1)
    change = f"{ratio:.1f}x smaller" if ratio >= 1 else f"{1 / ratio:.1f}x larger: its generators are smaller than their kernels"
    console.print(
        f"[green]wrote[/green] {done.output} ({_mb(done.output_bytes)}; source {_mb(done.source_bytes)}, {change}): "
        f"{result.config.name}, {len(result.tv_layers)} TV layers baked for {'x'.join(map(str, result.config.input_size))}, "
        f"{len(result.folded)} BatchNorms folded, "
        f"kernels {kernels}; bake {result.bake_seconds:.2f} s, verify {result.verify_seconds:.2f} s, total {done.seconds:.2f} s"
    )
