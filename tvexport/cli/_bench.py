"""``tvexport bench``: latency of the TV network against its DWConv (and dense) baselines."""

from __future__ import annotations

import math
import shlex
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import TvexportError
from ..profile.backends import REGISTRY
from . import app
from ._console import console, err_console
from ._options import Arch, DType, DTypeOpt, Force, seed_in_range


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


_SUFFIX = {"--json": "json", "--csv": "csv", "--markdown": "md"}


def _batches(values: list[str]) -> list[int]:
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                n = int(part)
            except ValueError:
                n = 0
            if n < 1:
                raise TvexportError(f"--batch {value!r}: batch sizes are positive integers", hint="e.g. --batch 1,8,32")
            out.append(n)
    if not out:
        raise TvexportError("--batch is empty", hint="e.g. --batch 1,8,32")
    return out


def _command_line(ctx: typer.Context) -> str:
    """The command as typed, rebuilt from the options given on the command line."""
    parts = ["tvexport", "bench"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name) if param.name else None
        if getattr(source, "name", None) != "COMMANDLINE":
            continue
        value = ctx.params[param.name]  # type: ignore[index]
        if param.param_type_name == "argument":
            parts.append(str(value))
            continue
        opt = param.opts[0]
        if getattr(param, "is_flag", False):
            parts.append(opt if value else (param.secondary_opts or [opt])[0])
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            parts += [opt, str(v.value if isinstance(v, Enum) else v)]
    return shlex.join(parts)


def _table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 or col == "layer" else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _print_report(report: dict[str, Any], *, to_stderr: bool) -> None:
    from ..profile.report import describe_machine, layer_rows, summary_rows

    out = err_console if to_stderr else console
    s = report["settings"]
    out.print(
        f"[bold]{report['arch']['name']}[/bold] input {'x'.join(map(str, report['arch']['input_shape']))}: "
        + ", ".join(f"{n['label']} ({n['origin']})" for n in report["networks"])
    )
    out.print(f"[dim]{describe_machine(report)}[/dim]")
    out.print(_table(
        f"latency (median ms, CV), throughput, and TV/baseline ratio of paired rounds: >= {s['min_iters']} rounds and >= {s['min_seconds']:g} s per case",
        *summary_rows(report),
    ))
    if report["layers"]:
        bw = report["bandwidth"]
        out.print(_table(f"per TV layer: median us vs memory floor at {bw['bytes_per_s'] / 1e9:.2f} GB/s copy bandwidth", *layer_rows(report)))
    for item in report["skipped"]:
        err_console.print(f"skipped {item['backend']}: {escape(item['reason'])}")
    for w in report["warnings"] + [w for c in report["cases"] for w in c["warnings"]]:
        err_console.print(f"[yellow]warning:[/yellow] {escape(w)}")


