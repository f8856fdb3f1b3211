"""``tvexport build``: ONNX -> TensorRT engine with the TV plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from . import _state, app
from ._console import console, err_console
from ._options import Force, Json, Output

Batch = int | None


@app.command("build")
def build_cmd(
    model: Annotated[Path, typer.Argument(metavar="MODEL.onnx", readable=False, help="An ONNX model from tvexport export.", show_default=False)],
    output: Output = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="TensorRT 10: allow FP16 kernels for a float32 model. TensorRT 11 takes precision from the ONNX dtypes.")] = False,
    min_batch: Annotated[Batch, typer.Option("--min-batch", min=1, help="Smallest batch the engine accepts (default 1).", show_default=False)] = None,
    opt_batch: Annotated[Batch, typer.Option("--opt-batch", min=1, help="Batch TensorRT tunes for (default: the min batch).", show_default=False)] = None,
    max_batch: Annotated[Batch, typer.Option("--max-batch", min=1, help="Largest batch the engine accepts (default 32).", show_default=False)] = None,
    workspace: Annotated[int | None, typer.Option("--workspace", min=1, help="Builder workspace limit in MB (default: TensorRT's).", show_default=False)] = None,
    force: Force = False,
    as_json: Json = False,
) -> None:
    """Build a TensorRT engine for this GPU; tv_dwconv nodes run the fused Triton kernel as an
    ahead-of-time plugin. Writes MODEL.engine (or -o; an -o suffix of another kind of artefact,
    .onnx, .pt2, .baked.pt, is refused) and a JSON sidecar beside it."""
    from ..trt.build import build_engine

    with err_console.status(f"building {model} with TensorRT..."):
        result = build_engine(
            model, output, fp16=fp16, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
            workspace_mb=workspace, force=force, verbose=_state["verbose"],
        )
    info = result.info
    if as_json:
        typer.echo(json.dumps({"engine": str(result.engine), "sidecar": str(result.sidecar), **info}, indent=2))
        return
    prof = info["profile"]
    console.print(
        f"[green]wrote[/green] {result.engine} ({result.engine.stat().st_size / 1e6:.2f} MB) and {result.sidecar.name}: "
        f"TensorRT {info['tensorrt']} on {info['gpu']['name']}, {info['precision']}, "
        f"{info['plugin']['layers']} TV plugin layers, batch {prof['min'][0]}..{prof['max'][0]} (opt {prof['opt'][0]}), "
        f"build {result.seconds:.1f} s"
    )
