"""``tvexport export`` (ONNX, AOTInductor) and ``tvexport validate``."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from . import app
from ._console import comparison_table, console, err_console
from ._options import Arch, Atol, DType, DTypeOpt, Force, Json, KernelDTypeOpt, Output, Rtol, Source, seed_in_range


class Format(str, Enum):
    onnx = "onnx"
    aoti = "aoti"


class TVOpChoice(str, Enum):
    portable = "portable"
    plugin = "plugin"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


def _title(what: str, truth: str, comparisons: list[Any]) -> str:
    """``onnx (batch 1) vs unbaked float64 torch (pass: 2 x float32 + 1e-05 rel)``."""
    rule = comparisons[0].tolerance.describe() if comparisons else "-"
    return f"{what} vs {truth} torch (pass: {rule})"


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


@app.command("export")
def export_cmd(
    source: Source,
    output: Output = None,
    arch: Arch = None,
    format: Annotated[Format | None, typer.Option(
        "--format", case_sensitive=False, show_default=False,
        help="Artefact format: ONNX graph or AOTInductor package (default: aoti for a -o ending in .pt2, else onnx).",
    )] = None,
    tv_op: Annotated[TVOpChoice, typer.Option(
        "--tv-op", case_sensitive=False, help="TV layers as standard ONNX ops (portable) or one tvexport::tv_dwconv plugin node each.",
    )] = TVOpChoice.portable,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (default 18).", show_default=False)] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Fixed batch size of the graph.")] = 1,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", help="Symbolic batch dimension instead of --batch.")] = False,
    dtype: DTypeOpt = DType.float32,
    kernel_dtype: KernelDTypeOpt = None,
    fp16_io: Annotated[bool, typer.Option("--fp16-io", help="With --dtype float16: float16 input and output too (default float32 I/O).")] = False,
    no_simplify: Annotated[bool, typer.Option("--no-simplify", help="Skip onnxsim.")] = False,
    validate: Annotated[bool, typer.Option("--validate/--no-validate", help="Compare with the torch model on random inputs.")] = True,
    rtol: Rtol = None,
    atol: Atol = None,
    external_data: Annotated[bool, typer.Option("--external-data", help="Weights in <output>.data beside the graph (automatic above 2 GB).")] = False,
    decomposition: Annotated[str | None, typer.Option(
        "--decomposition", show_default=False,
        help="Portable TV subgraph: auto (default: per layer, by a rule fitted to onnxruntime CPU timings), "
             "shift_add, shift_sum, shift_hwnc, slice_concat, gather, onehot_conv.",
    )] = None,
    device: Annotated[Device, typer.Option("--device", help="AOTInductor target device (aoti only).", case_sensitive=False)] = Device.cpu,
    max_batch: Annotated[int | None, typer.Option("--max-batch", min=1, help="Largest batch of a dynamic AOTInductor package (aoti only; default 64).", show_default=False)] = None,
    force: Force = False,
    as_json: Json = False,
) -> None:
    """Export a checkpoint or baked file to a deployable artefact, validated against torch.

    Writes <stem>.onnx (or .pt2) beside the input unless -o is given; -o x.pt2 exports an
    AOTInductor package without --format, and an -o suffix of another kind of file is refused. Input 'input' (N,3,H,W)
    float32; output 'embedding' (N,512) for face networks, 'logits' (N,C,H,W) for DeepLabV3+.
    """
    from ..export import export_checkpoint, resolve_format
    from ..export.validate import ValidationMismatch

    given = format.value if format else None  # the user's --format: export_checkpoint's lines then name only what was typed
    fmt = resolve_format(given, output, check_suffix=False)  # for the status line and titles; export_checkpoint checks the suffix
    try:
        with err_console.status(f"exporting {source.name} to {fmt}...") as status:
            result = export_checkpoint(
                source, output, format=given, arch=arch, kernel_dtype=kernel_dtype.value if kernel_dtype else None, validate=validate,
                rtol=rtol, atol=atol, force=force, batch=batch, dynamic_batch=dynamic_batch, tv_op=tv_op.value, opset=opset,
                dtype=dtype.value, fp16_io=fp16_io, simplify=not no_simplify, external_data=external_data or None,
                decomposition=decomposition, device=device.value, max_batch=max_batch,
                # an AOTInductor export compiles for a minute: say which phase it is in
                progress=(lambda phase: status.update(f"{source.name} to {fmt}: {phase}...")) if fmt == "aoti" else None,
            )
    except ValidationMismatch as err:
        if err.comparisons:
            if as_json:
                typer.echo(json.dumps({"ok": False, "output": None, "truth": err.truth, "baseline": err.baseline,
                                       "comparisons": [c.to_dict() for c in err.comparisons]}, indent=2))
            else:
                console.print(comparison_table(err.comparisons, _title(f"{fmt} validation failed:", err.truth, err.comparisons), baseline=err.baseline))
        raise
    if as_json:
        typer.echo(json.dumps({
            "ok": result.ok, "output": str(result.path), "format": result.format, "arch": result.arch,
            "extra_files": [str(p) for p in result.extra_files], "seconds": result.seconds, "info": result.info,
            "truth": result.truth, "baseline": result.baseline, "comparisons": [c.to_dict() for c in result.comparisons],
        }, indent=2, default=str))
        return
    if result.comparisons:
        inputs = f"{'batch ' + str(batch) if not dynamic_batch else 'dynamic batch'}, seed 0"
        console.print(comparison_table(result.comparisons, _title(f"{fmt} ({inputs})", result.truth, result.comparisons), baseline=result.baseline))
    info = result.info
    size = info.get("file_bytes") or sum(p.stat().st_size for p in [result.path, *result.extra_files])
    details = [result.arch, _mb(size)] + ([f"TV kernels {info['kernel_dtype']}"] if info.get("kernel_dtype") else [])
    if fmt == "onnx":
        decomposition = f" ({info['decomposition']})" if info.get("decomposition") else ""
        layers = f"{info['tv_layers']} TV layers as {info['tv_op']}{decomposition}" if info.get("tv_layers") else "no TV layers"
        details += [f"opset {info['opset']}", f"{info['nodes']} nodes", layers,
                    f"{info['dtype']} weights", f"input {info['input']['name']} {info['input']['shape']}", f"output {info['output']['name']} {info['output']['shape']}"]
    extra = f" + {', '.join(str(p) for p in result.extra_files)}" if result.extra_files else ""
    for note in info.get("notes", []):
        console.print(f"note: {note}")
    console.print(f"[green]wrote[/green] {result.path}{extra}: {', '.join(details)}; {result.seconds:.1f} s" + ("" if result.comparisons else " (not validated)"))


@app.command("validate")
def validate_cmd(
    artifact: Annotated[Path, typer.Argument(metavar="MODEL", readable=False, help="The exported artefact (.onnx, AOTInductor .pt2, TensorRT engine).", show_default=False)],
    against: Annotated[Path, typer.Option("--against", readable=False, help="The checkpoint or baked file it was exported from.", show_default=False)],
    backend: Annotated[str | None, typer.Option(
        "--backend", show_default=False,
        help="Runtime: onnxruntime, aoti, tensorrt, openvino (float32) or openvino-bf16 (default: the one the file's content calls for).",
    )] = None,
    input_path: Annotated[Path | None, typer.Option("--input", readable=False, help="Input as .npy, (N,3,H,W) float; default seeded random.", show_default=False)] = None,
    batch: Annotated[int | None, typer.Option("--batch", min=1, help="Rows of the random input (default: the artefact's batch, else 2).", show_default=False)] = None,
    seed: Annotated[int | None, typer.Option("--seed", callback=seed_in_range, help="Seed of the random input (default 0).", show_default=False)] = None,
    rtol: Rtol = None,
    atol: Atol = None,
    arch: Arch = None,
    as_json: Json = False,
) -> None:
    """Run an exported artefact and the torch model on the same input; exit 1 on mismatch."""
    from ..export.validate import check_comparisons, validate_artifact

    report = validate_artifact(artifact, against, backend=backend, input_path=input_path, batch=batch, seed=seed, rtol=rtol, atol=atol, arch=arch)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        what = f"{artifact.name} ({report.backend}, {report.precision.replace('_kernels', ' kernels')} tolerance, input {report.input_source} {list(report.input_shape)})"
        console.print(comparison_table(report.comparisons, _title(what, f"{report.truth} {report.arch}", report.comparisons), baseline=report.baseline))
    check_comparisons(report.comparisons, prefix=f"{artifact.name} vs {against.name}: ", against=str(against))
    if not as_json:
        console.print(f"[green]ok[/green]: {artifact.name} matches {against.name} within tolerance")
