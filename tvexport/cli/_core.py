"""``tvexport inspect`` and ``tvexport bake``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..bake import BakeReport, bake_model, check_report, default_output, save_baked
from ..checkpoint import arch_config_for, build_from_state_dict, read_checkpoint, refuse_nonfinite
from ..errors import TvexportError
from ..resize import describe_resize
from ..summary import ModelSummary, inspect_checkpoint
from . import app
from ._console import console, err_console
from ._options import AllowNonfinite, Arch, DType, DTypeOpt, Force, InputSize, InterpolationMode, Json, Output, ResampleMethod, Source, tolerance


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
        for col in ("layer", "C", "k", "stride", "h x w", "bias", "baked values", "MFLOPs", "generator MFLOPs"):
            table.add_column(col, justify="left" if col == "layer" else "right")
        for t in s.tv_layers:
            table.add_row(t.name, str(t.channels), str(t.k), str(t.stride), f"{t.h}x{t.w}", "yes" if t.bias else "no",
                          f"{t.kernel_numel:,}", f"{t.flops / 1e6:.2f}", f"{t.generator_flops / 1e6:.1f}")
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
    table = Table(title=f"baked vs unbaked (batch {report.batch}, seed {report.seed}, rel tolerance {report.rtol:g})")
    for col in ("", "max abs", "max rel", "mean abs", ""):
        table.add_column(col, justify="right" if col else "left")
    for e in (*report.layers, report.network):
        ok = e.max_rel <= report.rtol
        table.add_row(e.name, f"{e.max_abs:.3g}", f"{e.max_rel:.3g}", f"{e.mean_abs:.3g}", "[green]ok[/green]" if ok else "[red]FAIL[/red]")
    console.print(table)


@app.command("bake")
def bake_cmd(
    source: Source,
    output: Output = None,
    arch: Arch = None,
    dtype: DTypeOpt = DType.float32,
    no_fold_bn: Annotated[bool, typer.Option("--no-fold-bn", help="Keep BatchNorm layers instead of folding them.")] = False,
    force: Force = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Compare baked and unbaked outputs.")] = True,
    rtol: Annotated[float | None, typer.Option("--rtol", help="Relative tolerance (default 1e-5 float32, 1e-3 float16).", show_default=False, callback=tolerance)] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Batch size of the verification inputs.")] = 2,
    allow_nonfinite: AllowNonfinite = False,
    input_size: InputSize = None,
    resample: Annotated[ResampleMethod | None, typer.Option("--resample", case_sensitive=False, show_default=False, help="With --input-size: resample the baked kernels (kernels, the default), or resample posi_map and generator LayerNorm maps, then generate (generator).")] = None,
    interpolation: Annotated[InterpolationMode | None, typer.Option("--interpolation", case_sensitive=False, show_default=False, help="With --input-size: bicubic (default) or bilinear.")] = None,
    as_json: Json = False,
) -> None:
    """Replace every TVConv generator by its constant kernels, fold BatchNorm, verify, save.

    Writes <stem>.baked.pt beside the input unless -o is given. --input-size HxW re-bakes every TV
    layer for another input size.
    """
    from .._io import check_output_path
    from ..resize import parse_input_size

    if not verify and rtol is not None:
        raise TvexportError("--rtol does not apply with --no-verify", hint="drop one of them")
    size = parse_input_size(input_size) if input_size is not None else None
    out = output if output is not None else default_output(source)
    ckpt = read_checkpoint(source)
    if ckpt.format == "baked":
        raise TvexportError(f"{source} is already baked", hint="export it directly: tvexport export")
    check_output_path(out, force=force)
    if not allow_nonfinite:
        refuse_nonfinite(ckpt, hint="the checkpoint is damaged or diverged; pass --allow-nonfinite to bake anyway")
    cfg = arch_config_for(ckpt, arch)
    if cfg.atom != "tvconv":
        raise TvexportError(f"{source} is a {cfg.name} {cfg.atom} baseline without TVConv layers; there is nothing to bake")
    t0 = time.perf_counter()
    with err_console.status(f"baking {cfg.name}..."):
        model = build_from_state_dict(cfg, ckpt.state_dict, source=ckpt.path)
        try:
            result = bake_model(
                model, fold_bn=not no_fold_bn, dtype=dtype.torch, verify=verify, rtol=rtol, batch=batch, allow_nonfinite=allow_nonfinite,
                input_size=size, resample=resample.value if resample else None, interpolation=interpolation.value if interpolation else None,
            )
        except TvexportError as err:  # e.g. float16 overflow: say which file
            raise type(err)(f"{source}: {err.message}", hint=err.hint) from None
    dropped = {k: list(v) for k, v in ckpt.dropped.items()}
    if dropped and not as_json:
        console.print("note: dropped training-only keys: " + ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in dropped.items()), highlight=False)
    if result.resize is not None and not as_json:
        console.print("note: " + describe_resize(result.resize), highlight=False)
    if result.report is not None and not as_json:
        _print_report(result.report)
    if result.report is not None and not result.report.ok:
        if as_json:
            typer.echo(json.dumps({"source": str(source), "output": None, "arch": cfg.name, "dtype": dtype.value, "ok": False,
                                   "report": result.report.to_dict()}, indent=2))
        check_report(result.report, source=source)  # raises MismatchError: nothing is written
    save_baked(result, out, force=force, source=source)
    elapsed = time.perf_counter() - t0
    size_in, size_out = source.stat().st_size, out.stat().st_size
    if as_json:
        typer.echo(json.dumps({
            "source": str(source), "output": str(out), "arch": cfg.name, "dtype": dtype.value,
            "source_bytes": size_in, "output_bytes": size_out, "bake_seconds": result.bake_seconds,
            "verify_seconds": result.verify_seconds, "folded_batchnorms": len(result.folded),
            "tv_layers": len(result.tv_layers), "dropped_keys": dropped, "report": result.report.to_dict() if result.report else None,
            "input_size": list(result.config.input_size), "resize": result.resize,
        }, indent=2))
        return
    ratio = size_in / max(size_out, 1)
    change = f"{ratio:.1f}x smaller" if ratio >= 1 else f"{1 / ratio:.1f}x larger: its generators are smaller than their kernels"
    console.print(
        f"[green]wrote[/green] {out} ({_mb(size_out)}; source {_mb(size_in)}, {change}): "
        f"{cfg.name}, {len(result.tv_layers)} TV layers baked for {'x'.join(map(str, result.config.input_size))}, {len(result.folded)} BatchNorms folded, "
        f"kernels {dtype.value}; bake {result.bake_seconds:.2f} s, verify {result.verify_seconds:.2f} s, total {elapsed:.2f} s"
    )
