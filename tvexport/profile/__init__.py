"""Latency profiling: is the baked TVConv network faster than its DWConv baseline on a runtime?

::

    from tvexport.profile import load_subject, run_bench, to_markdown
    subject = load_subject("face_mobilenetv2_x0_1")          # or a checkpoint / .baked.pt
    report = run_bench(subject, backends=["torch-baked"], batches=[1, 8], threads=2)
    print(to_markdown(report))

Pieces: ``harness`` (warm-up, interleaved rounds, stopping rules, CPU/CUDA timers), ``stats``
(percentiles, CV, paired ratios), ``backends`` (one adapter per runtime), ``subject`` (the TV
network and its baselines), ``floor`` (memory floors for the per-layer view), ``report``
(JSON schema, Markdown, CSV), ``plot`` (PNG, needs matplotlib), ``machine`` (where it ran).
"""

from __future__ import annotations

from .backends import REGISTRY, Backend, get_backend, select_backends
from .bench import DTYPES, run_bench
from .harness import CpuTimer, CudaTimer, MeasureSettings, measure_case
from .report import REPORT_SCHEMA, check_report_paths, load_report, to_csv, to_json, to_markdown, validate_report, write_reports
from .stats import RatioStats, Stats, paired_ratio
from .subject import Network, Subject, load_subject, parse_input_size

__all__ = [
    "DTYPES",
    "REGISTRY",
    "REPORT_SCHEMA",
    "Backend",
    "CpuTimer",
    "CudaTimer",
    "MeasureSettings",
    "Network",
    "RatioStats",
    "Stats",
    "Subject",
    "check_report_paths",
    "get_backend",
    "load_report",
    "load_subject",
    "measure_case",
    "paired_ratio",
    "parse_input_size",
    "run_bench",
    "select_backends",
    "to_csv",
    "to_json",
    "to_markdown",
    "validate_report",
    "write_reports",
]
