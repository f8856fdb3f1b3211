"""Scratch (issue 17, f16b1_46): where face MobileNetV2 x0.1's float16 TV network spends its time
at batch 1, 2 threads, against the DW network, by OpenVINO node type, with probe builds of the
extension that skip parts of evaluate() (benchmarks/results/openvino_f16b1_46_zen3_probe_scratch.patch,
built with CXXFLAGS=-DTVX_PROBE=N `tvexport extension build openvino -o DIR`; their outputs are wrong
by design: only their counters mean anything).

    python benchmarks/results/openvino_f16b1_46_zen3_probe_scratch.py RUNS OUT.md NAME=main|LIB ...

One process: the plugin graph with float16 kernels compiled once per NAME (main: the cached build
of this checkout) and the DW network, all with PERF_COUNT, INFERENCE_PRECISION_HINT f32, 2 threads;
50 warm-up runs each, then blocks of 20 runs per copy, the copies' order reversed every other block.
Per node: the mean of the measured runs from the counters (openvino_fused.mean_between; whole us).
Wall: median of the block means (profiled copies, so above the plain wall times).
"""

from __future__ import annotations

import collections
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import numpy as np
from openvino_fused import graphs, mean_between, node_counters, ov_closure

from tvexport.bake import random_inputs
from tvexport.models.registry import config_of
from tvexport.openvino import OpenVinoRunner
from tvexport.profile import load_subject
from tvexport.profile.machine import load_average, machine_info


def main() -> None:
    runs, out_path, specs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    load_before = load_average()
    subject = load_subject("face_mobilenetv2_x0_1")
    tv_model, dw_model = subject.networks[0].form("baked"), subject.networks[1].form("baked")
    x = np.ascontiguousarray(random_inputs((1, *config_of(tv_model).input_shape), seed=0).numpy())
    g_tv, g_dw = graphs(tv_model, 1, tv=True), graphs(dw_model, 1, tv=False)
    copies = {}
    for spec in specs:
        name, path = spec.split("=", 1)
        r = OpenVinoRunner(g_tv["plugin_f16"], threads=2, profile=True, extension=None if path == "main" else path)
        copies[name] = (r, ov_closure(r, x))
    r = OpenVinoRunner(g_dw["portable"], threads=2, profile=True)
    copies["dw"] = (r, ov_closure(r, x))
    for _, f in copies.values():
        for _ in range(50):
            f()
    before = {k: node_counters(r)[0] for k, (r, _) in copies.items()}
    wall: dict[str, list[float]] = {k: [] for k in copies}
    for i in range(runs // 20):
        items = list(copies.items())
        if i % 2:
            items.reverse()
        for k, (_, f) in items:
            t = time.perf_counter()
            for _ in range(20):
                f()
            wall[k].append((time.perf_counter() - t) / 20 * 1e3)
    means, kinds = {}, {}
    for k, (r, _) in copies.items():
        after, kinds[k] = node_counters(r)
        means[k] = mean_between(before[k], 50, after, 50 + runs)
    lines = ["# Scratch: face MobileNetV2 x0.1 float16 TV network vs DW network by node type, probe builds (issue 17, f16b1_46)", "",
             f"Machine: {machine_info().get('cpu', '?')}; load average before {load_before}, after {load_average()}.", "",
             f"Command: `python benchmarks/results/openvino_f16b1_46_zen3_probe_scratch.py {' '.join(sys.argv[1:])}` "
             f"({runs} measured runs per copy). See the script's docstring.", "",
             "| copy | wall ms (profiled) | all nodes us | by node type, us |", "|---|---|---|---|"]
    for k in copies:
        by: dict[str, float] = collections.defaultdict(float)
        for n, v in means[k].items():
            by[kinds[k][n]] += v
        types = ", ".join(f"{t} {v:.1f}" for t, v in sorted(by.items(), key=lambda kv: -kv[1]) if v > 0)
        lines.append(f"| {k} | {np.median(wall[k]):.3f} | {sum(means[k].values()):.1f} | {types} |")
    tv = [k for k in copies if k != "dw"]
    ref = [n for n, t in kinds[tv[0]].items() if t == "Reference"]
    dw_dw = [n for n, t in kinds["dw"].items() if t == "GroupConvolution"]
    lines += ["", "Per TV layer (us), beside the DW network's depthwise convolution in its place:", "",
              "| layer | " + " | ".join(tv) + " | dw |", "|---|" + "---|" * (len(tv) + 1)]
    for n, d in zip(ref, dw_dw):
        lines.append(f"| {n} | " + " | ".join(f"{means[k][n]:.1f}" for k in tv) + f" | {means['dw'][d]:.1f} |")
    tmp = out_path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, out_path)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
