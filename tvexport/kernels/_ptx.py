"""PTX text helpers for the ahead-of-time kernel (no triton needed)."""

from __future__ import annotations

import re


def entry_params(ptx: str) -> list[tuple[str, str]]:
    """(type, name) of each parameter of the PTX ``.entry``, in order."""
    m = re.search(r"\.entry\s+\w+\s*\((.*?)\)", ptx, flags=re.S)
    if m is None:
        raise ValueError("no .entry in the PTX")
    return re.findall(r"\.param\s+\.(\w+)(?:\s+\.ptr\s+\.\w+\s+\.align\s+\d+)?\s+(\w+)", m.group(1))


def strip_unused_params(ptx: str, keep: int) -> tuple[str, tuple[str, ...]]:
    """Drop the parameters after the first ``keep`` from the PTX ``.entry``.

    Triton >= 3.3 appends hidden scratch-buffer pointers (``global_scratch``, and in 3.5
    ``profile_scratch``) to every kernel; TensorRT launches with exactly (inputs, extra int32
    args, outputs), so the PTX must declare exactly those. Only parameters the body never reads
    are dropped (checked here); the caller checks that their buffer sizes are 0. Returns the PTX
    and the names dropped.
    """
    params = entry_params(ptx)
    extra = params[keep:]
    if not extra:
        return ptx, ()
    m = re.search(r"(\.entry\s+\w+\s*\()(.*?)(\))", ptx, flags=re.S)
    assert m is not None
    body = ptx[m.end():]
    for _, name in extra:
        if re.search(rf"\b{name}\b", body):
            raise RuntimeError(f"the compiled TV kernel reads its hidden parameter {name}, which TensorRT cannot pass")
    decls = [d for d in m.group(2).split(",")]
    kept = ",".join(decls[:keep]).rstrip()
    return ptx[: m.start(2)] + kept + "\n" + ptx[m.start(3):], tuple(name for _, name in extra)
