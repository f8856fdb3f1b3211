"""Statistics of latency samples and of paired TV/baseline ratios.

Everything here is pure arithmetic on lists of seconds, so that it can be tested on synthetic
timings. Percentiles use linear interpolation (numpy's default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import TvexportError

__all__ = ["RatioStats", "Stats", "paired_ratio", "percentile"]


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``, linear interpolation."""
    if not len(samples):
        raise TvexportError("no timing samples to summarise")
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


@dataclasses.dataclass(frozen=True)
class Stats:
    """Summary of latency samples in seconds. ``cv`` is the coefficient of variation std/mean."""

    n: int
    median: float
    mean: float
    min: float
    max: float
    p10: float
    p90: float
    p99: float
    std: float
    cv: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Summary statistics of ``samples`` (at least one, each finite and non-negative)."""
        if not len(samples):
            raise TvexportError("no timing samples to summarise")
        a = np.asarray(samples, dtype=np.float64)
        if not np.isfinite(a).all() or (a < 0).any():
            raise ValueError("timing samples must be finite and non-negative")
        p10, p50, p90, p99 = (float(v) for v in np.percentile(a, [10, 50, 90, 99]))
        mean = float(a.mean())
        std = float(a.std(ddof=1)) if a.size > 1 else 0.0
        return cls(
            n=int(a.size), median=p50, mean=mean, min=float(a.min()), max=float(a.max()),
            p10=p10, p90=p90, p99=p99, std=std, cv=std / mean if mean > 0 else 0.0,
        )

    def throughput(self, batch: int) -> float:
        """Images per second at the median latency; refused when the median is 0 (a timer too coarse
        to resolve one run), where it would be infinite."""
        if self.median <= 0:
            raise TvexportError(
                f"median latency is 0 s over {self.n} timed runs: the timer does not resolve one run, so throughput is undefined",
                hint="time with a finer clock, or give each run more work (a larger batch)",
            )
        return batch / self.median

    def to_dict(self) -> dict[str, Any]:
        """Seconds, with a ``_s`` suffix on every time (the JSON report's ``stats`` object)."""
        return {
            "n": self.n, "median_s": self.median, "mean_s": self.mean, "min_s": self.min, "max_s": self.max,
            "p10_s": self.p10, "p90_s": self.p90, "p99_s": self.p99, "std_s": self.std, "cv": self.cv,
        }


@dataclasses.dataclass(frozen=True)
class RatioStats:
    """Latency ratio numerator/denominator from samples taken in the same rounds.

    ``median``, ``p10``, ``p90`` describe the per-round ratios (round-to-round spread);
    ``ci_low``, ``ci_high`` are a bootstrap 95% confidence interval of their median (how well
    the median is known); ``of_medians`` is median(numerator) / median(denominator).
    A ratio below 1 means the numerator is faster.
    """

    numerator: str
    denominator: str
    n: int
    median: float
    p10: float
    p90: float
    ci_low: float
    ci_high: float
    of_medians: float

    def to_dict(self) -> dict[str, Any]:
        """The statistics as a JSON-serialisable dict (``ci95`` as [low, high])."""
        return {
            "numerator": self.numerator, "denominator": self.denominator, "n": self.n,
            "median": self.median, "p10": self.p10, "p90": self.p90,
            "ci95": [self.ci_low, self.ci_high], "of_medians": self.of_medians,
        }


def paired_ratio(
    numerator: Sequence[float],
    denominator: Sequence[float],
    *,
    names: tuple[str, str] = ("tvconv", "dwconv"),
    resamples: int = 2000,
    seed: int = 0,
) -> RatioStats:
    """Ratios of samples paired by round (``numerator[i]`` and ``denominator[i]`` ran in round i).

    Pairing cancels drift that affects both runs of a round (frequency scaling, other load). A
    baseline (denominator) sample of 0 s, a timer too coarse to resolve one run, is a ``TvexportError``.
    """
    if len(numerator) != len(denominator):
        raise ValueError(f"paired samples differ in length: {len(numerator)} vs {len(denominator)}")
    if not len(numerator):
        raise TvexportError("no timing samples to compare")
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    if (zeros := int((den == 0).sum())):
        raise TvexportError(
            f"{zeros} of {den.size} {names[1]} timings are 0 s: the timer does not resolve one run of the baseline {names[1]}, "
            f"so the ratio {names[0]}/{names[1]} is undefined",
            hint="time with a finer clock, or give each run more work (a larger batch)",
        )
    if (den < 0).any() or not np.isfinite(den).all():
        raise ValueError("denominator samples must be finite and positive")
    r = num / den
    p10, p50, p90 = (float(v) for v in np.percentile(r, [10, 50, 90]))
    if r.size > 1 and resamples > 0:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, r.size, size=(resamples, r.size))
        medians = np.median(r[idx], axis=1)
        lo, hi = (float(v) for v in np.percentile(medians, [2.5, 97.5]))
    else:
        lo = hi = p50
    return RatioStats(
        numerator=names[0], denominator=names[1], n=int(r.size), median=p50, p10=p10, p90=p90,
        ci_low=lo, ci_high=hi, of_medians=float(np.median(num) / np.median(den)),
    )
