"""onnxruntime sessions timed side by side: do their spinning threads slow each other?

onnxruntime's intra-op threads spin for a while after a run, waiting for more work. `tvexport
bench` interleaves the TV and the DWConv session of a network round by round; with spinning on,
the session that just ran keeps its threads busy while the other one runs. Per network and
setting (spinning on / off, `session.intra_op.allow_spinning`), in one process: each session
alone (back-to-back runs), then both interleaved (one run each per round, order rotated, as
`tvexport.profile.measure_case` does), medians with p10-p90.

    python benchmarks/ort_spinning.py --arch face_mobilenetv2_x1_0
"""

from __future__ import annotations

import sys
from typing import Any

import _common
import numpy as np

from tvexport.bake import random_inputs
from tvexport.export.onnx import OrtRunner, onnx_graph, simplify_graph
from tvexport.models.registry import config_of
from tvexport.profile import load_subject, measure_case
from tvexport.profile.machine import load_average, machine_info, versions
from tvexport.profile.report import describe_machine
from tvexport.profile.stats import Stats, paired_ratio


def network(arch: str, args: Any) -> dict[str, Any]:
    subject = load_subject(arch)
    tv, dw = subject.networks[0].form("baked"), subject.networks[1].form("baked")
    x = np.ascontiguousarray(random_inputs((1, *config_of(tv).input_shape), seed=0).numpy())
    graphs = {"tv": simplify_graph(onnx_graph(tv, batch=1)), "dw": simplify_graph(onnx_graph(dw, batch=1))}
    out: dict[str, Any] = {"arch": arch, "load_average": [load_average()]}
    for spin in (True, False):
        runners = {name: OrtRunner(g, what=name, threads=args.threads, spin=spin) for name, g in graphs.items()}
        calls = {name: (lambda r=r: r.session.run(None, {r.input_name: x})) for name, r in runners.items()}
        settings = _common.settings(args)
        alone = {name: Stats.of(measure_case({name: call}, settings).samples[name]).to_dict() for name, call in calls.items()}
        both = measure_case(calls, settings).samples
        out["spin" if spin else "no_spin"] = {
            "alone": alone, "interleaved": {name: Stats.of(s).to_dict() for name, s in both.items()},
            "ratio_alone": alone["tv"]["median_s"] / alone["dw"]["median_s"],
            "ratio_interleaved": paired_ratio(both["tv"], both["dw"], names=("tv", "dw")).to_dict(),
        }
        del runners, calls
    out["load_average"].append(load_average())
    return out


def render(result: dict[str, Any], out: Any, name: str) -> None:
    md = ["# onnxruntime: spinning threads of interleaved sessions", "", f"Machine: {result['machine_text']}.", "",
          f"Command: `{result['command']}`. Random weights (registry); TV = baked TVConv network, DW = its DWConv baseline, "
          "portable ONNX graphs (simplified), batch 1, CPU provider, intra-op threads as given, inter-op 1. Per setting: each session "
          "alone, then both interleaved (one run each per round, order rotated); medians [p10-p90] in ms; TV/DW interleaved is the "
          "median of per-round ratios.", "",
          "| network | spinning | TV alone | DW alone | TV interleaved | DW interleaved | TV/DW alone | TV/DW interleaved |",
          "|---|---|---|---|---|---|---|---|"]

    def ms(s: dict[str, Any]) -> str:
        return f"{s['median_s'] * 1e3:.3g} [{s['p10_s'] * 1e3:.3g}-{s['p90_s'] * 1e3:.3g}]"

    for c in result["cases"]:
        for key, label in (("spin", "on (default)"), ("no_spin", "off")):
            r = c[key]
            md.append(f"| {c['arch']} | {label} | {ms(r['alone']['tv'])} | {ms(r['alone']['dw'])} | {ms(r['interleaved']['tv'])} | "
                      f"{ms(r['interleaved']['dw'])} | {r['ratio_alone']:.2f} | {r['ratio_interleaved']['median']:.2f} |")
    _common.write_results(out, name, "\n".join(md) + "\n", result)


def main() -> int:
    p = _common.parser(__doc__.splitlines()[0], render=True)
    args = p.parse_args()
    name = args.name or "ort_spinning"
    if _common.rerender(args, name, render) is not None:
        return 0
    machine = machine_info(device="cpu")
    result: dict[str, Any] = {
        "schema": "tvexport.bench.ort_spinning", "command": _common.command_line(), "threads": args.threads, "machine": machine,
        "versions": versions(), "cases": [],
        "machine_text": describe_machine({"machine": machine, "versions": versions(), "settings": {"threads": args.threads, "device": "cpu", "dtype": "float32"}}),
    }
    for arch in args.arch or ["face_mobilenetv2_x0_1", "face_mobilenetv2_x1_0"]:
        print(arch, file=sys.stderr, flush=True)
        _common.wait_quiet(args)
        result["cases"].append(network(arch, args))
    render(result, args.out, name)
    print(f"wrote {args.out / name}.md/.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
