"""OpenVINO: does the fused tv_dwconv op (and OpenVINO's own depthwise kernel) get faster with more threads?

    python benchmarks/openvino_threads.py                                  # face MobileNetV2 x0.1, batch 1, 1 vs 2 threads
    python benchmarks/openvino_threads.py --arch face_shufflenetv2_x1_0 --rounds 20
    python benchmarks/openvino_threads.py --render benchmarks/results/openvino_threads_zen3_b1.json --name openvino_threads_zen3_b1

One process, one network and batch: the plugin-form TV graph (float32 and/or int8 kernels, as
benchmarks/openvino_fused.py builds them) and the DWConv network, each compiled once per thread
count (INFERENCE_NUM_THREADS) twice: a plain copy for the wall time and a copy with OpenVINO's
per-node counters (PERF_COUNT) for the layers. Every copy runs a block of --runs inferences per
round, rounds interleaved with the order rotated. Wall time: per-round block means, medians and
p10-p90 per copy, and per-round paired ratios of each thread count against the first. Layers: each
TV op's counter (and the DW network's depthwise convolutions in the TV layers' places, the
control: OpenVINO's own kernel), the mean over all measured runs (counters keep means since
compile in whole microseconds, so block-wise figures would be too coarse; see
openvino_fused.layer_profile), and the same for the first and second half of the rounds as a
stability check. Each round also records how much of the CPUs other processes used (_timing.Foreign).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _common

SCHEMA = "tvexport.bench.openvino_threads"  # of the results JSON
KERNELS = {"f32": "float32", "f16": "float16", "int8": "int8"}  # --kernel-dtype: the plugin graph's stored kernels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, those a run cannot use refused (defined above the imports of tvexport and torch,
    which take seconds, so that run as a script it refuses them first)."""
    p = _common.parser(__doc__.splitlines()[0], render=True, timing=False)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--kernel-dtype", action="append", choices=sorted(KERNELS), help="TV kernel dtypes (repeatable); default f32 and int8")
    p.add_argument("--thread-count", type=int, action="append", help="thread counts to compare (repeatable); default 1 and 2; the first is the base")
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--runs", type=int, default=20, help="runs per copy per round")
    args = p.parse_args(argv)
    args.rendered = _common.read_render(args, schema=SCHEMA)  # read once: main re-renders it
    if args.rendered is not None:
        return args
    counts = args.thread_count or [1, 2]
    if len(set(counts)) != len(counts) or min(counts) < 1:
        raise SystemExit(f"error: --thread-count {counts}: give distinct thread counts >= 1")
    if args.quick:
        args.rounds, args.runs = 2, 2
    if args.rounds < 2 or args.runs < 1:
        raise SystemExit("error: --rounds must be >= 2 and --runs >= 1")
    return args


if __name__ == "__main__":
    ARGS = parse_args()

import numpy as np  # noqa: E402
from _timing import Foreign  # noqa: E402
from openvino_fused import bandwidth_with, dw_layers, graphs, mean_between, node_counters, node_time, ov_closure, plugin_graph, tv_nodes  # noqa: E402

from tvexport.bake import random_inputs  # noqa: E402
from tvexport.models.registry import config_of  # noqa: E402
from tvexport.openvino import OpenVinoRunner  # noqa: E402
from tvexport.profile import load_subject  # noqa: E402
from tvexport.profile.machine import load_average, machine_info, versions  # noqa: E402
from tvexport.profile.stats import percentile  # noqa: E402

WARM = 10  # runs before the measured ones (the first runs of a compiled model are slower)


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p10": percentile(values, 10), "p90": percentile(values, 90), "n": len(values)}


