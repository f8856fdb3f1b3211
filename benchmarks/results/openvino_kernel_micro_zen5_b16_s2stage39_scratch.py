"""Scratch probe (issue 17, s2stage39): the stride-2 input staged through a per-thread buffer.

The kernel alone, one thread, batch 16, float32: ``layer`` times face MobileNetV2 x0.1's stride-2
C = 48 layer with a 96x96 input (48x48 output) only, ``net`` every TV layer of x0.1 (the network
sums). Variants: ``base`` (ext/kernel.cpp), ``null`` (an unchanged copy, the noise), and builds of
OUT_DIR/kernel.cpp (main's kernel.cpp with openvino_kernel_micro_zen5_b16_s2stage39_scratch.patch
applied) with its TVX_STAGE / TVX_STAGE_COPY / TVX_STAGE_PF / TVX_S2POS flags (see the patch).
Run from the repository root:

    python benchmarks/results/openvino_kernel_micro_zen5_b16_s2stage39_scratch.py layer|net[_SUFFIX] OUT_DIR [NAME=FLAGS ...]
    python benchmarks/results/openvino_kernel_micro_zen5_b16_s2stage39_scratch.py summary OUT_DIR

MODE with a suffix (``layer_decomp``) runs the same cases under another output name. ``summary``
reads the runs' JSONs beside this file and writes OUT_DIR/openvino_kernel_micro_zen5_b16_s2stage39_scratch.json:
per run and variant the stride-2 layer's median and the median [p10-p90] of its per-round B/A
against ``base`` (cold and hot), and the network sums' B/A as the runs' .md print them.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import openvino_kernel_micro as m  # noqa: E402
from kernel_bandwidth import Shape  # noqa: E402

mode, out, *picked = sys.argv[1:]
if mode == "summary":
    import json
    import statistics

    from _timing import pct

    here = Path(__file__).resolve().parent
    runs = ["layer", "layer_decomp", "layer_width", "layer_wide", "layer_wide2", "layer_nopf", "layer_band", "layer_spin", "net"]
    summary = {}
    for run in runs:
        d = json.loads((here / f"openvino_kernel_micro_zen5_b16_s2stage39_{run}_scratch.json").read_text())
        rows = [r for r in d["rows"] if r["layer"] == "C48 48x48 s2 k3"]
        base = {r["state"]: r for r in rows if r["variant"] == "base"}
        entry = {"command": d["command"], "load_average": [d["load_average_before"], d["load_average_after"]],
                 "read_gbs": round(d["stream"]["read"]["median_gbs"], 2), "stride2_layer": {}}
        for r in rows:
            ratios = [x / y for x, y in zip(r["round_medians_ns"], base[r["state"]]["round_medians_ns"], strict=True)]
            entry["stride2_layer"].setdefault(r["variant"], {})[r["state"]] = {
                "median_us": round(r["median_ns"] / 1e3, 1), "b_over_a": round(statistics.median(ratios), 4),
                "p10": round(pct(ratios, 10), 4), "p90": round(pct(ratios, 90), 4)}
        summary[run] = entry
    Path(out, "openvino_kernel_micro_zen5_b16_s2stage39_scratch.json").write_text(json.dumps(summary, indent=1) + "\n")
    sys.exit(0)
default = {"s1": "-DTVX_STAGE=1", "s2": "-DTVX_STAGE=2", "s3": "-DTVX_STAGE=3", "s3vec": "-DTVX_STAGE=3 -DTVX_STAGE_COPY=1",
           "s3movsb": "-DTVX_STAGE=3 -DTVX_STAGE_COPY=2", "s3pf": "-DTVX_STAGE=3 -DTVX_STAGE_PF=1", "pos10": "-DTVX_S2POS=10"}
chosen = dict(p.split("=", 1) for p in picked) if picked else default
variants = ["--variant", "base", "--variant", f"null@{out}/kernel_null.cpp"]
for name, flags in chosen.items():
    variants += ["--variant", f"{name}@{out}/kernel.cpp:{flags}"]
if mode.startswith("layer"):
    m.tv_shapes = lambda arch: [Shape(48, 3, 2, 48, 48, count=1)]
sys.argv = [sys.argv[0], "--arch", "face_mobilenetv2_x0_1", "--batch", "16", "--dtype", "float32", "--rounds", "4",
            "--min-iters", "10", "--min-ms", "100", "--name", f"openvino_kernel_micro_zen5_b16_s2stage39_{mode}_scratch", "--out", out, *variants]
sys.exit(m.main())
