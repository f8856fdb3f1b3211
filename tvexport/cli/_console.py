from __future__ import annotations

import sys

from rich.console import Console


def _make(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Reports and tables go to files and CI logs too: give them room instead of 80 columns.
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


console = _make(False)
err_console = _make(True)
