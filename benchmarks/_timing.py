"""Interleaved timing: candidates measured round-robin in one process, so that machine noise
(other processes on a shared 2-core box) hits all of them alike; report percentiles and ratios."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping


@dataclasses.dataclass
class Timing:
    name: str
    samples_us: list[float]

    @property
    def min(self) -> float:
        return min(self.samples_us)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_us)

    def pct(self, q: float) -> float:
        s = sorted(self.samples_us)
        return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]

    def to_dict(self) -> dict[str, float]:
        return {"min_us": self.min, "p50_us": self.median, "p90_us": self.pct(90), "n": len(self.samples_us)}


def _calibrate(fn: Callable[[], object], target_s: float) -> int:
    t = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t, 1e-7)
    return max(1, min(1000, int(target_s / once)))


def interleaved(candidates: Mapping[str, Callable[[], object]], *, rounds: int = 15, warmup: int = 3, block_s: float = 0.02) -> dict[str, Timing]:
    """Time each candidate in ``rounds`` blocks, round-robin; each sample is the mean of one block."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    reps = {name: _calibrate(fn, block_s) for name, fn in candidates.items()}
    out = {name: Timing(name, []) for name in candidates}
    for r in range(rounds):
        names = list(candidates) if r % 2 == 0 else list(reversed(candidates))
        for name in names:
            fn, n = candidates[name], reps[name]
            t = time.perf_counter()
            for _ in range(n):
                fn()
            out[name].samples_us.append((time.perf_counter() - t) / n * 1e6)
    return out
