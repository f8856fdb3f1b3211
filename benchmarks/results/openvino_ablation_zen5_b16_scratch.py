"""Scratch (issue 17, stop 34): the TV ops of one network in OpenVINO under several extension builds.

Not a benchmark of record: each build is a copy of the checkout (COPY/) with
openvino_ablation_zen5_b16_scratch.patch applied and its TVX_ABLATE default set to 0-5, built in
that copy with `PYTHONPATH=COPY python -m tvexport extension build openvino -o COPY/lib` (without
PYTHONPATH an editable install builds its own checkout's source); all builds are loaded into this one process (one
runner each) and run in interleaved rounds (order reversed every other round) of 10 runs, after 10
warm-up runs each. Per TV layer: the median over rounds of the round's mean from OpenVINO's
per-node counters (openvino_fused.layer_profile's method).

    ROUNDS=12 python openvino_ablation_zen5_b16_scratch.py face_mobilenetv2_x0_1 16 2 COPY0/lib/LIB COPY1/lib/LIB ...

Each column is named after its copy's directory.
"""
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import openvino_fused as of
from tvexport.bake import random_inputs
from tvexport.models.registry import config_of
from tvexport.openvino import OpenVinoRunner
from tvexport.profile import load_subject

arch, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
libs = sys.argv[4:]
tv = load_subject(arch).networks[0].form("baked")
x = np.ascontiguousarray(random_inputs((batch, *config_of(tv).input_shape), seed=0).numpy())
g = of.plugin_graph(tv, batch)
names = of.tv_nodes(g)
runners = [OpenVinoRunner(g, threads=threads, profile=True, extension=lib) for lib in libs]
infer = [of.ov_closure(r, x) for r in runners]
for f in infer:
    for _ in range(10):
        f()
per: list[list[dict[str, float]]] = [[] for _ in libs]
for rnd in range(int(os.environ.get("ROUNDS", "6"))):
    order = list(range(len(libs)))
    for i in order if rnd % 2 == 0 else reversed(order):
        before, _ = of.node_counters(runners[i])
        for _ in range(10):
            infer[i]()
        after, _ = of.node_counters(runners[i])
        mean = of.mean_between(before, 10 + rnd * 10, after, 20 + rnd * 10)
        per[i].append({n: of.node_time(mean, n) for n in names})
print("%-22s" % "layer" + "".join("%10s" % Path(lib).parent.parent.name for lib in libs))
total = [0.0] * len(libs)
for n in names:
    vals = [statistics.median(p[n] for p in per[i]) for i in range(len(libs))]
    total = [t + v for t, v in zip(total, vals)]
    print("%-22s" % n + "".join("%10.0f" % v for v in vals))
print("%-22s" % "TV total" + "".join("%10.0f" % v for v in total))
