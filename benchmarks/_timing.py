"""Interleaved timing on a shared machine.

Candidates of one comparison run round-robin in one process, so that machine noise hits all of
them alike. Each round also measures how much CPU *other* processes used meanwhile (from
/proc/stat minus this process's own CPU time): rounds where others took more than
``max_foreign`` of the machine are dropped when enough clean rounds remain, and extra rounds are
run to find them. ``wait_quiet`` waits (bounded) until other processes leave the CPUs alone.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import time
from collections.abc import Callable, Mapping

_HZ = os.sysconf("SC_CLK_TCK")
_NCPU = os.cpu_count() or 1


def _cpu_seconds() -> tuple[float, float]:
    """(CPU seconds all processes have spent busy, steal included; CPU seconds the hypervisor
    stole), all CPUs, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / _HZ, (fields[7] if len(fields) > 7 else 0) / _HZ


def _busy_seconds() -> float:
    """CPU seconds all processes have spent busy (all CPUs), from /proc/stat."""
    return _cpu_seconds()[0]


def _own_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Foreign:
    """Fraction of the machine's CPUs used by other processes between start() and stop()."""

    def start(self) -> None:
        self._t, self._busy, self._own = time.perf_counter(), _busy_seconds(), _own_seconds()

    def stop(self) -> float:
        wall = time.perf_counter() - self._t
        other = (_busy_seconds() - self._busy) - (_own_seconds() - self._own)
        return max(0.0, other / (wall * _NCPU)) if wall > 0 else 0.0


def wait_quiet(*, timeout_s: float, max_foreign: float = 0.1, probe_s: float = 1.0) -> float:
    """Sleep until other processes use less than ``max_foreign`` of the CPUs over ``probe_s``
    (or ``timeout_s`` passed); returns the last measured foreign fraction."""
    deadline = time.perf_counter() + timeout_s
    probe = Foreign()
    while True:
        probe.start()
        time.sleep(probe_s)
        frac = probe.stop()
        if frac <= max_foreign or time.perf_counter() >= deadline:
            return frac


@dataclasses.dataclass
class Timing:
    name: str
    samples_us: list[float]
    dropped: int = 0

    @property
    def min(self) -> float:
        return min(self.samples_us)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_us)

    def pct(self, q: float) -> float:
        """The q-th percentile of the samples, linear interpolation (``tvexport.profile.stats.percentile``)."""
        from tvexport.profile.stats import percentile  # here, not above: scripts parse their options before tvexport loads

        return percentile(self.samples_us, q)

    def to_dict(self) -> dict[str, float]:
        return {"min_us": self.min, "p50_us": self.median, "p90_us": self.pct(90), "n": len(self.samples_us), "dropped": self.dropped}


def _calibrate(fn: Callable[[], object], target_s: float) -> int:
    t = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t, 1e-7)
    return max(1, min(1000, int(target_s / once)))


def interleaved(
    candidates: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 15,
    warmup: int = 3,
    block_s: float = 0.02,
    max_foreign: float = 0.25,
    max_rounds: int | None = None,
) -> dict[str, Timing]:
    """Time each candidate in blocks, round-robin; each sample is the mean of one block.

    Runs until ``rounds`` clean rounds (others used <= ``max_foreign`` of the CPUs) or
    ``max_rounds`` (default 3 x rounds) rounds in total. The dirty rounds are dropped (their
    count is ``Timing.dropped``) whenever at least ``max(3, rounds // 2)`` rounds were clean,
    even if fewer than ``rounds``; only with fewer clean rounds than that are the dirty ones kept
    as well (``dropped`` = 0 then). Either way every candidate keeps the same rounds, so the
    i-th samples of two candidates come from one round.
    """
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    reps = {name: _calibrate(fn, block_s) for name, fn in candidates.items()}
    clean: dict[str, list[float]] = {name: [] for name in candidates}
    dirty: dict[str, list[float]] = {name: [] for name in candidates}
    probe = Foreign()
    limit = max_rounds if max_rounds is not None else 3 * rounds
    n_clean = 0
    for r in range(limit):
        if n_clean >= rounds:
            break
        names = list(candidates) if r % 2 == 0 else list(reversed(candidates))
        probe.start()
        got: dict[str, float] = {}
        for name in names:
            fn, n = candidates[name], reps[name]
            t = time.perf_counter()
            for _ in range(n):
                fn()
            got[name] = (time.perf_counter() - t) / n * 1e6
        target = clean if probe.stop() <= max_foreign else dirty
        n_clean += target is clean
        for name, v in got.items():
            target[name].append(v)
    out = {}
    for name in candidates:
        if len(clean[name]) >= max(3, rounds // 2):
            out[name] = Timing(name, clean[name], dropped=len(dirty[name]))
        else:
            out[name] = Timing(name, clean[name] + dirty[name])
    return out
