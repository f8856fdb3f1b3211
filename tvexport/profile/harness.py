"""The timing loop: time-based warm-up, interleaved rounds, minimum iterations and seconds.

Methodology (after ``trtexec``):

* **Warm-up** runs whole rounds until ``warmup_seconds`` have passed (at least
  ``min_warmup_rounds``); its samples are discarded. First calls pay for lazy initialisation,
  allocator growth and cold caches.
* **Interleaving**: the variants of a case (e.g. the TV network and its DWConv baseline on one
  backend and batch) run in *rounds*, one call each per round, and the order rotates every round
  (AB, BA, AB, ...) so that neither always runs first. Drift (thermal or frequency changes,
  other processes) then hits all variants alike, and the ratio of the two samples of one round
  is a paired measurement (see ``stats.paired_ratio``).
* **Stopping**: measuring continues until at least ``min_iters`` rounds AND ``min_seconds`` have
  passed; ``max_seconds`` (optional) stops earlier and marks the case truncated.
* **Timers**: on CPU ``time.perf_counter`` around the call; on CUDA a pair of events recorded on
  a dedicated (non-default) stream around the call, then synchronised -- the GPU time of the work
  the call enqueued, without host launch gaps between calls.

The clock and the timer are parameters, so that the rules can be tested with a fake clock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from ..errors import TvexportError

__all__ = [
    "CaseTiming",
    "Clock",
    "CpuTimer",
    "CudaTimer",
    "MeasureSettings",
    "Timer",
    "make_timer",
    "measure_case",
    "round_order",
]

Clock = Callable[[], float]
RunOnce = Callable[[], object]


class Timer(Protocol):
    """Times one call of a zero-argument closure, in seconds."""

    def measure(self, fn: RunOnce) -> float:
        """Seconds one ``fn()`` takes."""


@dataclasses.dataclass
class CpuTimer:
    """Wall time of the call (the work is synchronous on CPU)."""

    clock: Clock = time.perf_counter

    def measure(self, fn: RunOnce) -> float:
        """Seconds one ``fn()`` takes by ``clock`` (the default ``time.perf_counter``: wall time)."""
        t0 = self.clock()
        fn()
        return self.clock() - t0


class CudaTimer:
    """GPU time between two CUDA events recorded on a dedicated stream around the call.

    The closure is issued inside ``torch.cuda.stream(stream)``, so backends that enqueue on the
    current stream (torch, Triton, TensorRT via ``torch.cuda.current_stream()``) run on it. The
    factories exist for tests; by default they come from ``torch.cuda``.
    """

    def __init__(
        self,
        *,
        stream: Any = None,
        event_factory: Callable[[], Any] | None = None,
        stream_context: Callable[[Any], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        self._origin: Any = None
        if stream is None or event_factory is None or stream_context is None:
            import torch

            if not torch.cuda.is_available():
                raise TvexportError("CUDA timing needs a CUDA device, and torch.cuda.is_available() is False", hint="use --device cpu")
            if stream is None:
                stream = torch.cuda.Stream()
                self._origin = torch.cuda.current_stream()  # where prepare() wrote the inputs
            event_factory = event_factory or (lambda: torch.cuda.Event(enable_timing=True))
            stream_context = stream_context or torch.cuda.stream
        self.stream = stream
        self._event = event_factory
        self._context = stream_context

    def measure(self, fn: RunOnce) -> float:
        """Seconds one ``fn()`` takes on the stream, from CUDA events recorded around it."""
        start, end = self._event(), self._event()
        if self._origin is not None:
            self.stream.wait_stream(self._origin)  # order after input writes; before `start`, so not timed
        with self._context(self.stream):
            start.record(self.stream)
            fn()
            end.record(self.stream)
        end.synchronize()
        return float(start.elapsed_time(end)) / 1e3  # elapsed_time is in milliseconds


def make_timer(device: str) -> Timer:
    """``CpuTimer`` for ``cpu``, ``CudaTimer`` for ``cuda``."""
    if device == "cpu":
        return CpuTimer()
    if device.startswith("cuda"):
        return CudaTimer()
    raise TvexportError(f"unknown device {device!r}", hint="use cpu or cuda")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MeasureSettings:
    """Warm-up and stopping rules of one case (seconds are wall-clock)."""

    warmup_seconds: float = 0.5
    min_iters: int = 20
    min_seconds: float = 2.0
    max_seconds: float | None = None
    min_warmup_rounds: int = 1

    def __post_init__(self) -> None:
        # isfinite refuses NaN (which fails every comparison, so `x < 0` let it through) and inf
        for option, value in (("--warmup-seconds", self.warmup_seconds), ("--min-seconds", self.min_seconds)):
            if not (math.isfinite(value) and value >= 0):
                raise TvexportError(f"{option} {value:g}: seconds must be a finite number >= 0", hint=f"e.g. {option} 1")
        if self.min_iters < 1:
            raise TvexportError(f"--min-iters must be >= 1, got {self.min_iters}")
        if self.max_seconds is not None and not (self.max_seconds > 0):
            raise TvexportError(f"--max-seconds {self.max_seconds:g}: the time limit must be a number > 0", hint="e.g. --max-seconds 30, or leave it out")
        if self.max_seconds == math.inf:  # no limit: as if not given (and no Infinity, which is not JSON, in reports)
            object.__setattr__(self, "max_seconds", None)
        if self.min_warmup_rounds < 0:
            raise TvexportError("min_warmup_rounds must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class CaseTiming:
    """Raw samples of one case: ``samples[label][i]`` was taken in measured round ``i``."""

    labels: list[str]
    samples: dict[str, list[float]]
    rounds: int
    warmup_rounds: int
    warmup_seconds: float
    measure_seconds: float
    truncated: bool


def round_order(labels: Sequence[str], r: int) -> list[str]:
    """The order variants run in round ``r``: ``labels`` rotated left by ``r``."""
    k = r % len(labels)
    return [*labels[k:], *labels[:k]]


def measure_case(
    variants: Mapping[str, RunOnce],
    settings: MeasureSettings,
    *,
    timer: Timer | None = None,
    clock: Clock = time.perf_counter,
    on_round: Callable[[str, int], None] | None = None,
) -> CaseTiming:
    """Warm up, then time ``variants`` in interleaved rounds (see the module docstring).

    ``on_round(phase, rounds_done)`` is called after each round with phase ``warmup`` or
    ``measure`` (for progress display).
    """
    if not variants:
        raise ValueError("nothing to measure")
    timer = timer if timer is not None else CpuTimer(clock)
    labels = list(variants)

    start = clock()
    warm = 0
    while warm < settings.min_warmup_rounds or clock() - start < settings.warmup_seconds:
        for label in round_order(labels, warm):
            timer.measure(variants[label])
        warm += 1
        if on_round:
            on_round("warmup", warm)
    warmup_elapsed = clock() - start

    samples: dict[str, list[float]] = {label: [] for label in labels}
    t0 = clock()
    rounds = 0
    truncated = False
    while True:
        elapsed = clock() - t0
        if rounds >= settings.min_iters and elapsed >= settings.min_seconds:
            break
        if rounds >= 1 and settings.max_seconds is not None and elapsed >= settings.max_seconds:
            truncated = True
            break
        for label in round_order(labels, rounds):
            samples[label].append(timer.measure(variants[label]))
        rounds += 1
        if on_round:
            on_round("measure", rounds)
    return CaseTiming(labels, samples, rounds, warm, warmup_elapsed, clock() - t0, truncated)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Set torch's intra-op thread count for the block (restored after); yields the count in use."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise TvexportError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