def measure(arch: str, *, batch: int, kernels: list[str], thread_counts: list[int], rounds: int, runs: int) -> dict[str, Any]:
    """One network and batch: wall times and per-layer counters of every (graph, thread count)."""
    subject = load_subject(arch)
    tv_model, dw_model = subject.networks[0].form("baked"), subject.networks[1].form("baked")
    assert tv_model is not None and dw_model is not None
    x = np.ascontiguousarray(random_inputs((batch, *config_of(tv_model).input_shape), seed=0).numpy())
    # the plugin graphs graphs(tv=True) makes, only those timed and the float32 one (dw_layers' map)
    g_tv = {k: plugin_graph(tv_model, batch, KERNELS[k]) for k in sorted({"f32", *kernels})}
    g_dw = graphs(dw_model, batch, tv=False)
    dw_names = list(dw_layers(g_dw["portable"], g_tv["f32"], batch))
    nets = {f"tv-{k}": g_tv[k] for k in kernels} | {"dw": g_dw["portable"]}
    layer_names = {net: (dw_names if net == "dw" else tv_nodes(g)) for net, g in nets.items()}
    wall, prof, kernel = {}, {}, None
    for net, g in nets.items():
        for t in thread_counts:
            runner = OpenVinoRunner(g, threads=t)
            kernel = kernel or runner.kernel
            wall[(net, t)] = ov_closure(runner, x)
            r = OpenVinoRunner(g, threads=t, profile=True)
            prof[(net, t)] = (r, ov_closure(r, x))
    for fn in [*wall.values(), *(c for _, c in prof.values())]:
        for _ in range(WARM):
            fn()
    snaps: dict[tuple[str, int], list[dict[str, float]]] = {key: [node_counters(r)[0]] for key, (r, _) in prof.items()}
    kinds = {key: node_counters(r)[1] for key, (r, _) in prof.items()}
    blocks: dict[tuple[str, int], list[float]] = {key: [] for key in wall}
    foreign, probe = [], Foreign()
    order = [("wall", key) for key in wall] + [("prof", key) for key in prof]
    half = rounds // 2
    for rnd in range(rounds):
        shift = rnd % len(order)
        names = order[shift:] + order[:shift]
        if rnd % 2:
            names.reverse()
        probe.start()
        for what, key in names:
            fn = wall[key] if what == "wall" else prof[key][1]
            t0 = time.perf_counter()
            for _ in range(runs):
                fn()
            if what == "wall":
                blocks[key].append((time.perf_counter() - t0) / runs * 1e6)
        foreign.append(probe.stop())
        if rnd + 1 == half:
            for key, (r, _) in prof.items():
                snaps[key].append(node_counters(r)[0])
    for key, (r, _) in prof.items():
        snaps[key].append(node_counters(r)[0])

    def layers_between(key: tuple[str, int], i: int, j: int, n_i: int, n_j: int) -> dict[str, float]:
        mean = mean_between(snaps[key][i], n_i, snaps[key][j], n_j)
        return {name: node_time(mean, name) for name in layer_names[key[0]]}

    n_half, n_all = WARM + half * runs, WARM + rounds * runs
    base = thread_counts[0]
    out: dict[str, Any] = {"arch": arch, "batch": batch, "rounds": rounds, "runs": runs, "kernel": kernel,
                           "foreign": _summary(foreign), "nets": {}}
    for net in nets:
        entry: dict[str, Any] = {"wall_us": {}, "wall_ratio": {}, "layers_us": {}, "layers_us_halves": {}, "other_us": {}}
        for t in thread_counts:
            key = (net, t)
            entry["wall_us"][str(t)] = _summary(blocks[key])
            if t != base:
                entry["wall_ratio"][str(t)] = _summary([a / b for a, b in zip(blocks[key], blocks[(net, base)])])
            entry["layers_us"][str(t)] = layers_between(key, 0, 2, WARM, n_all)
            entry["layers_us_halves"][str(t)] = [layers_between(key, 0, 1, WARM, n_half), layers_between(key, 1, 2, n_half, n_all)]
            mean = mean_between(snaps[key][0], WARM, snaps[key][2], n_all)
            mine = {n for n in mean if any(n == name or n.startswith(name + "/") for name in layer_names[net])}
            entry["other_us"][str(t)] = {"all_nodes": sum(mean.values()),
                                         "reorders": sum(v for n, v in mean.items() if kinds[key][n] in ("Reorder", "Transpose") and n not in mine)}
        out["nets"][net] = entry
    return out


def _ms(us: float) -> str:
    return f"{us / 1e3:.3f}"