@app.command("bench")
def bench_cmd(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(
        metavar="SRC", help="A checkpoint, a .baked.pt file, or an architecture name (random weights, reference TV settings).", show_default=False,
    )],
    backend: Annotated[list[str] | None, typer.Option(
        "--backend", "-b", metavar="NAME", help=f"Backend to run (repeatable): {', '.join(REGISTRY)}; default: every available one.", show_default=False,
    )] = None,
    batch: Annotated[list[str] | None, typer.Option("--batch", metavar="N[,N...]", help="Batch sizes, comma-separated and/or repeated (default 1).", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, help="Intra-op CPU threads (default: torch's current count); recorded in the report.", show_default=False,
    )] = None,
    device: Annotated[Device, typer.Option("--device", case_sensitive=False, help="Where to run.")] = Device.cpu,
    dtype: DTypeOpt = DType.float32,
    arch: Arch = None,
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", metavar="CKPT", readable=False, help="DWConv (or dense) checkpoint to compare with, instead of random weights.", show_default=False,
    )] = None,
    dense: Annotated[bool, typer.Option("--dense", help="Add the dense-conv baseline (only deeplabv3plus_mobilenetv2 has one).")] = False,
    input_size: Annotated[str | None, typer.Option(
        "--input-size", metavar="HxW", show_default=False,
        help="The input size the network runs at: checked against the size SRC was trained or re-baked for (TVConv runs only there); "
             "an architecture-name SRC is built at it.",
    )] = None,
    warmup_seconds: Annotated[float, typer.Option("--warmup-seconds", min=0, help="Time-based warm-up per case.")] = 0.5,
    min_iters: Annotated[int, typer.Option("--min-iters", min=1, help="Minimum timed rounds per case.")] = 20,
    min_seconds: Annotated[float, typer.Option("--min-seconds", min=0, help="Minimum timed seconds per case.")] = 2.0,
    max_seconds: Annotated[float | None, typer.Option(
        "--max-seconds", show_default=False,
        help="Stop a case's timed rounds after this many seconds, even below the minimums (marked truncated); "
             "the warm-up (--warmup-seconds) is not counted.",
    )] = None,
    cv_warn: Annotated[float, typer.Option("--cv-warn", help="Warn when a coefficient of variation exceeds this.")] = 0.10,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="Also time each TV layer in isolation against its memory floor.")] = False,
    layer_seconds: Annotated[float, typer.Option("--layer-seconds", min=0, help="Minimum timed seconds per layer with --per-layer.")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", callback=seed_in_range, help="Seed of random weights (registry SRC, baselines).")] = 0,
    # the report options are str: Path would read "" (an unset variable) as ".", a name never typed
    json_out: Annotated[str | None, typer.Option("--json", metavar="FILE", help="Write the report as JSON ('-': stdout).", show_default=False)] = None,
    csv_out: Annotated[str | None, typer.Option("--csv", metavar="FILE", help="Write the latencies and ratios as CSV ('-': stdout).", show_default=False)] = None,
    md_out: Annotated[str | None, typer.Option("--markdown", metavar="FILE", help="Write the report as Markdown ('-': stdout).", show_default=False)] = None,
    plot: Annotated[str | None, typer.Option("--plot", metavar="FILE.png", help="Write a PNG: latency per backend and batch, ratios, per-layer view.", show_default=False)] = None,
    force: Force = False,
) -> None:
    """Is the TV network faster than its DWConv baseline? Time both, interleaved, on each backend and batch.

    By default every available backend runs and the unavailable ones are listed with the reason.
    """
    from ..models.registry import ArchConfig
    from ..profile import MeasureSettings, check_report_paths, load_subject, parse_input_size, run_bench, to_csv, to_json, to_markdown, write_reports
    from ..profile.bench import refuse_oversized_batch

    reports = {"--json": json_out, "--csv": csv_out, "--markdown": md_out}
    to_stdout = [opt for opt, path in reports.items() if path is not None and str(path) == "-"]
    if len(to_stdout) > 1:
        named = ", ".join(to_stdout[:-1]) + f" and {to_stdout[-1]}"
        example = " ".join(f"{opt} bench.{_SUFFIX[opt]}" for opt in to_stdout[1:])
        two = len(to_stdout) == 2
        raise TvexportError(
            f"{named} are {'both' if two else 'all'} '-': only one report can go to stdout",
            hint=f"keep '-' for {to_stdout[0]} and write {'the other' if two else 'the others'} to {'a file' if two else 'files'}, e.g. {example}",
        )
    if plot is not None and str(plot) == "-":
        raise TvexportError("--plot -: a PNG is not written to stdout", hint="give a file name, e.g. --plot bench.png")
    stdout_opt = to_stdout[0] if to_stdout else None
    files = {opt: None if opt == stdout_opt else path for opt, path in reports.items()}
    inputs = {"SRC": Path(source), "--baseline": baseline}  # --force overwrites reports, never these
    check_report_paths({**files, "--plot": plot}, inputs=inputs, force=force)  # before any work
    if plot is not None:
        from ..profile.plot import check_plot_path, require_matplotlib

        check_plot_path(plot, what="--plot")
        require_matplotlib()
    batches = _batches(batch or ["1"])
    if not (math.isfinite(cv_warn) and cv_warn > 0):  # NaN and inf too: they would never warn
        raise TvexportError(f"--cv-warn {cv_warn:g}: the warning threshold is a coefficient of variation, a finite number > 0", hint="e.g. --cv-warn 0.1")
    if not per_layer and getattr(ctx.get_parameter_source("layer_seconds"), "name", None) == "COMMANDLINE":
        raise TvexportError("--layer-seconds applies with --per-layer only", hint="add --per-layer or drop --layer-seconds")
    settings = MeasureSettings(warmup_seconds=warmup_seconds, min_iters=min_iters, min_seconds=min_seconds, max_seconds=max_seconds)
    size = parse_input_size(input_size) if input_size is not None else None
    if device is Device.cuda:
        from ..profile.backends.torch_eager import torch_device_reason

        reason = torch_device_reason("cuda")
        if reason is not None:
            raise TvexportError(f"--device cuda: {reason}", hint="use --device cpu")

    if backend:  # fail fast on unknown or unavailable backends, before building networks
        from ..profile import select_backends

        select_backends(backend, device=device.value)

    def input_fits(cfg: ArchConfig, unbaked: bool) -> None:  # run_bench's refusal of an input past memory, before the networks are built
        refuse_oversized_batch(cfg.input_shape, unbaked=unbaked, backends=backend or None, batches=batches, device=device.value, dtype=dtype.value,
                               cv_warn=cv_warn, layer_seconds=layer_seconds)

    with err_console.status(f"loading {source}..."):
        subject = load_subject(source, arch=arch, baseline=baseline, dense=dense, input_size=size, seed=seed, before_build=input_fits)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def progress(description: str, done: int, total: int) -> None:
            bar.update(task, description=description, completed=done, total=total)

        report = run_bench(
            subject, backends=backend or None, batches=batches, threads=threads, device=device.value, dtype=dtype.value,
            settings=settings, per_layer=per_layer, layer_seconds=layer_seconds, cv_warn=cv_warn, seed=seed,
            command=_command_line(ctx), progress=progress,
        )
    _print_report(report, to_stderr=stdout_opt is not None)  # stdout holds only the report asked for
    if stdout_opt is not None:
        typer.echo({"--json": to_json, "--csv": to_csv, "--markdown": to_markdown}[stdout_opt](report), nl=False)
    written = write_reports(report, json_path=files["--json"], csv_path=files["--csv"], markdown_path=files["--markdown"], force=force, inputs=inputs)
    if plot is not None:
        from ..profile.plot import plot_report

        written.append(plot_report(report, plot, force=force, inputs=inputs))
    for path in written:
        err_console.print(f"[green]wrote[/green] {path}")
