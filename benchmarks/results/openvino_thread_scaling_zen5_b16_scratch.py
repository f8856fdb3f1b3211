"""Scratch (issue 17, stop 34): per node type, the fused TV network and its DW network on OpenVINO,
one and two threads, from the CPU plugin's per-node counters (openvino_fused.layer_profile's method:
10 warm-up runs, then the mean of 60 runs). Shows how each network's depthwise ops (tv_dwconv
"Reference" nodes; GroupConvolution) scale with the second core.

    python openvino_thread_scaling_zen5_b16_scratch.py face_mobilenetv2_x0_1 16
"""
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import openvino_fused as of
from tvexport.bake import random_inputs
from tvexport.models.registry import config_of
from tvexport.openvino import OpenVinoRunner
from tvexport.profile import load_subject

arch, batch = sys.argv[1], int(sys.argv[2])
subject = load_subject(arch)
tv, dw = subject.networks[0].form("baked"), subject.networks[1].form("baked")
x = np.ascontiguousarray(random_inputs((batch, *config_of(tv).input_shape), seed=0).numpy())
graphs = {"tv": of.plugin_graph(tv, batch), "dw": of.graphs(dw, batch, tv=False)["portable"]}
rows = []
for threads in (1, 2):
    for name, g in graphs.items():
        runner = OpenVinoRunner(g, threads=threads, profile=True)
        infer = of.ov_closure(runner, x)
        for _ in range(10):
            infer()
        before, _ = of.node_counters(runner)
        for _ in range(60):
            infer()
        after, kinds = of.node_counters(runner)
        mean = of.mean_between(before, 10, after, 70)
        by_type = collections.Counter()
        for node, us in mean.items():
            by_type[kinds[node]] += us
        rows.append((threads, name, sum(mean.values()), by_type))
types = sorted({t for r in rows for t in r[3] if max(rr[3][t] for rr in rows) >= 1.0})
print("| threads | network | all nodes us | " + " | ".join(types) + " |")
print("|---|---|---|" + "---|" * len(types))
for threads, name, total, by_type in rows:
    print(f"| {threads} | {name} | {total:.0f} | " + " | ".join(f"{by_type[t]:.0f}" for t in types) + " |")
