"""Headline figure: how much faster baking makes a TVConv network (PyTorch eager, CPU).

Unbaked = the network as trained, every TVConv running its generator on each call (what the
reference code does at inference); baked = ``bake_model`` (constant kernels, BatchNorm folded).
Both, and the baked DWConv baseline for context, run interleaved round by round in ONE case per
architecture and batch, so the speed-up unbaked/baked is a paired ratio (median, p10-p90).

    python benchmarks/bake_speedup.py             # writes benchmarks/results/bake_speedup.{md,png,json}
"""

from __future__ import annotations

import datetime
import sys
import time
from pathlib import Path
from typing import Any

import _common
import torch

from tvexport._io import atomic_output
from tvexport.profile import Stats, load_subject, measure_case, paired_ratio
from tvexport.profile.backends.torch_eager import TorchBaked, TorchUnbaked
from tvexport.profile.harness import torch_threads
from tvexport.profile.machine import load_average, machine_info, versions
from tvexport.profile.plot import require_matplotlib

DEFAULT_BATCHES = [1, 8]


def measure(arch: str, batches: list[int], args: Any) -> list[dict[str, Any]]:
    subject = load_subject(arch)
    nets = {"unbaked": (TorchUnbaked(), subject.tv.form("unbaked")), "baked": (TorchBaked(), subject.tv.form("baked")),
            "dwconv": (TorchBaked(), subject.baselines[0].form("baked"))}
    rows = []
    for batch in batches:
        print(f"  {arch} batch {batch}", file=sys.stderr, flush=True)
        variants = {k: b.prepare(m, batch=batch, threads=args.threads, device="cpu", dtype=torch.float32) for k, (b, m) in nets.items()}
        timing = measure_case(variants, _common.settings(args))
        s = timing.samples
        rows.append({
            "arch": arch, "batch": batch, "rounds": timing.rounds, "truncated": timing.truncated,
            "stats": {k: Stats.of(v).to_dict() for k, v in s.items()},
            "speedup": paired_ratio(s["unbaked"], s["baked"], names=("unbaked", "baked")).to_dict(),
            "baked_vs_dw": paired_ratio(s["baked"], s["dwconv"], names=("baked", "dwconv")).to_dict(),
            "unbaked_vs_dw": paired_ratio(s["unbaked"], s["dwconv"], names=("unbaked", "dwconv")).to_dict(),
        })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def r(q: dict[str, Any]) -> str:
        return f"{q['median']:.2f} [{q['p10']:.2f}-{q['p90']:.2f}]"

    lines = [
        "| network | batch | unbaked ms | baked ms | DW ms | speed-up unbaked/baked | speed-up of min | baked TV/DW | unbaked TV/DW | rounds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        st = row["stats"]
        lines.append(
            f"| {row['arch']} | {row['batch']} | {st['unbaked']['median_s'] * 1e3:.3g} | {st['baked']['median_s'] * 1e3:.3g} | "
            f"{st['dwconv']['median_s'] * 1e3:.3g} | {r(row['speedup'])} | {st['unbaked']['min_s'] / st['baked']['min_s']:.2f} | "
            f"{r(row['baked_vs_dw'])} | {r(row['unbaked_vs_dw'])} | "
            f"{row['rounds']}{' (truncated)' if row['truncated'] else ''} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Any, title: str) -> None:
    plt = require_matplotlib()
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    batches = list(dict.fromkeys(r["batch"] for r in rows))
    fig, ax = plt.subplots(figsize=(2.2 * len(archs) + 2, 4.2))
    width = 0.8 / len(batches)
    for j, batch in enumerate(batches):
        pts = [(i, r["speedup"]) for i, a in enumerate(archs) for r in rows if r["arch"] == a and r["batch"] == batch]
        xs = [i + (j - (len(batches) - 1) / 2) * width for i, _ in pts]
        med = [q["median"] for _, q in pts]
        err = [[q["median"] - q["p10"] for _, q in pts], [q["p90"] - q["median"] for _, q in pts]]
        ax.bar(xs, med, width, yerr=err, capsize=3, label=f"batch {batch}")
        for x, (_, q) in zip(xs, pts):
            ax.text(x, q["p90"], f"{q['median']:.1f}x", ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_xticks(range(len(archs)), archs, fontsize=8, rotation=10)
    ax.set_ylabel("speed-up of baking (unbaked / baked latency)\nmedian, p10-p90 of paired rounds")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    with atomic_output(path, force=True) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def render(result: dict[str, Any], out: Path, name: str) -> None:
    """Write ``name``.md/.png/.json from a result this script made."""
    machine, v, s, rows = result["machine"], result["versions"], result["settings"], result["rows"]
    load = f"load average {'/'.join(map(str, machine['load_average'] or []))} -> {'/'.join(map(str, machine['load_average_end'] or []))}"
    md = "\n".join([
        "# Baked vs unbaked TVConv networks (PyTorch eager, CPU)",
        "",
        (f"Machine: {machine['cpu']} ({machine['logical_cores']} cores), {machine['os']}; python {v['python']}, torch {v['torch']}, "
         f"tvexport {v['tvexport']}; {s['threads']} thread{'s' * (s['threads'] != 1)}, float32; {load}."),
        "",
        (f"Command: `{result['command']}` ({result['elapsed_s'] / 60:.1f} min). Random weights (registry, reference TV settings: "
         "generators 4 -> 64 channels, 3 intermediate layers). Per case: "
         f"{s['warmup_seconds']:g} s warm-up, >= {s['min_iters']} rounds and "
         f">= {s['min_seconds']:g} s (at most {s['max_seconds']} s); the three networks (unbaked TV, baked TV, baked DWConv) "
         "alternate round by round; ratios are medians of per-round paired ratios [p10-p90]; \"speed-up of min\" compares "
         "the fastest rounds, the estimate least affected by other processes on a shared machine. Latencies are medians."),
        "",
        table(rows),
        "",
    ])
    _common.write_results(out, name, md, result)
    plot(rows, out / f"{name}.png", f"baking speed-up, torch eager, {machine['cpu']}, {s['threads']} thread{'s' * (s['threads'] != 1)}")


def main() -> int:
    p = _common.parser(__doc__.splitlines()[0], render=True)
    p.add_argument("--batch", type=int, action="append", help="batch sizes (repeatable); default 1, 8")
    args = p.parse_args()
    name = args.name or "bake_speedup"
    if (previous := _common.rerender(args, name, render)) is not None:
        print(table(previous["rows"]))
        return 0
    machine = machine_info()
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with torch_threads(args.threads) as threads:
        for arch in args.arch or _common.ARCHS:
            _common.wait_quiet(args)
            rows += measure(arch, args.batch or DEFAULT_BATCHES, args)
    machine["load_average_end"] = load_average()
    result = {
        "schema": "tvexport.bench.bake_speedup", "schema_version": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": _common.command_line(), "elapsed_s": time.perf_counter() - t0, "machine": machine, "versions": versions(),
        "settings": {"threads": threads, "device": "cpu", "dtype": "float32", **_common.settings(args).to_dict()},
        "rows": rows,
    }
    render(result, args.out, name)
    print(table(rows))
    print(f"wrote {args.out / name}.md/.json/.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
