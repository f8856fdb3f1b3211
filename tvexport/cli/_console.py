from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table

from ..accuracy import Comparison


def _make(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Reports and tables go to files and CI logs too: give them room instead of 80 columns.
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


console = _make(False)
err_console = _make(True)


def comparison_table(rows: Sequence[Comparison], title: str, *, baseline: str = "float32", float64_bake: Mapping[str, float] | None = None) -> Table:
    """One row per ``Comparison``: the candidate's error vs the float64 truth, the float32
    original's (``baseline``), what the rule allows, and (for a bake) the float64 bake's error."""
    table = Table(title=title)
    columns = ["", "max rel", f"{baseline} max rel", "allowed rel", "max abs", "p99 abs", "cosine"]
    if float64_bake is not None:
        columns.insert(4, "float64 bake")
    for col in (*columns, ""):
        table.add_column(col, justify="right" if col else "left")
    for c in rows:
        cells = [c.name, f"{c.max_rel:.3g}", "-" if c.baseline_max_rel is None else f"{c.baseline_max_rel:.3g}", f"{c.allowed_rel:.3g}",
                 f"{c.max_abs:.3g}", f"{c.p99_abs:.3g}", f"{c.cosine:.9f}"]
        if float64_bake is not None:
            cells.insert(4, f"{float64_bake[c.name]:.2g}" if c.name in float64_bake else "-")
        table.add_row(*cells, "[green]ok[/green]" if c.ok else "[red]FAIL[/red]")
    return table
