"""Shared by the benchmark scripts: options, output locations, waiting for a quiet machine."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:  # tvexport (and torch) are imported where used: a script parses its options first
    from tvexport.profile import MeasureSettings

RESULTS = Path(__file__).resolve().parent / "results"
ARCHS = ["face_mobilenetv2_x0_1", "face_mobilenetv2_x1_0", "face_shufflenetv2_x1_0", "deeplabv3plus_mobilenetv2"]

# BatchNorm statistics of random networks (tvexport.testing.randomize_ keywords): measured on random
# inputs and kept well conditioned (as training leaves them), random, or measured as is (BN outputs
# small relative to their inputs: the noisiest float32 networks)
BN_STATS: dict[str, dict[str, bool]] = {"calibrated": {}, "random": {"calibrate": False}, "measured": {"conditioned": False}}


def parser(description: str, *, render: bool = False, timing: bool = True) -> argparse.ArgumentParser:
    """The options every benchmark script shares; ``render`` adds ``--render JSON``; ``timing=False``
    leaves out the ``settings()`` options (warm-up, iterations, seconds) for a script that sets its
    own amount of work."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if render:
        p.add_argument("--render", type=Path, metavar="JSON", help="only re-render the outputs from a JSON this script wrote")
    p.add_argument("--arch", action="append", help="architecture (repeatable); default: the four headline ones")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads")
    if timing:
        p.add_argument("--warmup-seconds", type=float, default=0.5)
        p.add_argument("--min-iters", type=int, default=10)
        p.add_argument("--min-seconds", type=float, default=2.0)
        p.add_argument("--max-seconds", type=float, default=60.0, help="cap per case (marked truncated)")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory for the .md, .png and .json")
    p.add_argument("--name", help="file stem of the outputs (default: the script's)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, no warm-up (numbers meaningless)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each architecture, wait up to this long for the 1-min load average to drop below --quiet-load")
    p.add_argument("--quiet-load", type=float, default=1.0)
    return p


def write_results(out: Path, name: str, markdown: str, result: dict[str, Any]) -> None:
    """Write ``<out>/<name>.md`` and ``<name>.json`` (each atomically), creating ``out``."""
    from tvexport._io import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{name}.md", markdown)
    write_text_atomic(out / f"{name}.json", json.dumps(result, indent=1) + "\n")


def refuse(message: str) -> NoReturn:
    """Stop with ``error: message`` on one line and exit status 2 (argparse's, for a bad option)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_render(args: argparse.Namespace, *, schema: str | None = None) -> dict[str, Any] | None:
    """The result ``--render JSON`` names (None without the option), refused in one line where the
    file is missing, is not JSON, or is not a result object (of ``schema``, where given: another
    script's). Standard library only: a script calls it before its heavy imports."""
    if not args.render:
        return None
    what = f"--render {args.render}"
    fix = "give a .json that this script wrote (benchmarks/results/ keeps them)"
    try:
        result = json.loads(args.render.read_text())
    except OSError as err:
        refuse(f"{what}: cannot read it ({err.strerror or err}); {fix}")
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        refuse(f"{what}: not JSON ({err}); {fix}")
    if not isinstance(result, dict):
        refuse(f"{what}: a JSON {type(result).__name__}, not a result object; {fix}")
    if schema is not None and result.get("schema") != schema:
        refuse(f"{what}: not a result of this script (schema {result.get('schema')!r}, this script writes {schema!r}); {fix}")
    return result


def rerender(args: argparse.Namespace, name: str, render: Callable[[dict[str, Any], Path, str], None], *,
             schema: str | None = None, result: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """With ``--render JSON``: rewrite the .md/.json/.png from that run (read by ``read_render``, or
    ``result``, what a caller's read_render returned already) and return its result. ``render``
    writes into a scratch directory, and its files replace those in ``--out`` only once it has
    finished: a result that lacks a field ``render`` reads (edited, or written by a version of the
    script with other fields) is refused in one line with every output untouched. Other errors in
    ``render`` (its own bugs) keep their traceback, and also write nothing."""
    import shutil
    import tempfile

    if result is None:
        result = read_render(args, schema=schema)
    if result is None:
        return None
    with tempfile.TemporaryDirectory(prefix="tvexport-render-") as scratch:
        try:
            render(result, Path(scratch), name)
        except KeyError as err:  # a field of the file; IndexError/TypeError are more often the code's than the file's
            refuse(f"--render {args.render}: the result lacks what this script's report reads (KeyError: {err}); "
                   "re-render it with the commit that wrote it (its row in benchmarks/results/README.md names it)")
        from tvexport._io import atomic_output

        args.out.mkdir(parents=True, exist_ok=True)
        for made in sorted(Path(scratch).iterdir()):
            with atomic_output(args.out / made.name, force=True) as tmp:
                shutil.copyfile(made, tmp)
    return result


def settings(args: argparse.Namespace) -> MeasureSettings:
    from tvexport.profile import MeasureSettings

    if args.quick:
        return MeasureSettings(warmup_seconds=0, min_iters=2, min_seconds=0)
    return MeasureSettings(warmup_seconds=args.warmup_seconds, min_iters=args.min_iters, min_seconds=args.min_seconds, max_seconds=args.max_seconds)


def wait_quiet(args: argparse.Namespace) -> None:
    """Wait (at most ``--wait-quiet`` s) for other processes to stop competing for the CPU."""
    from tvexport.profile.machine import load_average

    deadline = time.monotonic() + args.wait_quiet
    while time.monotonic() < deadline:
        load = load_average()
        if not load or load[0] < args.quiet_load:
            return
        print(f"  load average {load[0]:.2f} >= {args.quiet_load:g}; waiting", file=sys.stderr)
        time.sleep(15)


def command_line() -> str:
    return shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])


def progress(description: str, done: int, total: int) -> None:
    if "round" not in description:
        print(f"  [{done}/{total}] {description}", file=sys.stderr, flush=True)
