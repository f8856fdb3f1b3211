"""ONNX export of every zoo network: graph size, validation error, and onnxruntime CPU latency of
the portable graph against the same architecture's DWConv baseline.

For each architecture: export (``tvexport.export.onnx.export_onnx``, default options, validation
on) the TV network as a portable graph (batch 1 and 16) and as a plugin graph (batch 1), and the
DWConv baseline (batch 1 and 16); record node count, file size and validation errors; time the
portable graph and the baseline side by side (interleaved rounds, fixed intra-op threads, sessions
without spinning threads: interleaved sessions' spinning threads slow each other,
benchmarks/results/ort_spinning.md).
Weights are random (``randomize_``: random posi_map, calibrated BatchNorm); generators are small
because only the baked kernels reach the graph. Usage::

    python benchmarks/onnx_zoo.py                       # all networks, writes results/onnx_zoo.md
    python benchmarks/onnx_zoo.py --archs face_mobilenetv2_x0_1 --batches 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from onnx_decompositions import BENCH_TV, environment, interleaved, session  # noqa: E402

from tvexport.bake import bake_model, random_inputs  # noqa: E402
from tvexport.export.onnx import export_onnx  # noqa: E402
from tvexport.models import create_model, list_models  # noqa: E402
from tvexport.testing import randomize_  # noqa: E402


def network(name: str, atom: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = randomize_(create_model(name, atom=atom, tv=BENCH_TV if atom == "tvconv" else None), seed=seed)  # type: ignore[arg-type]
    return bake_model(model, verify=False).model if atom == "tvconv" else model


def run_arch(name: str, *, batches: list[int], threads: int, budget_s: float, tmp: Path) -> dict[str, Any]:
    tv, base = network(name, "tvconv"), network(name, "dwconv")
    row: dict[str, Any] = {"arch": name, "exports": {}, "latency": {}}
    for label, model, tv_op, n in [("portable", tv, "portable", b) for b in batches] + [("plugin", tv, "plugin", 1)] + [("dwconv", base, "portable", b) for b in batches]:
        result = export_onnx(model, tmp / f"{name}_{label}_{n}.onnx", tv_op=tv_op, batch=n, force=True)  # validates raw + simplified
        worst = max(result.comparisons, key=lambda c: c.max_rel)
        row["exports"][(label, n)] = {
            "path": result.path, "nodes": result.info["nodes"], "mb": result.info["file_bytes"] / 1e6, "tv_layers": result.info["tv_layers"],
            "decomposition": result.info["decomposition"], "max_abs": worst.max_abs, "max_rel": worst.max_rel, "cosine": worst.cosine, "seconds": result.seconds,
        }
        print(f"  exported {label} N={n}: {result.info['nodes']} nodes, {result.info['file_bytes'] / 1e6:.2f} MB, max rel {worst.max_rel:.2e}", flush=True)
    for n in batches:
        x = random_inputs((n, *tv.tvexport_config.input_shape), seed=1).numpy()
        sessions = {label: session(str(row["exports"][(label, n)]["path"]), threads) for label in ("portable", "dwconv")}
        stats = interleaved({k: (lambda s=s: s.run(None, {"input": x})) for k, s in sessions.items()}, budget_s=budget_s, min_rounds=3)
        row["latency"][n] = stats
        print(f"  N={n}: portable {stats['portable'].median_ms:.2f} ms, dwconv baseline {stats['dwconv'].median_ms:.2f} ms", flush=True)
    return row


def markdown(env: list[str], rows: list[dict[str, Any]], batches: list[int], command: str) -> str:
    out = ["# ONNX export of the zoo", "", f"Command: `{command}`", "", *env, f"- load average at end {os.getloadavg()[0]:.1f}", ""]
    out += ["## Graphs (batch 1; validation: onnxruntime vs torch on seeded random inputs, worst of raw / simplified)", ""]
    out += ["| network | TV layers | portable nodes | plugin nodes | baseline nodes | portable MB | plugin MB | baseline MB | portable max abs / max rel | plugin max abs / max rel | portable TV forms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        p, g, b = r["exports"][("portable", batches[0])], r["exports"][("plugin", 1)], r["exports"][("dwconv", batches[0])]
        out.append(f"| {r['arch']} | {p['tv_layers']} | {p['nodes']} | {g['nodes']} | {b['nodes']} | {p['mb']:.2f} | {g['mb']:.2f} | {b['mb']:.2f} | "
                   f"{p['max_abs']:.1e} / {p['max_rel']:.1e} | {g['max_abs']:.1e} / {g['max_rel']:.1e} | {p['decomposition']} |")
    out += ["", "## onnxruntime CPU latency, portable TV graph vs DWConv baseline (median ms (p10) of interleaved rounds)", ""]
    out += ["| network | " + " | ".join(f"N={n} TV | N={n} DWConv | N={n} ratio" for n in batches) + " |", "|---|" + "---:|" * (3 * len(batches))]
    for r in rows:
        cells = []
        for n in batches:
            s = r["latency"][n]
            cells += [f"{s['portable'].median_ms:.2f} ({s['portable'].p10_ms:.2f})", f"{s['dwconv'].median_ms:.2f} ({s['dwconv'].p10_ms:.2f})", f"{s['portable'].median_ms / s['dwconv'].median_ms:.1f}x"]
        out.append(f"| {r['arch']} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list_models())
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=5.0, help="seconds of timing per network and batch")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "onnx_zoo.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/onnx_zoo.py " + " ".join(argv if argv is not None else sys.argv[1:])
    env = environment(args.threads)
    print("\n".join(env), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.archs:
            print(name, flush=True)
            rows.append(run_arch(name, batches=args.batches, threads=args.threads, budget_s=args.budget, tmp=Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(env, rows, args.batches, command))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
