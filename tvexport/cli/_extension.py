"""``tvexport extension build openvino``: compile a runtime extension for this machine."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer

from . import app
from ._console import console, err_console
from ._options import Json

extension_app = typer.Typer(help="Runtime extensions that run tv_dwconv nodes fused.", no_args_is_help=True)
app.add_typer(extension_app, name="extension")


class Runtime(str, Enum):
    openvino = "openvino"


@extension_app.command("build")
def build_cmd(
    runtime: Annotated[Runtime, typer.Argument(help="The runtime to build for.", case_sensitive=False)],
    output_dir: Annotated[str | None, typer.Option("--output-dir", "-o", metavar="DIR", help="Directory for the library (default: the cache, where runners look).", show_default=False)] = None,  # a str: Path would read "" as "."
    force: Annotated[bool, typer.Option("--force", "-f", help=(
        "Compile again even when the cached library is up to date; with -o, also replace a library there "
        "built from other sources or for another openvino."))] = False,
    as_json: Json = False,
) -> None:
    """Build the OpenVINO extension (tv_dwconv on the CPU plugin) with this machine's C++ compiler
    against the installed openvino wheel; cached by source hash, so a second run is instant."""
    from ..openvino import build_extension

    with err_console.status(f"building the {runtime.value} extension..."):
        result = build_extension(output_dir=output_dir, force=force)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    what = "up to date (nothing to compile)" if result.cached else f"built in {result.seconds:.1f} s"
    console.print(f"[green]{what}[/green]: {result.path} (openvino {result.info['openvino'].split('-')[0]}, {result.info['compiler']})")
