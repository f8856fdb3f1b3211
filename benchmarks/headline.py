"""Headline figure: TV/DWConv latency ratio per backend and batch, for the four headline networks.

For each architecture (random weights from the registry, reference TV settings: the latency of a
network does not depend on its weight values) the baked TV network and its DWConv baseline run
interleaved on every available deployment backend; the ratio is the median of per-round
paired ratios (p10-p90 spread). ``torch-unbaked`` is left to ``bake_speedup.py``.

    python benchmarks/headline.py                 # writes benchmarks/results/headline.{md,png,json}
    python benchmarks/headline.py --quick --arch face_mobilenetv2_x0_1 --out /tmp   # smoke run
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import _common

from tvexport.profile import REGISTRY, load_subject, run_bench, select_backends, to_markdown
from tvexport.profile.plot import plot_ratio_grid
from tvexport.profile.report import describe_machine

BATCHES = {"deeplabv3plus_mobilenetv2": [1, 4]}  # 256x256 inputs: batch 32 takes minutes per case on 2 cores
DEFAULT_BATCHES = [1, 8, 32]


def summary(reports: list[dict]) -> str:
    lines = [
        "| network | backend | batch | TV ms | DW ms | TV/DW [p10-p90] | TV/DW of min | TV img/s | DW img/s | rounds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rep in reports:
        for case in rep["cases"]:
            tv, dw = case["results"][0], case["results"][1]
            q = case["ratios"][0]
            lines.append(
                f"| {rep['arch']['name']} | {case['backend']} | {case['batch']} | {tv['stats']['median_s'] * 1e3:.3g} | "
                f"{dw['stats']['median_s'] * 1e3:.3g} | {q['median']:.2f} [{q['p10']:.2f}-{q['p90']:.2f}] | "
                f"{tv['stats']['min_s'] / dw['stats']['min_s']:.2f} | "
                f"{tv['throughput_ips']:.4g} | {dw['throughput_ips']:.4g} | {case['rounds']}{' (truncated)' if case['truncated'] else ''} |"
            )
    return "\n".join(lines)


def render(result: dict, out: Path, name: str) -> None:
    """Write ``name``.md/.png/.json from a result ({command, elapsed_s, reports})."""
    reports = result["reports"]
    threads = reports[0]["settings"]["threads"]
    md = [
        "# TVConv vs DWConv latency (headline)",
        "",
        f"Machine: {describe_machine(reports[0])}.",
        "",
        (f"Command: `{result['command']}` ({result['elapsed_s'] / 60:.1f} min). Random weights (registry, reference TV settings); "
         "TV = baked TVConv network, DW = its DWConv baseline, both with BatchNorm folded; each backend/batch case "
         "alternates the two networks round by round; TV/DW is the median of per-round latency ratios "
         "(below 1: TV faster) with its p10-p90 spread. \"TV/DW of min\" compares the fastest rounds, the estimate least "
         "affected by other processes on a shared machine. Latencies are medians. Per-network details follow the summary."),
        "",
        summary(reports),
        "",
    ]
    md += [to_markdown(r) for r in reports]
    _common.write_results(out, name, "\n".join(md), result)
    plot_ratio_grid(reports, out / f"{name}.png", title=f"TV / DWConv latency, {reports[0]['machine']['cpu']}, {threads} thread{'s' * (threads != 1)}", force=True)


def main() -> int:
    p = _common.parser(__doc__.splitlines()[0], render=True)
    p.add_argument("--backend", action="append", help="backend (repeatable); default: every available one but torch-unbaked")
    p.add_argument("--batch", type=int, action="append", help="batch sizes (repeatable); default 1, 8, 32 (deeplab 1, 4)")
    args = p.parse_args()
    name = args.name or "headline"
    if (previous := _common.rerender(args, name, render)) is not None:
        print(summary(previous["reports"]))
        return 0
    backends = args.backend or [b for b in REGISTRY if b != "torch-unbaked"]
    reports = []
    t0 = time.perf_counter()
    for arch in args.arch or _common.ARCHS:
        _common.wait_quiet(args)
        print(f"{arch}", file=sys.stderr)
        subject = load_subject(arch)
        # explicit names fail when unavailable; the default list only keeps the available ones
        chosen = backends if args.backend else [b.name for b in select_backends(None, device="cpu")[0] if b.name in backends]
        reports.append(run_bench(
            subject, backends=chosen, batches=args.batch or BATCHES.get(arch, DEFAULT_BATCHES), threads=args.threads,
            settings=_common.settings(args), command=_common.command_line(), progress=_common.progress,
        ))
    result = {"schema": "tvexport.bench.headline", "command": _common.command_line(), "elapsed_s": time.perf_counter() - t0, "reports": reports}
    render(result, args.out, name)
    print(summary(reports))
    print(f"wrote {args.out / name}.md/.json/.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
