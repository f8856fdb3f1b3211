"""OpenVINO extension: one of the kernel's switches on (A) and off (B), A/B in one process.

    python benchmarks/openvino_ab.py                                 # DeepLabV3+ batch 16, float32 kernels
    python benchmarks/openvino_ab.py --kernel-dtype float32 --kernel-dtype float16 --kernel-dtype int8 --rounds 6 --block 5
    python benchmarks/openvino_ab.py --switch blocks-outer --kernel-dtype float32 --rounds 6 --block 5
    python benchmarks/openvino_ab.py --render benchmarks/results/openvino_channel_blocks.json

--switch (SWITCHES below) picks the environment variable B sets to 0: channel-blocks (default),
the channel-block path against the tile path it replaces; blocks-outer, that path's loop order
(each channel block through all row tiles) against row tiles outermost.

Per kernel dtype, the same plugin graph (kernels compressed by tvexport.quantize for float16/int8,
as `export --kernel-dtype` stores them) is compiled three times in this process, each with
OpenVINO's per-node counters on (PERF_COUNT), INFERENCE_PRECISION_HINT f32 and --threads threads:
  A   the switch on (the default)
  B   the switch's variable set to 0 (channel-blocks: layers that would take the channel blocks
      take the tile path)
  A'  on again: the null test, identical to A, so A'/A shows what noise alone gives
The extension reads the switch when an op is constructed (as the model is read), so each copy
keeps its setting. Each copy runs 10 warm-up runs, then every round runs a block of --block runs of
each copy, in the order A, B, A' and reversed the next round. Reported per copy: the median
wall time of single runs; per round, the block means' ratios B/A and A'/A (median [p10-p90]); per
TV layer, the mean time of the measured runs from the counters (openvino_fused.layer_profile's
method: whole microseconds) and its ratio to A's.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common
import numpy as np
from openvino_fused import mean_between, node_counters, ov_closure, plugin_graph, tv_nodes

from tvexport.bake import random_inputs
from tvexport.models.registry import config_of
from tvexport.openvino import OpenVinoRunner
from tvexport.profile import load_subject
from tvexport.profile.machine import load_average, machine_info, versions
from tvexport.profile.report import describe_machine
from tvexport.profile.stats import Stats, paired_ratio

# --switch name -> (environment variable, what A has on, what B does instead, default result name)
SWITCHES = {
    "channel-blocks": ("TVEXPORT_OV_CHANNEL_BLOCKS", "channel blocks", "those layers take the tile path", "openvino_channel_blocks"),
    "blocks-outer": ("TVEXPORT_OV_BLOCKS_OUTER", "channel blocks outermost (each block through all row tiles)",
                     "row tiles outermost (each row tile through all blocks)", "openvino_blocks_outer"),
}
COPIES = {"A": True, "B": False, "A'": True}  # copy -> channel blocks on
ALT, NULL = "A'", "A'/A"  # the null-test copy and its ratio
WARM = 10
SEGMENT = 512  # kernel.hpp kSegment: channel blocks need C >= this (and stride 1, batch > 1)


@contextlib.contextmanager
def switched(variable: str, on: bool) -> Iterator[None]:
    """The switch as the extension reads it while a model is read, restored afterwards."""
    old = os.environ.get(variable)
    os.environ[variable] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ[variable]
        else:
            os.environ[variable] = old


def candidates(graph: Any) -> list[str]:
    """TV nodes the switch can reach: stride 1 and at least kSegment channels (run() also needs
    tiles narrower than k positions; the per-layer table shows which changed)."""
    inits = {t.name: t for t in graph.graph.initializer}
    tv = set(tv_nodes(graph))
    return [node.name for node in graph.graph.node if node.name in tv
            and next(a.i for a in node.attribute if a.name == "stride") == 1 and inits[node.input[1]].dims[0] >= SEGMENT]


def ab_case(model: Any, x: np.ndarray, kernel_dtype: str, args: Any) -> dict[str, Any]:
    graph = plugin_graph(model, x.shape[0], kernel_dtype)
    runners = {}
    for name, on in COPIES.items():
        with switched(SWITCHES[args.switch][0], on):
            runners[name] = OpenVinoRunner(graph, what=f"{kernel_dtype} copy {name}", threads=args.threads, profile=True)
    infer = {name: ov_closure(r, x) for name, r in runners.items()}
    for fn in infer.values():
        for _ in range(WARM):
            fn()
    before = {name: node_counters(r)[0] for name, r in runners.items()}
    _common.wait_quiet(args)
    load_before = load_average()
    runs: dict[str, list[float]] = {name: [] for name in COPIES}
    blocks: dict[str, list[float]] = {name: [] for name in COPIES}
    for r in range(args.rounds):
        order = list(COPIES) if r % 2 == 0 else list(reversed(COPIES))
        for name in order:
            fn, times = infer[name], []
            for _ in range(args.block):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            runs[name] += times
            blocks[name].append(statistics.fmean(times))
    load_after = load_average()
    measured = args.rounds * args.block
    tv = tv_nodes(graph)
    layers: dict[str, dict[str, float]] = {}
    for name, r in runners.items():
        mean = mean_between(before[name], WARM, node_counters(r)[0], WARM + measured)
        layers[name] = {n: mean.get(n, float("nan")) for n in tv}
    reach = candidates(graph)
    return {
        "kernel_dtype": kernel_dtype, "kernel": runners["A"].kernel, "extension": runners["A"].extension.parent.name,
        "wall": {name: Stats.of(v).to_dict() for name, v in runs.items()},
        "ratios": {f"{n}/A": paired_ratio(blocks[n], blocks["A"], names=(n, "A")).to_dict() for n in ("B", ALT)},
        "tv_us": layers, "candidates": reach,
        "tv_sum_us": {name: sum(v.values()) for name, v in layers.items()},
        "candidates_sum_us": {name: sum(v[n] for n in reach) for name, v in layers.items()},
        "load_average": [load_before, load_after],
    }


def _ratio(num: float, den: float, digits: int = 3) -> str:
    return f"{num / den:.{digits}f}" if den > 0 else "-"


def render(result: dict[str, Any], out: Path, name: str) -> None:
    variable, what, instead, _ = SWITCHES[result.get("switch", "channel-blocks")]
    md = [f"# OpenVINO extension: {what} on (A) vs off (B), with a null test (A')", "",
          f"Machine: {result['machine_text']}.", "",
          f"Command: `{result['command']}`. {result['arch']} (random weights, reference TV settings, BatchNorm folded), plugin graph, "
          f"batch {result['batch']}; OpenVINO {result['versions'].get('openvino', '?')}, CPU plugin, INFERENCE_PRECISION_HINT f32, "
          f"{result['threads']} threads, PERF_COUNT on in every copy. Per kernel dtype three copies of one graph compiled in one process: "
          f"A {what} on, B off (`{variable}=0` while it was read: {instead}), A' on (null test). "
          f"{WARM} warm-up runs each, then {result['rounds']} rounds of a {result['block']}-run block per copy, order A, B, A' "
          "reversed every other round. Wall: median of single runs; B/A and A'/A: per-round ratios of block means, median "
          "[p10-p90]. TV ops: mean of the measured runs from OpenVINO's counters (whole us); 'reachable' sums the TV layers "
          f"with stride 1 and C >= {SEGMENT} (the only ones the switch can change).", "",
          "| kernels | wall A ms | wall B ms | wall A' ms | wall B/A | wall A'/A | TV ops A / B / A' ms | TV B/A | TV A'/A | "
          "reachable A / B / A' ms | reachable B/A | reachable A'/A | load before -> after |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in result["cases"]:
        w, r, s, cs = c["wall"], c["ratios"], c["tv_sum_us"], c["candidates_sum_us"]

        def q(key: str) -> str:
            return f"{r[key]['median']:.3f} [{r[key]['p10']:.3f}-{r[key]['p90']:.3f}]"

        def ms(d: dict[str, float]) -> str:
            return " / ".join(f"{d[n] / 1e3:.2f}" for n in COPIES)
        lb, la = c["load_average"]
        wa, wb, wn = (w[n]["median_s"] * 1e3 for n in COPIES)
        md.append(f"| {c['kernel_dtype']} | {wa:.1f} | {wb:.1f} | {wn:.1f} | {q('B/A')} | {q(NULL)} | {ms(s)} | "
                  f"{_ratio(s['B'], s['A'])} | {_ratio(s[ALT], s['A'])} | {ms(cs)} | {_ratio(cs['B'], cs['A'])} | {_ratio(cs[ALT], cs['A'])} | "
                  f"{lb[0] if lb else '?'} -> {la[0] if la else '?'} |")
    md += ["", "## Per TV layer: mean us of the measured runs (B/A, A'/A)", "",
           "| layer | " + " | ".join(c["kernel_dtype"] for c in result["cases"]) + " |",
           "|---|" + "---|" * len(result["cases"])]
    for layer in result["cases"][0]["tv_us"]["A"]:
        cells = []
        for c in result["cases"]:
            t = c["tv_us"]
            mark = " (reachable)" if layer in c["candidates"] else ""
            a, b, n = (t[k][layer] for k in COPIES)
            cells.append(f"{a:.0f} / {b:.0f} / {n:.0f} ({_ratio(b, a, 2)}, {_ratio(n, a, 2)}){mark}")
        md.append(f"| {layer} | " + " | ".join(cells) + " |")
    md += ["", f"Kernel variant, extension build: {result['cases'][0]['kernel']} {result['cases'][0]['extension']}."]
    _common.write_results(out, name, "\n".join(md) + "\n", result)


def main() -> int:
    p = _common.parser(__doc__.splitlines()[0], render=True, timing=False)  # --rounds and --block set the work
    p.add_argument("--batch", type=int, default=16, help="batch size (channel blocks need batch > 1)")
    p.add_argument("--kernel-dtype", action="append", choices=("float32", "float16", "int8"),
                   help="stored TV kernels (repeatable); default float32")
    p.add_argument("--switch", choices=tuple(SWITCHES), default="channel-blocks", help="the extension switch B turns off")
    p.add_argument("--rounds", type=int, default=10, help="rounds of one block per copy")
    p.add_argument("--block", type=int, default=5, help="runs per copy and round")
    args = p.parse_args()
    if args.quick:  # smoke run: numbers meaningless
        args.rounds, args.block = 2, 1
    name = args.name or SWITCHES[args.switch][3]
    if _common.rerender(args, name, render) is not None:
        return 0
    if args.arch and len(args.arch) > 1:
        p.error("one --arch per run")
    arch = args.arch[0] if args.arch else "deeplabv3plus_mobilenetv2"
    model = load_subject(arch).networks[0].form("baked")
    assert model is not None
    x = np.ascontiguousarray(random_inputs((args.batch, *config_of(model).input_shape), seed=0).numpy())
    machine = machine_info(device="cpu")
    result: dict[str, Any] = {
        "schema": "tvexport.bench.openvino_ab", "command": _common.command_line(), "switch": args.switch, "arch": arch, "batch": args.batch,
        "threads": args.threads, "rounds": args.rounds, "block": args.block, "machine": machine,
        "versions": {**versions(), "openvino": __import__("openvino").__version__},
        "machine_text": describe_machine({"machine": machine, "versions": versions(), "settings": {"threads": args.threads, "device": "cpu", "dtype": "float32"}}),
        "cases": [],
    }
    t0 = time.perf_counter()
    for dtype in args.kernel_dtype or ["float32"]:
        print(f"{arch} batch {args.batch} {dtype} kernels", file=sys.stderr, flush=True)
        result["cases"].append(ab_case(model, x, dtype, args))
        result["elapsed_s"] = time.perf_counter() - t0
        render(result, args.out, name)  # keep what is done if a later case fails
    print(f"wrote {args.out / name}.md/.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