def render(result: dict[str, Any], out: Path, name: str) -> None:
    tc = [str(t) for t in result["thread_counts"]]
    base = tc[0]
    md = ["# OpenVINO: fused tv_dwconv and depthwise kernels, thread counts side by side", "",
          f"Machine: {result['machine_text']}.", "",
          f"Command: `{result['command']}`. OpenVINO {result['versions'].get('openvino', '?')}, CPU plugin, INFERENCE_PRECISION_HINT f32, "
          f"INFERENCE_NUM_THREADS {' and '.join(tc)}, one process: every graph compiled once per thread count for the wall time and "
          "once more with PERF_COUNT for the counters; each copy runs a block of runs per round, rounds interleaved, order rotated. "
          "Wall: medians [p10-p90] of per-round block means; ratios are per-round paired. Layers: per-node counter means over all "
          "measured runs (whole microseconds, rounded down per run: a layer can be 1-2 us off); 'halves' gives the first and second "
          "half of the rounds. DW: the DWConv network's depthwise convolutions in the TV layers' places (OpenVINO's own kernel).", "",
          "Copy bandwidth (tvexport.profile.floor.copy_bandwidth, torch threads): " +
          ", ".join(f"{t} thr {result['bandwidth'][t]['bytes_per_s'] / 1e9:.1f} GB/s" for t in tc) + ".", ""]
    for case in result["cases"]:
        f = case["foreign"]
        md += [f"## {case['arch']}, batch {case['batch']}", "",
               f"{case['rounds']} rounds of {case['runs']} runs per copy; TV kernel {case['kernel']}; other processes' CPU share per "
               f"round median {f['median']:.2f} [{f['p10']:.2f}-{f['p90']:.2f}].", "",
               "| network | " + " | ".join(f"wall ms, {t} thr" for t in tc) + " | " + " | ".join(f"wall {t}/{base} thr" for t in tc[1:]) +
               " | " + " | ".join(f"layers ms, {t} thr" for t in tc) + " | " + " | ".join(f"layers {t}/{base}" for t in tc[1:]) +
               " | " + " | ".join(f"all nodes ms, {t} thr" for t in tc) + " |",
               "|---|" + "---|" * (5 * len(tc) - 2)]
        for net, e in case["nets"].items():
            w = e["wall_us"]
            lsum = {t: sum(v for v in e["layers_us"][t].values() if v == v) for t in tc}
            md.append(f"| {net} | " + " | ".join(f"{_ms(w[t]['median'])} [{_ms(w[t]['p10'])}-{_ms(w[t]['p90'])}]" for t in tc) + " | " +
                      " | ".join(f"{e['wall_ratio'][t]['median']:.2f} [{e['wall_ratio'][t]['p10']:.2f}-{e['wall_ratio'][t]['p90']:.2f}]" for t in tc[1:]) +
                      " | " + " | ".join(f"{_ms(lsum[t])} (halves {_ms(sum(v for v in e['layers_us_halves'][t][0].values() if v == v))} / "
                                         f"{_ms(sum(v for v in e['layers_us_halves'][t][1].values() if v == v))})" for t in tc) + " | " +
                      " | ".join(f"{lsum[t] / lsum[base]:.2f}" for t in tc[1:]) + " | " +
                      " | ".join(_ms(e["other_us"][t]["all_nodes"]) for t in tc) + " |")
        md += ["", "Per layer (us; counter means over all measured runs):", "",
               "| network | layer | " + " | ".join(f"{t} thr" for t in tc) + " | " + " | ".join(f"{t}/{base}" for t in tc[1:]) + " |",
               "|---|---|" + "---|" * (2 * len(tc) - 1)]
        for net, e in case["nets"].items():
            for layer in e["layers_us"][base]:
                v = {t: e["layers_us"][t][layer] for t in tc}
                md.append(f"| {net} | {layer} | " + " | ".join(f"{v[t]:.1f}" for t in tc) + " | " +
                          " | ".join(f"{v[t] / v[base]:.2f}" if v[base] > 0 else "-" for t in tc[1:]) + " |")
        md.append("")
    _common.write_results(out, name, "\n".join(md) + "\n", result)


def machine_text(machine: dict[str, Any], vers: dict[str, Any], counts: list[int]) -> str:
    """describe_machine's line, its thread count replaced by the compared ones."""
    from tvexport.profile.report import describe_machine

    text = describe_machine({"machine": machine, "versions": vers, "settings": {"threads": counts[-1], "device": "cpu", "dtype": "float32"}})
    plural = "s" if counts[-1] > 1 else ""
    return text.replace(f"{counts[-1]} thread{plural},", f"{' vs '.join(map(str, counts))} threads (compared),", 1)


def main(args: argparse.Namespace | None = None) -> int:
    args = args or parse_args()
    name = args.name or "openvino_threads"
    if args.rendered is not None:  # the --render file, as parse_args read and checked it
        _common.rerender(args, name, render, result=args.rendered)
        return 0
    counts = args.thread_count or [1, 2]
    machine = machine_info(device="cpu")
    vers = {**versions(), "openvino": __import__("openvino").__version__}
    result: dict[str, Any] = {"schema": SCHEMA, "thread_counts": counts, "machine": machine, "versions": vers,
                              "machine_text": machine_text(machine, vers, counts),
                              "command": _common.command_line(), "cases": []}
    t0 = time.perf_counter()
    # the copy bandwidth (torch threads) at each thread count: what a memory-bound layer can gain
    result["bandwidth"] = {str(t): bandwidth_with(t) for t in counts}
    for arch in args.arch or ["face_mobilenetv2_x0_1"]:
        print(f"{arch} batch {args.batch}", file=sys.stderr, flush=True)
        _common.wait_quiet(args)
        load = load_average()
        case = measure(arch, batch=args.batch, kernels=args.kernel_dtype or ["f32", "int8"], thread_counts=counts, rounds=args.rounds, runs=args.runs)
        result["cases"].append({**case, "load_average": [load, load_average()]})
        render(result, args.out, name)
    result["elapsed_s"] = time.perf_counter() - t0
    render(result, args.out, name)
    print(f"wrote {args.out / name}.md/.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(ARGS))
