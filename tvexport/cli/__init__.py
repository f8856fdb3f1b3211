"""The ``tvexport`` command line: a thin typer layer over the Python API.

User mistakes surface as one red line on stderr and exit code 2 (1 for a numerical mismatch);
``--verbose`` adds the traceback. Each command group lives in its own module and registers on
``app``.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from typing import Annotated

import typer
from rich.markup import escape

from .._version import __version__
from ..errors import EXIT_BAD_INPUT, EXIT_INTERNAL, TvexportError, first_line
from ._console import err_console

app = typer.Typer(
    name="tvexport",
    help="Bake, export, compile and profile TVConv networks for deployment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state: dict[str, object] = {"verbose": False, "signal": None}

# Signals that end a run from outside (`kill`, `timeout`, a cancelled CI job, a closed terminal).
# Python's default action for them kills the process at once, leaving the temporary file of an
# output being written; the `tvexport` process (run(), not an in-process main() call, whose
# caller owns the process's signals) raises the first one as KeyboardInterrupt, cleans up as for
# Ctrl-C, then ends by that signal; a second one kills at once.
_TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_DFL)  # one-shot: a second signal is not held up by the clean-up
    _state["signal"] = signum
    raise KeyboardInterrupt


def _terminating_as_interrupt() -> None:
    """Make SIGTERM/SIGHUP raise KeyboardInterrupt once, where they have Python's default action
    (a signal the caller ignores, e.g. nohup's SIGHUP, stays ignored)."""
    _state["signal"] = None
    for signum in _TERMINATING:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _terminate)


def _end_by_signal() -> None:
    """Where a terminating signal stopped the command: end the process by that signal (default
    action), so that its parent sees what a shell reports as 128 + the signal's number."""
    signum = _state["signal"]
    if isinstance(signum, int):
        signal.signal(signum, signal.SIG_DFL)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.kill(os.getpid(), signum)


def _say(text: str) -> None:
    try:
        err_console.print(text)
    except OSError:  # SIGHUP: the terminal is gone, and with it stderr
        pass


def _interrupted() -> int:
    """Say how the run was stopped (nothing was left half-written) and return the exit code: 130
    for Ctrl-C, 128 + the signal's number for SIGTERM/SIGHUP, as a shell reports them."""
    signum = _state["signal"]
    if isinstance(signum, int):
        _say(f"[red]terminated by {signal.Signals(signum).name}[/red] (no partial output was written)")
        return 128 + signum
    _say("[red]interrupted[/red] (no partial output was written)")
    return 130


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tvexport {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and extra detail.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print tvexport's version and exit.", callback=_print_version, is_eager=True)] = False,
) -> None:
    _state["verbose"] = verbose


def _register() -> None:
    from . import _core  # noqa: F401  (inspect, bake)

    for name in ("_export", "_build", "_bench", "_extension"):
        try:
            __import__(f"{__name__}.{name}")
        except ModuleNotFoundError as err:  # a command group not present in this build
            if err.name != f"{__name__}.{name}":
                raise


def main(argv: list[str] | None = None) -> int:
    """Run one ``tvexport`` command line in this process and return its exit code (signal
    handling is left to the caller; the ``tvexport`` script adds it, see run())."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state["verbose"] = "--verbose" in args or "-v" in args
    if _state["verbose"]:  # accepted anywhere, as the error lines suggest: `tvexport bake X --verbose`
        args = ["--verbose", *(a for a in args if a not in ("--verbose", "-v"))]
    _register()
    try:
        app(args=args, prog_name="tvexport")  # standalone mode: usage errors print and exit 2
        return 0
    except SystemExit as ex:
        code = ex.code
        if code == 130:  # typer turned Ctrl-C (or SIGTERM/SIGHUP, raised as it) into exit 130
            return _interrupted()
        return code if isinstance(code, int) else (0 if code is None else EXIT_BAD_INPUT)
    except TvexportError as ex:
        if _state["verbose"]:
            traceback.print_exc()
        err_console.print(f"[bold red]error:[/bold red] {escape(str(ex))}", highlight=False, soft_wrap=True)
        return ex.exit_code
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as ex:  # noqa: BLE001 - the one place that turns bugs into a clean line
        if _state["verbose"]:
            traceback.print_exc()
        first = first_line(ex, limit=200, default="")
        err_console.print(
            f"[bold red]internal error:[/bold red] {type(ex).__name__}: {escape(first)} (run with --verbose for the traceback and report it)",
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_INTERNAL


def run() -> None:
    """The ``tvexport`` process: SIGTERM/SIGHUP clean up as Ctrl-C does, then end it (see main)."""
    _terminating_as_interrupt()
    try:
        code = main()
    except KeyboardInterrupt:  # a signal after main's own handlers, before it returned
        code = _interrupted()
    _end_by_signal()
    sys.exit(code)
